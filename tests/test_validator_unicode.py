"""The unicode family: look-alike identifiers and bidi controls (SK701, SK702)."""

from __future__ import annotations

import pytest

from sandbox_kernel.validator import validate

from validator_checks import NOTEBOOK, STRICT, blocked, passes_in_notebook, rule_ids


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("\uff45val('1')", "SK701"),
        ("x = 1  # \u202e hidden", "SK702"),
    ],
)
def test_rule_fires_in_strict(source: str, rule: str) -> None:
    assert rule in rule_ids(source, STRICT), validate(source, STRICT).format_report()


@pytest.mark.parametrize(
    "source",
    [
        "\u03c3 = 0.2",
        "\u2113 = 3",
        "\u0394t = 1 / 252",
        "\u03bc_hat = x.mean()",
        "\u03b4 = \u03b1 * \u03b2",
        "\u00e9t\u00e9 = 1",
        "\u5e74 = 2024",
    ],
)
def test_mathematical_and_native_identifiers_pass(source: str) -> None:
    assert passes_in_notebook(source)
    assert not blocked(source, STRICT)


@pytest.mark.parametrize(
    "source",
    [
        "\uff45val('1')",  # full-width eval: Python runs it as eval
        "\u0435\u0445\u0435\u0441 = print",  # Cyrillic letters spelling exec
        "p\u0430ssword = 'x'",  # a Cyrillic a in a Latin word
        "\u0455ystem = 1",  # Cyrillic dze: looks like system
    ],
)
def test_identifiers_imitating_names_are_refused(source: str) -> None:
    assert "SK701" in rule_ids(source, NOTEBOOK)
    assert blocked(source, NOTEBOOK) and blocked(source, STRICT)
