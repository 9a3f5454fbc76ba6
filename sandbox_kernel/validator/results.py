"""What the validator returns: findings and the verdict on one cell. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["low", "medium", "high", "critical"]
Mode = Literal["block", "warn", "off"]
Profile = Literal["notebook", "strict"]

#: The rule of package installs (kept here so that results need no rule table).
INSTALL_RULE = "SK607"


def install_answer(packages: list[str]) -> str:
    """The one sentence that answers ``%pip install x``: the only place it is worded."""
    if not packages:  # `pip install -U pip`: the installer, nothing to add
        return (
            "The sandbox has no network, so packages come from its image: add one with "
            "`sandbox-kernel image build --add PACKAGE`, then "
            "`sandbox-kernel install --image <the new tag>` and restart the kernel."
        )
    names = " ".join(packages)
    them = "them" if len(packages) > 1 else "it"
    return (
        "The sandbox has no network, so packages come from its image: add "
        f"{them} with `sandbox-kernel image build --add {names}`, then "
        "`sandbox-kernel install --image <the new tag>` and restart the kernel."
    )


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
        profile: the policy profile (``notebook`` or ``strict``).
        install_packages: packages the cell asks to install (``%pip install x``).
    """

    blocked: bool
    risk_score: int
    violations: list[Violation] = field(default_factory=list)
    syntax_error: SyntaxErrorInfo | None = None
    mode: Mode = "block"
    threshold: int = 30
    profile: Profile = "strict"
    install_packages: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The verdict as plain JSON-able values."""
        return {
            "blocked": self.blocked,
            "risk_score": self.risk_score,
            "violations": [v.to_json() for v in self.violations],
            "syntax_error": self.syntax_error.to_json() if self.syntax_error else None,
            "mode": self.mode,
            "threshold": self.threshold,
            "profile": self.profile,
            "install_packages": list(self.install_packages),
        }

    def install_message(self) -> str | None:
        """The answer to a blocked cell whose only blocking findings install packages.

        None when the cell is not blocked or something else in it is refused.
        """
        if not self.blocked or not self.violations:
            return None
        others = sum(v.score for v in self.violations if v.rule_id != INSTALL_RULE)
        if any(v.rule_id != INSTALL_RULE and v.score >= self.threshold for v in self.violations):
            return None
        if others >= self.threshold:
            return None
        return install_answer(self.install_packages)

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
