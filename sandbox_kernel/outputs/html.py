"""HTML and SVG from the sandbox, rebuilt from an allowlist by a real HTML parser.

The sanitiser is nh3, the Python binding of ammonia: html5ever parses the markup as a
browser does (so a ``>`` inside a quoted attribute, an unclosed tag or a namespace
switch mean what they mean to Chromium), and only allowed elements and attributes are
serialised back. Everything else is removed: ``<script>``, event handlers, ``<style>``
(its rules are applied to the output's own elements first, see :mod:`.css`),
``<base>``, ``<meta>``, ``<link>``, ``<form>``, ``<iframe>``, ``<object>``,
``<embed>``, ``<foreignObject>``, ``<animate>``/``<set>``, and every attribute that is
not on the list.

Attributes that carry URLs or CSS are judged by :mod:`.urls` and :mod:`.css`: no
resource leaves the page (images, sound and video only as ``data:``), links cannot run
script. ``id`` values are prefixed in HTML (and the in-document references to them
rewritten), so an output cannot clobber names the page's own scripts look up; class
names of JupyterLab's own interface are dropped, so an output cannot dress up as it.
"""

from __future__ import annotations

import re
import threading

import nh3

from . import css, urls
from .latex import disarm

#: Prefix of every ``id`` in HTML output (see module docstring).
ID_PREFIX = "sandbox-output-"

#: Class names of the page's own interface (JupyterLab, Lumino, Notebook 7).
_UI_CLASS = re.compile(r"^(jp-|lm-|p-|mod-|jupyter|bp3-|jl-|sandbox-)", re.IGNORECASE)

HTML_TAGS = frozenset(
    ["a", "abbr", "acronym", "address", "article", "aside", "b", "bdi", "bdo", "big", "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "font", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "i", "img", "ins", "kbd", "li", "mark", "nav", "ol", "p", "pre", "q", "rp", "rt", "ruby", "s", "samp", "section", "small", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr", "audio", "video", "source"]
)

SVG_TAGS = frozenset(
    ["svg", "g", "defs", "symbol", "use", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "tspan", "textPath", "title", "desc", "clipPath", "mask", "marker", "pattern", "linearGradient", "radialGradient", "stop", "image", "switch"]
)

#: SVG presentation attributes (geometry and painting), allowed on every SVG element.
_SVG_COMMON = frozenset(
    ["id", "class", "style", "transform", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "width", "height", "d", "points", "dx", "dy", "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-linecap", "stroke-linejoin", "stroke-miterlimit", "stroke-dasharray", "stroke-dashoffset", "stroke-opacity", "opacity", "clip-path", "clip-rule", "mask", "font-family", "font-size", "font-style", "font-weight", "text-anchor", "dominant-baseline", "alignment-baseline", "baseline-shift", "letter-spacing", "word-spacing", "text-decoration", "visibility", "display", "color", "stop-color", "stop-opacity", "offset", "gradientUnits", "gradientTransform", "spreadMethod", "fx", "fy", "patternUnits", "patternContentUnits", "patternTransform", "clipPathUnits", "maskUnits", "maskContentUnits", "markerWidth", "markerHeight", "markerUnits", "orient", "refX", "refY", "marker-start", "marker-mid", "marker-end", "viewBox", "preserveAspectRatio", "version", "rotate", "lengthAdjust", "textLength", "startOffset", "shape-rendering", "text-rendering", "paint-order", "vector-effect"]
)

_HTML_COMMON = frozenset(
    ["id", "class", "style", "title", "lang", "dir", "align", "valign", "width", "height", "bgcolor", "colspan", "rowspan"]
)

_ATTRIBUTES: dict[str, set[str]] = {
    "*": set(_HTML_COMMON),
    "a": {"href"},
    "img": {"src", "alt"},
    "audio": {"src", "controls", "loop", "muted"},
    "video": {"src", "controls", "loop", "muted", "poster"},
    "source": {"src", "type"},
    "table": {"border", "cellpadding", "cellspacing", "summary"},
    "th": {"scope", "abbr"},
    "td": {"abbr"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start", "type", "reversed"},
    "li": {"value"},
    "font": {"color", "size", "face"},
    "time": {"datetime"},
    "abbr": {"title"},
    "details": {"open"},
    "q": {"cite"},
    "blockquote": {"cite"},
    "del": {"cite", "datetime"},
    "ins": {"cite", "datetime"},
    "use": {"href", "xlink:href"},
    "image": {"href", "xlink:href"},
    "textPath": {"href", "xlink:href"},
}
for _tag in SVG_TAGS:
    _ATTRIBUTES.setdefault(_tag, set()).update(_SVG_COMMON)

#: Namespaces an SVG document needs to be read as XML (JupyterLab shows SVG outputs
#: as an image, so they must stay well-formed XML).
_SVG_NAMESPACES = {
    "svg": {
        "xmlns": {"http://www.w3.org/2000/svg"},
        "xmlns:xlink": {"http://www.w3.org/1999/xlink"},
    }
}

#: Elements removed with their content (not only their tags).
_DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "template", "noscript", "iframe", "object", "embed", "metadata",
     "foreignObject", "math", "select", "textarea", "xmp", "noembed", "noframes", "title"}
)

_URL_IN_ATTRIBUTE = re.compile(r"url\(\s*['\"]?([^)'\"]*)['\"]?\s*\)")


def is_ui_class(name: str) -> bool:
    """A class name of the page's own interface (JupyterLab, Lumino, this kernel)."""
    return bool(_UI_CLASS.match(name))


