"""Family: data that runs code when loaded, and files in system locations.

Unpickling (``pickle.load``, ``pd.read_pickle``, ``np.load(allow_pickle=True)``,
``joblib.load``, ``torch.load`` without ``weights_only=True``, unsafe YAML loaders),
pandas expressions evaluated as Python, system paths (``/etc``, ``/proc``, a climb
out of the working directory), and deleting or re-permissioning files. Writing
pickles (``pickle.dump``) is not loading them, and passes in ``notebook``.

Rules: SK501, SK502, SK503, SK504.
"""

from __future__ import annotations

import ast
import posixpath
import re
from typing import TYPE_CHECKING

from ..registry import register
from ..text import fold, nfkc, shorten

if TYPE_CHECKING:
    from ..policy import Tables
    from ..walker import Walker

#: Functions that unpickle whatever file they read (as attribute or imported name).
PICKLE_READERS = frozenset({"read_pickle", "unsafe_load", "full_load", "UnsafeLoader"})

#: Dotted callables (after import aliases are resolved) that unpickle by default.
PICKLE_LOAD_CALLS = frozenset({"joblib.load", "torch.load", "yaml.load", "dill.load"})
_LOAD_LAST = frozenset({"load"})

#: Pickle-like modules (allowed on import in ``notebook``) and their loading APIs.
PICKLE_MODULES = frozenset({"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "marshal"})
PICKLE_MODULE_LOADERS = frozenset({"load", "loads", "Unpickler", "_load", "_loads", "_Unpickler"})

#: Safe YAML loaders: ``yaml.load(f, Loader=SafeLoader)`` is fine.
SAFE_YAML_LOADERS = frozenset({"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"})

#: pathlib/os/shutil methods that delete, link or re-permission (SK504).
FS_MUTATION_METHODS = frozenset(
    {"unlink", "rmdir", "chmod", "lchmod", "symlink_to", "hardlink_to", "link_to", "rmtree"}
)

#: First path components that are system locations (SK503). ``/tmp`` and ``/data``
#: (where host folders are mounted) are not among them.
SYSTEM_PATH_ROOTS = frozenset(
    {
        "etc", "proc", "sys", "dev", "root", "boot", "run", "var", "usr", "bin", "sbin",
        "lib", "lib32", "lib64", "libx32", "home", "srv", "opt", "snap", ".dockerenv",
    }
)  # fmt: skip

#: Harmless device files that code legitimately writes to.
HARMLESS_SYSTEM_PATHS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr"})

_LEADING_PARENT_DIRS = re.compile(r"^(?:\.\./)+")


def build_tables(t: Tables) -> None:
    allowed = t.allowed_names
    t.fs_mutation = FS_MUTATION_METHODS - allowed
    t.system_roots = SYSTEM_PATH_ROOTS
    if t.notebook:
        # pickle passes on import in notebook: its loaders are refused by name, also
        # when named in a string (getattr(pickle, "loads"), vars(pickle)["loads"])
        t.sink_names |= PICKLE_MODULE_LOADERS
    t.unparseable_words |= PICKLE_READERS - allowed


def system_path(t: Tables, text: str) -> str | None:
    """The system location a string names (``/etc``), or None."""
    if len(text) > 4096 or "\n" in text:
        return None
    path = text
    if path[:5].lower() == "file:":
        path = "/" + path[5:].lstrip("/")
    elif not path.startswith("/"):
        if ".." not in path:
            return None
        # data/../../etc/passwd climbs out of the working directory, which sits
        # somewhere below /; judge where it lands as if the climb reached /. One level
        # up never does: the working directory is /tmp/work or below (spec.WORKDIR), so
        # ../lib is a folder beside the notebook's (a repository's lib/, or /tmp/lib).
        path = posixpath.normpath(path)
        if not path.startswith("../../"):
            return None
        path = "/" + _LEADING_PARENT_DIRS.sub("", path)
    norm = posixpath.normpath(path)
    if norm in HARMLESS_SYSTEM_PATHS or norm in ("/", "//"):
        return None
    root = norm.lstrip("/").split("/", 1)[0]
    return norm if root in t.system_roots else None


@register(ast.Call)
def check_call(w: Walker, node: ast.Call) -> None:
    for kw in node.keywords:
        if kw.arg == "allow_pickle" and not (
            isinstance(kw.value, ast.Constant) and not kw.value.value
        ):
            w.emit(
                "SK501",
                node,
                "allow_pickle=True — loading the file unpickles objects, which runs arbitrary code",
            )
    func = node.func
    if isinstance(func, ast.Name):
        attr = func.id
        if attr not in _LOAD_LAST:
            return
    elif isinstance(func, ast.Attribute):
        attr = func.attr
    else:
        return
    if attr in ("query", "eval") and node.args and isinstance(func, ast.Attribute):
        _pandas_expression(w, node, attr)
    elif attr in _LOAD_LAST:
        dotted = w.resolve(func) or attr
        tail = ".".join(dotted.split(".")[-2:])  # sklearn.externals.joblib.load too
        if tail in PICKLE_LOAD_CALLS and not _safe_load(node, tail):
            w.emit(
                "SK501",
                node,
                f"{dotted}() — it unpickles or constructs arbitrary objects from the file",
            )


def _safe_load(node: ast.Call, dotted: str) -> bool:
    keywords = {kw.arg: kw.value for kw in node.keywords if kw.arg}
    if dotted == "torch.load":
        value = keywords.get("weights_only")
        return isinstance(value, ast.Constant) and value.value is True
    if dotted == "yaml.load":
        loader = keywords.get("Loader") or (node.args[1] if len(node.args) > 1 else None)
        name = (
            loader.attr
            if isinstance(loader, ast.Attribute)
            else (loader.id if isinstance(loader, ast.Name) else None)
        )
        return name in SAFE_YAML_LOADERS
    return False


def _pandas_expression(w: Walker, node: ast.Call, attr: str) -> None:
    for kw in node.keywords:
        if kw.arg == "engine" and not (
            isinstance(kw.value, ast.Constant) and kw.value.value in ("numexpr", None)
        ):
            w.emit(
                "SK502",
                node,
                f".{attr}(..., engine='python') — pandas evaluates the expression as Python",
            )
    expr = fold(node.args[0])
    if expr is not None and "__" in expr:
        w.emit(
            "SK502",
            node,
            f".{attr}() of an expression with dunders — it can walk into interpreter internals",
        )


@register(ast.Name)
def check_name(w: Walker, node: ast.Name) -> None:
    if node.id in PICKLE_READERS and id(node) not in w.handled and not w.shadowed(node.id):
        w.emit("SK501", node, f"{node.id} — it unpickles whatever it reads")


@register(ast.Attribute)
def check_attribute(w: Walker, node: ast.Attribute) -> None:
    attr = node.attr
    if id(node) in w.handled:
        return
    if attr in PICKLE_READERS:
        w.emit("SK501", node, f"{attr} — it unpickles or constructs arbitrary objects")
    elif attr in w.t.fs_mutation:
        w.emit("SK504", node, f".{attr}() — deletes, links or re-permissions files")
    elif attr in PICKLE_MODULE_LOADERS and w.notebook:
        owner = w.resolve(node.value)
        if owner is not None and owner.rpartition(".")[2] in PICKLE_MODULES:
            w.emit("SK501", node, f"{owner}.{attr} — unpickling runs arbitrary code")


@register(ast.ImportFrom)
def check_import_from(w: Walker, node: ast.ImportFrom) -> None:
    module = node.module or ""
    for alias in node.names:
        if alias.name in PICKLE_READERS:
            w.emit(
                "SK501", node, f"import of {module}.{alias.name} — it unpickles whatever it reads"
            )
        elif (
            w.notebook
            and alias.name in PICKLE_MODULE_LOADERS
            and module.rpartition(".")[2] in PICKLE_MODULES
        ):
            w.emit(
                "SK501", node, f"import of {module}.{alias.name} — unpickling runs arbitrary code"
            )


@register(ast.Constant)
def check_constant(w: Walker, node: ast.Constant) -> None:
    value = node.value
    if isinstance(value, bytes):
        if value[:1] != b"/" or len(value) > 4096:
            return
        value = value.decode("latin-1")
    elif not isinstance(value, str) or not value or id(node) in w.handled:
        return
    else:
        value = nfkc(value)
    if value[0] in "/fF" or ".." in value:
        path = system_path(w.t, value)
        if path is not None:
            w.emit(
                "SK503",
                node,
                f"path {shorten(value, 40)!r} — {path} is a system "
                "location; read data from relative paths or /data",
            )
