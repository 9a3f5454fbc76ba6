"""Where the capability families register their checks, the way Bandit's plugins do.

A family module owns its name tables and registers, with :func:`register`, one
function per node type it cares about: ``check(walker, node)``. The walker visits each
node of a cell once and calls the checks registered for that node's type, in the
order the families were loaded, so a cell is still judged in one pass.

Text checks (:func:`register_text`) see the cell as written, before it is parsed
(look-alike identifiers, bidi controls); cell checks (:func:`register_cell`) see the
code IPython will run, once per cell (automagic lines).

A custom rule uses the same registration: a callable carrying ``node_types`` (set by
:func:`node_rule`) is called as ``rule(walker, node)`` during the walk; a plain
``rule(tree, source) -> Iterable[Violation]`` runs on the whole tree after it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .walker import Analysis, Walker

Check = Callable[["Walker", Any], None]
TextCheck = Callable[["Analysis", str], None]
CellCheck = Callable[["Analysis", str, int, int], None]

#: node type -> the checks registered for it, in registration order.
CHECKS: dict[type[ast.AST], list[Check]] = {}
TEXT_CHECKS: list[TextCheck] = []
CELL_CHECKS: list[CellCheck] = []

F = TypeVar("F", bound=Callable[..., Any])


def register(*node_types: type[ast.AST]) -> Callable[[F], F]:
    """Register ``check(walker, node)`` for each of ``node_types``."""

    def add(func: F) -> F:
        for node_type in node_types:
            CHECKS.setdefault(node_type, []).append(func)
        return func

    return add


def register_text(func: TextCheck) -> TextCheck:
    """Register ``check(analysis, text)`` on the cell as written."""
    TEXT_CHECKS.append(func)
    return func


def register_cell(func: CellCheck) -> CellCheck:
    """Register ``check(analysis, transformed, depth, line_offset)`` on each judged cell."""
    CELL_CHECKS.append(func)
    return func


def node_rule(*node_types: type[ast.AST]) -> Callable[[F], F]:
    """Mark a custom rule ``rule(walker, node)`` to be called during the walk.

    Give it to the policy (``custom_rules``) like any custom rule; it emits findings
    with ``walker.emit(rule_id, node, message, score)``.
    """

    def mark(func: F) -> F:
        func.node_types = tuple(node_types)  # type: ignore[attr-defined]
        return func

    return mark
