"""Family: IPython syntax — magics, shell lines, package installs, the shell object.

Magics are judged by what they do. In the ``notebook`` profile display and
configuration magics pass (``%config InlineBackend...``, ``%load_ext`` of a module
that is not dangerous, ``%%writefile``/``%%file`` into the working area, whose
Python is judged as a cell, ``%cd``, ``%env``, ``%pylab``), and so does ``%run`` of a
file of the working area (see :meth:`MagicJudge._judge_run`); magics that run code the
validator never sees otherwise (``%run -m``, ``%debug``, ``%store -r``), shells
(``%%bash``, ``!cmd``, ``%sx``) and browser script (``%%javascript``) are refused in
both profiles. An unknown magic (one an extension defines) is a note in ``notebook``.

Shell lines: ``!ls``, ``!head data.csv``, ``!wc -l``, ``!cat``, ``!tail``, ``!du``,
``!pwd`` pass in ``notebook`` when they are one read-only command over plain words
(no ``$``/``{}`` expansion, pipes, redirections, substitutions) and name no system
path: they read the working area as ``open()`` does. Everything else that runs a
program is refused.

Package installs (``%pip install x``, ``!pip install x``, ``%conda install x``,
``!pip3 ...``, ``!python -m pip install``) are answered with the command that adds
the packages to the image (rule SK607, wording in :func:`.results.install_answer`).

Rules: SK601-SK607.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

from ...bootstrap import reads_as_python
from ..prepare import CannotJudge
from ..registry import register, register_cell
from ..results import download_answer, install_answer
from ..text import shorten
from .data import system_path
from .environment import program_variable
from .magic_args import format_fields, is_literal, strip_magic_options
from .modules import module_reason
from .shell_lines import (
    READONLY_ALIASES,
    download_sources,
    install_packages,
    readonly_shell,
    working_file_command,
)

if TYPE_CHECKING:
    from ..policy import Tables
    from ..walker import Analysis, Walker

#: IPython display names that send script to the browser (SK605).
BROWSER_SCRIPT_NAMES = frozenset({"Javascript", "display_javascript"})

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

#: IPython's default POSIX aliases that run the command of their own name as given
#: (``%rm x`` runs ``rm x``): judged as that shell line.
PLAIN_ALIASES = frozenset({"cp", "mkdir", "mv", "rm", "rmdir"})

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
    **dict.fromkeys(
        ["cython", "cython_inline", "cython_pyximport", "fortran"], "compiles and loads native code"
    ),
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

#: Line magics that pass in ``notebook`` after a check of their arguments (the
#: ``strict`` profile refuses them, see :data:`DANGEROUS_MAGICS`).
NOTEBOOK_LINE_MAGICS = frozenset(
    {"config", "load_ext", "reload_ext", "unload_ext", "cd", "pushd", "popd", "bookmark",
     "env", "set_env", "pylab", "load", "loadpy", "pycat", "pfile", "save", "notebook",
     "logstart", "logon", "run"}
)  # fmt: skip
#: Cell magics that pass in ``notebook`` after a check.
NOTEBOOK_CELL_MAGICS = frozenset({"writefile", "file"})

#: ``%config`` settings that only change how results are shown. Completion settings
#: are not among them: ``IPCompleter.evaluation = 'unsafe'`` (or ``greedy``) makes
#: Tab completion run the code typed so far, which no validator sees.
CONFIG_CLASSES = frozenset({"InlineBackend"})
CONFIG_TRAITS = frozenset(
    {
        "InteractiveShell.ast_node_interactivity", "ZMQInteractiveShell.ast_node_interactivity",
        "Completer.use_jedi", "IPCompleter.use_jedi", "IPCompleter.limit_to__all__",
        "PlainTextFormatter.pprint", "PlainTextFormatter.max_width",
    }
)  # fmt: skip

#: Magics whose arguments name what they act on: a ``$var`` or ``{expr}`` there makes
#: the target unknown until run time, so they are refused with one.
_LITERAL_ARGUMENT_MAGICS = frozenset(
    {"config", "load_ext", "reload_ext", "unload_ext", "writefile", "file", "aimport",
     "matplotlib", "load", "loadpy", "run", "env", "set_env"}
)  # fmt: skip

#: ``%run`` options that change only how the file runs: in the notebook's namespace
#: (``-i``), timed (``-t``, ``-N<n>``), ``sys.exit`` ignored (``-e``), not as
#: ``__main__`` (``-n``), no glob expansion of its arguments (``-G``). ``-m`` (a module
#: by name: ``-m pip``, ``-m http.server``), ``-d`` (the debugger) and ``-p`` (the
#: profiler, which writes files) are refused with the rest.
RUN_OPTIONS = re.compile(r"-(?:[itenG]+(?:N\d+)?|N\d+)")

#: Suffixes of files ``%%writefile`` writes that Python does not import; the body of
#: any other file (``.py``, no suffix, a computed name) is judged as a cell.
DATA_SUFFIXES = (
    ".csv", ".tsv", ".txt", ".md", ".rst", ".json", ".yaml", ".yml", ".toml", ".ini",
    ".cfg", ".html", ".htm", ".css", ".xml", ".svg", ".tex", ".bib", ".sql", ".dat",
    ".r", ".c", ".h", ".cpp", ".f", ".f90", ".pyx", ".pxd", ".sh",
)  # fmt: skip


_ESCAPE_START = re.compile(
    r"^[ \t\f\v]*(?:[A-Za-z_]\w*[ \t]*=[ \t]*)?(!|%%?)([\w!]*)", re.MULTILINE
)
_AUTOMAGIC_LINE = re.compile(r"^[ \t\f\v]*([A-Za-z_][\w.*]*)(.*)$")
SCRIPT_MARKUP = re.compile(
    r"<\s*(?:script|iframe|object|embed)\b|<[^>]*\son\w+\s*=|javascript:", re.IGNORECASE
)
#: Methods of IPython's shell that run code or commands, whatever object they are
#: reached on (an extension's ``load_ipython_extension(ip)`` gets the shell itself).
SHELL_METHODS = frozenset(
    {"run_cell", "run_cell_async", "run_line_magic", "run_cell_magic", "run_code",
     "run_ast_nodes", "safe_execfile", "safe_execfile_ipy", "safe_run_module", "getoutput",
     "user_ns", "user_global_ns", "ev", "ex", "system_piped", "system_raw",
     "find_line_magic", "find_cell_magic", "find_magic", "magics_manager",
     "register_magic_function", "define_macro", "prefilter_manager",
     "input_transformers_post", "input_transformers_cleanup", "input_transformer_manager",
     "ast_transformers", "do_execute", "get_comm_manager", "comm_manager"}
)  # fmt: skip

_IPYTHON_CALLS = frozenset(
    {"run_line_magic", "run_cell_magic", "system", "getoutput", "show_usage"}
)


def build_tables(t: Tables) -> None:
    t.unparseable_words |= {"get_ipython"}
    t.sink_names |= {"get_ipython"}


class MagicJudge:
    """Judges one magic (or shell line) at one position."""

    def __init__(
        self, analysis: Analysis, line: int, col: int, depth: int, automagic: bool = False
    ) -> None:
        self.analysis = analysis
        self.t = analysis.tables
        self.line = line
        self.col = col
        self.depth = depth
        self.automagic = automagic

    def emit(self, rule_id: str, message: str) -> None:
        if self.automagic and rule_id not in ("SK504", "SK607", "SK608"):
            # the line only runs as a magic under automagic: say so, one rule
            message = f"{message} (this line is an automagic call)"
            rule_id = "SK604"
        self.analysis.emit(rule_id, self.line, self.col, message)

    def _install(self, command: str) -> bool:
        packages = install_packages(command)
        if packages is None:
            return False
        self.analysis.install_packages.extend(
            p for p in packages if p not in self.analysis.install_packages
        )
        self.emit(
            "SK607", f"package install `{shorten(command, 50)}` — " + install_answer(packages)
        )
        return True

    def _download(self, command: str) -> bool:
        sources = download_sources(command)
        if sources is None:
            return False
        found = self.analysis.downloads
        found.extend(s for s in sources if s not in found)
        self.emit("SK608", f"download `{shorten(command, 50)}` — " + download_answer(sources))
        return True

    def judge(self, kind: str, name: str, args: str, body: str) -> None:
        """Judge ``%name args`` (kind ``line``), ``%%name args\\nbody`` (``cell``) or a
        shell command (``system``)."""
        t = self.t
        notebook = t.notebook
        if kind == "system":
            if self._install(args):
                return
            if notebook and (readonly_shell(args) or self._download(args)):
                return
            note = working_file_command(args) if notebook else None
            if note is not None:
                if note:
                    self.emit("SK504", f"!{shorten(args, 50)} — {note}")
                return
            self.emit(
                "SK601",
                f"shell command !{shorten(args, 50)} — runs a program in the sandbox's shell",
            )
            return
        name = name.lstrip("%")
        shown = ("%" if kind == "line" else "%%") + name
        if self._expansions(shown, name, args):
            return
        if name in t.banned_magics:
            self.emit("SK602", f"{shown} — banned by the administrator")
            return
        if name in t.allowed_magics:
            return
        installer = kind == "line" and name in ("pip", "conda", "mamba", "micromamba", "uv")
        if installer and self._install(f"{name} {args}"):
            return
        if name in SHELL_MAGICS:
            if kind == "line" and name in ("system", "sx"):
                self.judge("system", "", args, "")
                return
            if kind == "line" and name in PLAIN_ALIASES:
                # IPython's alias runs `rm args` in the shell: judged as that line is
                self.judge("system", "", f"{name} {args}", "")
                return
            alias = READONLY_ALIASES.get(name)
            if notebook and kind == "line" and alias and readonly_shell(f"{alias} {args}"):
                return
            what = f" {shorten(args or body, 40)}" if (args or body).strip() else ""
            self.emit("SK601", f"{shown}{what} — runs a shell command")
            return
        if name in BROWSER_MAGICS:
            self.emit(
                "SK605",
                f"{shown} — runs JavaScript in the browser, which can reach the notebook server",
            )
            return
        allowed = ALLOWED_LINE_MAGICS if kind == "line" else ALLOWED_CELL_MAGICS
        if name in allowed and not (notebook and name == "load_ext"):
            self._judge_allowed(kind, name, shown, args, body)
            return
        relaxed = NOTEBOOK_LINE_MAGICS if kind == "line" else NOTEBOOK_CELL_MAGICS
        if notebook and name in relaxed:
            self._judge_notebook(name, shown, args, body)
            return
        reason = DANGEROUS_MAGICS.get(name)
        if reason is not None:
            self.emit("SK602", f"{shown} — {reason}")
        else:
            self.emit("SK603", f"{shown} is not a magic the validator knows (an extension's?)")

    def _expansions(self, shown: str, name: str, args: str) -> bool:
        """Judge what IPython expands in a magic's arguments before the magic runs:
        ``{expr}`` is evaluated as Python (judged here as a cell), ``$var`` substituted.
        Returns True when the magic is refused for it."""
        if "{" not in args and "$" not in args:
            return False
        fields = format_fields(args)
        for field in fields:
            self._nested(field, self.line - 1)
        computed = "$" in args or not all(is_literal(field) for field in fields)
        if computed and name in _LITERAL_ARGUMENT_MAGICS:
            self.emit("SK602", f"{shown} with a computed argument — what it acts on is unknown")
            return True
        return False

    def _path_ok(self, shown: str, words: list[str]) -> bool:
        for word in words:
            path = system_path(self.t, word.strip("'\""))
            if path is not None:
                self.emit("SK602", f"{shown} {shorten(word, 30)} — {path} is a system location")
                return False
        return True

    def _judge_notebook(self, name: str, shown: str, args: str, body: str) -> None:
        words = [w for w in args.split() if not w.startswith("-")]
        if name == "config":
            target = args.split("=")[0].strip()
            if (
                "." in target
                and target.split(".")[0] not in CONFIG_CLASSES
                and target not in CONFIG_TRAITS
            ):
                self.emit("SK602", f"{shown} {shorten(target, 40)} — changes kernel settings")
        elif name in ("load_ext", "reload_ext", "unload_ext"):
            for ext in words[:1]:
                if module_reason(self.t, ext) is not None:
                    self.emit("SK602", f"{shown} {ext} — '{ext}' {module_reason(self.t, ext)[1]}")  # type: ignore[index]
        elif name in ("writefile", "file"):
            target = words[0].strip("'\"").lower() if words else ""
            if self._path_ok(shown, words[:1]) and not target.endswith(DATA_SUFFIXES):
                # a module written here may be imported later: judge it now, as a cell
                self._nested(body, self.line)
        elif name in ("env", "set_env") and args.strip():
            variable = args.strip().split("=", 1)[0].split()[0]
            if program_variable(variable):
                self.emit("SK602", f"{shown} {variable} — decides which program a shell line runs")
        elif name == "run":
            self._judge_run(shown, args)
        elif name in ("load", "loadpy") and any("://" in w for w in words):
            self.emit("SK602", f"{shown} of a URL — fetches code from the network")
        else:
            self._path_ok(shown, words)

    def _judge_run(self, shown: str, args: str) -> None:
        """``%run FILE [args]`` in ``notebook``: a file of the working area runs nothing
        an ``import`` of it could not (both run a file of the folder unjudged, and a
        ``.py`` a cell writes with ``open()`` may be imported), so it passes as the
        import does. Refused: other options, a path outside the working area, and a
        ``%run`` after a download in the same cell (it may run what was fetched)."""
        words = args.split()
        while words and words[0].startswith("-"):
            option = words.pop(0)
            if not RUN_OPTIONS.fullmatch(option):
                self.emit(
                    "SK602",
                    f"{shown} {shorten(option, 20)} — only -i, -t, -N<count>, -e, -n and -G pass "
                    "(-m runs a module by name, -d a debugger, -p a profiler)",
                )
                return
        target = words[0].strip("'\"") if words else ""
        if not target:
            self.emit("SK602", f"{shown} — runs a file or module")
            return
        if target.startswith(("/", "~")) or "://" in target:
            self.emit(
                "SK602",
                f"{shown} {shorten(target, 30)} — runs a file outside the working area "
                "(run a file of the notebook's folder by its relative path)",
            )
            return
        if not self._path_ok(shown, [target]):
            return
        if self.analysis.downloads:
            self.emit(
                "SK602",
                f"{shown} {shorten(target, 30)} after a download in the same cell — it may "
                "run what was fetched",
            )

    def _judge_allowed(self, kind: str, name: str, shown: str, args: str, body: str) -> None:
        words = args.split()
        if name in ("history", "hist") and any(w.startswith("-f") for w in words):
            if not self.t.notebook:
                self.emit("SK602", f"{shown} -f — writes a file")
        elif name == "matplotlib" and "module://" in args:
            self.emit("SK602", f"{shown} module:// — imports a backend module by name")
        elif name == "load_ext":
            ext = words[0] if words else ""
            if ext not in SAFE_EXTENSIONS and ext not in self.t.allowed_modules:
                self.emit("SK602", f"{shown} {ext} — loads an extension module (not allowed)")
        elif name == "aimport":
            for word in args.replace(",", " ").split():
                module = word.lstrip("-")
                found = module_reason(self.t, module) if module else None
                if found is not None:
                    self.emit("SK101", f"{shown} {module} — '{found[0]}' {found[1]}")
        elif name in MARKUP_MAGICS:
            if SCRIPT_MARKUP.search(body):
                self.emit("SK605", f"{shown} with script — runs JavaScript in the browser")
        elif name in CODE_MAGICS:
            if kind == "line":
                self._nested(strip_magic_options(args), self.line - 1)
            else:
                if name == "timeit":
                    setup = strip_magic_options(args)
                    if setup.strip():
                        self._nested(setup, self.line - 1)
                self._nested(body, self.line)

    def _nested(self, code: str, base_line: int) -> None:
        if not code.strip():
            return
        try:
            self.analysis.judge_cell(code, self.depth + 1, base_line)
        except CannotJudge as exc:
            self.analysis.emit("SK803", self.line, self.col, f"magic body cannot be judged: {exc}")


def magic_allowed(t: Tables, escape: str, name: str) -> bool:
    """Whether ``%name``/``%%name`` would pass whatever its arguments (for unparseable cells)."""
    if name in t.banned_magics:
        return False
    allowed = ALLOWED_LINE_MAGICS if escape == "%" else ALLOWED_CELL_MAGICS
    return name in t.allowed_magics or (name in allowed and name != "load_ext")


def escape_starts(text: str) -> list[tuple[int, str, str]]:
    """(index, escape, name) of each line that starts with ``!``, ``%`` or ``%%``."""
    return [(m.start(1), m.group(1), m.group(2)) for m in _ESCAPE_START.finditer(text)]


@register_cell
def check_automagic(analysis: Analysis, transformed: str, depth: int, offset: int) -> None:
    # IPython prefilters single-line cells: with automagic on, `cat /etc/passwd`
    # runs the `cat` alias (plain Python reads it as a division). The inner kernel
    # runs automagic for the lines bootstrap.reads_as_python leaves to the magics
    # (`ls -n data/`, `timeit f(x)`, `pwd`), as a plain kernel does; the first line
    # of any cell that looks like such a call is judged as that magic, also in a
    # longer cell (to be safe). A first line that reads as Python (`run(x)`,
    # `ls = []`, `history += [1]`) is Python there too, and judged as such.
    first = transformed.partition("\n")[0]
    match = _AUTOMAGIC_LINE.match(first)
    if match is None:
        return
    ifun, rest = match.group(1), match.group(2).strip()
    if ifun not in KNOWN_LINE_MAGICS:
        return
    if reads_as_python(rest):
        return
    MagicJudge(analysis, offset + 1, 0, depth, automagic=True).judge("line", ifun, rest, "")


def _is_get_ipython_call(owner: ast.expr) -> bool:
    return (
        isinstance(owner, ast.Call)
        and isinstance(owner.func, ast.Name)
        and owner.func.id == "get_ipython"
        and not owner.args
        and not owner.keywords
    )


@register(ast.Call)
def check_call(w: Walker, node: ast.Call) -> None:
    func = node.func
    if not (
        isinstance(func, ast.Attribute)
        and func.attr in _IPYTHON_CALLS
        and _is_get_ipython_call(func.value)
    ):
        return
    owner = func.value
    assert isinstance(owner, ast.Call)
    w.handled.add(id(owner.func))
    w.handled.add(id(func))
    method = func.attr
    args: list[str] = []
    for arg in node.args:
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            w.emit(
                "SK606",
                node,
                f"get_ipython().{method}() with computed arguments — "
                "runs whatever the arguments say",
            )
            return
        w.handled.add(id(arg))  # judged here (bodies as cells), not as constants
        args.append(arg.value)
    if node.keywords:
        w.emit("SK606", node, f"get_ipython().{method}() with keyword arguments")
        return
    line = getattr(node, "lineno", 1) + w.line_offset
    col = getattr(node, "col_offset", 0)
    judge = MagicJudge(w.analysis, line, col, w.depth)
    if method in ("system", "getoutput"):
        judge.judge("system", "", args[0] if args else "", "")
    elif method == "run_line_magic" and len(args) == 2:
        judge.judge("line", args[0], args[1], "")
    elif method == "run_cell_magic" and len(args) == 3:
        judge.judge("cell", args[0], args[1], args[2])
    elif method == "show_usage" and not args:
        return
    else:
        w.emit("SK606", node, f"get_ipython().{method}() called in an unusual way")


@register(ast.Name)
def check_name(w: Walker, node: ast.Name) -> None:
    name = node.id
    if id(node) in w.handled or w.shadowed(name):
        return
    if name == "get_ipython":
        w.emit(
            "SK606",
            node,
            "get_ipython() used directly — the shell object runs shell "
            "commands, magics and reaches the kernel",
        )
    elif name in BROWSER_SCRIPT_NAMES:
        w.emit("SK605", node, f"{name} — it sends script to the browser")


@register(ast.Attribute)
def check_attribute(w: Walker, node: ast.Attribute) -> None:
    if id(node) in w.handled:
        return
    if node.attr == "get_ipython":
        w.emit("SK606", node, "get_ipython reached through a module — the shell object")
    elif node.attr in SHELL_METHODS:
        w.emit("SK606", node, f".{node.attr} — IPython's shell runs code or commands with it")
    elif node.attr in BROWSER_SCRIPT_NAMES:
        w.emit("SK605", node, f"{node.attr} — it sends script to the browser")


@register(ast.ImportFrom)
def check_import_from(w: Walker, node: ast.ImportFrom) -> None:
    for alias in node.names:
        if alias.name in BROWSER_SCRIPT_NAMES:
            w.emit(
                "SK605",
                node,
                f"import of {node.module}.{alias.name} — it sends script to the browser",
            )


@register(ast.Constant)
def check_constant(w: Walker, node: ast.Constant) -> None:
    text = node.value
    if not isinstance(text, str) or id(node) in w.handled:
        return
    if ("<" in text or "script" in text or "SCRIPT" in text) and (
        SCRIPT_MARKUP.search(text) or "application/javascript" in text.lower()
    ):
        w.emit(
            "SK605",
            node,
            "string with script for the browser — output that runs "
            "JavaScript can reach the notebook server",
        )
