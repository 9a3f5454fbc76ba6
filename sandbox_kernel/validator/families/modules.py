"""Family: modules and the process, network and native-code APIs they carry.

Imports are judged by the capability a module gives: processes and shells
(``subprocess``, ``pty``), the network (``socket``, ``urllib.request``,
``requests``), native code (``ctypes``, ``cffi``, Cython), the import machinery and
the kernel. In the ``notebook`` profile the modules people use for files and paths
(``os``, ``shutil``, ``pathlib``, ``pickle`` for writing, ``importlib.reload``,
``inspect.getsource``, ``gc.collect``, ``asyncio``) pass; their dangerous APIs
(``os.system``, ``os.kill``, ``asyncio.create_subprocess_exec``,
``inspect.currentframe``) are refused by name. In ``strict`` any use of those modules
is refused, as in the executor this project grew from.

Rules: SK101 (import), SK102 (a dangerous module reached through a chain or a bare
name), SK103 (process, FFI and frame APIs by attribute).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ..registry import register
from .network import answers_import

if TYPE_CHECKING:
    from ..policy import Tables
    from ..walker import Walker

_SHELL = "gives shell, process and file-system access"
_NET = "opens network connections"
_FFI = "calls native code and reads raw memory"
_PICKLE = "deserialises objects, which runs arbitrary code"
_IMPORT = "loads modules or code by name"
_KERNEL = "controls the kernel and its shell"
_INSTALL = "installs or builds packages"

#: Dotted module name -> why importing it is refused. Matched by longest prefix, so
#: ``os.path`` is covered by ``os``; :data:`SAFE_MODULES` carves out exceptions.
DANGEROUS_MODULES: dict[str, str] = {
    **dict.fromkeys(["os", "posix", "nt", "_posixsubprocess", "subprocess", "pty"], _SHELL),
    "shutil": "copies, moves and deletes whole file trees and runs archivers",
    "mmap": "maps files and memory",
    "fcntl": "manipulates file descriptors",
    "termios": "controls terminals",
    "pwd": "reads the account database",
    "grp": "reads the group database",
    "spwd": "reads the shadow password database",
    "webbrowser": "launches programs",
    **dict.fromkeys(["Cython", "pyximport"], "compiles and loads native code"),
    **dict.fromkeys(
        [
            "socket", "_socket", "ssl", "http", "urllib", "urllib3", "requests", "httpx",
            "aiohttp", "ftplib", "smtplib", "telnetlib", "poplib", "imaplib", "nntplib",
            "xmlrpc", "socketserver", "asyncio", "websocket", "websockets", "paramiko",
            "pycurl", "zmq",
        ],
        _NET,
    ),
    **dict.fromkeys(["ctypes", "_ctypes", "cffi", "numpy.ctypeslib"], _FFI),
    "numpy.f2py": "compiles and runs native code with a compiler subprocess",
    "pydoc": "imports any object by name (pydoc.locate) and runs a pager",
    **dict.fromkeys(
        ["pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle", "copyreg"],
        _PICKLE,
    ),
    **dict.fromkeys(
        [
            "importlib", "imp", "_imp", "pkgutil", "runpy", "zipimport", "site",
            "sitecustomize", "_frozen_importlib", "_frozen_importlib_external",
        ],
        _IMPORT,
    ),
    **dict.fromkeys(["builtins", "__builtin__"], "reaches eval, exec and __import__"),
    "inspect": "reaches the frames and globals of other code",
    "gc": "walks every live object (gc.get_objects, get_referrers)",
    **dict.fromkeys(["code", "codeop", "pdb", "bdb", "trace", "doctest"], "runs source strings"),
    **dict.fromkeys(["IPython", "ipykernel", "jupyter_client", "traitlets"], _KERNEL),
    **dict.fromkeys(["pip", "ensurepip", "venv", "setuptools", "distutils"], _INSTALL),
    # multiprocessing itself is allowed (the container's pid limit bounds it, and
    # parallel backtests use Pool); these submodules spawn executables or unpickle
    # data from sockets.
    **dict.fromkeys(
        [
            "multiprocessing.util", "multiprocessing.popen_fork",
            "multiprocessing.popen_spawn_posix", "multiprocessing.popen_forkserver",
            "multiprocessing.reduction", "multiprocessing.connection",
            "multiprocessing.managers", "multiprocessing.forkserver",
        ],
        "spawns executables or unpickles data from other processes",
    ),
    "_xxsubinterpreters": "runs source strings in a subinterpreter",
}  # fmt: skip

#: Submodules of dangerous packages that are harmless and common in notebooks.
SAFE_MODULES = frozenset({"IPython.display", "IPython.core.display"})

#: Names that, as any component of an attribute chain or as a bare name, reach a
#: dangerous module (``np.os``, ``pd.io.common.os``, ``np.ctypeslib.ctypes``). Only
#: unambiguous module names: ``code``, ``signal`` or ``inspect`` are ordinary
#: attribute names in data code.
CHAIN_MODULE_NAMES = frozenset(
    {
        "os", "subprocess", "posix", "_posixsubprocess", "pty", "shutil", "socket",
        "ctypes", "_ctypes", "ctypeslib", "cffi", "pickle", "_pickle", "cPickle", "marshal",
        "shelve", "dill", "cloudpickle", "importlib", "_imp", "_bootstrap",
        "_bootstrap_external", "_frozen_importlib", "builtins", "__builtin__", "runpy",
        "pkgutil", "zipimport", "webbrowser", "urllib", "urllib3", "requests", "httpx",
        "telnetlib", "ftplib", "smtplib", "pdb", "ipykernel", "mmap", "pickle_compat",
        "f2py", "pydoc",
    }
)  # fmt: skip

#: Attribute names of process, FFI and frame APIs, refused whatever object they
#: belong to (``x.system`` is refused unless ``x`` is the ``platform`` module).
DANGEROUS_ATTRIBUTES: dict[str, str] = {
    **dict.fromkeys(
        [
            "system", "popen", "popen2", "popen3", "spawnl", "spawnle", "spawnlp", "spawnlpe",
            "spawnv", "spawnve", "spawnvp", "spawnvpe", "execl", "execle", "execlp", "execlpe",
            "execv", "execve", "execvp", "execvpe", "fork", "forkpty", "posix_spawn",
            "posix_spawnp", "Popen", "check_output", "check_call", "getoutput",
            "getstatusoutput", "spawnv_passfds", "fork_exec", "startfile", "putenv", "environ",
            "exec_command", "fexecve", "set_executable", "_make_subprocess_transport",
            "_UnixSubprocessTransport",
        ],
        "runs programs or changes the process environment",
    ),
    **dict.fromkeys(
        ["CDLL", "PyDLL", "WinDLL", "OleDLL", "cdll", "pydll", "windll", "oledll",
         "pythonapi", "dlopen", "LoadLibrary", "load_library"],
        "loads native libraries",
    ),
    **dict.fromkeys(["_getframe", "settrace", "setprofile", "addaudithook"],
                    "reaches the frames or hooks of the interpreter"),
    **dict.fromkeys(["enable_load_extension", "load_extension"], "loads native SQLite extensions"),
    **dict.fromkeys(
        ["create_subprocess_exec", "create_subprocess_shell", "subprocess_exec",
         "subprocess_shell"],
        "starts programs (asyncio)",
    ),
    **dict.fromkeys(
        ["open_connection", "start_server", "open_unix_connection", "start_unix_server",
         "create_connection", "create_server", "create_datagram_endpoint",
         "create_unix_connection", "create_unix_server", "sock_connect"],
        "opens network connections (asyncio)",
    ),
}  # fmt: skip

#: Modules whose import carries no score in the ``notebook`` profile: the file, path
#: and process-introspection API of everyday code. Their dangerous parts are named in
#: :data:`NOTEBOOK_MODULE_APIS` and :data:`DANGEROUS_ATTRIBUTES`.
NOTEBOOK_MODULES = frozenset(
    {
        "os", "shutil", "pickle", "_pickle", "cPickle", "dill", "cloudpickle", "importlib",
        "importlib.metadata", "importlib.resources", "importlib.util", "inspect", "gc",
        "asyncio", "mmap", "urllib.parse", "urllib.error", "IPython.core.pylabtools",
        "IPython.lib.display", "fcntl", "termios",
    }
)  # fmt: skip

#: Module names (as bare names or chain components) that ``notebook`` does not treat
#: as dangerous on their own.
NOTEBOOK_CHAIN_EXCEPTIONS = frozenset(
    {"os", "shutil", "pickle", "_pickle", "cPickle", "dill", "cloudpickle", "importlib", "mmap"}
)

#: In ``notebook``: module -> its APIs that are refused although the module passes.
NOTEBOOK_MODULE_APIS: dict[str, dict[str, str]] = {
    "os": {
        **dict.fromkeys(["kill", "killpg", "_exit", "abort"], "kills or ends the kernel's process"),
        **dict.fromkeys(["setuid", "setgid", "seteuid", "setegid", "setresuid", "setresgid",
                         "chroot", "unshare", "setns"], "changes the process's identity"),
        "memfd_create": "creates an anonymous executable file",
    },
    "inspect": {
        **dict.fromkeys(
            ["currentframe", "stack", "trace", "getouterframes", "getinnerframes",
             "getframeinfo", "getclosurevars"],
            "reaches the frames and globals of other code",
        ),
        **dict.fromkeys(
            ["getmembers", "getmembers_static"],
            "hands out every attribute by name, modules included",
        ),
    },
    "gc": dict.fromkeys(
        ["get_objects", "get_referrers", "get_referents"], "walks every live object"
    ),
    "importlib": dict.fromkeys(["__import__"], "imports modules by name"),
    "IPython": dict.fromkeys(
        ["embed", "embed_kernel", "start_kernel", "start_ipython"], "starts another shell or kernel"
    ),
}  # fmt: skip

_PLATFORM_SYSTEM = "platform.system"


def build_tables(t: Tables) -> None:
    """Add this family's tables, with the policy applied, to ``t``."""
    allowed = t.allowed_names
    relaxed = NOTEBOOK_MODULES if t.notebook else frozenset()
    chain = CHAIN_MODULE_NAMES - (NOTEBOOK_CHAIN_EXCEPTIONS if t.notebook else frozenset())
    t.relaxed_modules = relaxed
    t.chain_names = (chain | {m for m in t.banned_modules if "." not in m}) - t.allowed_modules
    attrs = dict(DANGEROUS_ATTRIBUTES)
    if t.notebook:
        # the environment of the sandbox's own process is everyday configuration
        # (CUDA_VISIBLE_DEVICES, MPLBACKEND); programs that would inherit it are refused
        for name in ("environ", "putenv"):
            attrs.pop(name)
    t.dangerous_attrs = {k: v for k, v in attrs.items() if k not in allowed}
    t.module_apis = NOTEBOOK_MODULE_APIS if t.notebook else {}
    for apis in t.module_apis.values():
        t.sink_names |= frozenset(apis)  # getattr(os, "kill") is os.kill
    t.sink_names |= t.chain_names | frozenset(t.dangerous_attrs)
    t.variable_names |= t.chain_names
    t.unparseable_words |= t.chain_names | set(t.dangerous_attrs)


