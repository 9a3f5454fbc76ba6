"""What the validator returns: findings and the verdict on one cell. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["low", "medium", "high", "critical"]
Mode = Literal["block", "warn", "off"]
Profile = Literal["notebook", "strict"]

#: The rule of package installs (kept here so that results need no rule table).
INSTALL_RULE = "SK607"
#: The rule of downloads (``!wget URL``, ``!git clone URL``, ``urlretrieve``).
DOWNLOAD_RULE = "SK608"
#: Rules answered with a sentence instead of a list of findings, and the error name
#: the kernel ends the cell with.
ANSWERED_RULES = {INSTALL_RULE: "SandboxPackageInstall", DOWNLOAD_RULE: "SandboxNoNetwork"}


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


def download_answer(sources: list[str]) -> str:
    """The one sentence that answers ``!wget URL``, ``!git clone URL`` or a Python
    download: the only place it is worded. ``sources`` are URLs, ``git clone URL``
    or the Python API that downloads (``urllib.request.urlretrieve``)."""
    repos = any(s.startswith("git clone ") for s in sources)
    files = any(not s.startswith("git clone ") for s in sources)
    what = ", ".join(f"`{s}`" for s in sources[:3]) + (" …" if len(sources) > 3 else "")
    do = " and ".join(
        [*(["download the files"] if files else []), *(["clone the repository"] if repos else [])]
    )
    return (
        f"The sandbox has no network, so nothing ran for {what or 'the download'}: {do} on "
        "your computer into the notebook's folder (it is copied into the sandbox), then "
        "remove the download from the cell."
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
        downloads: what the cell downloads (URLs, ``git clone URL``, Python APIs).
    """

    blocked: bool
    risk_score: int
    violations: list[Violation] = field(default_factory=list)
    syntax_error: SyntaxErrorInfo | None = None
    mode: Mode = "block"
    threshold: int = 30
    profile: Profile = "strict"
    install_packages: list[str] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)

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
            "downloads": list(self.downloads),
        }

    def answer(self) -> tuple[str, str] | None:
        """(error name, sentence) for a blocked cell whose only blocking findings are
        package installs or downloads: what to do instead, since neither can work
        without a network. None when the cell is not blocked or something else in it
        is refused (then the findings are the answer)."""
        if not self.blocked or not self.violations:
            return None
        rest = [v for v in self.violations if v.rule_id not in ANSWERED_RULES]
        if any(v.score >= self.threshold for v in rest):
            return None
        if sum(v.score for v in rest) >= self.threshold:
            return None
        found = {v.rule_id for v in self.violations}
        sentences = []
        if INSTALL_RULE in found:
            sentences.append(install_answer(self.install_packages))
        if DOWNLOAD_RULE in found:
            sentences.append(download_answer(self.downloads))
        if not sentences:
            return None
        # an install first: the image is where both are fixed
        rule = INSTALL_RULE if INSTALL_RULE in found else DOWNLOAD_RULE
        return ANSWERED_RULES[rule], " ".join(sentences)

    def install_message(self) -> str | None:
        """The answer's sentence (see :meth:`answer`), or None."""
        found = self.answer()
        return found[1] if found is not None else None

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
