"""Cells the host's Python cannot parse: refused only when they name something dangerous.

Usually the sandbox's Python refuses such a cell too and nothing runs; but a newer
Python there accepts syntax this one does not (PEP 701 f-strings on 3.12), so an
unparseable cell that names anything dangerous is refused (SK804).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .families.data import system_path
from .families.ipython import SCRIPT_MARKUP, escape_starts, magic_allowed
from .prepare import line_of

if TYPE_CHECKING:
    from .walker import Analysis

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Builtins that are dangerous only as bare names: after a dot (``tensor.eval()``,
#: ``model.compile()``) they are methods, which a parsed cell passes too.
BUILTIN_ONLY_WORDS = frozenset(
    {"eval", "exec", "compile", "execfile", "globals", "getattr", "setattr", "delattr"}
)
_QUOTED_PATH = re.compile(r"([\"'])((?:/|file:|\.\./)[^\"'\n]*)\1")


def scan_unparseable(analysis: Analysis, text: str, base_line: int) -> None:
    t = analysis.tables
    hits: list[tuple[int, str]] = []
    words = t.unparseable_words
    for match in _WORD.finditer(text):
        if match.group() in words:
            before = text[max(0, match.start() - 80) : match.start()].rstrip(" \t")
            if match.group() in BUILTIN_ONLY_WORDS and before.endswith("."):
                continue
            hits.append((match.start(), match.group()))
            if len(hits) >= 5:
                break
    for index, escape, name in escape_starts(text):
        if escape == "!" or not magic_allowed(t, escape, name):
            hits.append((index, escape + name))
            break
    for match in _QUOTED_PATH.finditer(text):
        if system_path(t, match.group(2)) is not None:
            hits.append((match.start(2), match.group(2)))
            break
    script = SCRIPT_MARKUP.search(text)
    if script is not None:
        hits.append((script.start(), script.group()))
    if not hits:
        return
    hits.sort()
    line, col = line_of(text, hits[0][0])
    names = ", ".join(dict.fromkeys(repr(name) for _, name in hits))
    analysis.emit(
        "SK804",
        base_line + line,
        col,
        f"the cell does not parse, but names {names} — refused, since a newer Python "
        "in the sandbox might run it",
    )
