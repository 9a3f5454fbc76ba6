"""The corpus: every dangerous cell is blocked, every benign cell passes untouched."""

from __future__ import annotations

import pytest
from validator_corpus import load

from sandbox_kernel.validator import Policy, validate

DANGEROUS = load("dangerous")
BENIGN = load("benign")


def test_corpus_size() -> None:
    assert len(DANGEROUS) >= 80
    assert len(BENIGN) >= 60


@pytest.mark.parametrize(("name", "source"), DANGEROUS, ids=[n for n, _ in DANGEROUS])
def test_dangerous_cell_is_blocked(name: str, source: str) -> None:
    result = validate(source)
    assert result.blocked, f"{name} passed:\n{source}"
    assert result.risk_score >= 30
    assert all(v.message and v.line >= 0 for v in result.violations)


@pytest.mark.parametrize(("name", "source"), BENIGN, ids=[n for n, _ in BENIGN])
def test_benign_cell_passes_untouched(name: str, source: str) -> None:
    result = validate(source)
    assert not result.blocked
    assert result.violations == [], result.format_report()
    assert result.syntax_error is None, result.syntax_error


@pytest.mark.parametrize(("name", "source"), DANGEROUS[:20], ids=[n for n, _ in DANGEROUS[:20]])
def test_warn_mode_reports_the_same_findings(name: str, source: str) -> None:
    blocking = validate(source)
    warning = validate(source, Policy(mode="warn"))
    assert not warning.blocked
    assert warning.violations == blocking.violations
