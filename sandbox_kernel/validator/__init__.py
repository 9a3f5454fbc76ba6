"""Static judge of notebook cells, run on the host before a cell reaches the sandbox.

``validate(source, policy)`` returns a :class:`ValidationResult`: whether the cell is
blocked, its risk score and each finding (rule id, severity, score, line, column and a
sentence a student can act on). It is defence in depth, never the boundary: the
container is. It is a pure library: no Docker, no kernel, no global mutable state.

It judges capabilities, not module names: starting processes or shells, opening
network connections, loading native code, escaping the interpreter (frames,
``__subclasses__``, ``__globals__``, import machinery, ``sys.modules``, hooks),
running strings as code, deserialising untrusted data, writing to system locations
and taking control of the kernel. Two profiles (:data:`PROFILES`): ``notebook`` (the
kernel's default) passes everyday file and path code; ``strict`` (the default here
and of the ``Sandbox`` API) also refuses any use of ``os``, ``shutil`` and
file-writing magics, as the executor this project grew from did.

The package, laid out like Bandit's plugins:

- :mod:`.results` — the result types (pure data); :mod:`.rules` — the rule table;
- :mod:`.policy` — the administrator's :class:`Policy` and its tables;
- :mod:`.prepare` — input limits and IPython's own transform;
- :mod:`.walker` — the one pass over a cell's tree, calling the checks that
  :mod:`.registry` holds for each node type;
- :mod:`.families` — one module per capability family, owning its tables and
  registering its checks: ``modules``, ``introspection``, ``dyncode``, ``byname``,
  ``data``, ``ipython``, ``names``, ``unicode``.

Scores add up per cell, the highest score of each rule once. A cell that does not
parse is *not* blocked for that reason: ``syntax_error`` says where, and the inner
Python raises the same SyntaxError and runs nothing (unless it names something
dangerous: SK804). Only the administrator's :class:`Policy` decides: nothing in a
cell (a comment such as ``# sandbox: off``, ``%config``, any magic) is read as
configuration.
"""

from __future__ import annotations

import warnings

from . import families  # noqa: F401  (registers every family's checks)
from .families.shell_lines import install_packages, is_install_cell
from .policy import ENTRY_POINT_GROUP, Policy, RuleFunc, default_policy
from .prepare import MAX_SOURCE_CHARS, CannotJudge, line_of
from .registry import TEXT_CHECKS, node_rule, register
from .results import (
    Mode,
    Profile,
    Severity,
    SyntaxErrorInfo,
    ValidationResult,
    Violation,
    install_answer,
)
from .rules import FORCE_BLOCK_RULES, PROFILES, RULES, Rule
from .walker import Analysis

__all__ = [
    "ENTRY_POINT_GROUP",
    "MAX_SOURCE_CHARS",
    "PROFILES",
    "RULES",
    "Mode",
    "Policy",
    "Profile",
    "Rule",
    "RuleFunc",
    "Severity",
    "SyntaxErrorInfo",
    "ValidationResult",
    "Violation",
    "install_answer",
    "install_packages",
    "is_install_cell",
    "node_rule",
    "register",
    "validate",
]


def _decode(source: str | bytes, analysis: Analysis) -> str | None:
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
    policy = policy if policy is not None else default_policy()
    if policy.mode == "off":
        return ValidationResult(False, 0, [], None, "off", policy.threshold, policy.profile)
    if isinstance(source, (bytearray, memoryview)):
        source = bytes(source)
    if not isinstance(source, (str, bytes)):
        raise TypeError(f"cell source must be str or bytes, not {type(source).__name__}")
    analysis = Analysis(policy, "")
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


def _judge(analysis: Analysis, source: str | bytes, policy: Policy) -> None:
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
    if not _check_malformed(analysis, text):
        return
    for check in TEXT_CHECKS:
        check(analysis, text)
    try:
        analysis.judge_cell(text, 0, 0)
    except CannotJudge as exc:
        analysis.emit("SK803", 0, 0, f"cell cannot be judged: {exc}")
    analysis.run_custom_rules()


def _verdict(analysis: Analysis, policy: Policy) -> ValidationResult:
    violations = sorted(analysis.violations, key=lambda v: (v.line, v.column))
    best: dict[str, int] = {}
    for v in violations:
        if v.score > best.get(v.rule_id, 0):
            best[v.rule_id] = v.score
    risk = sum(best.values())
    forced = any(rid in FORCE_BLOCK_RULES for rid in best)
    blocked = policy.mode == "block" and (risk >= policy.threshold or forced)
    return ValidationResult(
        blocked=blocked,
        risk_score=risk,
        violations=violations,
        syntax_error=analysis.syntax_error,
        mode=policy.mode,
        threshold=policy.threshold,
        profile=policy.profile,
        install_packages=list(analysis.install_packages),
        downloads=list(analysis.downloads),
    )


def _check_malformed(analysis: Analysis, text: str) -> bool:
    """NUL bytes and lone surrogates. Returns False when the cell cannot be judged."""
    nul = text.find("\x00")
    if nul >= 0:
        line, col = line_of(text, nul)
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
        line, col = line_of(text, exc.start)
        analysis.emit("SK801", line, col, "lone surrogate character — not valid Unicode text")
        return False
    return True
