"""Text for a terminal, from data the host did not write.

The reports of ``validate``, ``usage`` and ``reproduce`` quote notebooks that may come
from anyone: file names, cell code, outputs, recorded values. A control character in
them is a command to the terminal (ESC starts sequences that clear the screen, rewrite
the line above, set the window title; a carriage return overwrites what the line said;
bidirectional overrides reorder what the reader sees), so each reaches the terminal as
visible text instead: ``\\x1b``, ``\\r``, ``\\u202e``. Newlines and tabs are kept.
"""

from __future__ import annotations

import sys
from typing import TextIO

_C0 = [code for code in range(0x20) if chr(code) not in "\n\t"]
_C1 = [0x7F, *range(0x80, 0xA0)]
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]

_VISIBLE = str.maketrans(
    {code: f"\\x{code:02x}" for code in (*_C0, *_C1)} | {code: f"\\u{code:04x}" for code in _BIDI}
)


def printable(text: str) -> str:
    """``text`` with every terminal control character written out as an escape."""
    return text.translate(_VISIBLE)


def show(text: str, file: TextIO | None = None) -> None:
    """Print untrusted ``text`` safely: controls made visible, and what the console's
    encoding cannot show escaped rather than crashing (CI consoles may not be UTF-8)."""
    out = file if file is not None else sys.stdout
    safe = printable(text)
    try:
        print(safe, file=out)
    except UnicodeEncodeError:
        encoding = out.encoding or "ascii"
        print(safe.encode(encoding, "backslashreplace").decode(encoding), file=out)
