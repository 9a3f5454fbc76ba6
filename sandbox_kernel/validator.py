"""Static judge of notebook cells, run on the host before a cell reaches the sandbox.

``validate(source, policy)`` returns a :class:`ValidationResult`: whether the cell is
blocked, its risk score and each finding (rule id, severity, score, line, column and a
sentence a student can act on). It is defense in depth, never the boundary: the
container is. It is a pure library: no Docker, no kernel, no global mutable state.

How a cell is judged:

1. Input limits first (size, NUL bytes, invalid UTF-8, lone surrogates): such a cell
   is blocked in ``block`` mode whatever the threshold (rules SK801-SK803).
2. The cell is judged as IPython will run it: when it may contain IPython syntax
   (escapes, prompts, or it does not parse as Python) it goes through IPython's own
   ``TransformerManager().transform_cell`` first, so ``!cmd`` and ``%%bash`` become the
   ``get_ipython().system(...)``/``run_cell_magic(...)`` calls that actually run. A first
   line that automagic would run as a magic or shell alias (``cat /etc/passwd``) is
   judged as that magic too, although the inner kernel runs with automagic off.
3. One iterative pass of an :class:`ast.NodeVisitor` over the tree applies every rule
   with O(1) set lookups (the rule tables live in :mod:`.rules`). Identifiers are
   already NFKC-normalised by Python's parser, so a full-width ``eval`` is judged as
   ``eval``; string constants are normalised before they are matched.
4. Magics are judged by name against an allowlist; the argument of ``%time``,
   ``%timeit``, ``%prun`` and the body of ``%%time``, ``%%timeit``, ``%%prun``,
   ``%%capture`` are judged as cells of their own.
5. Custom rules (callables or ``"pkg.mod:func"`` paths from the policy, and the
   ``sandbox_kernel.rules`` entry point group) run on the same tree.

Scores add up per cell, the highest score of each rule once. A cell that does not
parse is *not* blocked for that reason: ``syntax_error`` says where, and the inner
Python raises the same SyntaxError and runs nothing. The one exception (SK804): an
unparseable cell that names something dangerous (``os``, ``eval``, ``!cmd``, a system
path) is blocked, because a newer Python in the sandbox may accept syntax the host's
Python refuses (PEP 701 f-strings are valid on 3.12, not on 3.11). A cell IPython
itself cannot transform is blocked (SK803): its meaning inside the sandbox is unknown.

Only the administrator's :class:`Policy` decides: nothing in a cell (a comment such as
``# sandbox: off``, ``%config``, any magic) is read as configuration.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import io
import posixpath
import re
import tokenize
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, cast

from . import rules as R
from .errors import ConfigError
from .rules import Severity

if TYPE_CHECKING:
    from IPython.core.inputtransformer2 import TransformerManager

__all__ = [
    "ENTRY_POINT_GROUP",
    "MAX_SOURCE_CHARS",
    "Policy",
    "RuleFunc",
    "SyntaxErrorInfo",
    "ValidationResult",
    "Violation",
    "validate",
]

Mode = Literal["block", "warn", "off"]
RuleFunc = Callable[[ast.AST, str], Iterable["Violation"]]

#: Largest cell judged, in characters (bytes for ``bytes`` input). Larger cells are
#: blocked as "too large to judge" unless the policy is ``off``: a 1 MB cell is data,
#: not code, and judging it would cost seconds and hundreds of MB of AST.
MAX_SOURCE_CHARS = 1_000_000
#: How deep magic bodies are judged (``%%capture`` around ``%%time`` around code ...).
MAX_MAGIC_DEPTH = 4
#: IPython re-tokenises the whole cell once per escape it rewrites; a cell whose
#: ``escapes x characters`` exceeds this is refused (SK803) rather than transformed.
TRANSFORM_BUDGET = 20_000_000
#: Longest excerpt of the offending line kept in a violation.
EXCERPT_CHARS = 80
#: Entry point group of installed custom rules.
ENTRY_POINT_GROUP = "sandbox_kernel.rules"
#: Most violations one custom rule may return for one cell.
MAX_CUSTOM_VIOLATIONS = 1000

_MODES = ("block", "warn", "off")

# A cell may contain IPython syntax only if one of these occurs; otherwise, and when it
# parses as Python, IPython's transformer would return it unchanged and is skipped.
# Escapes at a line start (%, !, ?, and the autocall escapes / ; ,), `x = !cmd` and
# `x = %magic`, help `?`, and prompts that IPython strips (>>>, ...:, In [n]:; a bare
# `...` continuation is only stripped in a cell that also has a `>>>` line).
# IPython splits lines with str.splitlines, so \r, \x0c, \u2028 ... start lines too.
_LINE_START = "(?:^|(?<=[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]))"
_IPY_TRIGGER = re.compile(
    _LINE_START + r"[ \t\f\v]*(?:[!%?/;,]|>>>|\.{3,}:|In \[|\[nav\]|\[ins\])|=[ \t]*[!%]|\?",
    re.MULTILINE,
)
# Lines IPython may rewrite, to bound the transformer's quadratic cost.
_ESCAPE_LINE = re.compile(_LINE_START + r"[ \t\f\v]*[!%?/;,]|=[ \t]*[!%]|\?[ \t]*$", re.MULTILINE)
# IPython's LineInfo split: the leading "function" word and the rest of the line.
_AUTOMAGIC_LINE = re.compile(r"^[ \t\f\v]*([A-Za-z_][\w.*]*)(.*)$")
_AUGMENTED_ASSIGN = re.compile(r"^[-+*/%&|^@<>]*=")
_FORMAT_FIELD = re.compile(r"\{([^{}]*)\}")
_FIELD_PART = re.compile(r"[.\[\]]+")
_SCRIPT_MARKUP = re.compile(
    r"<\s*(?:script|iframe|object|embed)\b|<[^>]*\son\w+\s*=|javascript:", re.IGNORECASE
)
# identifier characters: word characters plus the connector punctuation (Pc) like U+FF3F
_ID_CHARS = "[\\w\u203f\u2040\u2054\ufe33\ufe34\ufe4d-\ufe4f\uff3f]"
_NON_ASCII_WORD = re.compile(f"{_ID_CHARS}*[^\\x00-\\x7f]{_ID_CHARS}*")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPE_START = re.compile(
    r"^[ \t\f\v]*(?:[A-Za-z_]\w*[ \t]*=[ \t]*)?(!|%%?)([\w!]*)", re.MULTILINE
)
_QUOTED_PATH = re.compile(r"([\"'])((?:/|file:|\.\./)[^\"'\n]*)\1")
_DUNDER_IN_TEXT = re.compile(r"__[A-Za-z]\w*?__")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_LEADING_PARENT_DIRS = re.compile(r"^(?:\.\./)+")


# ----------------------------------------------------------------------------------
# Public data types
# ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """One finding of one rule.

    Attributes:
        rule_id: stable id, ``SK101`` for built-in rules; custom rules pick their own.
        severity: ``low``, ``medium``, ``high`` or ``critical``.
        score: what the finding adds to the risk score (after the policy's overrides).
        line: 1-based line in the cell as written (0 when not tied to a line).
        column: 0-based column.
        message: what was found and why it matters, in one sentence.
        excerpt: the offending line, stripped and truncated.
        name: the rule's short name (``dangerous-module``).
    """

    rule_id: str
    severity: Severity
    score: int
    line: int
    column: int
    message: str
    excerpt: str = ""
    name: str = ""

    def to_json(self) -> dict[str, Any]:
        """The violation as plain JSON-able values."""
        return {
            "rule_id": self.rule_id,
            "name": self.name,
            "severity": self.severity,
            "score": self.score,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "excerpt": self.excerpt,
        }

    def format(self) -> str:
        """One human line with the code it is about:
        ``line 3, col 0: `import os` — <message> [SK101 dangerous-module, score 40]``."""
        label = f"{self.rule_id} {self.name}" if self.name else self.rule_id
        code = f"`{self.excerpt}`: " if self.excerpt else ""
        return (
            f"line {self.line}, col {self.column}: {code}{self.message} "
            f"[{label}, score {self.score}]"
        )


@dataclass(frozen=True)
class SyntaxErrorInfo:
    """Where a cell stops being Python; it is reported, not blocked."""

    message: str
    line: int
    offset: int

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "line": self.line, "offset": self.offset}


@dataclass
class ValidationResult:
    """The verdict on one cell.

    Attributes:
        blocked: the cell must not run (only ever true in ``block`` mode).
        risk_score: the sum, over rules, of the highest score of each rule's findings.
        violations: the findings, in source order.
        syntax_error: where the cell fails to parse, if it does.
        mode: the policy mode that produced the verdict.
        threshold: the policy threshold.
    """

    blocked: bool
    risk_score: int
    violations: list[Violation] = field(default_factory=list)
    syntax_error: SyntaxErrorInfo | None = None
    mode: Mode = "block"
    threshold: int = 30

    def to_json(self) -> dict[str, Any]:
        """The verdict as plain JSON-able values."""
        return {
            "blocked": self.blocked,
            "risk_score": self.risk_score,
            "violations": [v.to_json() for v in self.violations],
            "syntax_error": self.syntax_error.to_json() if self.syntax_error else None,
            "mode": self.mode,
            "threshold": self.threshold,
        }

    def summary(self) -> str:
        """One closing sentence (the kernel shows it as the error value of a refused cell)."""
        count = len(self.violations)
        findings = f"{count} finding{'s' if count != 1 else ''}"
        if self.blocked:
            return (
                f"Cell blocked by the sandbox validator: risk score {self.risk_score} "
                f"(threshold {self.threshold}), {findings}."
            )
        if self.mode == "off":
            return "Validation is off: the cell was not judged."
        if not count:
            return "No findings: risk score 0."
        if self.mode == "warn":
            return f"Warning only (policy 'warn'): risk score {self.risk_score}, {findings}."
        return f"Allowed: risk score {self.risk_score} is below the threshold {self.threshold}."

    def format_report(self) -> str:
        """The findings as text: one line per violation, then the closing summary."""
        lines = [v.format() for v in self.violations]
        if self.syntax_error is not None:
            err = self.syntax_error
            lines.append(
                f"line {err.line}, col {err.offset}: syntax error: {err.message} "
                "(Python will refuse the cell; it was only scanned for dangerous names)"
            )
        lines.append(self.summary())
        return "\n".join(lines)


_SET_FIELDS = (
    "banned_modules",
    "allowed_modules",
    "banned_calls",
    "allowed_calls",
    "banned_attributes",
    "allowed_attributes",
    "banned_magics",
    "allowed_magics",
)


def _as_name_set(value: Any, what: str) -> frozenset[str]:
    """Normalise a set-valued setting: any iterable of strings, or a comma list."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = value.split(",")
    try:
        items = list(value)
    except TypeError:
        raise ConfigError(f"{what} must be a list of names, not {value!r}") from None
    names = set()
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{what} must contain names (strings), not {item!r}")
        if item.strip():
            names.add(item.strip())
    return frozenset(names)


@dataclass(frozen=True)
class Policy:
    """What the administrator decided: mode, threshold, scores and extra rules.

    Every set accepts any iterable of names (or a comma-separated string) and is stored
    as a frozenset; the policy is immutable once built.

    Attributes:
        mode: ``block`` (refuse at the threshold), ``warn`` (run, show findings) or
            ``off`` (judge nothing).
        threshold: risk score at which ``block`` refuses a cell.
        rule_scores: rule id -> score, overriding the defaults (0 disables a rule).
        banned_modules: more modules to refuse on import (dotted, prefix-matched).
        allowed_modules: modules to accept although the built-in list refuses them.
        banned_calls: functions to refuse when called, by bare or dotted name.
        allowed_calls: built-in dangerous callables to accept (``compile``, ``system``).
        banned_attributes: attribute names to refuse wherever they appear.
        allowed_attributes: built-in dangerous attributes to accept (``__dict__``).
        banned_magics: magics to refuse, allowed_magics: magics to accept.
        custom_rules: callables ``rule(tree, source) -> Iterable[Violation]`` or their
            dotted paths (``"pkg.mod:func"``).
        entry_point_rules: also run the rules of the ``sandbox_kernel.rules`` group.
        max_source_chars: largest cell judged; larger cells are blocked.

    Raises:
        ConfigError: when a value has the wrong type or mode is unknown.
    """

    mode: Mode = "block"
    threshold: int = 30
    rule_scores: Mapping[str, int] = field(default_factory=dict)
    banned_modules: AbstractSet[str] = frozenset()
    allowed_modules: AbstractSet[str] = frozenset()
    banned_calls: AbstractSet[str] = frozenset()
    allowed_calls: AbstractSet[str] = frozenset()
    banned_attributes: AbstractSet[str] = frozenset()
    allowed_attributes: AbstractSet[str] = frozenset()
    banned_magics: AbstractSet[str] = frozenset()
    allowed_magics: AbstractSet[str] = frozenset()
    custom_rules: tuple[RuleFunc | str, ...] = ()
    entry_point_rules: bool = True
    max_source_chars: int = MAX_SOURCE_CHARS
    _tables: _Tables = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ConfigError(f"validation mode {self.mode!r} is not one of block, warn, off")
        for name in ("threshold", "max_source_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an integer, not {value!r}")
        scores: dict[str, int] = {}
        for rule_id, score in dict(self.rule_scores or {}).items():
            if (
                not isinstance(rule_id, str)
                or isinstance(score, bool)
                or not isinstance(score, int)
            ):
                raise ConfigError(
                    f"rule_scores needs rule id -> integer, not {rule_id!r}: {score!r}"
                )
            scores[rule_id] = score
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "rule_scores", MappingProxyType(scores))
        for name in _SET_FIELDS:
            set_(self, name, _as_name_set(getattr(self, name), name))
        rules = self.custom_rules
        if isinstance(rules, str) or callable(rules):
            rules = (rules,)
        rules = tuple(rules or ())
        for rule in rules:
            if not (isinstance(rule, str) or callable(rule)):
                raise ConfigError(f"custom rule {rule!r} is neither a callable nor a dotted path")
        set_(self, "custom_rules", rules)
        # The kernel may build a Policy per cell: equal settings share their tables.
        sets = (getattr(self, name) for name in _SET_FIELDS)
        set_(self, "_tables", _tables_for(tuple(sorted(scores.items())), *sets))

    @classmethod
    def from_config(cls, config: Any = None, /, **values: Any) -> Policy:
        """Build a policy from plain values, a mapping, or a settings object.

        A settings object (such as :class:`~sandbox_kernel.config.SandboxConfig`) is read
        for the traits ``validation`` (the mode), ``validation_threshold``,
        ``validation_rule_scores``, ``validation_banned_modules``,
        ``validation_allowed_modules``, ``validation_banned_calls``,
        ``validation_allowed_calls``, ``validation_banned_attributes``,
        ``validation_allowed_attributes``, ``validation_banned_magics``,
        ``validation_allowed_magics``, ``validation_custom_rules`` and
        ``validation_max_source_chars``, whichever it has. A mapping may use those names
        or the field names; keyword arguments (field names) win. Dotted custom rules are
        imported now, so a wrong path fails at startup rather than on every cell.

        Raises:
            ConfigError: when a value has the wrong type, the mode is unknown, or a
                custom rule cannot be imported.
        """
        merged: dict[str, Any] = {}
        if isinstance(config, Mapping):
            for key, value in config.items():
                merged[_CONFIG_KEYS.get(str(key), str(key))] = value
        elif config is not None:
            for attr, key in _CONFIG_KEYS.items():
                if hasattr(config, attr):
                    merged[key] = getattr(config, attr)
        merged.update(values)
        unknown = set(merged) - _FIELD_NAMES
        if unknown:
            raise ConfigError(f"unknown validator setting(s): {', '.join(sorted(unknown))}")
        for key in ("threshold", "max_source_chars"):
            if isinstance(merged.get(key), str) and merged[key].strip().lstrip("-").isdigit():
                merged[key] = int(merged[key])
        if isinstance(merged.get("custom_rules"), str):
            merged["custom_rules"] = [p for p in merged["custom_rules"].split(",") if p.strip()]
        policy = cls(**merged)
        for rule in policy.custom_rules:
            if isinstance(rule, str):
                _load_dotted(rule)
        return policy


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(Policy) if f.init)
_CONFIG_KEYS = {
    "validation": "mode",
    "validation_mode": "mode",
    **{f"validation_{name}": name for name in _FIELD_NAMES if name != "mode"},
}


