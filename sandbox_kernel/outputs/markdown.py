"""Markdown from the sandbox: kept when it is only text, otherwise rendered and cleaned.

Markdown can carry raw HTML, links and images, and two Markdown parsers do not always
agree on where raw HTML starts: judging the source with another parser than the
frontend's would leave room for a difference to slip through. So Markdown is kept as
``text/markdown`` only when it cannot contain any of them: no ``<`` (no tag, no
autolink), no ``&`` (no character reference), no link or image syntax. Anything else
is rendered here with markdown-it-py (CommonMark, tables and strikethrough, as
JupyterLab renders GitHub-flavoured Markdown), its math protected from the Markdown
syntax first, as JupyterLab does, and the HTML sanitised like any ``text/html``
output; the bundle then carries that HTML instead of the Markdown.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from .html import judge_html, looks_active
from .latex import disarm

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

#: Markdown that may hold HTML, a character reference, a link or an image.
_NOT_PLAIN = re.compile(r"[<&]|\]\s*[(\[:]|!\[")

#: Display and inline math, as JupyterLab's Markdown renderer finds it.
_MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+?\$|\\\[.+?\\\]|\\\(.+?\\\)", re.DOTALL)


@functools.cache
def _renderer() -> MarkdownIt:
    # Made at the first Markdown that needs it: importing markdown-it is 20 ms of CPU
    # that every kernel's start would pay.
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def is_plain(text: str) -> bool:
    """Markdown that no parser can read as HTML, a link or an image."""
    return not _NOT_PLAIN.search(text)


def clean_markdown(text: str) -> tuple[str, str, bool]:
    """``(mimetype, value, removed)``: the Markdown itself or its rendering as safe
    HTML, and whether anything active or remote was taken out."""
    if is_plain(text):
        return ("text/markdown", *disarm(text))
    maths: list[str] = []

    def hold(match: re.Match[str]) -> str:
        maths.append(match.group(0))
        return f"@@SANDBOXMATH{len(maths) - 1}@@"

    rendered = _renderer().render(_MATH.sub(hold, text))
    restored = re.sub(
        r"@@SANDBOXMATH(\d+)@@",
        lambda m: _escape(maths[int(m.group(1))]) if int(m.group(1)) < len(maths) else "",
        rendered,
    )
    cleaned, removed = judge_html(restored)
    return "text/html", cleaned, removed or looks_active(text)


def _escape(math: str) -> str:
    return math.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
