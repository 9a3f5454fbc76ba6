"""Helpers every family uses: NFKC matching, short excerpts, strings built from literals.

``fold`` evaluates a string built only from literals (``'ev' + 'al'``,
``''.join([...])``, ``chr(101)``, ``'%s' % 'x'``, rot13), bounded in depth and length,
so that a name spelled in pieces is judged like the name itself.
"""

from __future__ import annotations

import ast
import re
import unicodedata
from typing import cast


def nfkc(text: str) -> str:
    # Python itself normalises identifiers with NFKC; strings are matched the same way.
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_FOLD_MAX = 4096
_WIDE_FORMAT = re.compile(r"%[-#0 +]*[1-9]")


def fold(expr: ast.AST, depth: int = 0) -> str | None:
    """Evaluate a string built from literals (``'ev' + 'al'``, ``''.join([...])``).

    Returns None when the value depends on anything but literals. Bounded in depth
    and in length (4096 characters at every step), so nothing large is ever built.
    """
    if depth > 16:
        return None
    value = _fold_inner(expr, depth)
    return value if value is None or len(value) <= _FOLD_MAX else None


def _fold_inner(expr: ast.AST, depth: int) -> str | None:
    if isinstance(expr, ast.Constant):
        value = expr.value
        if isinstance(value, bytes):
            return value.decode("latin-1") if len(value) <= 4096 else None
        return value if isinstance(value, str) and len(value) <= 4096 else None
    if isinstance(expr, ast.JoinedStr):
        parts = []
        for piece in expr.values:
            part = fold(piece, depth + 1)
            if part is None:
                return None
            parts.append(part)
        return "".join(parts)
    if isinstance(expr, ast.FormattedValue):
        return fold(expr.value, depth + 1) if expr.format_spec is None else None
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        left = fold(expr.left, depth + 1)
        right = fold(expr.right, depth + 1) if left is not None else None
        return left + right if left is not None and right is not None else None
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Mod):
        left = fold(expr.left, depth + 1)
        if left is None or _WIDE_FORMAT.search(left):
            return None
        elts = expr.right.elts if isinstance(expr.right, ast.Tuple) else [expr.right]
        args = [fold(e, depth + 1) for e in elts]
        if any(a is None for a in args):
            return None
        try:
            return left % tuple(args)
        except (TypeError, ValueError, OverflowError, MemoryError):
            return None
    if isinstance(expr, ast.Subscript) and isinstance(expr.slice, ast.Slice):
        base = fold(expr.value, depth + 1)
        bounds = [fold_int(b) for b in (expr.slice.lower, expr.slice.upper, expr.slice.step)]
        if base is None or bounds[2] == 0:
            return None
        return base[bounds[0] : bounds[1] : bounds[2]]
    if isinstance(expr, ast.Call):
        return _fold_call(expr, depth)
    return None


def fold_int(expr: ast.expr | None) -> int | None:
    if isinstance(expr, ast.Constant) and type(expr.value) is int:
        return expr.value
    if (
        isinstance(expr, ast.UnaryOp)
        and isinstance(expr.op, ast.USub)
        and isinstance(expr.operand, ast.Constant)
        and type(expr.operand.value) is int
    ):
        return -expr.operand.value
    return None


def _fold_call(expr: ast.Call, depth: int) -> str | None:
    func = expr.func
    if isinstance(func, ast.Name) and len(expr.args) == 1 and not expr.keywords:
        if func.id == "chr":
            code = fold_int(expr.args[0])
            return chr(code) if code is not None and 0 <= code < 0x110000 else None
        if func.id == "str":
            return fold(expr.args[0], depth + 1)
    if not isinstance(func, ast.Attribute) or expr.keywords:
        return None
    if func.attr == "join" and len(expr.args) == 1:
        sep = fold(func.value, depth + 1)
        seq = expr.args[0]
        if sep is None or not isinstance(seq, (ast.List, ast.Tuple)) or len(seq.elts) > 256:
            return None
        items = [fold(e, depth + 1) for e in seq.elts]
        return None if any(i is None for i in items) else sep.join(cast(list[str], items))
    args = [fold(a, depth + 1) for a in expr.args]
    if any(a is None for a in args):
        return None
    if func.attr == "decode" and isinstance(func.value, ast.Name) and func.value.id == "codecs":
        if len(args) == 2 and nfkc(cast(str, args[1])).lower().replace("-", "_") in (
            "rot13",
            "rot_13",
        ):
            import codecs

            return codecs.decode(cast(str, args[0]), "rot13")
        return None
    base = fold(func.value, depth + 1)
    if base is None:
        return None
    if func.attr in ("lower", "upper", "strip", "lstrip", "rstrip", "title") and not args:
        return cast(str, getattr(base, func.attr)())
    if func.attr == "replace" and len(args) == 2:
        return base.replace(cast(str, args[0]), cast(str, args[1]))
    if func.attr == "decode" and not args:
        return base
    return None