class _AttributeJudge:
    """nh3's attribute filter: URLs, CSS and ids, judged per attribute.

    It notes (per thread: several sandboxes may clean at once) whether it removed
    anything, so that the output can say so.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._state = threading.local()

    @property
    def removed(self) -> bool:
        return bool(getattr(self._state, "removed", False))

    @removed.setter
    def removed(self, value: bool) -> None:
        self._state.removed = value

    def __call__(self, element: str, attribute: str, value: str) -> str | None:
        judged = self._judge(element, attribute, value)
        if judged is None:
            self.removed = True
        return judged

    def ref(self, target: str) -> str:
        """An in-document reference, pointing at the prefixed id."""
        return f"#{self.prefix}{target[1:]}" if self.prefix else target

    def _judge(self, element: str, attribute: str, value: str) -> str | None:
        if attribute == "style":
            cleaned = css.clean_declarations(value, self.ref)
            if cleaned.count(":") < value.count(":"):
                self.removed = True
            return cleaned or None
        if attribute == "class":
            kept = [name for name in value.split() if not is_ui_class(name)]
            if len(kept) < len(value.split()):
                self.removed = True
            return " ".join(kept) or None
        if attribute in ("href", "xlink:href"):
            if element == "a":
                if urls.is_fragment(value):
                    return self.ref(urls.normalise(value))
                return value if urls.is_safe_link(value) else None
            if element == "image":
                return value if urls.is_safe_image(value) else None
            # <use>, <textPath>: references inside the document only.
            return self.ref(urls.normalise(value)) if urls.is_fragment(value) else None
        if attribute in ("src", "poster"):
            if element == "img":
                return value if urls.is_safe_image(value) else None
            return value if urls.is_safe_media(value) else None
        if attribute == "cite":
            return value if urls.is_safe_link(value) else None
        if "url(" in value:
            # Painting attributes (fill, clip-path, mask, marker-*): in-document only.
            targets = _URL_IN_ATTRIBUTE.findall(value)
            if not targets or not all(t.startswith("#") for t in targets):
                return None
            return _URL_IN_ATTRIBUTE.sub(lambda m: f"url({self.ref(m.group(1))})", value)
        return value


def _cleaner(tags: frozenset[str], judge: _AttributeJudge, prefix: str | None) -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(tags),
        clean_content_tags=set(_DROPPED_WITH_CONTENT - tags),
        attributes={tag: set(names) for tag, names in _ATTRIBUTES.items()},
        attribute_filter=judge,
        strip_comments=True,
        link_rel="noopener noreferrer",
        tag_attribute_values=_SVG_NAMESPACES,
        url_schemes={"http", "https", "mailto", "data"},
        id_prefix=prefix,
    )


_HTML_JUDGE = _AttributeJudge(ID_PREFIX)
_SVG_JUDGE = _AttributeJudge("")
_HTML_CLEANER = _cleaner(HTML_TAGS | SVG_TAGS, _HTML_JUDGE, ID_PREFIX)
_SVG_CLEANER = _cleaner(SVG_TAGS, _SVG_JUDGE, None)


def _clean(markup: str, cleaner: nh3.Cleaner, judge: _AttributeJudge) -> tuple[str, bool]:
    """Cleaned markup, and whether anything active or remote was taken out."""
    judge.removed = False
    original = markup
    if "<style" in markup.lower():
        markup = css.inline_style_sheets(markup, judge.ref)
    try:
        cleaned = cleaner.clean(markup)
    except BaseException as err:  # a Rust panic arrives as BaseException
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        return "", True
    text, disarmed = disarm(cleaned)
    return text, judge.removed or disarmed or looks_active(original)


def clean_html(markup: str) -> str:
    """HTML (``text/html``, rendered Markdown, widget HTML) made safe to show."""
    return judge_html(markup)[0]


def judge_html(markup: str) -> tuple[str, bool]:
    """:func:`clean_html`, and whether anything active or remote was taken out."""
    if "<" not in markup and "&" not in markup:
        # No element can come from text without '<' (a character reference decodes to
        # text, never to a tag; with none, the text is what MathJax reads): only the
        # TeX macros matter.
        return disarm(markup)
    return _clean(markup, _HTML_CLEANER, _HTML_JUDGE)


def judge_svg(markup: str) -> tuple[str, bool]:
    """An ``image/svg+xml`` document made safe (empty when nothing of it is left), and
    whether anything active or remote was taken out."""
    cleaned, removed = _clean(markup, _SVG_CLEANER, _SVG_JUDGE)
    start = cleaned.find("<svg")
    if start < 0:
        return "", True
    cleaned = cleaned[start:]
    if "xlink:href" in cleaned and "xmlns:xlink" not in cleaned[: cleaned.find(">")]:
        # The parser keeps xlink:href but not the declaration of its prefix, without
        # which the document is no longer well-formed XML.
        cleaned = '<svg xmlns:xlink="http://www.w3.org/1999/xlink"' + cleaned[4:]
    return cleaned, removed


#: What makes the notice "script or remote content removed" appear. The sanitiser
#: decides what is kept; this only chooses whether to tell the user about it.
_ACTIVE_HINT = re.compile(
    r"<\s*(script|iframe|object|embed|form|base|meta|link|frame)\b|\bon[a-z]+\s*=|"
    r"[.#](jp|lm|p)-[\w-]+[^{}<]*\{|"
    r"javascript\s*:|vbscript\s*:|\bsrc\s*=\s*['\"]?\s*(https?:)?//|url\(\s*['\"]?\s*(https?:)?//|"
    r"!\[[^\]]*\]\(\s*<?\s*(https?:)?//",
    re.IGNORECASE,
)


def looks_active(markup: str) -> bool:
    """Whether ``markup`` tried to run script or load from elsewhere (for the notice)."""
    if _ACTIVE_HINT.search(markup):
        return True
    if "&" in markup or "\t" in markup or "\n" in markup:
        return bool(_ACTIVE_HINT.search(urls.normalise(markup)))
    return False
