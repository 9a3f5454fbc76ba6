"""Family: text that reads differently than it runs.

Bidirectional control characters anywhere (SK702), and identifiers that imitate
another name (SK701): a word that mixes Latin letters with Cyrillic or Greek letters
that look like Latin ones (``pаssword`` with a Cyrillic ``а``), or whose NFKC form
or confusable skeleton is a builtin or a dangerous name (full-width ``ｅｖａｌ``,
which Python runs as ``eval``). Mathematical identifiers in one script (``σ``,
``δ``, ``ℓ``, ``Δt``, ``μ_hat``) are ordinary code and pass.
"""

from __future__ import annotations

import builtins
import io
import re
import tokenize
import unicodedata
from typing import TYPE_CHECKING

from ..prepare import line_of
from ..registry import register_text

if TYPE_CHECKING:
    from ..walker import Analysis

_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
# identifier characters: word characters plus the connector punctuation (Pc) like U+FF3F
_ID_CHARS = "[\\w\u203f\u2040\u2054\ufe33\ufe34\ufe4d-\ufe4f\uff3f]"
_NON_ASCII_WORD = re.compile(f"{_ID_CHARS}*[^\\x00-\\x7f]{_ID_CHARS}*")
_TEXT_TOKENS = frozenset(
    {tokenize.STRING, tokenize.COMMENT, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
)

#: Letters of other scripts that look like Latin letters (after Unicode's
#: confusables list, the letters that matter in identifiers).
CONFUSABLES = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԁ": "d",
    "ӏ": "l", "ԛ": "q", "ԝ": "w", "ү": "y", "һ": "h", "ɡ": "g",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J",
    # Greek
    "ο": "o", "ν": "v", "α": "a", "ι": "i", "κ": "k", "ρ": "p", "τ": "t", "υ": "u",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
}  # fmt: skip
_CYRILLIC_LOOKALIKES = frozenset(c for c in CONFUSABLES if "CYRILLIC" in unicodedata.name(c))


def _known_names() -> frozenset[str]:
    from .byname import ATTR_NAME_SINKS
    from .dyncode import DYNAMIC_CODE_BUILTINS, DYNAMIC_IMPORT_NAMES
    from .introspection import ESCAPE_DUNDERS, FRAME_ATTRIBUTES
    from .modules import CHAIN_MODULE_NAMES, DANGEROUS_ATTRIBUTES, DANGEROUS_MODULES

    return frozenset(
        {n for n in dir(builtins) if not n.startswith("_")}
        | DYNAMIC_CODE_BUILTINS | DYNAMIC_IMPORT_NAMES | ESCAPE_DUNDERS | FRAME_ATTRIBUTES
        | CHAIN_MODULE_NAMES | frozenset(DANGEROUS_ATTRIBUTES) | ATTR_NAME_SINKS
        | {m.split(".")[0] for m in DANGEROUS_MODULES}
        | {"get_ipython", "globals", "locals", "vars", "breakpoint", "self", "cls"}
    )  # fmt: skip


_KNOWN: frozenset[str] | None = None


def imitation(word: str) -> str | None:
    """The name ``word`` imitates, or None when it is a legitimate identifier."""
    global _KNOWN
    if _KNOWN is None:
        _KNOWN = _known_names()
    norm = unicodedata.normalize("NFKC", word)
    if norm != word and norm.isascii() and norm in _KNOWN:
        return norm  # full-width eval: Python runs it as eval
    skeleton = "".join(CONFUSABLES.get(c, c) for c in norm)
    if skeleton != norm and skeleton.isascii() and skeleton in _KNOWN:
        return skeleton  # Cyrillic "ехес" looks like exec
    if any(c in _CYRILLIC_LOOKALIKES for c in norm) and any(
        c.isascii() and c.isalpha() for c in norm
    ):
        return skeleton  # Latin and Cyrillic letters mixed in one word
    return None


@register_text
def check_text(analysis: Analysis, text: str) -> None:
    if text.isascii():
        return
    bidi = _BIDI.search(text)
    if bidi is not None:
        line, col = line_of(text, bidi.start())
        analysis.emit(
            "SK702",
            line,
            col,
            f"bidirectional control character U+{ord(bidi.group()):04X} — "
            "makes code read differently than it runs",
        )
    for line, col, word, name in _lookalikes(text):
        analysis.emit("SK701", line, col, f"look-alike identifier {word!r} — it imitates {name!r}")


def _lookalikes(text: str) -> list[tuple[int, int, str, str]]:
    """Identifiers that imitate other names: (line, col, word, imitated name).

    A cheap scan finds candidates; only then the cell is tokenised, so that look-alike
    text inside strings and comments (full-width labels) is not reported. When the
    cell does not tokenise (IPython syntax), every candidate is reported.
    """
    found = []
    for match in _NON_ASCII_WORD.finditer(text):
        word = match.group()
        name = imitation(word)
        if name is not None:
            found.append((*line_of(text, match.start()), word, name))
    if not found:
        return found
    try:
        quoted = [
            (tok.start, tok.end)
            for tok in tokenize.generate_tokens(io.StringIO(text).readline)
            if tok.type in _TEXT_TOKENS
        ]
    except (tokenize.TokenError, SyntaxError):
        return found
    return [
        item
        for item in found
        if not any(start <= (item[0], item[1]) < end for start, end in quoted)
    ]
