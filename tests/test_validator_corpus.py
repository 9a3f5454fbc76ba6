"""The corpus: every dangerous cell is blocked in both profiles, every benign cell passes."""

from __future__ import annotations

import pytest

from sandbox_kernel.validator import Policy, validate

from validator_corpus import ANSWERED_IN_NOTEBOOK, STRICT_ONLY, load

DANGEROUS = load("dangerous")
BENIGN = load("benign")
BENIGN_NOTEBOOK = load("benign_notebook")
ANSWERED = load("answered_notebook")
NOTEBOOK = Policy(profile="notebook")
#: `%pip install x`: answered with the command that adds it to the image, both profiles
INSTALL_CELL = "115-pip-install"
STRICT = Policy(profile="strict")


def test_corpus_size() -> None:
    assert len(DANGEROUS) >= 180
    assert len(BENIGN) >= 60
    assert len(BENIGN_NOTEBOOK) >= 25
    assert len(ANSWERED) >= 10
    assert set(STRICT_ONLY) | set(ANSWERED_IN_NOTEBOOK) <= {name for name, _ in DANGEROUS}


@pytest.mark.parametrize(("name", "source"), DANGEROUS, ids=[n for n, _ in DANGEROUS])
def test_dangerous_cell_is_blocked_in_strict(name: str, source: str) -> None:
    for result in (validate(source), validate(source, STRICT)):  # strict is the default
        assert result.blocked, f"{name} passed:\n{source}"
        assert result.risk_score >= 30
        assert all(v.message and v.line >= 0 for v in result.violations)
        if name != INSTALL_CELL:  # refused with findings, not answered
            assert result.answer() is None, result.format_report()


@pytest.mark.parametrize(("name", "source"), DANGEROUS, ids=[n for n, _ in DANGEROUS])
def test_dangerous_cell_is_blocked_in_notebook(name: str, source: str) -> None:
    result = validate(source, NOTEBOOK)
    if name in STRICT_ONLY:
        # the negative control: the notebook profile passes it on purpose
        assert not result.blocked, result.format_report()
        return
    assert result.blocked, f"{name} passed in the notebook profile:\n{source}"
    assert result.risk_score >= 30
    if name in ANSWERED_IN_NOTEBOOK:
        # the control: a plain fetch is answered (nothing runs), not refused with findings
        assert result.answer() is not None and result.answer()[0] == "SandboxNoNetwork"
    elif name != INSTALL_CELL:
        assert result.answer() is None, f"{name} was answered:\n{result.format_report()}"


@pytest.mark.parametrize(("name", "source"), BENIGN, ids=[n for n, _ in BENIGN])
def test_benign_cell_passes_untouched(name: str, source: str) -> None:
    for policy in (STRICT, NOTEBOOK):
        result = validate(source, policy)
        assert not result.blocked
        assert result.violations == [], result.format_report()
        assert result.syntax_error is None, result.syntax_error


@pytest.mark.parametrize(("name", "source"), BENIGN_NOTEBOOK, ids=[n for n, _ in BENIGN_NOTEBOOK])
def test_everyday_notebook_cell_passes_in_notebook(name: str, source: str) -> None:
    result = validate(source, NOTEBOOK)
    assert not result.blocked
    assert result.violations == [], result.format_report()
    assert result.syntax_error is None, result.syntax_error


@pytest.mark.parametrize(("name", "source"), ANSWERED, ids=[n for n, _ in ANSWERED])
def test_download_cell_is_answered_in_notebook_and_refused_in_strict(
    name: str, source: str
) -> None:
    result = validate(source, NOTEBOOK)
    assert result.blocked, result.format_report()
    answer = result.answer()
    assert answer is not None, result.format_report()
    assert "no network" in answer[1] and "notebook's folder" in answer[1]
    assert result.downloads
    refused = validate(source, STRICT)
    assert refused.blocked and refused.answer() is None


def test_strict_refuses_everyday_os_use() -> None:
    # the control for the notebook corpus: what notebook passes, strict refuses
    refused = [name for name, source in BENIGN_NOTEBOOK if validate(source, STRICT).blocked]
    assert {"001-os-paths", "002-cwd-and-env", "003-shutil-copy", "007-writefile-helper"} <= set(
        refused
    )


@pytest.mark.parametrize(("name", "source"), DANGEROUS[:20], ids=[n for n, _ in DANGEROUS[:20]])
def test_warn_mode_reports_the_same_findings(name: str, source: str) -> None:
    blocking = validate(source)
    warning = validate(source, Policy(mode="warn"))
    assert not warning.blocked
    assert warning.violations == blocking.violations
