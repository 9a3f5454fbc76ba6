"""Family: reaching attributes, globals and modules by a name held in a string.

``getattr``/``setattr``/``delattr``/``hasattr``, the standard library's by-name
helpers (``operator.attrgetter``, ``operator.methodcaller``,
``inspect.getattr_static``, and any of them passed around as values: ``functools``
``partial``/``reduce`` over ``getattr``), namespace dicts (``globals()``,
``vars()``, ``__dict__``, ``sys.modules``) subscripted by name, format strings that
walk attributes (``'{0.__globals__}'``), and strings built or decoded to hide a name.
Wherever the name comes from, the same names are refused as when written out; a
name computed at run time is refused where it could reach anything.

Rules: SK401, SK402, SK403, SK404, SK405, SK406 (and SK103 for ``sys`` by name).
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

from ..registry import register
from ..text import fold, fold_int, nfkc, shorten

if TYPE_CHECKING:
    from ..policy import Tables
    from ..walker import Walker

#: Builtins whose second argument is an attribute name.
ATTR_NAME_SINKS = frozenset({"getattr", "setattr", "delattr", "hasattr"})

#: Standard-library callables (bare or as attributes) whose string arguments are
#: attribute names; ``methodcaller`` takes one name, the others any number.
ATTR_NAME_SINK_FACTORIES = frozenset({"attrgetter", "methodcaller", "getattr_static"})

#: Builtins that hand out a namespace dict.
NAMESPACE_BUILTINS = frozenset({"globals", "locals", "vars"})

#: Attributes that are namespace dicts: subscripting them looks names up.
NAMESPACE_ATTRIBUTES = frozenset(
    {"__dict__", "modules", "f_globals", "f_locals", "f_builtins", "__globals__", "__builtins__"}
)

#: Codecs that only serve to hide a string.
OBFUSCATION_CODECS = frozenset(
    {"rot13", "rot_13", "rot-13", "hex", "hex_codec", "base64", "base64_codec", "zlib",
     "zlib_codec", "bz2_codec", "uu", "uu_codec", "unicode_escape", "raw_unicode_escape"}
)  # fmt: skip

#: Decoders that only serve to hide a string.
OBFUSCATION_DECODERS = frozenset(
    {"b64decode", "b32decode", "b16decode", "b85decode", "a85decode", "fromhex", "unhexlify",
     "urlsafe_b64decode", "decodebytes"}
)  # fmt: skip

_FORMAT_FIELD = re.compile(r"\{([^{}]*)\}")
_FIELD_PART = re.compile(r"[.\[\]]+")
_DUNDER_IN_TEXT = re.compile(r"__[A-Za-z]\w*?__")


def build_tables(t: Tables) -> None:
    allowed = t.allowed_names
    t.attr_sinks = ATTR_NAME_SINKS - allowed
    t.namespace_builtins = NAMESPACE_BUILTINS - allowed
    t.unparseable_words |= {"__import__", "getattr", "setattr", "delattr", "globals"}


def is_namespace(expr: ast.expr) -> bool:
    """Whether subscripting ``expr`` looks up a global, builtin or module by name."""
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
        return expr.func.id in NAMESPACE_BUILTINS
    if isinstance(expr, ast.Attribute):
        return expr.attr in NAMESPACE_ATTRIBUTES
    if isinstance(expr, ast.Name):
        return expr.id == "__builtins__"
    if isinstance(expr, ast.Subscript):
        key = expr.slice
        return (
            isinstance(key, ast.Constant)
            and isinstance(key.value, str)
            and key.value.startswith("__")
        )
    return False


def attribute_sink(w: Walker, node: ast.Call, arg: ast.expr, func: str, computed_ok: bool) -> None:
    """Judge ``arg``, an attribute name given to ``func`` as a string."""
    name = fold(arg)
    t = w.t
    if name is None:
        if not computed_ok:
            w.emit(
                "SK401",
                node,
                f"{func}() with a computed attribute name — it can "
                "reach any attribute, including dunders",
            )
        return
    built = not isinstance(arg, ast.Constant)
    for part in nfkc(name).split("."):
        if part in t.banned_attrs:
            w.emit("SK902", node, f"{func}() of {part!r} — banned by the administrator")
        elif (
            part in t.sink_names
            or part in t.weak_dunders
            or (func in ATTR_NAME_SINK_FACTORIES and part in t.sys_attrs)
        ):
            how = "builds" if built else "names"
            rule = "SK303" if part in t.weak_dunders else "SK404"
            w.emit(
                rule,
                node,
                f"{func}() {how} the name {part!r} in a string — the same "
                "as writing it out, hidden from readers",
            )
        elif built:
            w.emit("SK401", node, f"{func}() with a name built at run time ({part!r})")


@register(ast.Call)
def check_call(w: Walker, node: ast.Call) -> None:
    func = node.func
    t = w.t
    if id(node) in w.handled:
        w.handled.add(id(func))
        return
    if isinstance(func, ast.Name):
        name = func.id
        if name in t.attr_sinks:
            w.handled.add(id(func))
            if len(node.args) >= 2:
                attribute_sink(w, node, node.args[1], name, computed_ok=name == "hasattr")
                _package_by_name(w, node, node.args[0], node.args[1])
                if w.resolve(node.args[0]) == "sys":
                    built = fold(node.args[1])
                    if built is None or nfkc(built) in t.sys_attrs:
                        w.emit("SK103", node, f"{name}() on sys — sys attributes by name")
        elif name in t.namespace_builtins:
            w.handled.add(id(func))
            if name == "globals":
                w.emit(
                    "SK402",
                    node,
                    "globals() — the namespace dict reaches every global and __builtins__ by name",
                )
            elif node.args and w.resolve(node.args[0]) == "sys":
                w.emit("SK103", node, f"{name}(sys) — the sys namespace, sys.modules included")
            elif node.args and _relaxed_module(w, node.args[0]):
                owner = w.resolve(node.args[0])
                w.emit("SK103", node, f"{name}({owner}) — hands out {owner}'s functions by name")
            elif not node.args:
                w.emit(
                    "SK403", node, f"{name}() — a namespace dict allows lookups by computed name"
                )
        elif name in ATTR_NAME_SINK_FACTORIES:
            w.handled.add(id(func))
            _factory(w, node, name)
    elif isinstance(func, ast.Attribute):
        attr = func.attr
        if attr in ATTR_NAME_SINK_FACTORIES:
            w.handled.add(id(func))
            _factory(w, node, attr)
        elif attr in ("decode", "encode"):
            for arg in node.args[1:2]:
                codec = fold(arg)
                if codec is not None and nfkc(codec).lower() in OBFUSCATION_CODECS:
                    w.emit("SK406", node, f"{attr}(..., {codec!r}) — decodes a hidden string")
        elif attr in OBFUSCATION_DECODERS:
            w.emit("SK406", node, f"{attr}() — decodes a hidden string")
    if id(func) in w.handled:  # a sink judged its name argument already
        for arg in node.args:
            if isinstance(arg, (ast.BinOp, ast.JoinedStr)):
                w.built_names_done.add(id(arg))


def _factory(w: Walker, node: ast.Call, name: str) -> None:
    if name == "getattr_static":
        args = node.args[1:2]
    elif name == "methodcaller":
        args = node.args[:1]
    else:
        args = node.args
    for arg in args:
        attribute_sink(w, node, arg, name, computed_ok=False)


@register(ast.Name)
def check_name(w: Walker, node: ast.Name) -> None:
    name = node.id
    t = w.t
    if id(node) in w.handled or not isinstance(node.ctx, ast.Load):
        return
    if (name in t.attr_sinks and name != "hasattr" and not w.shadowed(name)) or (
        name in ATTR_NAME_SINK_FACTORIES and w.aliases.get(name, "").endswith(name)
    ):
        _passed_as_value(w, node, name)
    elif name in t.namespace_builtins and not w.shadowed(name):
        if name == "globals":
            w.emit(
                "SK402",
                node,
                "globals referenced — the namespace dict reaches every global by name",
            )
        else:
            w.emit("SK403", node, f"{name} referenced — a namespace dict by name")


@register(ast.Attribute)
def check_attribute(w: Walker, node: ast.Attribute) -> None:
    if node.attr in ATTR_NAME_SINK_FACTORIES and id(node) not in w.handled:
        _passed_as_value(w, node, node.attr)


def _passed_as_value(w: Walker, node: ast.expr, name: str) -> None:
    # functools.partial(getattr, sys), map(getattr, ...), [operator.attrgetter]
    w.emit("SK401", node, f"{name} passed as a value — it can look up any computed attribute name")


@register(ast.Subscript)
def check_subscript(w: Walker, node: ast.Subscript) -> None:
    key = node.slice
    t = w.t
    if isinstance(key, ast.Constant) and isinstance(key.value, str):
        name = nfkc(key.value)
        if name in t.escape_dunders or name in t.frame_attrs:
            w.emit("SK404", node, f"[{name!r}] — looks up {name} by a string key")
        elif is_namespace(node.value) and (name in t.sink_names or _names_module(w, name)):
            w.emit("SK404", node, f"[{name!r}] of a namespace — looks up {name} by name")
        elif (
            name in t.sys_attrs
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "__dict__"
            and w.resolve(node.value.value) == "sys"
        ):
            w.emit("SK103", node, f"sys.__dict__[{name!r}] — it {t.sys_attrs[name]}")
    elif isinstance(key, ast.Slice):
        if (
            isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            and fold_int(key.step) == -1
        ):
            w.emit("SK406", node, "reversed string literal — hides a name from readers")
    elif is_namespace(node.value):
        built = fold(key)
        if built is not None:
            built = nfkc(built)
            if built in t.sink_names or _names_module(w, built):
                w.emit("SK404", node, f"namespace lookup builds the name {built!r}")
                return
        if w.notebook and not isinstance(node.ctx, ast.Load):
            w.handled.add(id(node.value))
            return  # globals()[f"df_{i}"] = x creates a variable; it reaches nothing
        w.emit(
            "SK401",
            node,
            "namespace dict subscripted with a computed key — reaches any global or builtin by name",
        )


def _package_by_name(w: Walker, node: ast.Call, owner_expr: ast.expr, arg: ast.expr) -> None:
    """``getattr(IPython, "lib")`` is ``IPython.lib``: judged as the import it is."""
    from .modules import NOTEBOOK_TOP_LEVEL, module_reason

    owner = w.resolve(owner_expr)
    name = fold(arg)
    if not w.notebook or owner is None or name is None:
        return
    if owner.partition(".")[0] in NOTEBOOK_TOP_LEVEL:
        dotted = f"{owner}.{nfkc(name)}"
        found = module_reason(w.t, dotted)
        if found is not None:
            w.emit("SK102", node, f"getattr() reaches {dotted} — '{found[0]}' {found[1]}")


def _relaxed_module(w: Walker, expr: ast.expr) -> bool:
    from .modules import is_relaxed

    owner = w.resolve(expr)
    return owner is not None and is_relaxed(w.t, owner)


def _names_module(w: Walker, name: str) -> bool:
    from .modules import DANGEROUS_MODULES

    return name in DANGEROUS_MODULES and name not in w.t.relaxed_modules


@register(ast.BinOp)
def check_binop(w: Walker, node: ast.BinOp) -> None:
    if id(node) in w.handled or not isinstance(node.op, (ast.Add, ast.Mod)):
        return
    left = node.left
    while isinstance(left, ast.BinOp):  # judge the whole chain once, at its top
        w.handled.add(id(left))
        left = left.left
    if isinstance(left, (ast.Constant, ast.JoinedStr, ast.Call)) or isinstance(
        node.right, (ast.Constant, ast.JoinedStr)
    ):
        _built_string(w, node)


@register(ast.JoinedStr)
def check_fstring(w: Walker, node: ast.JoinedStr) -> None:
    _built_string(w, node)


def _built_string(w: Walker, arg: ast.expr) -> None:
    """A string built from literals: judge the result like a literal."""
    from .data import system_path

    text = fold(arg)
    if not text:
        return
    path = system_path(w.t, text)
    if path is not None:
        w.emit(
            "SK503",
            arg,
            f"path {shorten(text, 40)!r} built from pieces — {path} is a system location",
        )
    norm = nfkc(text)
    if id(arg) not in w.built_names_done and (
        norm in w.t.escape_dunders or norm in w.t.dyn_builtins
    ):
        w.emit("SK404", arg, f"builds the name {norm!r} from pieces")


@register(ast.Constant)
def check_constant(w: Walker, node: ast.Constant) -> None:
    value = node.value
    if not isinstance(value, str) or (value.isascii() and "__" not in value and "{" not in value):
        return
    if id(node) in w.handled:
        return
    text = nfkc(value)
    if "__" in text:
        found = _DUNDER_IN_TEXT.search(text)
        if found is not None and found.group() in w.t.escape_dunders:
            w.emit(
                "SK404",
                node,
                f"string naming {found.group()} — code in strings runs through "
                "eval-like APIs (sympify, pydoc.locate, pandas engines)",
            )
    if "{" in text:
        for match in _FORMAT_FIELD.finditer(text):
            field_text = match.group(1)
            if "." not in field_text and "[" not in field_text:
                continue
            for part in _FIELD_PART.split(field_text.split("!")[0].split(":")[0])[1:]:
                if part in w.t.sink_names:
                    w.emit(
                        "SK405",
                        node,
                        f"format string walks to {part} — str.format "
                        "follows attributes of its arguments",
                    )
                    return
