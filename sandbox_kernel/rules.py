"""The validator's knowledge: rule table, dangerous names and the magic allowlist.

Pure data, no logic beyond small lookups, so that an administrator (or a reviewer)
can read in one place what the validator refuses and why. :mod:`.validator` does the
judging. Each table is a frozenset or a mapping so that every lookup of the AST walk
is O(1).

Scores add up per cell (the highest score of each rule counts once) and a cell is
blocked in ``block`` mode when the sum reaches the policy threshold (30 by default).
Everything that gives shell, process, file-system, network, native-code or
interpreter-internals access scores 40 or more, so it blocks on its own; weak signals
(a ``__dict__`` read, ``vars()``) score below 30 and only block together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["low", "medium", "high", "critical"]


@dataclass(frozen=True)
class Rule:
    """One built-in rule: its stable id, a short name, severity and default score."""

    rule_id: str
    name: str
    severity: Severity
    score: int
    summary: str


_RULE_LIST = [
    # -- modules and process / native APIs -------------------------------------------
    Rule("SK101", "dangerous-module", "critical", 40,
         "imports a module that gives shell, file, network, native-code or interpreter access"),
    Rule("SK102", "module-chain", "critical", 40,
         "reaches a dangerous module through an attribute chain or a bare name"),
    Rule("SK103", "dangerous-api", "critical", 40,
         "uses a process, FFI or frame API (system, Popen, CDLL, _getframe, ...)"),
    Rule("SK104", "dynamic-import", "critical", 40,
         "imports a module by name at run time (__import__, import_module, runpy)"),
    # -- dynamic code --------------------------------------------------------------------
    Rule("SK201", "dynamic-code", "critical", 40,
         "runs code from a string (eval, exec, compile, timeit/profile of a string)"),
    Rule("SK202", "dynamic-code-reference", "critical", 40,
         "refers to eval/exec/compile/__import__ without calling it (alias, decorator, default)"),
    Rule("SK203", "debugger", "critical", 40, "starts a debugger (breakpoint, pdb)"),
    Rule("SK204", "code-object", "critical", 40,
         "builds functions or code objects (FunctionType, CodeType, type(f)(...))"),
    Rule("SK205", "dynamic-class", "medium", 20, "creates a class with three-argument type()"),
    # -- introspection ---------------------------------------------------------------------
    Rule("SK301", "introspection-escape", "critical", 40,
         "walks interpreter internals (__subclasses__, __globals__, __builtins__, __mro__, ...)"),
    Rule("SK302", "frame-access", "critical", 40,
         "reads frame, generator, coroutine or traceback internals (f_globals, gi_frame, ...)"),
    Rule("SK303", "namespace-dunder", "medium", 15, "reads __dict__ or __traceback__"),
    # -- string-built names ----------------------------------------------------------------
    Rule("SK401", "computed-name", "high", 30,
         "looks up an attribute or global by a computed name (getattr, namespace dicts)"),
    Rule("SK402", "globals-access", "high", 30, "takes the module namespace with globals()"),
    Rule("SK403", "locals-access", "low", 10, "takes a namespace with locals() or vars()"),
    Rule("SK404", "string-named-access", "critical", 40,
         "names a dangerous attribute, builtin or module in a string"),
    Rule("SK405", "format-string-walk", "critical", 40,
         "walks attributes inside a format string ('{0.__globals__}')"),
    Rule("SK406", "obfuscated-string", "medium", 20,
         "decodes a hidden string (rot13, base64, hex, reversed literal)"),
    # -- data sinks and files --------------------------------------------------------------
    Rule("SK501", "unsafe-deserialisation", "critical", 40,
         "loads pickled or YAML objects (np.load allow_pickle, read_pickle, joblib/torch load)"),
    Rule("SK502", "pandas-python-engine", "critical", 40,
         "evaluates a pandas expression with engine='python' or with dunders"),
    Rule("SK503", "system-path", "critical", 40,
         "names a system path (/etc, /proc, /sys, /dev, /root, ...) or a file:// URL"),
    Rule("SK504", "filesystem-mutation", "high", 30,
         "deletes, links or re-permissions files (Path.unlink, rmdir, chmod, symlink_to)"),
    # -- IPython syntax ---------------------------------------------------------------------
    Rule("SK601", "shell-escape", "critical", 50,
         "runs a shell command (!cmd, %system, %sx, %%bash, %%sh, %%script, aliases)"),
    Rule("SK602", "dangerous-magic", "critical", 40,
         "uses a magic that runs files, changes settings or writes files (%run, %config, ...)"),
    Rule("SK603", "unknown-magic", "high", 30, "uses a magic that is not on the allowlist"),
    Rule("SK604", "automagic", "critical", 40,
         "a line that IPython's automagic would run as a magic or shell alias"),
    Rule("SK605", "browser-script", "critical", 40,
         "sends script to the browser (%%javascript, <script> in HTML, Javascript())"),
    Rule("SK606", "ipython-handle", "critical", 40,
         "uses get_ipython() directly (shell, namespaces, kernel)"),
    # -- unicode ------------------------------------------------------------------------------
    Rule("SK701", "lookalike-identifier", "high", 30,
         "writes an identifier that Python NFKC-normalises to another name (full-width eval is eval)"),
    Rule("SK702", "bidi-control", "high", 30,
         "contains bidirectional control characters that hide code from readers"),
    # -- input limits: these always block in block mode ----------------------------------
    Rule("SK801", "malformed-input", "critical", 100,
         "NUL bytes, invalid UTF-8 or lone surrogates: Python cannot run it as written"),
    Rule("SK802", "too-large", "critical", 100, "cell larger than the validator's size limit"),
    Rule("SK803", "too-complex", "critical", 100,
         "cell too deeply nested or too costly to judge in bounded time"),
    Rule("SK804", "unparseable-danger", "critical", 40,
         "a cell the host's Python cannot parse names dangerous things (a newer Python "
         "in the sandbox might run it)"),
    # -- policy and custom rules -----------------------------------------------------------
    Rule("SK900", "rule-error", "high", 30,
         "a custom rule failed; the cell is refused because it was not fully judged"),
    Rule("SK901", "banned-call", "critical", 40, "calls a function the administrator banned"),
    Rule("SK902", "banned-attribute", "critical", 40,
         "uses an attribute the administrator banned"),
]  # fmt: skip

RULES: dict[str, Rule] = {rule.rule_id: rule for rule in _RULE_LIST}

#: Rules whose findings block in ``block`` mode whatever the threshold: the cell could
#: not be judged at all, so a low score would be meaningless.
FORCE_BLOCK_RULES = frozenset({"SK801", "SK802", "SK803"})

# -- modules ---------------------------------------------------------------------------

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
            "exec_command",
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
}  # fmt: skip

#: Attribute and bare names that import by name at run time.
DYNAMIC_IMPORT_NAMES = frozenset(
    {"__import__", "import_module", "run_path", "run_module", "load_module", "exec_module",
     "find_loader", "resolve_name"}
)  # fmt: skip

# -- builtins --------------------------------------------------------------------------

#: Builtins that run code from strings.
DYNAMIC_CODE_BUILTINS = frozenset({"eval", "exec", "compile", "execfile"})

#: Builtins whose string name argument is an attribute name (a sink for built names).
ATTR_NAME_SINKS = frozenset({"getattr", "setattr", "delattr", "hasattr"})

#: Callables (bare or as attributes, e.g. ``operator.attrgetter``) whose string
#: arguments are attribute names.
ATTR_NAME_SINK_FACTORIES = frozenset({"attrgetter", "methodcaller"})

# -- introspection ---------------------------------------------------------------------

#: Dunder attributes that lead out of the sandboxed namespace (SK301).
ESCAPE_DUNDERS = frozenset(
    {
        "__subclasses__", "__globals__", "__builtins__", "__code__", "__closure__",
        "__self__", "__objclass__", "__mro__", "__bases__", "__base__", "__loader__",
        "__spec__", "__getattribute__", "__reduce__", "__reduce_ex__", "__defaults__",
        "__kwdefaults__", "__import__", "mro",
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

#: Names of code-object constructors (SK204).
CODE_OBJECT_NAMES = frozenset({"FunctionType", "CodeType", "LambdaType", "MethodType"})

# -- data sinks ------------------------------------------------------------------------

#: Functions that unpickle whatever file they read (as attribute or imported name).
PICKLE_READERS = frozenset({"read_pickle", "unsafe_load", "full_load", "UnsafeLoader"})

#: Dotted callables (after import aliases are resolved) that unpickle by default.
PICKLE_LOAD_CALLS = frozenset({"joblib.load", "torch.load", "yaml.load", "dill.load"})

#: Safe YAML loaders: ``yaml.load(f, Loader=SafeLoader)`` is fine.
SAFE_YAML_LOADERS = frozenset({"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"})

#: Callables that run a statement given as a string (SK201 when given one).
STRING_EXEC_CALLS = frozenset(
    {"timeit.timeit", "timeit.repeat", "timeit.Timer", "cProfile.run", "cProfile.runctx",
     "profile.run", "profile.runctx"}
)  # fmt: skip

#: pathlib methods that delete, link or re-permission (SK504).
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

#: IPython display names that send script to the browser (SK605).
BROWSER_SCRIPT_NAMES = frozenset({"Javascript", "display_javascript"})

# -- IPython magics --------------------------------------------------------------------

#: Every line magic of a default IPython 8/9 shell, plus the default shell aliases
#: (aliases are line magics too). Used to recognise automagic lines.
KNOWN_LINE_MAGICS = frozenset(
    {
        "alias", "alias_magic", "autoawait", "autocall", "automagic", "bookmark", "cd",
        "code_wrap", "colors", "conda", "config", "debug", "dhist", "dirs", "doctest_mode",
        "ed", "edit", "env", "gui", "hist", "history", "killbgscripts", "load", "load_ext",
        "loadpy", "logoff", "logon", "logstart", "logstate", "logstop", "lsmagic", "macro",
        "magic", "mamba", "matplotlib", "micromamba", "notebook", "page", "pastebin", "pdb",
        "pdef", "pdoc", "pfile", "pinfo", "pinfo2", "pip", "popd", "pprint", "precision",
        "prun", "psearch", "psource", "pushd", "pwd", "pycat", "pylab", "quickref", "recall",
        "rehashx", "reload_ext", "rep", "rerun", "reset", "reset_selective", "run", "save",
        "sc", "set_env", "sx", "system", "tb", "time", "timeit", "unalias", "unload_ext",
        "uv", "who", "who_ls", "whos", "xdel", "xmode", "autoreload", "aimport",
        # default POSIX aliases and their older relatives
        "cat", "cp", "ldir", "lf", "lk", "ll", "ls", "lx", "mkdir", "mv", "rm", "rmdir",
        "clear", "less", "man", "more",
    }
)  # fmt: skip

#: Line and cell magics (and aliases) that run shell commands (SK601).
SHELL_MAGICS = frozenset(
    {
        "system", "sx", "!", "bash", "sh", "script", "perl", "ruby", "python", "python2",
        "python3", "pypy", "cat", "cp", "ldir", "lf", "lk", "ll", "ls", "lx", "mkdir", "mv",
        "rm", "rmdir", "clear", "less", "man", "more", "rehashx", "sc",
    }
)  # fmt: skip

#: Magics that send script to the browser (SK605).
BROWSER_MAGICS = frozenset({"javascript", "js"})

#: Magics refused with a reason (SK602). Anything not allowed is refused anyway
#: (SK603); these get a precise message.
DANGEROUS_MAGICS: dict[str, str] = {
    "run": "runs a file or module",
    "load": "loads code from a file or URL into the cell",
    "loadpy": "loads code from a file or URL into the cell",
    "pycat": "shows any file",
    "pfile": "shows any file",
    "env": "reads or changes the environment",
    "set_env": "changes the environment",
    "alias": "defines a shell alias",
    "unalias": "changes shell aliases",
    "alias_magic": "redefines magics",
    "load_ext": "loads an extension module",
    "reload_ext": "reloads an extension module",
    "unload_ext": "unloads an extension module",
    "config": "changes kernel settings",
    "writefile": "writes a file",
    "file": "writes a file",
    "pip": "installs packages",
    "conda": "installs packages",
    "mamba": "installs packages",
    "micromamba": "installs packages",
    "uv": "installs packages",
    "store": "persists variables to disk",
    "macro": "defines code that runs later",
    "rerun": "runs code from history",
    "recall": "runs code from history",
    "rep": "runs code from history",
    "edit": "runs an editor",
    "ed": "runs an editor",
    "save": "writes a file",
    "notebook": "writes a file",
    "logstart": "writes a file",
    "logon": "writes a file",
    "cd": "changes the working directory",
    "pushd": "changes the working directory",
    "popd": "changes the working directory",
    "bookmark": "changes the working directory",
    "debug": "starts a debugger",
    "pdb": "starts a debugger",
    "automagic": "turns automagic on",
    "autocall": "turns autocall on",
    "code_wrap": "rewrites every later cell",
    "pastebin": "uploads to the network",
    "killbgscripts": "kills processes",
    "pylab": "floods the namespace with star imports",
    "gui": "starts a GUI event loop",
}

#: Harmless line magics. ``time``, ``timeit`` and ``prun`` run their argument as
#: Python, which is judged as a cell of its own; ``history`` is refused with ``-f``
#: (it writes a file); ``matplotlib`` is refused with a ``module://`` backend (it
#: imports that module); ``aimport`` imports its arguments, judged as imports;
#: ``load_ext`` is allowed only for :data:`SAFE_EXTENSIONS`. ``sandbox`` is the
#: outer kernel's own (``%sandbox usage``): answered on the host, never run inside.
ALLOWED_LINE_MAGICS = frozenset(
    {
        "sandbox",
        "matplotlib", "timeit", "time", "prun", "precision", "pprint", "who", "whos",
        "who_ls", "history", "hist", "pinfo", "pinfo2", "psearch", "pdoc", "pdef",
        "psource", "xmode", "lsmagic", "magic", "quickref", "autoreload", "aimport",
        "reset", "reset_selective", "xdel", "colors", "pwd", "dirs", "dhist", "tb", "page",
        "logstate", "load_ext",
    }
)  # fmt: skip

#: Harmless cell magics. ``time``, ``timeit``, ``prun`` and ``capture`` run their body
#: as a cell, which is judged recursively; ``html``, ``markdown`` and ``svg`` bodies
#: are searched for script.
ALLOWED_CELL_MAGICS = frozenset(
    {"time", "timeit", "prun", "capture", "html", "HTML", "markdown", "latex", "svg", "SVG"}
)

#: Magics whose argument or body is Python that IPython runs.
CODE_MAGICS = frozenset({"time", "timeit", "prun", "capture"})

#: Magics whose body is rendered by the browser.
MARKUP_MAGICS = frozenset({"html", "HTML", "markdown", "svg", "SVG"})

#: Extensions ``%load_ext`` may load without the administrator allowing them.
SAFE_EXTENSIONS = frozenset({"autoreload"})

#: Options of ``%timeit``/``%prun`` that take a value as the next word.
MAGIC_OPTIONS_WITH_VALUE = frozenset({"-n", "-r", "-p", "-l", "-s", "-T", "-D"})
