"""Family: the administrator's own names (``validation_banned_calls``/``_attributes``).

Rules: SK901 (a banned call, by bare or dotted name), SK902 (a banned attribute).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ..registry import register

if TYPE_CHECKING:
    from ..policy import Tables
    from ..walker import Walker


def build_tables(t: Tables) -> None:
    t.sink_names |= t.banned_attrs


@register(ast.Call)
def check_call(w: Walker, node: ast.Call) -> None:
    banned = w.t.banned_calls
    if not banned:
        return
    func = node.func
    if isinstance(func, ast.Name):
        last = func.id
    elif isinstance(func, ast.Attribute):
        last = func.attr
    else:
        return
    dotted = w.resolve(func) or last
    if last in banned or dotted in banned or w.resolve(func, aliases=False) in banned:
        w.emit("SK901", node, f"call of {dotted} — banned by the administrator")


@register(ast.Attribute)
def check_attribute(w: Walker, node: ast.Attribute) -> None:
    if node.attr in w.t.banned_attrs and id(node) not in w.handled:
        w.emit("SK902", node, f"attribute {node.attr} — banned by the administrator")