class _Tables:
    """The rule tables with one policy's overrides applied (see :func:`_tables_for`)."""

    def __init__(
        self,
        rule_scores: tuple[tuple[str, int], ...],
        banned_mods: frozenset[str],
        allowed_mods: frozenset[str],
        banned_calls: frozenset[str],
        allowed_calls: frozenset[str],
        banned_attrs: frozenset[str],
        allowed_attrs: frozenset[str],
        banned_magics: frozenset[str],
        allowed_magics: frozenset[str],
    ) -> None:
        allowed_names = allowed_calls | allowed_attrs
        self.scores = {rid: rule.score for rid, rule in R.RULES.items()}
        self.scores.update(rule_scores)
        self.allowed_modules = allowed_mods
        self.banned_modules = banned_mods
        self.chain_names = (
            R.CHAIN_MODULE_NAMES | {m for m in banned_mods if "." not in m}
        ) - allowed_mods
        self.dyn_builtins = R.DYNAMIC_CODE_BUILTINS - allowed_names
        self.dangerous_attrs = {
            k: v for k, v in R.DANGEROUS_ATTRIBUTES.items() if k not in allowed_names
        }
        self.escape_dunders = R.ESCAPE_DUNDERS - allowed_names
        self.weak_dunders = R.WEAK_DUNDERS - allowed_names
        self.frame_attrs = R.FRAME_ATTRIBUTES - allowed_names
        self.dynamic_imports = R.DYNAMIC_IMPORT_NAMES - allowed_names
        self.banned_calls = banned_calls
        self.banned_attrs = banned_attrs
        self.allowed_magics = allowed_magics
        self.banned_magics = banned_magics
        special_names = {
            "__import__",
            "breakpoint",
            "getattr",
            "setattr",
            "delattr",
            "globals",
            "locals",
            "vars",
            "get_ipython",
            "__builtins__",
            "__loader__",
            "__spec__",
        }
        self.hot_names = (
            self.dyn_builtins
            | (special_names - allowed_names)
            | self.chain_names
            | R.PICKLE_READERS
            | R.BROWSER_SCRIPT_NAMES
            | R.CODE_OBJECT_NAMES
            | self.dynamic_imports
        )
        self.hot_attrs = (
            self.escape_dunders
            | self.weak_dunders
            | self.frame_attrs
            | self.chain_names
            | frozenset(self.dangerous_attrs)
            | self.dynamic_imports
            | R.PICKLE_READERS
            | (R.FS_MUTATION_METHODS - allowed_names)
            | R.BROWSER_SCRIPT_NAMES
            | R.CODE_OBJECT_NAMES
            | self.banned_attrs
            | (frozenset(R.SYS_DANGEROUS_ATTRIBUTES) - allowed_names)
            | {"get_ipython"}
        )
        self.sys_attrs = {
            k: v for k, v in R.SYS_DANGEROUS_ATTRIBUTES.items() if k not in allowed_names
        }
        # names a string may not spell at an attribute or namespace sink
        self.sink_names = (
            self.dyn_builtins
            | self.escape_dunders
            | self.frame_attrs
            | self.chain_names
            | frozenset(self.dangerous_attrs)
            | self.dynamic_imports
            | self.banned_attrs
            | {"breakpoint", "get_ipython"}
        )

        # words that make an unparseable cell suspicious (SK804)
        self.unparseable_words = (
            self.sink_names
            | R.PICKLE_READERS
            | {"__import__", "getattr", "setattr", "delattr", "globals"}
        ) - allowed_names
        self.unparseable_words |= self.banned_calls

    def module_reason(self, dotted: str) -> tuple[str, str] | None:
        """(matched module, why) when importing ``dotted`` is refused. Longest prefix decides."""
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            prefix = ".".join(parts[:end])
            if prefix in self.banned_modules:
                return prefix, "is banned by the administrator"
            if prefix in self.allowed_modules or prefix in R.SAFE_MODULES:
                return None
            reason = R.DANGEROUS_MODULES.get(prefix)
            if reason is not None:
                return prefix, reason
        return None

    def chain_component(self, dotted: str) -> str | None:
        """The first component of ``dotted`` (past the first) that names a dangerous module."""
        parts = dotted.split(".")
        for part in parts[1:]:
            if part in self.chain_names:
                return part
        return None


