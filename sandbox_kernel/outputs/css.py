"""CSS in outputs: style attributes cleaned, ``<style>`` sheets turned into them.

A ``<style>`` element in an output applies to the whole JupyterLab page (it can hide
every real usage line, or restyle the UI into a fake dialog), so none reaches the
browser. Sheets that style the output itself - pandas' ``Styler`` (rules on ``#id``
selectors, one per styled cell), a DataFrame's ``.dataframe th`` rules, matplotlib's
``*{stroke-linejoin: round}`` in SVG - are applied instead as ``style`` attributes of
the elements they select (simple and descendant selectors; rules with pseudo-classes,
combinators other than descendant, or at-rules are left out). The HTML sanitiser runs
after this step and is what makes the output safe; this step only keeps the look.

Declarations are parsed with tinycss2 (a CSS Syntax Level 3 parser) and kept only for
properties on an allowlist, with values free of ``url()`` other than in-document
references (no request leaves the page), of ``expression()`` and of negative margins
(no output is drawn over another cell's usage line).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser

import tinycss2
import tinycss2.ast

#: Properties a style may set: text, colour, boxes, tables, lists and SVG painting.
#: Not position, z-index, transform, content, behaviour, animation or filters: those
#: take an output out of its box or out of CSS's data.
ALLOWED_PROPERTIES = frozenset(
    ["color", "background-color", "opacity", "visibility", "font", "font-family", "font-size", "font-style", "font-weight", "font-variant", "line-height", "letter-spacing", "word-spacing", "text-align", "text-decoration", "text-decoration-color", "text-decoration-line", "text-decoration-style", "text-indent", "text-transform", "text-overflow", "white-space", "word-break", "word-wrap", "overflow-wrap", "vertical-align", "direction", "unicode-bidi", "border", "border-top", "border-right", "border-bottom", "border-left", "border-color", "border-style", "border-width", "border-top-color", "border-right-color", "border-bottom-color", "border-left-color", "border-top-style", "border-right-style", "border-bottom-style", "border-left-style", "border-top-width", "border-right-width", "border-bottom-width", "border-left-width", "border-radius", "border-collapse", "border-spacing", "padding", "padding-top", "padding-right", "padding-bottom", "padding-left", "margin", "margin-top", "margin-right", "margin-bottom", "margin-left", "width", "height", "min-width", "min-height", "max-width", "max-height", "box-sizing", "display", "float", "clear", "overflow", "overflow-x", "overflow-y", "table-layout", "caption-side", "empty-cells", "list-style-type", "list-style-position", "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-linecap", "stroke-linejoin", "stroke-miterlimit", "stroke-dasharray", "stroke-dashoffset", "stroke-opacity", "clip-path", "clip-rule", "text-anchor", "dominant-baseline", "alignment-baseline", "baseline-shift", "paint-order", "shape-rendering", "text-rendering", "font-stretch", "stop-color", "stop-opacity", "marker", "marker-start", "marker-mid", "marker-end", "color-interpolation", "color-interpolation-filters"]
)

#: Functions a value may use (colours and arithmetic).
_ALLOWED_FUNCTIONS = frozenset(
    {"rgb", "rgba", "hsl", "hsla", "hwb", "lab", "lch", "oklab", "oklch", "calc", "min", "max",
     "clamp", "url"}
)

#: How many rules of a ``<style>`` sheet are applied (Styler writes one per cell).
MAX_RULES = 20_000


def clean_declarations(text: str, ref: Callable[[str], str] | None = None) -> str:
    """A style attribute's declarations, keeping only the allowed and inert ones.

    Args:
        text: the attribute's value.
        ref: rewrites an in-document reference (``#id``) kept in ``url()``.
    """
    kept = []
    for decl in tinycss2.parse_blocks_contents(text, skip_comments=True, skip_whitespace=True):
        if not isinstance(decl, tinycss2.ast.Declaration):
            continue
        name = decl.lower_name
        if name not in ALLOWED_PROPERTIES:
            continue
        value = _clean_value(decl.value, name.startswith("margin"), ref)
        if value is None:
            continue
        kept.append(f"{name}: {value}{' !important' if decl.important else ''}")
    return "; ".join(kept)


def is_inert_value(text: str) -> bool:
    """A CSS value (a widget's layout or style trait) that loads and runs nothing."""
    return _clean_value(tinycss2.parse_component_value_list(text), False, None) is not None


def _clean_value(
    tokens: list[tinycss2.ast.Node], no_negative: bool, ref: Callable[[str], str] | None
) -> str | None:
    out: list[str] = []
    for token in tokens:
        if isinstance(token, tinycss2.ast.URLToken):
            if not token.value.startswith("#"):
                return None
            target = ref(token.value) if ref else token.value
            out.append(f"url({target})")
            continue
        if isinstance(token, tinycss2.ast.FunctionBlock):
            if token.lower_name not in _ALLOWED_FUNCTIONS:
                return None
            if token.lower_name == "url":
                # url("...") written as a function: a quoted reference.
                args = [a for a in token.arguments if not isinstance(a, tinycss2.ast.WhitespaceToken)]
                if len(args) != 1 or not isinstance(args[0], tinycss2.ast.StringToken):
                    return None
                if not args[0].value.startswith("#"):
                    return None
                target = ref(args[0].value) if ref else args[0].value
                out.append(f"url({target})")
                continue
            inner = _clean_value(token.arguments, no_negative, ref)
            if inner is None:
                return None
            out.append(f"{token.name}({inner})")
            continue
        if isinstance(token, (tinycss2.ast.ParenthesesBlock, tinycss2.ast.SquareBracketsBlock,
                              tinycss2.ast.CurlyBracketsBlock, tinycss2.ast.AtKeywordToken)):
            return None
        if isinstance(token, tinycss2.ast.ParseError):
            return None
        if isinstance(token, tinycss2.ast.IdentToken) and token.lower_value.startswith(
            ("expression", "-moz-binding", "javascript")
        ):
            return None
        if (
            no_negative
            and isinstance(token, (tinycss2.ast.NumberToken, tinycss2.ast.DimensionToken,
                                   tinycss2.ast.PercentageToken))
            and token.value < 0
        ):
            return None
        out.append(token.serialize())
    value = "".join(out).strip()
    return value or None


# -- <style> sheets into style attributes -----------------------------------------------


@dataclass(frozen=True)
class _Compound:
    """One compound selector: ``tag#id.class`` (each part optional, ``*`` any)."""

    tag: str | None
    id: str | None
    classes: frozenset[str]

    def matches(self, tag: str, id_: str | None, classes: frozenset[str]) -> bool:
        return (
            (self.tag is None or self.tag == tag)
            and (self.id is None or self.id == id_)
            and self.classes <= classes
        )


_Element = tuple[str, "str | None", frozenset[str]]


@dataclass(frozen=True)
class _Rule:
    chain: tuple[_Compound, ...]  # descendant selector, outermost first
    declarations: str

    def matches(self, element: _Element, ancestors: list[_Element]) -> bool:
        if not self.chain[-1].matches(*element):
            return False
        wanted = len(self.chain) - 2
        for ancestor in reversed(ancestors):
            if wanted < 0:
                break
            if self.chain[wanted].matches(*ancestor):
                wanted -= 1
        return wanted < 0


def _parse_compound(text: str) -> _Compound | None:
    tag: str | None = None
    id_: str | None = None
    classes: list[str] = []
    i = 0
    head = ""
    while i < len(text) and (text[i].isalnum() or text[i] in "-_*"):
        head += text[i]
        i += 1
    if head and head != "*":
        tag = head.lower()
    while i < len(text):
        marker = text[i]
        if marker not in "#.":
            return None  # pseudo-classes, attribute selectors, combinators: not applied
        i += 1
        name = ""
        while i < len(text) and (text[i].isalnum() or text[i] in "-_"):
            name += text[i]
            i += 1
        if not name:
            return None
        if marker == "#":
            id_ = name
        else:
            classes.append(name)
    return _Compound(tag, id_, frozenset(classes))


def parse_sheet(css: str, ref: Callable[[str], str] | None = None) -> list[_Rule]:
    """The rules of a style sheet that can be applied as style attributes."""
    rules: list[_Rule] = []
    for node in tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True):
        if not isinstance(node, tinycss2.ast.QualifiedRule):
            continue  # @media, @import, @font-face: not applied
        declarations = clean_declarations(tinycss2.serialize(node.content), ref)
        if not declarations:
            continue
        for selector in tinycss2.serialize(node.prelude).split(","):
            compounds = [_parse_compound(part) for part in selector.split()]
            if compounds and all(c is not None for c in compounds):
                rules.append(_Rule(tuple(c for c in compounds if c is not None), declarations))
                if len(rules) >= MAX_RULES:
                    return rules
    return rules


_VOID = frozenset(
    ["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"]
)


class _Inliner(HTMLParser):
    """Re-writes HTML with ``<style>`` sheets applied as ``style`` attributes.

    Its output is still raw HTML for the sanitiser; comments, ``<style>`` and
    ``<script>`` contents are dropped here already.
    """

    def __init__(self, rules: list[_Rule]) -> None:
        super().__init__(convert_charrefs=True)
        self.by_id: dict[str, list[_Rule]] = {}
        self.others: list[_Rule] = []
        for rule in rules:
            last = rule.chain[-1]
            if len(rule.chain) == 1 and last.id is not None and last.tag is None and not last.classes:
                self.by_id.setdefault(last.id, []).append(rule)
            else:
                self.others.append(rule)
        self.out: list[str] = []
        self.stack: list[_Element] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=True)

    def _start(self, tag: str, attrs: list[tuple[str, str | None]], closed: bool) -> None:
        if tag in ("style", "script"):
            if not closed:
                self.skipping += 1
            return
        values = {name: value or "" for name, value in attrs}
        element: _Element = (tag, values.get("id"), frozenset(values.get("class", "").split()))
        applied = [
            rule.declarations
            for rule in (*self.others, *self.by_id.get(element[1] or "", ()))
            if rule.matches(element, self.stack)
        ]
        if applied:
            own = values.get("style")
            values["style"] = "; ".join([*applied, *([own] if own else [])])
        text = "".join(f' {name}="{html.escape(value)}"' for name, value in values.items())
        self.out.append(f"<{tag}{text}{' /' if closed else ''}>")
        if not closed and tag not in _VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self.skipping = max(0, self.skipping - 1)
            return
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth][0] == tag:
                del self.stack[depth:]
                break
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(html.escape(data, quote=False))


class _SheetCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sheets: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "style":
            self._in_style = True
            self.sheets.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style and self.sheets:
            self.sheets[-1] += data


def inline_style_sheets(markup: str, ref: Callable[[str], str] | None = None) -> str:
    """``markup`` with its ``<style>`` sheets applied to its elements and removed.

    Only called when the markup contains ``<style``; the result goes on to the
    sanitiser.
    """
    collector = _SheetCollector()
    collector.feed(markup)
    collector.close()
    css = "\n".join(collector.sheets).replace("<![CDATA[", "").replace("]]>", "")
    inliner = _Inliner(parse_sheet(css, ref))
    inliner.feed(markup)
    inliner.close()
    return "".join(inliner.out)
