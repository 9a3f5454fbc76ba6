"""Family: running strings as code, and building code at run time.

``eval``/``exec``/``compile`` (called, aliased, used as decorators), ``__import__``
and ``importlib.import_module`` of computed names, ``breakpoint``, ``FunctionType``
and ``CodeType``, and ``timeit``/``cProfile`` given a string. In the ``notebook``
profile a literal string given to ``timeit`` is judged as the code it is (as
``%timeit`` is), and ``import_module`` of a literal module name as an import.

Rules: SK104, SK201, SK202, SK203, SK204, SK205.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ..prepare import CannotJudge
from ..registry import register
from ..text import fold, nfkc, shorten
from .modules import module_reason

if TYPE_CHECKING:
    from ..policy import Tables
    from ..walker import Walker

#: Builtins that run code from strings.
DYNAMIC_CODE_BUILTINS = frozenset({"eval", "exec", "compile", "execfile"})

#: Attribute and bare names that import by name at run time.
DYNAMIC_IMPORT_NAMES = frozenset(
    {"__import__", "import_module", "run_path", "run_module", "load_module", "exec_module",
     "find_loader", "resolve_name"}
)  # fmt: skip

#: Names of code-object constructors (SK204).
CODE_OBJECT_NAMES = frozenset({"FunctionType", "CodeType", "LambdaType", "MethodType"})

#: Callables that run a statement given as a string (SK201 when given one).
STRING_EXEC_CALLS = frozenset(
    {"timeit.timeit", "timeit.repeat", "timeit.Timer", "cProfile.run", "cProfile.runctx",
     "profile.run", "profile.runctx"}
)  # fmt: skip
_STRING_EXEC_LAST = frozenset(name.rpartition(".")[2] for name in STRING_EXEC_CALLS)

#: Builtins a notebook may name a variable after (``eval`` for eigenvalues).
_REBINDABLE = DYNAMIC_CODE_BUILTINS | {"breakpoint"}

#: Imports after which a dangerous builtin's name is a harmless namesake.
SAFE_NAMESAKES = frozenset({"re.compile", "regex.compile"})


def build_tables(t: Tables) -> None:
    allowed = t.allowed_names
    t.dyn_builtins = DYNAMIC_CODE_BUILTINS - allowed
    t.dynamic_imports = DYNAMIC_IMPORT_NAMES - allowed
    t.breakpoint = "breakpoint" not in allowed
    t.sink_names |= t.dyn_builtins | t.dynamic_imports | {"breakpoint"}
    t.variable_names |= _REBINDABLE
    t.unparseable_words |= t.dyn_builtins | t.dynamic_imports | {"__import__"}


def _dynamic_import(w: Walker, node: ast.Call, arg: ast.expr | None, what: str) -> None:
    name = fold(arg) if arg is not None else None
    if name is not None:
        found = module_reason(w.t, nfkc(name))
        if found is None and w.notebook and what == "import_module()":
            return  # import_module("numpy"): an import, judged as one
        extra = f"; '{found[0]}' {found[1]}" if found else ""
        w.emit("SK104", node, f"{what} of {name!r} — imports a module by name{extra}")
    else:
        w.emit("SK104", node, f"{what} of a computed name — imports any module")


@register(ast.Call)
def check_call(w: Walker, node: ast.Call) -> None:
    func = node.func
    t = w.t
    first = node.args[0] if node.args else None
    if isinstance(func, ast.Name):
        name = func.id
        if name in t.dyn_builtins:
            if w.shadowed(name, SAFE_NAMESAKES):
                return
            w.handled.add(id(func))
            built = fold(first) if first is not None else None
            shown = f" of {shorten(repr(built), 40)}" if built is not None else ""
            w.emit("SK201", node, f"{name}(){shown} — runs code from a string")
        elif name == "__import__" and name in t.dynamic_imports:
            if w.shadowed(name):
                return
            w.handled.add(id(func))
            _dynamic_import(w, node, first, "__import__()")
        elif name == "breakpoint" and t.breakpoint:
            if w.shadowed(name):
                return
            w.handled.add(id(func))
            w.emit("SK203", node, "breakpoint() — a debugger runs any code typed into it")
        elif name == "type" and len(node.args) == 3:
            w.emit("SK205", node, "type() with three arguments — builds a class at run time")
        elif name == "import_module" and name in t.dynamic_imports:
            w.handled.add(id(func))
            _dynamic_import(w, node, first, "import_module()")
        elif name in _STRING_EXEC_LAST:
            dotted = w.resolve(func)
            if dotted in STRING_EXEC_CALLS:
                _string_exec(w, node, dotted)
    elif isinstance(func, ast.Attribute):
        if func.attr == "import_module" and func.attr in t.dynamic_imports:
            w.handled.add(id(func))
            _dynamic_import(w, node, first, "import_module()")
        elif func.attr in _STRING_EXEC_LAST:
            dotted = w.resolve(func)
            if dotted in STRING_EXEC_CALLS:
                _string_exec(w, node, dotted)
    elif isinstance(func, ast.Call):
        _call_of_call(w, node, func)


def _string_exec(w: Walker, node: ast.Call, dotted: str) -> None:
    if dotted.startswith(("cProfile.", "profile.")):
        values = node.args[:1]
    else:
        values = list(node.args[:2]) + [
            kw.value for kw in node.keywords if kw.arg in ("stmt", "setup")
        ]
    strings = [
        v for v in values if not isinstance(v, (ast.Name, ast.Attribute, ast.Lambda, ast.Call))
    ]
    if not strings:
        return
    if w.notebook and all(
        isinstance(v, ast.Constant) and isinstance(v.value, str) for v in strings
    ):
        # a literal statement is code written in the cell: judge it as such; the
        # namespace it runs in (globals=globals()) reaches nothing by itself
        for kw in node.keywords:
            if kw.arg == "globals":
                w.handled.add(id(kw.value))
        for value in strings:
            assert isinstance(value, ast.Constant) and isinstance(value.value, str)
            w.handled.add(id(value))
            try:
                w.analysis.judge_cell(value.value, w.depth + 1, node.lineno - 1 + w.line_offset)
            except CannotJudge as exc:
                w.emit("SK803", node, f"string given to {dotted}() cannot be judged: {exc}")
        return
    w.emit("SK201", node, f"{dotted}() of a string — it runs that string as code")


def _call_of_call(w: Walker, node: ast.Call, func: ast.Call) -> None:
    inner = func.func
    if isinstance(inner, ast.Name) and inner.id == "type" and len(func.args) == 1:
        arg = func.args[0]
        if isinstance(arg, ast.Name) and arg.id in ("self", "cls"):
            return
        if isinstance(arg, ast.Lambda) or (
            isinstance(arg, ast.Attribute) and arg.attr in ("__code__", "f_code", "gi_code")
        ):
            w.emit("SK204", node, "type(...)(...) — builds a function or code object from parts")
        else:
            w.emit(
                "SK204",
                node,
                "type(x)(...) — constructs an object of a type obtained at run time",
                score=20,
            )


@register(ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
def check_definition(
    w: Walker, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
) -> None:
    for deco in node.decorator_list:
        w.decorators.add(id(deco.func if isinstance(deco, ast.Call) else deco))


@register(ast.Name)
def check_name(w: Walker, node: ast.Name) -> None:
    name = node.id
    t = w.t
    if id(node) in w.handled:
        return
    if name in _REBINDABLE and w.is_variable(node):
        return  # `eval, evec = np.linalg.eig(a)`: a variable of that name, not the builtin
    if name in t.dyn_builtins:
        if w.shadowed(name, SAFE_NAMESAKES):
            return
        how = "used as a decorator" if id(node) in w.decorators else "referenced without a call"
        w.emit("SK202", node, f"{name} {how} — any alias of {name} runs code from strings")
    elif name in t.dynamic_imports:
        if not w.shadowed(name):
            w.emit("SK104", node, f"{name} referenced — it imports modules by name")
    elif name == "breakpoint" and t.breakpoint:
        if not w.shadowed(name):
            w.emit("SK203", node, "breakpoint referenced — it starts a debugger")
    elif name in CODE_OBJECT_NAMES and not w.shadowed(name):
        w.emit("SK204", node, f"{name} — builds functions or code objects from parts")


@register(ast.Attribute)
def check_attribute(w: Walker, node: ast.Attribute) -> None:
    attr = node.attr
    if id(node) in w.handled:
        return
    if attr in w.t.dynamic_imports:
        w.emit("SK104", node, f"{attr} — imports modules by name")
    elif attr in CODE_OBJECT_NAMES:
        w.emit("SK204", node, f"{attr} — builds functions or code objects from parts")
