"""Family: escapes through interpreter internals.

Dunders that lead out of the sandboxed namespace (``__subclasses__``,
``__globals__``, ``__builtins__``, ``__mro__`` ...), frame, generator and traceback
internals (``f_globals``, ``gi_frame``, ``tb_frame``), and the attributes of ``sys``
that hand out modules or hook the interpreter (``sys.modules``, ``sys._getframe``,
``sys.settrace``). ``sys`` itself is everyday code. In the ``notebook`` profile,
asking whether a module is loaded (``"google.colab" in sys.modules``,
``sys.modules.keys()``) passes: it hands out names, not modules.

Rules: SK103 (sys attributes), SK301, SK302, SK303.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ..registry import register

if TYPE_CHECKING:
    from ..policy import Tables
    from ..walker import Walker

#: Attributes of ``sys`` that reach the interpreter's machinery. ``sys`` itself is
#: allowed: ``print(..., file=sys.stderr)``, ``sys.argv``, ``sys.version`` and
#: ``sys.getsizeof`` are everyday notebook code; these are not.
SYS_DANGEROUS_ATTRIBUTES: dict[str, str] = {
    "modules": "hands out every loaded module, os and subprocess included",
    "meta_path": "changes how modules are imported",
    "path_hooks": "changes how modules are imported",
    "path_importer_cache": "changes how modules are imported",
    "_getframe": "reaches the frames of other code",
    "_current_frames": "reaches the frames of every thread",
    "settrace": "hooks every line the interpreter runs",
    "setprofile": "hooks every call the interpreter makes",
    "addaudithook": "hooks the interpreter's audit events",
    "call_tracing": "runs code under a tracer",
    "breakpointhook": "replaces what breakpoint() runs",
    "displayhook": "replaces how results are shown",
    "excepthook": "replaces how errors are handled",
}

#: Dunder attributes that lead out of the sandboxed namespace (SK301). The public
#: ``cls.mro()`` is not among them: teaching notebooks show NumPy's type hierarchy with
#: it, and the class list alone reaches nothing; the step out of the namespace from
#: there (``__subclasses__``, ``__globals__``, ...) is judged wherever it is written.
ESCAPE_DUNDERS = frozenset(
    {
        "__subclasses__", "__globals__", "__builtins__", "__code__", "__closure__",
        "__self__", "__objclass__", "__mro__", "__bases__", "__base__", "__loader__",
        "__spec__", "__getattribute__", "__reduce__", "__reduce_ex__", "__defaults__",
        "__kwdefaults__", "__import__",
    }
)  # fmt: skip

#: Dunder attributes that are only weak signals (SK303).
WEAK_DUNDERS = frozenset({"__dict__", "__traceback__"})

#: Frame, generator, coroutine, async-generator, traceback and code internals (SK302).
FRAME_ATTRIBUTES = frozenset(
    {
        "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "f_trace",
        "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await",
        "ag_frame", "ag_code", "ag_await", "tb_frame", "tb_next", "co_code", "co_consts",
        "co_names",
    }
)  # fmt: skip

#: Bare names that reach the builtins and the import machinery (SK301).
ESCAPE_NAMES = frozenset({"__builtins__", "__loader__", "__spec__"})

#: Methods of ``sys.modules`` that hand out names only.
_MODULE_NAME_METHODS = frozenset({"keys", "__contains__"})


def build_tables(t: Tables) -> None:
    allowed = t.allowed_names
    t.escape_dunders = ESCAPE_DUNDERS - allowed
    t.weak_dunders = WEAK_DUNDERS - allowed
    t.frame_attrs = FRAME_ATTRIBUTES - allowed
    t.sys_attrs = {k: v for k, v in SYS_DANGEROUS_ATTRIBUTES.items() if k not in allowed}
    t.escape_names = ESCAPE_NAMES - allowed
    t.sink_names |= t.escape_dunders | t.frame_attrs
    t.unparseable_words |= t.escape_dunders | t.frame_attrs


def is_sys(w: Walker, expr: ast.expr) -> bool:
    """Whether ``expr`` is the ``sys`` module, also through a chain (``np.sys``,
    ``os.sys``, ``from os import sys``)."""
    owner = w.resolve(expr)
    return owner is not None and (owner == "sys" or owner.endswith(".sys"))


def _is_sys_modules(w: Walker, expr: ast.expr) -> bool:
    return isinstance(expr, ast.Attribute) and expr.attr == "modules" and is_sys(w, expr.value)


@register(ast.Compare)
def check_compare(w: Walker, node: ast.Compare) -> None:
    if not w.notebook:
        return
    for op, right in zip(node.ops, node.comparators, strict=True):
        if isinstance(op, (ast.In, ast.NotIn)) and _is_sys_modules(w, right):
            w.handled.add(id(right))  # "x" in sys.modules: a name, not a module


@register(ast.Attribute)
def check_attribute(w: Walker, node: ast.Attribute) -> None:
    attr = node.attr
    t = w.t
    if id(node) in w.handled:
        return
    if w.notebook and attr in _MODULE_NAME_METHODS and _is_sys_modules(w, node.value):
        w.handled.add(id(node.value))
        return
    if attr in t.sys_attrs and is_sys(w, node.value):
        w.emit("SK103", node, f"sys.{attr} — it {t.sys_attrs[attr]}")
    elif attr in t.escape_dunders:
        if attr != "__import__":  # judged by the dynamic-code family
            w.emit(
                "SK301",
                node,
                f"attribute {attr} — walks interpreter internals out of the sandboxed namespace",
            )
    elif attr in t.weak_dunders:
        w.emit("SK303", node, f"attribute {attr} — namespace internals, a common step in escapes")
    elif attr in t.frame_attrs:
        w.emit(
            "SK302",
            node,
            f"attribute {attr} — frame and code internals reach other code's globals and builtins",
        )


@register(ast.Name)
def check_name(w: Walker, node: ast.Name) -> None:
    name = node.id
    if name in w.t.escape_names and id(node) not in w.handled and not w.shadowed(name):
        w.emit("SK301", node, f"{name} — reaches the builtins and the import machinery")


@register(ast.ImportFrom)
def check_import_from(w: Walker, node: ast.ImportFrom) -> None:
    if node.module != "sys" and not (node.module or "").endswith(".sys"):
        return
    for alias in node.names:
        why = w.t.sys_attrs.get(alias.name)
        if why is not None:
            w.emit("SK103", node, f"import of sys.{alias.name} — it {why}")
