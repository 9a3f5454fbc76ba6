"""The rule table: every built-in rule's id, name, severity and score per profile.

Pure data. The names each rule looks for live in the family module that owns the
rule (:mod:`.families`); this table is what an administrator reads to know the ids
and scores, and what ``validation_rule_scores`` overrides.

Scores add up per cell (the highest score of each rule counts once) and a cell is
blocked in ``block`` mode when the sum reaches the policy threshold (30 by default).
Everything that gives shell, process, file-system, network, native-code or
interpreter-internals access scores 40 or more, so it blocks on its own; weak signals
(a ``__dict__`` read, ``vars()``) score below 30 and only block together.
"""

from __future__ import annotations

from dataclasses import dataclass

from .results import Severity


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
    Rule("SK607", "package-install", "high", 100,
         "installs packages (%pip, !pip, %conda): the sandbox has no network; "
         "packages come from the image"),
    Rule("SK608", "network-download", "high", 100,
         "downloads from the network (!wget, !curl, !git clone, urlretrieve; notebook "
         "profile): the sandbox has no network; files come from the notebook's folder"),
    # -- unicode ------------------------------------------------------------------------------
    Rule("SK701", "lookalike-identifier", "high", 30,
         "writes an identifier that imitates another name (full-width eval, Cyrillic letters in a Latin word)"),
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


#: Per-profile scores that differ from the defaults above (``strict`` uses the
#: defaults: it is the behaviour of the executor this project grew from). In
#: ``notebook`` these are notes, not refusals: an unknown magic (an extension's; the
#: extension was judged when loaded), a file deleted inside the sandbox (the container
#: holds nothing of the user's but the working area, which dies with it), a class built
#: with ``type()`` and a ``__dict__`` read (each reaches something dangerous only
#: through a lookup by name, which is judged on its own). ``globals()`` stays a
#: refusal: a key computed at run time reaches ``__builtins__``.
PROFILE_SCORES: dict[str, dict[str, int]] = {
    "strict": {},
    "notebook": {"SK603": 10, "SK504": 10, "SK205": 10, "SK303": 10},
}

#: The profiles, with one line each for the banner, ``%sandbox info`` and ``doctor``.
PROFILES: dict[str, str] = {
    "notebook": "people's own notebooks: refuses processes, shells, the network, native "
    "code, interpreter escapes, strings run as code, unsafe deserialisation, writes to "
    "system locations and kernel control; everyday file and path code passes",
    "strict": "code an LLM just wrote: also refuses any use of os, shutil, file-writing "
    "magics and unknown magics (the original executor's behaviour)",
}