#: In ``notebook``, package names that pass as such (``import IPython`` for
#: ``IPython.display``) while their submodules are still judged one by one.
NOTEBOOK_TOP_LEVEL = frozenset({"IPython"})


def module_reason(t: Tables, dotted: str) -> tuple[str, str] | None:
    """(matched module, why) when importing ``dotted`` is refused. Longest prefix decides."""
    if t.notebook and dotted in NOTEBOOK_TOP_LEVEL:
        return None
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in t.banned_modules:
            return prefix, "is banned by the administrator"
        if prefix in t.allowed_modules or prefix in SAFE_MODULES or prefix in t.relaxed_modules:
            return None
        reason = DANGEROUS_MODULES.get(prefix)
        if reason is not None:
            return prefix, reason
    return None


def is_relaxed(t: Tables, module: str) -> bool:
    """Whether ``module`` passes only because the ``notebook`` profile relaxes it (its
    dangerous APIs are then refused by name: they must not be reached without one)."""
    return t.notebook and (
        module in NOTEBOOK_TOP_LEVEL
        or module.partition(".")[0] in t.relaxed_modules
        or module in t.relaxed_modules
    )


def module_why(name: str) -> str:
    """Why a module name is dangerous, for messages."""
    base = "ctypes" if name == "ctypeslib" else name
    return DANGEROUS_MODULES.get(base) or DANGEROUS_MODULES.get(
        base.lstrip("_"), "is a dangerous module"
    )


