"""Helpers the validator's test files share: the two profiles and short verdicts."""

from __future__ import annotations

from sandbox_kernel.validator import Policy, validate

NOTEBOOK = Policy(profile="notebook")
STRICT = Policy(profile="strict")


def rule_ids(source: str | bytes, policy: Policy | None = None) -> set[str]:
    """The ids of the rules that found something in ``source``."""
    return {v.rule_id for v in validate(source, policy).violations}


def blocked(source: str | bytes, policy: Policy | None = None) -> bool:
    """Whether ``source`` is refused (the default policy is ``strict``)."""
    return validate(source, policy).blocked


def passes_in_notebook(source: str) -> bool:
    """Whether the notebook profile runs ``source`` with no finding at all."""
    return validate(source, NOTEBOOK).violations == []