_tables_for = functools.lru_cache(maxsize=64)(_Tables)


@functools.lru_cache(maxsize=1)
def _default_policy() -> Policy:
    """The default policy (immutable, built once)."""
    return Policy()


# ----------------------------------------------------------------------------------
# Cached factories
# ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _transformer() -> TransformerManager:
    """IPython's static input transformer (imported lazily: IPython is slow to import)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()  # type: ignore[no-untyped-call]


@functools.lru_cache(maxsize=64)
def _load_dotted(path: str) -> RuleFunc:
    """Import a custom rule named ``pkg.mod:func`` (or ``pkg.mod.func``).

    Raises:
        ConfigError: when it cannot be imported or is not callable.
    """
    module_name, sep, attr = path.strip().partition(":")
    if not sep:
        module_name, _, attr = path.strip().rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"custom rule {path!r} is not a dotted path like 'pkg.mod:func'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        raise ConfigError(f"custom rule {path!r} cannot be imported: {exc}") from exc
    if not callable(obj):
        raise ConfigError(f"custom rule {path!r} is not callable")
    return cast(RuleFunc, obj)


@functools.lru_cache(maxsize=1)
def _entry_point_rules() -> tuple[tuple[str, RuleFunc | None, str], ...]:
    """Installed custom rules: (name, rule or None, load error)."""
    from importlib.metadata import entry_points

    found: list[tuple[str, RuleFunc | None, str]] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            rule = ep.load()
        except Exception as exc:
            found.append((ep.name, None, f"{type(exc).__name__}: {exc}"))
            continue
        if callable(rule):
            found.append((ep.name, cast(RuleFunc, rule), ""))
        else:
            found.append((ep.name, None, "not callable"))
    return tuple(found)


# ----------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------


def _nfkc(text: str) -> str:
    # Python itself normalises identifiers with NFKC; strings are matched the same way.
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def _shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _system_path(text: str) -> str | None:
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
        # somewhere below /; judge where it lands as if the climb reached /
        path = posixpath.normpath(path)
        if not path.startswith("../"):
            return None
        path = "/" + _LEADING_PARENT_DIRS.sub("", path)
    norm = posixpath.normpath(path)
    if norm in R.HARMLESS_SYSTEM_PATHS or norm in ("/", "//"):
        return None
    root = norm.lstrip("/").split("/", 1)[0]
    return norm if root in R.SYSTEM_PATH_ROOTS else None


def _module_why(name: str) -> str:
    """Why a module name is dangerous, for messages."""
    base = "ctypes" if name == "ctypeslib" else name
    return R.DANGEROUS_MODULES.get(base) or R.DANGEROUS_MODULES.get(
        base.lstrip("_"), "is a dangerous module"
    )


def _is_namespace(expr: ast.expr) -> bool:
    """Whether subscripting ``expr`` looks up a global, builtin or module by name."""
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
        return expr.func.id in ("globals", "locals", "vars")
    if isinstance(expr, ast.Attribute):
        return expr.attr in (
            "__dict__",
            "modules",
            "f_globals",
            "f_locals",
            "f_builtins",
            "__globals__",
            "__builtins__",
        )
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


_FOLD_MAX = 4096
_WIDE_FORMAT = re.compile(r"%[-#0 +]*[1-9]")


def _fold(expr: ast.AST, depth: int = 0) -> str | None:
    """Evaluate a string built from literals (``'ev' + 'al'``, ``''.join([...])``).

    Returns None when the value depends on anything but literals. Bounded in depth
    and in length (4096 characters at every step), so nothing large is ever built.
    """
    if depth > 16:
        return None
    value = _fold_inner(expr, depth)
    return value if value is None or len(value) <= _FOLD_MAX else None


def _fold_inner(expr: ast.AST, depth: int) -> str | None:
    if isinstance(expr, ast.Constant):
        value = expr.value
        if isinstance(value, bytes):
            return value.decode("latin-1") if len(value) <= 4096 else None
        return value if isinstance(value, str) and len(value) <= 4096 else None
    if isinstance(expr, ast.JoinedStr):
        parts = []
        for piece in expr.values:
            part = _fold(piece, depth + 1)
            if part is None:
                return None
            parts.append(part)
        return "".join(parts)
    if isinstance(expr, ast.FormattedValue):
        return _fold(expr.value, depth + 1) if expr.format_spec is None else None
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        left = _fold(expr.left, depth + 1)
        right = _fold(expr.right, depth + 1) if left is not None else None
        return left + right if left is not None and right is not None else None
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Mod):
        left = _fold(expr.left, depth + 1)
        if left is None or _WIDE_FORMAT.search(left):
            return None
        elts = expr.right.elts if isinstance(expr.right, ast.Tuple) else [expr.right]
        args = [_fold(e, depth + 1) for e in elts]
        if any(a is None for a in args):
            return None
        try:
            return left % tuple(args)
        except (TypeError, ValueError, OverflowError, MemoryError):
            return None
    if isinstance(expr, ast.Subscript) and isinstance(expr.slice, ast.Slice):
        base = _fold(expr.value, depth + 1)
        bounds = [_fold_int(b) for b in (expr.slice.lower, expr.slice.upper, expr.slice.step)]
        if base is None or bounds[2] == 0:
            return None
        return base[bounds[0] : bounds[1] : bounds[2]]
    if isinstance(expr, ast.Call):
        return _fold_call(expr, depth)
    return None


def _fold_int(expr: ast.expr | None) -> int | None:
    if isinstance(expr, ast.Constant) and type(expr.value) is int:
        return expr.value
    if (
        isinstance(expr, ast.UnaryOp)
        and isinstance(expr.op, ast.USub)
        and isinstance(expr.operand, ast.Constant)
        and type(expr.operand.value) is int
    ):
        return -expr.operand.value
    return None


def _fold_call(expr: ast.Call, depth: int) -> str | None:
    func = expr.func
    if isinstance(func, ast.Name) and len(expr.args) == 1 and not expr.keywords:
        if func.id == "chr":
            code = _fold_int(expr.args[0])
            return chr(code) if code is not None and 0 <= code < 0x110000 else None
        if func.id == "str":
            return _fold(expr.args[0], depth + 1)
    if not isinstance(func, ast.Attribute) or expr.keywords:
        return None
    if func.attr == "join" and len(expr.args) == 1:
        sep = _fold(func.value, depth + 1)
        seq = expr.args[0]
        if sep is None or not isinstance(seq, (ast.List, ast.Tuple)) or len(seq.elts) > 256:
            return None
        items = [_fold(e, depth + 1) for e in seq.elts]
        return None if any(i is None for i in items) else sep.join(cast(list[str], items))
    args = [_fold(a, depth + 1) for a in expr.args]
    if any(a is None for a in args):
        return None
    if func.attr == "decode" and isinstance(func.value, ast.Name) and func.value.id == "codecs":
        if len(args) == 2 and _nfkc(cast(str, args[1])).lower().replace("-", "_") in (
            "rot13",
            "rot_13",
        ):
            import codecs

            return codecs.decode(cast(str, args[0]), "rot13")
        return None
    base = _fold(func.value, depth + 1)
    if base is None:
        return None
    if func.attr in ("lower", "upper", "strip", "lstrip", "rstrip", "title") and not args:
        return cast(str, getattr(base, func.attr)())
    if func.attr == "replace" and len(args) == 2:
        return base.replace(cast(str, args[0]), cast(str, args[1]))
    if func.attr == "decode" and not args:
        return base
    return None


# ----------------------------------------------------------------------------------
# The judge
# ----------------------------------------------------------------------------------


class _CannotJudge(Exception):
    """The cell cannot be judged within bounds; becomes an SK803 finding."""


class _Analysis:
    """State of judging one cell: the violations found and the source they refer to."""

    def __init__(self, policy: Policy, source: str) -> None:
        self.policy = policy
        self.tables = policy._tables
        self.source = source
        self.lines = source.splitlines()
        self.violations: list[Violation] = []
        self._seen: set[tuple[str, int, int, str]] = set()
        self.tree: ast.AST | None = None
        self.transformed = source
        self.line_offset = 0
        self.syntax_error: SyntaxErrorInfo | None = None

    # -- recording ---------------------------------------------------------------------
    def excerpt(self, line: int) -> str:
        if 1 <= line <= len(self.lines):
            return _shorten(self.lines[line - 1].strip(), EXCERPT_CHARS)
        return ""

    def emit(
        self, rule_id: str, line: int, column: int, message: str, score: int | None = None
    ) -> None:
        rule = R.RULES.get(rule_id)
        if rule_id in self.policy.rule_scores:
            score = self.tables.scores[rule_id]
        elif score is None:
            score = self.tables.scores.get(rule_id, 0)
        if score <= 0:
            return  # the administrator turned the rule off
        key = (rule_id, line, column, message)
        if key in self._seen:
            return
        self._seen.add(key)
        self.violations.append(
            Violation(
                rule_id=rule_id,
                severity=rule.severity if rule else "high",
                score=score,
                line=line,
                column=column,
                message=message,
                excerpt=self.excerpt(line),
                name=rule.name if rule else "",
            )
        )

    # -- cells -------------------------------------------------------------------------
    def judge_cell(self, text: str, depth: int, base_line: int) -> None:
        """Judge ``text`` as IPython would run it; its line 1 is ``base_line + 1``.

        Raises:
            _CannotJudge: when the cell cannot be transformed or parsed within bounds.
        """
        if depth > MAX_MAGIC_DEPTH:
            raise _CannotJudge("magics nested too deeply to judge")
        transformed, tree, error, lead = _prepare(text)
        offset = base_line + lead
        if depth == 0:
            self.tree, self.transformed, self.line_offset = tree, transformed, offset
            if error is not None:
                self.syntax_error = SyntaxErrorInfo(
                    error.msg, (error.lineno or 1) + offset, error.offset or 0
                )
        self._check_automagic(transformed, depth, offset)
        if tree is not None:
            _Judge(self, offset, depth).run(tree)
        elif error is not None:
            self._scan_unparseable(text, base_line)

    def _scan_unparseable(self, text: str, base_line: int) -> None:
        # The host's Python cannot parse the cell, so it is not judged node by node.
        # Usually the sandbox's Python refuses it too and nothing runs; but a newer
        # Python there accepts syntax this one does not (PEP 701 f-strings on 3.12), so
        # an unparseable cell that names anything dangerous is refused.
        hits: list[tuple[int, str]] = []
        words = self.tables.unparseable_words
        for match in _WORD.finditer(text):
            if match.group() in words:
                hits.append((match.start(), match.group()))
                if len(hits) >= 5:
                    break
        for match in _ESCAPE_START.finditer(text):
            escape, name = match.group(1), match.group(2)
            if escape == "!" or not self._magic_allowed(escape, name):
                hits.append((match.start(1), escape + name))
                break
        for match in _QUOTED_PATH.finditer(text):
            if _system_path(match.group(2)) is not None:
                hits.append((match.start(2), match.group(2)))
                break
        if not hits:
            return
        hits.sort()
        line, col = _line_of(text, hits[0][0])
        names = ", ".join(dict.fromkeys(repr(name) for _, name in hits))
        self.emit(
            "SK804",
            base_line + line,
            col,
            f"the cell does not parse, but names {names} — refused, since a newer Python "
            "in the sandbox might run it",
        )

    def _magic_allowed(self, escape: str, name: str) -> bool:
        t = self.tables
        if name in t.banned_magics:
            return False
        allowed = R.ALLOWED_LINE_MAGICS if escape == "%" else R.ALLOWED_CELL_MAGICS
        return name in t.allowed_magics or (name in allowed and name != "load_ext")

    def _check_automagic(self, transformed: str, depth: int, offset: int) -> None:
        # IPython prefilters single-line cells: with automagic on, `cat /etc/passwd`
        # runs the `cat` alias (plain Python reads it as a division). The inner kernel
        # runs with automagic off and no aliases; the first line of any cell that looks
        # like a magic call is still judged as that magic, to be safe. A first line
        # that reads as Python (`run(x)`, `ls = []`, `history += [1]`) is left alone.
        first = transformed.partition("\n")[0]
        match = _AUTOMAGIC_LINE.match(first)
        if match is None:
            return
        ifun, rest = match.group(1), match.group(2).strip()
        if ifun not in R.KNOWN_LINE_MAGICS:
            return
        if rest[:1] in ("=", ",", "(", "[", ":") or _AUGMENTED_ASSIGN.match(rest):
            return
        _MagicJudge(self, offset + 1, 0, depth, automagic=True).judge("line", ifun, rest, "")

    # -- custom rules ------------------------------------------------------------------
    def run_custom_rules(self) -> None:
        tree = self.tree
        if tree is None:
            return
        rules: list[tuple[str, RuleFunc | None, str]] = []
        for rule in self.policy.custom_rules:
            if isinstance(rule, str):
                try:
                    rules.append((rule, _load_dotted(rule), ""))
                except ConfigError as exc:
                    rules.append((rule, None, str(exc)))
            else:
                rules.append((getattr(rule, "__name__", repr(rule)), rule, ""))
        if self.policy.entry_point_rules:
            rules.extend(_entry_point_rules())
        for name, func, load_error in rules:
            if func is None:
                self.emit("SK900", 0, 0, f"custom rule {name} could not be loaded: {load_error}")
                continue
            try:
                for count, found in enumerate(func(tree, self.transformed)):
                    if count >= MAX_CUSTOM_VIOLATIONS:
                        break
                    if not isinstance(found, Violation):
                        raise TypeError(f"returned {type(found).__name__}, not Violation")
                    self._add_custom(found)
            except Exception as exc:
                self.emit(
                    "SK900",
                    0,
                    0,
                    f"custom rule {name} failed: {type(exc).__name__}: {_shorten(str(exc))}",
                )

    def _add_custom(self, found: Violation) -> None:
        line = found.line + self.line_offset if found.line > 0 else found.line
        score = self.policy.rule_scores.get(found.rule_id, found.score)
        if score <= 0:
            return
        key = (found.rule_id, line, found.column, found.message)
        if key in self._seen:
            return
        self._seen.add(key)
        self.violations.append(
            Violation(
                rule_id=found.rule_id,
                severity=found.severity,
                score=score,
                line=line,
                column=found.column,
                message=found.message,
                excerpt=found.excerpt or self.excerpt(line),
                name=found.name,
            )
        )


def _prepare(text: str) -> tuple[str, ast.Module | None, SyntaxError | None, int]:
    """Transform (only if needed) and parse a cell.

    Returns:
        (the code that runs, its tree or None, the SyntaxError if any, the number of
        leading blank lines IPython dropped).

    Raises:
        _CannotJudge: when transforming or parsing exceeds the interpreter's limits.
    """
    try:
        if _IPY_TRIGGER.search(text) is None:
            try:
                return text, ast.parse(text), None, 0
            except SyntaxError:
                pass  # may be IPython syntax after all (an indented cell, ...)
        escapes = len(_ESCAPE_LINE.findall(text)) + 1
        if escapes * len(text) > TRANSFORM_BUDGET:
            raise _CannotJudge("too much IPython syntax to transform in bounded time")
        try:
            transformed = _transformer().transform_cell(text)
        except (RecursionError, MemoryError):
            raise
        except Exception as exc:
            # IPython shows an error and runs nothing, but another IPython version
            # might read the cell differently: refuse what we cannot read.
            raise _CannotJudge(
                f"IPython could not transform the cell ({type(exc).__name__})"
            ) from exc
        lead = 0
        if transformed != text:
            for line in text.splitlines():
                if line.strip():
                    break
                lead += 1
        try:
            return transformed, ast.parse(transformed), None, lead
        except SyntaxError as exc:
            return transformed, None, exc, lead
    except (RecursionError, MemoryError) as exc:
        raise _CannotJudge(f"too deeply nested for Python's parser ({type(exc).__name__})") from exc
    except ValueError as exc:  # e.g. "source code string cannot contain null bytes"
        raise _CannotJudge(f"Python's parser refused the cell: {_shorten(str(exc))}") from exc


_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}
_SKIP_FIELDS = frozenset({"ctx", "op", "type_comment", "id", "attr", "arg", "level", "kind"})


def _child_fields(cls: type) -> tuple[str, ...]:
    fields = _CHILD_FIELDS.get(cls)
    if fields is None:
        fields = tuple(f for f in getattr(cls, "_fields", ()) if f not in _SKIP_FIELDS)
        _CHILD_FIELDS[cls] = fields
    return fields


class _Judge(ast.NodeVisitor):
    """The single pass over one cell's tree.

    ``visit_*`` methods only inspect their node; :meth:`run` walks the tree with an
    explicit stack (no recursion, so a 100 000-deep expression cannot overflow it) in
    source order, so that imports are seen before the names they bind.
    """

    def __init__(self, analysis: _Analysis, line_offset: int, depth: int) -> None:
        self.analysis = analysis
        self.t = analysis.tables
        self.line_offset = line_offset
        self.depth = depth
        self.aliases: dict[str, str] = {}  # local name -> dotted origin, from imports
        self.handled: set[int] = set()  # ids of nodes already judged as part of a call
        self.decorators: set[int] = set()
        self.built_names_done: set[int] = set()  # built strings a sink judged already
        self._dispatch: dict[type, Callable[[Any], None]] = {
            ast.Import: self.visit_Import,
            ast.ImportFrom: self.visit_ImportFrom,
            ast.Call: self.visit_Call,
            ast.Name: self.visit_Name,
            ast.Attribute: self.visit_Attribute,
            ast.Subscript: self.visit_Subscript,
            ast.Constant: self.visit_Constant,
            ast.BinOp: self.visit_BinOp,
            ast.JoinedStr: self.visit_JoinedStr,
            ast.FunctionDef: self.visit_FunctionDef,
            ast.AsyncFunctionDef: self.visit_FunctionDef,
            ast.ClassDef: self.visit_FunctionDef,
        }

    def run(self, tree: ast.AST) -> None:
        dispatch = self._dispatch
        stack: list[ast.AST] = [tree]
        pop, push = stack.pop, stack.extend
        ast_type = ast.AST
        while stack:
            node = pop()
            handler = dispatch.get(node.__class__)
            if handler is not None:
                handler(node)
            children: list[ast.AST] = []
            for name in _child_fields(node.__class__):
                value = getattr(node, name, None)
                if isinstance(value, list):
                    children.extend(v for v in value if isinstance(v, ast_type))
                elif isinstance(value, ast_type):
                    children.append(value)
            if children:
                children.reverse()
                push(children)

    def visit(self, node: ast.AST) -> None:
        self.run(node)

    # -- recording -----------------------------------------------------------------------
    def emit(self, rule_id: str, node: ast.AST, message: str, score: int | None = None) -> None:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0)
        self.analysis.emit(rule_id, line + self.line_offset, col, message, score)

    def _shadowed(self, name: str) -> bool:
        """Whether an import in this cell makes ``name`` harmless or already judged.

        Only ``import os`` (judged at the import) and known safe namesakes such as
        ``from re import compile`` count: any other import may sit in a branch that
        never runs (``if False: from x import eval``) and must not hide the builtin.
        """
        origin = self.aliases.get(name)
        return origin is not None and (origin == name or origin in _SAFE_NAMESAKES)

    def resolve(self, expr: ast.expr, aliases: bool = True) -> str | None:
        """Dotted name of a Name/Attribute chain, with import aliases resolved."""
        parts: list[str] = []
        while isinstance(expr, ast.Attribute) and len(parts) < 32:
            parts.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return None
        parts.append(self.aliases.get(expr.id, expr.id) if aliases else expr.id)
        return ".".join(reversed(parts))

    # -- imports -------------------------------------------------------------------------
    def _judge_module(self, node: ast.AST, dotted: str, shown: str) -> None:
        found = self.t.module_reason(dotted)
        if found is not None:
            self.emit("SK101", node, f"import of '{shown}' — '{found[0]}' {found[1]}")
            return
        part = self.t.chain_component(dotted)
        if part is not None:
            self.emit(
                "SK102",
                node,
                f"import of '{shown}' reaches module '{part}' — '{part}' {_module_why(part)}",
            )

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            name = alias.name
            top = name.split(".")[0]
            if not alias.asname and name != top:
                # `import a.b` binds `a`: `a` itself must be acceptable too.
                self._judge_module(node, top, name)
            self._judge_module(node, name, name)
            self.aliases[alias.asname or top] = name if alias.asname else top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            return  # relative imports have no package to come from in a notebook
        module = node.module or ""
        for alias in node.names:
            if alias.name == "*":
                self._judge_module(node, module, f"{module}.*")
                continue
            full = f"{module}.{alias.name}"
            self._judge_module(node, full, full)
            self.aliases[alias.asname or alias.name] = full
            self._judge_imported_name(node, alias.name, full)

    def _judge_imported_name(self, node: ast.AST, name: str, full: str) -> None:
        if name in R.PICKLE_READERS:
            self.emit("SK501", node, f"import of {full} — it unpickles whatever it reads")
        elif name in R.BROWSER_SCRIPT_NAMES:
            self.emit("SK605", node, f"import of {full} — it sends script to the browser")
        elif name in self.t.dynamic_imports:
            self.emit("SK104", node, f"import of {full} — it imports modules by name")
        elif full == f"sys.{name}" and name in self.t.sys_attrs:
            self.emit("SK103", node, f"import of {full} — it {self.t.sys_attrs[name]}")
        elif name in self.t.dangerous_attrs and full != "platform.system":
            self.emit("SK103", node, f"import of {full} — it {self.t.dangerous_attrs[name]}")

    # -- definitions ---------------------------------------------------------------------
    def visit_FunctionDef(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    ) -> None:
        for deco in node.decorator_list:
            self.decorators.add(id(deco.func if isinstance(deco, ast.Call) else deco))

    # -- calls ---------------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            self._call_by_name(node, func)
        elif isinstance(func, ast.Attribute):
            self._call_by_attribute(node, func)
        elif isinstance(func, ast.Call):
            self._call_of_call(node, func)
        if node.keywords:
            for kw in node.keywords:
                if kw.arg == "allow_pickle" and not (
                    isinstance(kw.value, ast.Constant) and not kw.value.value
                ):
                    self.emit(
                        "SK501",
                        node,
                        "allow_pickle=True — loading the file unpickles "
                        "objects, which runs arbitrary code",
                    )
        if id(func) in self.handled:  # a sink call judged its name argument already
            for arg in node.args:
                if isinstance(arg, (ast.BinOp, ast.JoinedStr)):
                    self.built_names_done.add(id(arg))
        banned = self.t.banned_calls
        last = (
            func.id
            if isinstance(func, ast.Name)
            else (func.attr if isinstance(func, ast.Attribute) else None)
        )
        if last is None:
            return
        if banned or last in _RESOLVE_CALLS:
            dotted = self.resolve(func) or last
            if banned and (
                last in banned or dotted in banned or self.resolve(func, aliases=False) in banned
            ):
                self.emit("SK901", node, f"call of {dotted} — banned by the administrator")
            tail = ".".join(dotted.split(".")[-2:])  # sklearn.externals.joblib.load too
            if tail in R.PICKLE_LOAD_CALLS and not self._safe_load(node, tail):
                self.emit(
                    "SK501",
                    node,
                    f"{dotted}() — it unpickles or constructs arbitrary objects from the file",
                )
            elif dotted in R.STRING_EXEC_CALLS and self._runs_string(node, dotted):
                self.emit("SK201", node, f"{dotted}() of a string — it runs that string as code")

    def _call_by_name(self, node: ast.Call, func: ast.Name) -> None:
        name = func.id
        if name not in self.t.hot_names and name not in _EXTRA_CALL_NAMES:
            return
        if self._shadowed(name) and name not in _EXTRA_CALL_NAMES:
            return
        first = node.args[0] if node.args else None
        if name in self.t.dyn_builtins:
            self.handled.add(id(func))
            built = _fold(first) if first is not None else None
            shown = f" of {_shorten(repr(built), 40)}" if built is not None else ""
            self.emit("SK201", node, f"{name}(){shown} — runs code from a string")
        elif name == "__import__":
            self.handled.add(id(func))
            self._dynamic_import(node, first, "__import__()")
        elif name == "breakpoint":
            self.handled.add(id(func))
            self.emit("SK203", node, "breakpoint() — a debugger runs any code typed into it")
        elif name in ("getattr", "setattr", "delattr", "hasattr"):
            self.handled.add(id(func))
            if len(node.args) >= 2:
                self._attribute_sink(node, node.args[1], name, computed_ok=name == "hasattr")
                if self.resolve(node.args[0]) == "sys":
                    built = _fold(node.args[1])
                    if built is None or _nfkc(built) in self.t.sys_attrs:
                        self.emit("SK103", node, f"{name}() on sys — sys attributes by name")
        elif name == "globals":
            self.handled.add(id(func))
            self.emit(
                "SK402",
                node,
                "globals() — the namespace dict reaches every global and __builtins__ by name",
            )
        elif name in ("locals", "vars"):
            self.handled.add(id(func))
            if node.args and self.resolve(node.args[0]) == "sys":
                self.emit("SK103", node, f"{name}(sys) — the sys namespace, sys.modules included")
            if not node.args:
                self.emit(
                    "SK403", node, f"{name}() — a namespace dict allows lookups by computed name"
                )
        elif name == "type" and len(node.args) == 3:
            self.emit("SK205", node, "type() with three arguments — builds a class at run time")
        elif name in ("attrgetter", "methodcaller"):
            self.handled.add(id(func))
            for arg in node.args[:1] if name == "methodcaller" else node.args:
                self._attribute_sink(node, arg, name, computed_ok=False)
        elif name == "import_module":
            self.handled.add(id(func))
            self._dynamic_import(node, first, "import_module()")

    def _call_by_attribute(self, node: ast.Call, func: ast.Attribute) -> None:
        attr = func.attr
        owner = func.value
        if (
            attr in _IPYTHON_CALLS
            and isinstance(owner, ast.Call)
            and isinstance(owner.func, ast.Name)
            and owner.func.id == "get_ipython"
            and not owner.args
            and not owner.keywords
        ):
            self.handled.add(id(owner.func))
            self.handled.add(id(func))
            self._magic_call(node, attr)
            return
        if attr in R.ATTR_NAME_SINK_FACTORIES:
            for arg in node.args[:1] if attr == "methodcaller" else node.args:
                self._attribute_sink(node, arg, attr, computed_ok=False)
        elif attr in ("query", "eval") and node.args:
            self._pandas_expression(node, attr)
        elif attr in ("decode", "encode"):
            for arg in node.args[1:2]:
                codec = _fold(arg)
                if codec is not None and _nfkc(codec).lower() in R.OBFUSCATION_CODECS:
                    self.emit("SK406", node, f"{attr}(..., {codec!r}) — decodes a hidden string")
        elif attr in R.OBFUSCATION_DECODERS:
            self.emit("SK406", node, f"{attr}() — decodes a hidden string")
        elif attr == "import_module":
            self.handled.add(id(func))
            self._dynamic_import(node, node.args[0] if node.args else None, "import_module()")
        elif (
            attr == "system"
            and isinstance(owner, ast.Name)
            and owner.id == "platform"
            and self.aliases.get("platform", "platform") == "platform"
            and not node.args
            and not node.keywords
        ):
            self.handled.add(id(func))  # platform.system() names the OS; os.system runs

    def _call_of_call(self, node: ast.Call, func: ast.Call) -> None:
        inner = func.func
        if isinstance(inner, ast.Name) and inner.id == "type" and len(func.args) == 1:
            arg = func.args[0]
            if isinstance(arg, ast.Name) and arg.id in ("self", "cls"):
                return
            if isinstance(arg, ast.Lambda) or (
                isinstance(arg, ast.Attribute) and arg.attr in ("__code__", "f_code", "gi_code")
            ):
                self.emit(
                    "SK204", node, "type(...)(...) — builds a function or code object from parts"
                )
            else:
                self.emit(
                    "SK204",
                    node,
                    "type(x)(...) — constructs an object of a type obtained at run time",
                    score=20,
                )

    def _safe_load(self, node: ast.Call, dotted: str) -> bool:
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
            return name in R.SAFE_YAML_LOADERS
        return False

    @staticmethod
    def _runs_string(node: ast.Call, dotted: str) -> bool:
        if dotted.startswith(("cProfile.", "profile.")):
            return True
        values = list(node.args[:2]) + [
            kw.value for kw in node.keywords if kw.arg in ("stmt", "setup")
        ]
        return any(
            not isinstance(v, (ast.Name, ast.Attribute, ast.Lambda, ast.Call)) for v in values
        )

    def _dynamic_import(self, node: ast.Call, arg: ast.expr | None, what: str) -> None:
        name = _fold(arg) if arg is not None else None
        if name is not None:
            found = self.t.module_reason(_nfkc(name))
            extra = f"; '{found[0]}' {found[1]}" if found else ""
            self.emit("SK104", node, f"{what} of {name!r} — imports a module by name{extra}")
        else:
            self.emit("SK104", node, f"{what} of a computed name — imports any module")

    def _attribute_sink(self, node: ast.Call, arg: ast.expr, func: str, computed_ok: bool) -> None:
        name = _fold(arg)
        if name is None:
            if not computed_ok:
                self.emit(
                    "SK401",
                    node,
                    f"{func}() with a computed attribute name — it can "
                    "reach any attribute, including dunders",
                )
            return
        built = not isinstance(arg, ast.Constant)
        for part in _nfkc(name).split("."):
            if part in self.t.banned_attrs:
                self.emit("SK902", node, f"{func}() of {part!r} — banned by the administrator")
            elif part in self.t.sink_names or part in self.t.weak_dunders:
                how = "builds" if built else "names"
                rule = "SK303" if part in self.t.weak_dunders else "SK404"
                self.emit(
                    rule,
                    node,
                    f"{func}() {how} the name {part!r} in a string — the same "
                    "as writing it out, hidden from readers",
                )
            elif built:
                self.emit("SK401", node, f"{func}() with a name built at run time ({part!r})")

    def _pandas_expression(self, node: ast.Call, attr: str) -> None:
        for kw in node.keywords:
            if kw.arg == "engine" and not (
                isinstance(kw.value, ast.Constant) and kw.value.value in ("numexpr", None)
            ):
                self.emit(
                    "SK502",
                    node,
                    f".{attr}(..., engine='python') — pandas evaluates the expression as Python",
                )
        expr = _fold(node.args[0])
        if expr is not None and "__" in expr:
            self.emit(
                "SK502",
                node,
                f".{attr}() of an expression with dunders — it can walk into interpreter internals",
            )

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if id(node) in self.handled or not isinstance(node.op, (ast.Add, ast.Mod)):
            return
        left = node.left
        while isinstance(left, ast.BinOp):  # judge the whole chain once, at its top
            self.handled.add(id(left))
            left = left.left
        if isinstance(left, (ast.Constant, ast.JoinedStr, ast.Call)) or isinstance(
            node.right, (ast.Constant, ast.JoinedStr)
        ):
            self._check_built_string(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        self._check_built_string(node)

    def _check_built_string(self, arg: ast.expr) -> None:
        """A string built from literals: judge the result like a literal."""
        text = _fold(arg)
        if text is None or not text:
            return
        path = _system_path(text)
        if path is not None:
            self.emit(
                "SK503",
                arg,
                f"path {_shorten(text, 40)!r} built from pieces — {path} is a system location",
            )
        norm = _nfkc(text)
        if id(arg) not in self.built_names_done and (
            norm in self.t.escape_dunders or norm in self.t.dyn_builtins
        ):
            self.emit("SK404", arg, f"builds the name {norm!r} from pieces")

    # -- IPython -------------------------------------------------------------------------
    def _magic_call(self, node: ast.Call, method: str) -> None:
        args: list[str] = []
        for arg in node.args:
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                self.emit(
                    "SK606",
                    node,
                    f"get_ipython().{method}() with computed arguments — "
                    "runs whatever the arguments say",
                )
                return
            self.handled.add(id(arg))  # judged here (bodies as cells), not as constants
            args.append(arg.value)
        if node.keywords:
            self.emit("SK606", node, f"get_ipython().{method}() with keyword arguments")
            return
        line = getattr(node, "lineno", 1) + self.line_offset
        col = getattr(node, "col_offset", 0)
        judge = _MagicJudge(self.analysis, line, col, self.depth)
        if method in ("system", "getoutput"):
            judge.judge("system", "", args[0] if args else "", "")
        elif method == "run_line_magic" and len(args) == 2:
            judge.judge("line", args[0], args[1], "")
        elif method == "run_cell_magic" and len(args) == 3:
            judge.judge("cell", args[0], args[1], args[2])
        elif method == "show_usage" and not args:
            return
        else:
            self.emit("SK606", node, f"get_ipython().{method}() called in an unusual way")

    # -- names and attributes ------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        name = node.id
        if name not in self.t.hot_names or id(node) in self.handled or self._shadowed(name):
            return
        deco = id(node) in self.decorators
        if name in self.t.dyn_builtins:
            how = "used as a decorator" if deco else "referenced without a call"
            self.emit("SK202", node, f"{name} {how} — any alias of {name} runs code from strings")
        elif name == "__import__" or name in self.t.dynamic_imports:
            self.emit("SK104", node, f"{name} referenced — it imports modules by name")
        elif name == "breakpoint":
            self.emit("SK203", node, "breakpoint referenced — it starts a debugger")
        elif name in ("getattr", "setattr", "delattr"):
            self.emit(
                "SK401",
                node,
                f"{name} passed as a value — it can look up any computed attribute name",
            )
        elif name == "globals":
            self.emit(
                "SK402",
                node,
                "globals referenced — the namespace dict reaches every global by name",
            )
        elif name in ("locals", "vars"):
            self.emit("SK403", node, f"{name} referenced — a namespace dict by name")
        elif name == "get_ipython":
            self.emit(
                "SK606",
                node,
                "get_ipython() used directly — the shell object runs shell "
                "commands, magics and reaches the kernel",
            )
        elif name in ("__builtins__", "__loader__", "__spec__"):
            self.emit("SK301", node, f"{name} — reaches the builtins and the import machinery")
        elif name in self.t.chain_names:
            self.emit(
                "SK102",
                node,
                f"name '{name}' refers to a dangerous module — '{name}' {_module_why(name)}",
            )
        elif name in R.PICKLE_READERS:
            self.emit("SK501", node, f"{name} — it unpickles whatever it reads")
        elif name in R.BROWSER_SCRIPT_NAMES:
            self.emit("SK605", node, f"{name} — it sends script to the browser")
        elif name in R.CODE_OBJECT_NAMES:
            self.emit("SK204", node, f"{name} — builds functions or code objects from parts")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        if attr not in self.t.hot_attrs or id(node) in self.handled:
            return
        t = self.t
        if attr in t.banned_attrs:
            self.emit("SK902", node, f"attribute {attr} — banned by the administrator")
        if attr in t.sys_attrs and self.resolve(node.value) == "sys":
            self.emit("SK103", node, f"sys.{attr} — it {t.sys_attrs[attr]}")
        elif attr in t.escape_dunders:
            if attr == "__import__":
                self.emit("SK104", node, "__import__ attribute — imports modules by name")
            else:
                self.emit(
                    "SK301",
                    node,
                    f"attribute {attr} — walks interpreter internals out "
                    "of the sandboxed namespace",
                )
        elif attr in t.weak_dunders:
            self.emit(
                "SK303", node, f"attribute {attr} — namespace internals, a common step in escapes"
            )
        elif attr in t.frame_attrs:
            self.emit(
                "SK302",
                node,
                f"attribute {attr} — frame and code internals reach other "
                "code's globals and builtins",
            )
        elif attr in t.chain_names:
            chain = self.resolve(node) or f"….{attr}"
            self.emit(
                "SK102",
                node,
                f"{_shorten(chain, 50)} reaches module '{attr}' — '{attr}' {_module_why(attr)}",
            )
        elif attr in t.dangerous_attrs:
            dotted = self.resolve(node) or attr
            self.emit("SK103", node, f"{_shorten(dotted, 50)} — {attr} {t.dangerous_attrs[attr]}")
        elif attr in t.dynamic_imports:
            self.emit("SK104", node, f"{attr} — imports modules by name")
        elif attr in R.PICKLE_READERS:
            self.emit("SK501", node, f"{attr} — it unpickles or constructs arbitrary objects")
        elif attr in R.FS_MUTATION_METHODS:
            self.emit("SK504", node, f".{attr}() — deletes, links or re-permissions files")
        elif attr in R.BROWSER_SCRIPT_NAMES:
            self.emit("SK605", node, f"{attr} — it sends script to the browser")
        elif attr in R.CODE_OBJECT_NAMES:
            self.emit("SK204", node, f"{attr} — builds functions or code objects from parts")
        elif attr == "get_ipython":
            self.emit("SK606", node, "get_ipython reached through a module — the shell object")

    def visit_Subscript(self, node: ast.Subscript) -> None:
        key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            name = _nfkc(key.value)
            if name in self.t.escape_dunders or name in self.t.frame_attrs:
                self.emit("SK404", node, f"[{name!r}] — looks up {name} by a string key")
            elif _is_namespace(node.value) and (
                name in self.t.sink_names or name in R.DANGEROUS_MODULES
            ):
                self.emit("SK404", node, f"[{name!r}] of a namespace — looks up {name} by name")
        elif isinstance(key, ast.Slice):
            if (
                isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
                and _fold_int(key.step) == -1
            ):
                self.emit("SK406", node, "reversed string literal — hides a name from readers")
        elif _is_namespace(node.value):
            built = _fold(key)
            if built is not None:
                built = _nfkc(built)
                if built in self.t.sink_names or built in R.DANGEROUS_MODULES:
                    self.emit("SK404", node, f"namespace lookup builds the name {built!r}")
                    return
            self.emit(
                "SK401",
                node,
                "namespace dict subscripted with a computed key — reaches "
                "any global or builtin by name",
            )

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bytes):
            if value[:1] != b"/" or len(value) > 4096:
                return
            value = value.decode("latin-1")
        elif not isinstance(value, str) or not value or id(node) in self.handled:
            return
        text = _nfkc(value)
        if "__" in text:
            found = _DUNDER_IN_TEXT.search(text)
            if found is not None and found.group() in self.t.escape_dunders:
                self.emit(
                    "SK404",
                    node,
                    f"string naming {found.group()} — code in strings runs through "
                    "eval-like APIs (sympify, pydoc.locate, pandas engines)",
                )
        if "{" in text:
            self._format_walk(node, text)
        if text[0] in "/fF" or ".." in text:
            path = _system_path(text)
            if path is not None:
                self.emit(
                    "SK503",
                    node,
                    f"path {_shorten(text, 40)!r} — {path} is a system "
                    "location; read data from relative paths or /data",
                )
        if ("<" in text or "script" in text or "SCRIPT" in text) and (
            _SCRIPT_MARKUP.search(text) or "application/javascript" in text.lower()
        ):
            self.emit(
                "SK605",
                node,
                "string with script for the browser — output that runs "
                "JavaScript can reach the notebook server",
            )

    def _format_walk(self, node: ast.AST, text: str) -> None:
        for match in _FORMAT_FIELD.finditer(text):
            field_text = match.group(1)
            if "." not in field_text and "[" not in field_text:
                continue
            for part in _FIELD_PART.split(field_text.split("!")[0].split(":")[0])[1:]:
                if part in self.t.sink_names:
                    self.emit(
                        "SK405",
                        node,
                        f"format string walks to {part} — str.format "
                        "follows attributes of its arguments",
                    )
                    return


# Imports after which a dangerous builtin's name is a harmless namesake.
_SAFE_NAMESAKES = frozenset({"re.compile", "regex.compile"})
# Called names judged although not "hot" as bare names, and even when imported.
_EXTRA_CALL_NAMES = frozenset({"type", "hasattr", "attrgetter", "methodcaller", "import_module"})
_IPYTHON_CALLS = frozenset(
    {"run_line_magic", "run_cell_magic", "system", "getoutput", "show_usage"}
)
# Call names whose dotted origin matters (pickle loaders, string runners).
_RESOLVE_CALLS = frozenset({"load", "timeit", "repeat", "Timer", "run", "runctx"})


class _MagicJudge:
    """Judges one magic (or shell escape) by name against the allowlist."""

    def __init__(
        self, analysis: _Analysis, line: int, col: int, depth: int, automagic: bool = False
    ) -> None:
        self.analysis = analysis
        self.t = analysis.tables
        self.line = line
        self.col = col
        self.depth = depth
        self.automagic = automagic

    def emit(self, rule_id: str, message: str) -> None:
        if self.automagic:
            # the line only runs as a magic under automagic: say so, one rule
            message = f"{message} (this line is an automagic call)"
            rule_id = "SK604"
        self.analysis.emit(rule_id, self.line, self.col, message)

    def judge(self, kind: str, name: str, args: str, body: str) -> None:
        """Judge ``%name args`` (kind ``line``), ``%%name args\\nbody`` (``cell``) or a
        shell command (``system``)."""
        if kind == "system":
            self.emit(
                "SK601",
                f"shell command !{_shorten(args, 50)} — runs a program in the sandbox's shell",
            )
            return
        name = name.lstrip("%")
        shown = ("%" if kind == "line" else "%%") + name
        t = self.t
        if name in t.banned_magics:
            self.emit("SK602", f"{shown} — banned by the administrator")
            return
        if name in t.allowed_magics:
            return
        if name in R.SHELL_MAGICS:
            what = f" {_shorten(args or body, 40)}" if (args or body).strip() else ""
            self.emit("SK601", f"{shown}{what} — runs a shell command")
            return
        if name in R.BROWSER_MAGICS:
            self.emit(
                "SK605",
                f"{shown} — runs JavaScript in the browser, which can reach the notebook server",
            )
            return
        allowed = R.ALLOWED_LINE_MAGICS if kind == "line" else R.ALLOWED_CELL_MAGICS
        if name in allowed:
            self._judge_allowed(kind, name, shown, args, body)
            return
        reason = R.DANGEROUS_MAGICS.get(name)
        if reason is not None:
            self.emit("SK602", f"{shown} — {reason}")
        else:
            self.emit("SK603", f"{shown} is not on the magic allowlist")

    def _judge_allowed(self, kind: str, name: str, shown: str, args: str, body: str) -> None:
        words = args.split()
        if name in ("history", "hist") and any(w.startswith("-f") for w in words):
            self.emit("SK602", f"{shown} -f — writes a file")
        elif name == "matplotlib" and "module://" in args:
            self.emit("SK602", f"{shown} module:// — imports a backend module by name")
        elif name == "load_ext":
            ext = words[0] if words else ""
            if ext not in R.SAFE_EXTENSIONS and ext not in self.t.allowed_modules:
                self.emit("SK602", f"{shown} {ext} — loads an extension module (not allowed)")
        elif name == "aimport":
            for word in args.replace(",", " ").split():
                module = word.lstrip("-")
                found = self.t.module_reason(module) if module else None
                if found is not None:
                    self.emit("SK101", f"{shown} {module} — '{found[0]}' {found[1]}")
        elif name in R.MARKUP_MAGICS:
            if _SCRIPT_MARKUP.search(body):
                self.emit("SK605", f"{shown} with script — runs JavaScript in the browser")
        elif name in R.CODE_MAGICS:
            if kind == "line":
                self._nested(_strip_magic_options(args), self.line - 1)
            else:
                if name == "timeit":
                    setup = _strip_magic_options(args)
                    if setup.strip():
                        self._nested(setup, self.line - 1)
                self._nested(body, self.line)

    def _nested(self, code: str, base_line: int) -> None:
        if not code.strip():
            return
        try:
            self.analysis.judge_cell(code, self.depth + 1, base_line)
        except _CannotJudge as exc:
            self.analysis.emit("SK803", self.line, self.col, f"magic body cannot be judged: {exc}")


def _strip_magic_options(args: str) -> str:
    """The code part of ``%timeit -n 10 -r 3 f(x)``: drop leading options."""
    rest = args.lstrip()
    while rest.startswith("-"):
        option, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        if option in R.MAGIC_OPTIONS_WITH_VALUE:
            _, _, rest = rest.partition(" ")
            rest = rest.lstrip()
    return rest


# ----------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------


def _line_of(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1)


def _check_raw(analysis: _Analysis, text: str) -> bool:
    """Checks on the text as written. Returns False when it cannot be judged further."""
    nul = text.find("\x00")
    if nul >= 0:
        line, col = _line_of(text, nul)
        analysis.emit(
            "SK801",
            line,
            col,
            "NUL byte in the cell — Python cannot run it as "
            "written and tools disagree on where it ends",
        )
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line, col = _line_of(text, exc.start)
        analysis.emit("SK801", line, col, "lone surrogate character — not valid Unicode text")
        return False
    bidi = _BIDI.search(text)
    if bidi is not None:
        line, col = _line_of(text, bidi.start())
        analysis.emit(
            "SK702",
            line,
            col,
            f"bidirectional control character "
            f"U+{ord(bidi.group()):04X} — makes code read differently than it runs",
        )
    for line, col, word, norm in _lookalikes(text):
        analysis.emit(
            "SK701", line, col, f"look-alike identifier {word!r} — Python reads it as {norm!r}"
        )
    return True


_TEXT_TOKENS = frozenset(
    {tokenize.STRING, tokenize.COMMENT, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
)


def _lookalikes(text: str) -> list[tuple[int, int, str, str]]:
    """Identifiers that NFKC-normalise to a different ASCII name: (line, col, word, name).

    A cheap scan finds candidates; only then the cell is tokenised, so that look-alike
    text inside strings and comments (full-width labels) is not reported. When the
    cell does not tokenise (IPython syntax), every candidate is reported.
    """
    found = []
    for match in _NON_ASCII_WORD.finditer(text):
        word = match.group()
        norm = unicodedata.normalize("NFKC", word)
        if norm != word and norm.isascii() and norm.isidentifier():
            found.append((*_line_of(text, match.start()), word, norm))
    if not found:
        return found
    try:
        quoted = [
            (tok.start, tok.end)
            for tok in tokenize.generate_tokens(io.StringIO(text).readline)
            if tok.type in _TEXT_TOKENS
        ]
    except (tokenize.TokenError, SyntaxError):
        return found
    return [
        item
        for item in found
        if not any(start <= (item[0], item[1]) < end for start, end in quoted)
    ]


def _decode(source: str | bytes, analysis: _Analysis) -> str | None:
    if isinstance(source, str):
        return source
    try:
        return source.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = source.count(b"\n", 0, exc.start) + 1
        analysis.emit("SK801", line, 0, f"invalid UTF-8 at byte {exc.start} — the cell is not text")
        return None


def validate(source: str | bytes, policy: Policy | None = None) -> ValidationResult:
    """Judge one cell.

    Args:
        source: the cell as typed (``str``), or its bytes (decoded as UTF-8).
        policy: the administrator's policy; the default blocks at a risk score of 30.

    Returns:
        The verdict. In ``off`` mode nothing is judged; in ``warn`` mode ``blocked``
        is always false. Never raises for any text or bytes: input it cannot judge
        (too large, NUL bytes, invalid UTF-8, too deeply nested) is blocked with a
        reason, and an internal failure blocks the cell too (fail closed).

    Raises:
        TypeError: when ``source`` is neither ``str`` nor ``bytes``.
    """
    policy = policy if policy is not None else _default_policy()
    if policy.mode == "off":
        return ValidationResult(False, 0, [], None, "off", policy.threshold)
    if isinstance(source, (bytearray, memoryview)):
        source = bytes(source)
    if not isinstance(source, (str, bytes)):
        raise TypeError(f"cell source must be str or bytes, not {type(source).__name__}")
    analysis = _Analysis(policy, "")
    try:
        with warnings.catch_warnings():
            # the cell's own SyntaxWarnings (invalid escapes, ...) are Python's to report
            # when it runs the cell, not noise in the kernel's log
            warnings.simplefilter("ignore")
            _judge(analysis, source, policy)
    except Exception as exc:  # the last guard: a validator bug must not run the cell
        analysis.emit(
            "SK803",
            0,
            0,
            f"the validator failed ({type(exc).__name__}); the cell "
            "is refused rather than run unjudged",
        )
    return _verdict(analysis, policy)


def _judge(analysis: _Analysis, source: str | bytes, policy: Policy) -> None:
    """Input limits, checks on the text as written, the cell itself, custom rules."""
    if len(source) > policy.max_source_chars:
        analysis.emit(
            "SK802",
            0,
            0,
            f"cell too large to judge ({len(source):,} characters; "
            f"the limit is {policy.max_source_chars:,})",
        )
        return
    text = _decode(source, analysis)
    if text is None:
        return
    analysis.source, analysis.lines = text, text.splitlines()
    if not _check_raw(analysis, text):
        return
    try:
        analysis.judge_cell(text, 0, 0)
    except _CannotJudge as exc:
        analysis.emit("SK803", 0, 0, f"cell cannot be judged: {exc}")
    analysis.run_custom_rules()


def _verdict(analysis: _Analysis, policy: Policy) -> ValidationResult:
    violations = sorted(analysis.violations, key=lambda v: (v.line, v.column))
    best: dict[str, int] = {}
    for v in violations:
        if v.score > best.get(v.rule_id, 0):
            best[v.rule_id] = v.score
    risk = sum(best.values())
    forced = any(rid in R.FORCE_BLOCK_RULES for rid in best)
    blocked = policy.mode == "block" and (risk >= policy.threshold or forced)
    return ValidationResult(
        blocked=blocked,
        risk_score=risk,
        violations=violations,
        syntax_error=analysis.syntax_error,
        mode=policy.mode,
        threshold=policy.threshold,
    )