def _chain_component(t: Tables, dotted: str) -> str | None:
    """The first component of ``dotted`` (past the first) that names a dangerous module."""
    for part in dotted.split(".")[1:]:
        if part in t.chain_names:
            return part
    return None


def judge_module(w: Walker, node: ast.AST, dotted: str, shown: str) -> None:
    """SK101/SK102 for importing ``dotted`` (also used for ``%aimport``, ``%load_ext``)."""
    found = module_reason(w.t, dotted)
    if found is not None:
        if found[1] == _NET and answers_import(w, node, shown):
            return
        w.emit("SK101", node, f"import of '{shown}' — '{found[0]}' {found[1]}")
        return
    part = _chain_component(w.t, dotted)
    if part is not None:
        w.emit(
            "SK102",
            node,
            f"import of '{shown}' reaches module '{part}' — '{part}' {module_why(part)}",
        )


@register(ast.Import)
def check_import(w: Walker, node: ast.Import) -> None:
    for alias in node.names:
        name = alias.name
        top = name.split(".")[0]
        if not alias.asname and name != top:
            # `import a.b` binds `a`: `a` itself must be acceptable too.
            judge_module(w, node, top, name)
        judge_module(w, node, name, name)
        w.aliases[alias.asname or top] = name if alias.asname else top


