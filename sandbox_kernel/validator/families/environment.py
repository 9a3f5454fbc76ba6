"""Family: the environment variables that decide which program a shell line runs.

The ``notebook`` profile passes a few shell lines (``!ls data``, ``!rm old.csv``) and
writes to ``os.environ`` (``CUDA_VISIBLE_DEVICES``). Together they would run any
program: a link named ``ls`` to the image's Python, first on ``PATH``, makes ``!ls
x.csv`` run ``x.csv`` as Python, which no validator saw. So in ``notebook`` a cell may
not change the variables that choose programs or libraries (``PATH``, ``LD_*``,
``GCONV_PATH``, ``SHELL``, ``ENV``, ``BASH_ENV``), set a variable whose name is
computed, or hand ``os.environ`` itself to other code or another name (which could set
them). Reading the environment and setting other variables pass. ``strict`` refuses
every use of ``os`` anyway (``modules`` family).

Rule: SK103.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ..registry import register

if TYPE_CHECKING:
    from ..walker import Walker

#: Variables that decide which program or shared library a child process runs.
PROGRAM_VARIABLES = frozenset({"PATH", "GCONV_PATH", "SHELL", "ENV", "BASH_ENV", "IFS"})
_ENVIRON = frozenset({"os.environ", "os.environb", "posix.environ"})
_SETTERS = frozenset({"os.putenv", "posix.putenv"})
#: Methods of the environment mapping that set variables.
_WRITERS = frozenset({"update", "setdefault", "__setitem__", "__ior__"})
#: Methods of the environment mapping that read it or only remove variables.
_READ_METHODS = frozenset({"get", "keys", "values", "items", "copy", "pop", "popitem", "clear"})
#: Builtins that only read a mapping they are given.
_READERS = frozenset(
    {"dict", "list", "sorted", "len", "print", "str", "repr", "set", "tuple", "iter", "pprint",
     "display", "any", "all", "enumerate", "zip", "frozenset"}
)  # fmt: skip


def program_variable(name: str) -> bool:
    upper = name.upper()
    return upper in PROGRAM_VARIABLES or upper.startswith("LD_")


def _is_environ(w: Walker, node: ast.expr) -> bool:
    return w.resolve(node) in _ENVIRON


def _judge_key(w: Walker, node: ast.AST, key: ast.expr | None) -> None:
    if isinstance(key, ast.Constant) and isinstance(key.value, (str, bytes)):
        name = key.value.decode("latin-1") if isinstance(key.value, bytes) else key.value
        if program_variable(name):
            w.emit("SK103", node, f"changes {name} — it decides which program a shell line runs")
        return
    w.emit(
        "SK103",
        node,
        "sets an environment variable whose name is computed — it could be PATH, which "
        "decides which program a shell line runs",
    )


def _judge_mapping(w: Walker, node: ast.AST, value: ast.expr | None) -> None:
    if isinstance(value, ast.Dict) and all(k is not None for k in value.keys):
        for key in value.keys:
            _judge_key(w, node, key)
    else:
        _judge_key(w, node, None)


def _enter(w: Walker, node: ast.AST) -> bool:
    return w.notebook and id(node) not in w.handled


@register(ast.Subscript)
def check_subscript(w: Walker, node: ast.Subscript) -> None:
    if not _enter(w, node) or not _is_environ(w, node.value):
        return
    w.handled.add(id(node.value))
    if not isinstance(node.ctx, ast.Load):
        _judge_key(w, node, node.slice)


@register(ast.Call)
def check_call(w: Walker, node: ast.Call) -> None:
    if not _enter(w, node):
        return
    func = node.func
    dotted = w.resolve(func)
    if dotted in _SETTERS:
        _judge_key(w, node, node.args[0] if node.args else None)
        return
    if isinstance(func, ast.Attribute) and _is_environ(w, func.value):
        w.handled.add(id(func.value))
        if func.attr in _WRITERS:
            w.handled.add(id(func))  # judged here; any other name, by check_attribute
        if func.attr == "update":
            for arg in node.args:
                _judge_mapping(w, node, arg)
            for kw in node.keywords:
                _judge_key(w, node, ast.Constant(kw.arg) if kw.arg else None)
        elif func.attr in _WRITERS:
            _judge_key(w, node, node.args[0] if node.args else None)
        return
    if isinstance(func, ast.Name) and func.id in _READERS:
        for arg in node.args:
            if _is_environ(w, arg):
                w.handled.add(id(arg))


@register(ast.AugAssign)
def check_augassign(w: Walker, node: ast.AugAssign) -> None:
    if _enter(w, node) and _is_environ(w, node.target):
        w.handled.add(id(node.target))
        _judge_mapping(w, node, node.value)


@register(ast.Compare)
def check_compare(w: Walker, node: ast.Compare) -> None:
    # `"COLAB_GPU" in os.environ` reads it
    if _enter(w, node):
        for side in (node.left, *node.comparators):
            if _is_environ(w, side):
                w.handled.add(id(side))


@register(ast.For, ast.comprehension)
def check_iteration(w: Walker, node: ast.For | ast.comprehension) -> None:
    if _enter(w, node) and _is_environ(w, node.iter):
        w.handled.add(id(node.iter))


@register(ast.Attribute)
def check_attribute(w: Walker, node: ast.Attribute) -> None:
    if not _enter(w, node):
        return
    if _is_environ(w, node.value):
        w.handled.add(id(node.value))
        if node.attr not in _READ_METHODS:
            # `os.environ.data[b"PATH"]`, a writer taken as a value: not judged here
            w.emit(
                "SK103",
                node,
                f"os.environ.{node.attr} — reaches the environment past the checks on "
                "PATH, which decides which program a shell line runs",
            )
    elif node.attr in ("environ", "environb") and _is_environ(w, node):
        _bare(w, node)


@register(ast.Name)
def check_name(w: Walker, node: ast.Name) -> None:
    if _enter(w, node) and isinstance(node.ctx, ast.Load) and _is_environ(w, node):
        _bare(w, node)


def _bare(w: Walker, node: ast.expr) -> None:
    w.emit(
        "SK103",
        node,
        "os.environ handed on as a whole — whatever gets it could set PATH, which decides "
        "which program a shell line runs; read or set single variables instead",
    )
