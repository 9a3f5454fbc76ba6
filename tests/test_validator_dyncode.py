"""The dyncode family: strings run as code and code built at run time (SK104, SK201-SK205)."""

from __future__ import annotations

import pytest

from sandbox_kernel.validator import validate

from validator_checks import NOTEBOOK, STRICT, blocked, passes_in_notebook, rule_ids


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("__import__('math')", "SK104"),
        ("importer.import_module(name)", "SK104"),
        ("eval('1')", "SK201"),
        ("exec(code)", "SK201"),
        ("compile(src, 'f', 'exec')", "SK201"),
        ("import timeit\ntimeit.timeit('1+1')", "SK201"),
        ("import cProfile\ncProfile.run('f()')", "SK201"),
        ("f = eval", "SK202"),
        ("@exec\ndef f():\n    pass", "SK202"),
        ("breakpoint()", "SK203"),
        ("type(lambda: 0)(code, {})", "SK204"),
        ("types_mod.CodeType(*parts)", "SK204"),
        ("C = type('C', (), {})", "SK205"),
    ],
)
def test_rule_fires_in_strict(source: str, rule: str) -> None:
    assert rule in rule_ids(source, STRICT), validate(source, STRICT).format_report()


def test_timeit_of_a_literal_is_judged_as_code_in_notebook() -> None:
    assert passes_in_notebook("from timeit import timeit\ntimeit('f()', globals=globals())")
    assert blocked("import timeit\ntimeit.timeit('f()')", STRICT)
    assert "SK104" in rule_ids("import timeit\ntimeit.timeit(\"__import__('os')\")", NOTEBOOK)
    assert blocked("import timeit\ntimeit.timeit('x = ' + code)", NOTEBOOK)  # a built string


def test_import_module_of_a_literal_is_an_import_in_notebook() -> None:
    assert passes_in_notebook("import importlib\nimportlib.import_module('numpy')")
    assert blocked("import importlib\nimportlib.import_module('subprocess')", NOTEBOOK)
    assert blocked("import importlib\nimportlib.import_module(name)", NOTEBOOK)
    assert blocked("import importlib\nimportlib.import_module('numpy')", STRICT)


@pytest.mark.parametrize("source", ["eval('1+1')", "exec('x = 1')", "f = eval", "breakpoint()"])
def test_strings_run_as_code_are_refused_in_both_profiles(source: str) -> None:
    assert blocked(source, NOTEBOOK) and blocked(source, STRICT)


def test_a_variable_named_like_a_builtin_passes_in_notebook() -> None:
    assert passes_in_notebook("breakpoint = 1200\nx = breakpoint * 2")
    assert passes_in_notebook("import numpy as np\neval, evec = np.linalg.eig(a)\ng = eval * 2")
    # rebinding to the builtin itself, or reading before the binding, counts as the builtin
    assert blocked("eval = eval\ng = eval", NOTEBOOK)
    assert blocked("g = eval\neval = 3", NOTEBOOK)
    assert blocked("eval = getattr(b, 'ev' + 'al')\neval('1')", NOTEBOOK)
    assert blocked("eval = 3\neval('1')", NOTEBOOK)  # a call stays a call
    assert blocked("[eval for eval in [eval]]", NOTEBOOK)
    assert blocked("breakpoint = 1200\nx = breakpoint * 2", STRICT)


def test_a_parameter_named_eval_is_a_variable_inside_its_function_only() -> None:
    assert passes_in_notebook("def bias(n, m, eval):\n    gamma = eval * m / n\n    return gamma")
    assert blocked("def f(eval):\n    return 1\n\ng = eval", NOTEBOOK)
    assert blocked("def f(eval=eval):\n    return eval", NOTEBOOK)