@register(ast.ImportFrom)
def check_import_from(w: Walker, node: ast.ImportFrom) -> None:
    if node.level:
        return  # relative imports have no package to come from in a notebook
    module = node.module or ""
    t = w.t
    for alias in node.names:
        if alias.name == "*":
            judge_module(w, node, module, f"{module}.*")
            if is_relaxed(t, module):
                # `from os import *` then `system("id")`: the APIs refused by name
                # would arrive as bare names
                w.emit(
                    "SK101",
                    node,
                    f"from {module} import * — brings {module}'s process and escape "
                    "APIs in by bare name; import the names you use",
                )
            continue
        name = alias.name
        full = f"{module}.{name}"
        judge_module(w, node, full, full)
        w.aliases[alias.asname or name] = full
        api = t.module_apis.get(module, {}).get(name)
        if api is not None:
            w.emit("SK103", node, f"import of {full} — it {api}")
        elif name in t.dangerous_attrs and full != _PLATFORM_SYSTEM:
            w.emit("SK103", node, f"import of {full} — it {t.dangerous_attrs[name]}")


@register(ast.Name)
def check_name(w: Walker, node: ast.Name) -> None:
    name = node.id
    if name not in w.t.chain_names or id(node) in w.handled:
        return
    if w.shadowed(name) or w.is_variable(node):
        return  # `socket = {...}`, `def f(socket)`: a variable of that name
    w.emit(
        "SK102",
        node,
        f"name '{name}' refers to a dangerous module — '{name}' {module_why(name)}",
    )


@register(ast.Attribute)
def check_attribute(w: Walker, node: ast.Attribute) -> None:
    attr = node.attr
    t = w.t
    if id(node) in w.handled:
        return
    if t.module_apis:
        owner = w.resolve(node.value)
        if owner is not None:
            why = t.module_apis.get(owner, {}).get(attr)
            if why is not None:
                w.emit("SK103", node, f"{owner}.{attr} — it {why}")
                return
            if owner.partition(".")[0] in NOTEBOOK_TOP_LEVEL and attr not in _VERSION_ATTRS:
                _package_chain(w, node, f"{owner}.{attr}")
                return
            if attr == "__dict__" and is_relaxed(t, w.aliases.get(owner, owner)):
                w.emit("SK103", node, f"{owner}.__dict__ — hands out {owner}'s functions by name")
                return
    if attr in t.chain_names:
        chain = w.resolve(node) or f"….{attr}"
        if w.notebook and chain == attr:
            return
        w.emit(
            "SK102",
            node,
            f"{_short(chain)} reaches module '{attr}' — '{attr}' {module_why(attr)}",
        )
    elif attr in t.dangerous_attrs:
        dotted = w.resolve(node) or attr
        w.emit("SK103", node, f"{_short(dotted)} — {attr} {t.dangerous_attrs[attr]}")


_VERSION_ATTRS = frozenset({"__version__", "version_info"})


def _package_chain(w: Walker, node: ast.Attribute, dotted: str) -> None:
    """``IPython.display.HTML`` passes; ``IPython.lib.backgroundjobs`` is judged as the
    import it amounts to. The chain is judged once, at its outermost attribute."""
    inner = node.value
    while isinstance(inner, ast.Attribute):
        w.handled.add(id(inner))
        inner = inner.value
    found = module_reason(w.t, dotted)
    if found is not None:
        w.emit("SK102", node, f"{_short(dotted)} — '{found[0]}' {found[1]}")


@register(ast.Call)
def check_platform_system(w: Walker, node: ast.Call) -> None:
    func = node.func
    if (
        isinstance(func, ast.Attribute)
        and func.attr == "system"
        and isinstance(func.value, ast.Name)
        and func.value.id == "platform"
        and w.aliases.get("platform", "platform") == "platform"
        and not node.args
        and not node.keywords
    ):
        w.handled.add(id(func))  # platform.system() names the OS; os.system runs a shell


def _short(text: str) -> str:
    return text if len(text) <= 50 else text[:49] + "…"
