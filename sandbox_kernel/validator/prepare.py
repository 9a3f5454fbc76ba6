"""Preparing a cell for the walk: input limits, decoding, IPython's own transform.

The cell is judged as IPython will run it: when it may contain IPython syntax
(escapes, prompts, or it does not parse as Python) it goes through IPython's own
``TransformerManager().transform_cell`` first, so ``!cmd`` and ``%%bash`` become the
``get_ipython().system(...)``/``run_cell_magic(...)`` calls that actually run. Input
the validator cannot judge within bounds (too large, NUL bytes, invalid UTF-8, lone
surrogates, too deep, too much IPython syntax) becomes a finding that always blocks.
"""

from __future__ import annotations

import ast
import functools
import re
from typing import TYPE_CHECKING

from .text import shorten

if TYPE_CHECKING:
    from IPython.core.inputtransformer2 import TransformerManager


#: Largest cell judged, in characters (bytes for ``bytes`` input). Larger cells are
#: blocked as "too large to judge" unless the policy is ``off``: a 1 MB cell is data,
#: not code, and judging it would cost seconds and hundreds of MB of AST.
MAX_SOURCE_CHARS = 1_000_000
#: How deep magic bodies are judged (``%%capture`` around ``%%time`` around code ...).
MAX_MAGIC_DEPTH = 4
#: IPython re-tokenises the whole cell once per escape it rewrites; a cell whose
#: ``escapes x characters`` exceeds this is refused (SK803) rather than transformed.
TRANSFORM_BUDGET = 20_000_000
#: Longest excerpt of the offending line kept in a violation.
EXCERPT_CHARS = 80

# A cell may contain IPython syntax only if one of these occurs; otherwise, and when it
# parses as Python, IPython's transformer would return it unchanged and is skipped.
# Escapes at a line start (%, !, ?, and the autocall escapes / ; ,), `x = !cmd` and
# `x = %magic`, help `?`, and prompts that IPython strips (>>>, ...:, In [n]:; a bare
# `...` continuation is only stripped in a cell that also has a `>>>` line).
# IPython splits lines with str.splitlines, so \r, \x0c, \u2028 ... start lines too.
_LINE_START = "(?:^|(?<=[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]))"
_IPY_TRIGGER = re.compile(
    _LINE_START + r"[ \t\f\v]*(?:[!%?/;,]|>>>|\.{3,}:|In \[|\[nav\]|\[ins\])|=[ \t]*[!%]|\?",
    re.MULTILINE,
)
# Lines IPython may rewrite, to bound the transformer's quadratic cost.
_ESCAPE_LINE = re.compile(_LINE_START + r"[ \t\f\v]*[!%?/;,]|=[ \t]*[!%]|\?[ \t]*$", re.MULTILINE)


class CannotJudge(Exception):
    """The cell cannot be judged within bounds; becomes an SK803 finding."""


class Untransformable(CannotJudge):
    """IPython's transformer failed on the cell (IPython runs nothing either)."""


def line_of(text: str, index: int) -> tuple[int, int]:
    """(1-based line, 0-based column) of ``text[index]``."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1)


@functools.lru_cache(maxsize=1)
def transformer() -> TransformerManager:
    """IPython's static input transformer (imported lazily: IPython is slow to import)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()  # type: ignore[no-untyped-call]


def prepare(text: str) -> tuple[str, ast.Module | None, SyntaxError | None, int]:
    """Transform (only if needed) and parse a cell.

    Returns:
        (the code that runs, its tree or None, the SyntaxError if any, the number of
        leading blank lines IPython dropped).

    Raises:
        CannotJudge: when transforming or parsing exceeds the interpreter's limits.
    """
    try:
        if _IPY_TRIGGER.search(text) is None:
            try:
                return text, ast.parse(text), None, 0
            except SyntaxError:
                pass  # may be IPython syntax after all (an indented cell, ...)
        escapes = len(_ESCAPE_LINE.findall(text)) + 1
        if escapes * len(text) > TRANSFORM_BUDGET:
            raise CannotJudge("too much IPython syntax to transform in bounded time")
        try:
            transformed = transformer().transform_cell(text)
        except (RecursionError, MemoryError):
            raise
        except Exception as exc:
            # IPython shows an error and runs nothing, but another IPython version
            # might read the cell differently: refuse what we cannot read.
            raise Untransformable(
                f"IPython could not transform the cell ({type(exc).__name__})"
            ) from exc
        lead = 0
        if transformed != text:
            for line in text.splitlines():
                if line.strip():
                    break
                lead += 1
        try:
            return transformed, ast.parse(transformed), None, lead
        except SyntaxError as exc:
            return transformed, None, exc, lead
    except (RecursionError, MemoryError) as exc:
        raise CannotJudge(f"too deeply nested for Python's parser ({type(exc).__name__})") from exc
    except ValueError as exc:  # e.g. "source code string cannot contain null bytes"
        raise CannotJudge(f"Python's parser refused the cell: {shorten(str(exc))}") from exc
