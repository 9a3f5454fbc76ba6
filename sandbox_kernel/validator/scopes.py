"""Variables that share a dangerous name (``notebook`` profile only).

Scientific code names variables ``eval`` (eigenvalues), ``breakpoint`` (a threshold)
or ``socket``; reading such a variable is not reaching the builtin or the module. A
name counts as a variable where the cell binds it to a value that hands out nothing
dangerous, within the scope Python gives the binding:

- an assignment, ``for`` or ``with`` target at module level: the rest of the cell;
- the same inside a function, or a parameter of that function: that function's body
  (its defaults and annotations are evaluated outside it, and stay judged);
- never a class attribute (methods do not see it), a comprehension variable, an
  ``except ... as`` name, or a name any ``global``/``nonlocal`` statement in the cell
  mentions (that would reach the module-level name from inside a function).

A binding whose value mentions any tracked name or a builtin that hands them out
(``eval = eval``, ``socket = getattr(...)``) does not count. Calls stay calls:
``eval("...")`` is judged whatever ``eval`` is.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from .registry import register

if TYPE_CHECKING:
    from .walker import Walker

#: Builtins that hand out builtins or modules by name.
HANDS_OUT = frozenset({"getattr", "globals", "vars", "locals", "__builtins__", "__import__"})

Span = tuple[int, int]


class Scopes:
    """One cell's bindings of tracked names (see the module docstring)."""

    def __init__(self) -> None:
        self.functions: list[Span] = []  # body spans, outermost first
        self.classes: list[Span] = []
        self.cell_wide: set[str] = set()
        self.local: dict[str, list[Span]] = {}
        self.declared: set[str] = set()  # names of global/nonlocal statements

    def _innermost(self, line: int) -> tuple[str, Span | None]:
        """("function", span), ("class", span) or ("module", None) around ``line``."""
        best: tuple[str, Span | None] = ("module", None)
        size = 1 << 30
        for kind, spans in (("function", self.functions), ("class", self.classes)):
            for start, end in spans:
                if start <= line <= end and end - start < size:
                    best, size = (kind, (start, end)), end - start
        return best

    def bind(self, names: set[str], line: int) -> None:
        kind, span = self._innermost(line)
        if kind == "module":
            self.cell_wide |= names
        elif kind == "function" and span is not None:
            for name in names:
                self.local.setdefault(name, []).append(span)

    def is_variable(self, name: str, line: int) -> bool:
        if name in self.declared:
            return False
        if name in self.cell_wide:
            return True
        return any(start <= line <= end for start, end in self.local.get(name, ()))


def _tracked_names(w: Walker, target: ast.AST) -> set[str]:
    tracked = w.t.variable_names
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name) and n.id in tracked}


def _hands_out(w: Walker, value: ast.AST | None) -> bool:
    if value is None:
        return False
    tracked = w.t.variable_names
    return any(
        isinstance(n, ast.Name) and (n.id in tracked or n.id in HANDS_OUT) for n in ast.walk(value)
    )


@register(ast.FunctionDef, ast.AsyncFunctionDef)
def check_function(w: Walker, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    if not w.notebook or not node.body:
        return
    span = (node.body[0].lineno, node.end_lineno or node.body[-1].lineno)
    w.scopes.functions.append(span)
    args = node.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    params += [a for a in (args.vararg, args.kwarg) if a is not None]
    for param in params:
        if param.arg in w.t.variable_names:
            w.scopes.local.setdefault(param.arg, []).append(span)


@register(ast.ClassDef)
def check_class(w: Walker, node: ast.ClassDef) -> None:
    if w.notebook and node.body:
        w.scopes.classes.append((node.body[0].lineno, node.end_lineno or node.lineno))


@register(ast.Global, ast.Nonlocal)
def check_declaration(w: Walker, node: ast.Global | ast.Nonlocal) -> None:
    w.scopes.declared.update(node.names)


@register(ast.Assign, ast.AnnAssign, ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)
def check_binding(w: Walker, node: ast.AST) -> None:
    if not w.notebook:
        return
    pairs: list[tuple[ast.AST, ast.AST | None]]
    if isinstance(node, ast.Assign):
        pairs = [(target, node.value) for target in node.targets]
    elif isinstance(node, ast.AnnAssign):
        pairs = [(node.target, node.value)]
    elif isinstance(node, (ast.For, ast.AsyncFor)):
        pairs = [(node.target, node.iter)]
    else:
        assert isinstance(node, (ast.With, ast.AsyncWith))
        pairs = [(i.optional_vars, i.context_expr) for i in node.items if i.optional_vars]
    for target, value in pairs:
        names = _tracked_names(w, target)
        if names and not _hands_out(w, value):
            w.scopes.bind(names, getattr(node, "lineno", 1))
