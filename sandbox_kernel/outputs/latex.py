"""TeX in outputs: the macros that reach outside the formula are disarmed.

JupyterLab typesets ``text/latex`` outputs, the math in Markdown and HTML outputs and
in HTML widgets with MathJax. A few TeX macros are not mathematics: ``\\href`` and
``\\url`` make links (``javascript:`` ones included, in MathJax's default setup),
``\\style``, ``\\class``, ``\\cssId`` and ``\\bbox`` give the formula CSS and class
names of the page (enough to draw it over the rest of the notebook), ``\\data`` adds
attributes, and ``\\require`` loads more of MathJax; ``\\csname`` could spell any of
them without writing its name. Each becomes the visible text
``[\\name removed]``; its arguments stay as inert groups, so the formula still shows.
"""

from __future__ import annotations

import re

#: Macros that act on the page rather than on the formula.
DISARMED_MACROS = (
    "href", "url", "style", "class", "cssId", "bbox", "data", "require", "html", "csname",
)

_MACRO = re.compile(r"\\(" + "|".join(DISARMED_MACROS) + r")(?![A-Za-z])")


def disarm(text: str) -> tuple[str, bool]:
    """``text`` with the page-reaching TeX macros replaced; whether any was."""
    if "\\" not in text:
        return text, False
    result, count = _MACRO.subn(lambda m: f"\\text{{[{m.group(1)} removed]}}", text)
    return result, count > 0
