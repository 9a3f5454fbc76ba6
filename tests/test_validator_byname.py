"""The byname family: attributes, globals and modules reached by name (SK401-SK406)."""

from __future__ import annotations

import pytest

from sandbox_kernel.validator import validate

from validator_checks import NOTEBOOK, STRICT, blocked, passes_in_notebook, rule_ids


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("getattr(obj, name)", "SK401"),
        ("setattr(obj, 'a' + b, 1)", "SK401"),
        ("globals()", "SK402"),
        ("locals()", "SK403"),
        ("getattr(x, '__globals__')", "SK404"),
        ("getattr(b, 'ev' + 'al')", "SK404"),
        ("'{0.__globals__}'.format(f)", "SK405"),
        ("'{x[__builtins__]}'.format(x=g)", "SK405"),
        ("codecs.decode(s, 'rot13')", "SK406"),
        ("name = 'lave'[::-1]", "SK406"),
    ],
)
def test_rule_fires_in_strict(source: str, rule: str) -> None:
    assert rule in rule_ids(source, STRICT), validate(source, STRICT).format_report()


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("import operator, sys\noperator.attrgetter('modules')(sys)", "SK404"),
        ("from operator import methodcaller\nmethodcaller('__subclasses__')(object)", "SK404"),
        ("import operator\noperator.attrgetter('__class__.__mro__')(x)", "SK404"),
        ("import operator\noperator.attrgetter(name)(x)", "SK401"),
        ("import inspect\ninspect.getattr_static(f, '__glo' + 'bals__')", "SK404"),
        ("import functools\nfunctools.reduce(getattr, names, f)", "SK401"),
        ("import functools, sys\nfunctools.partial(getattr, sys)('modules')", "SK401"),
        ("list(map(getattr, objs, names))", "SK401"),
        ("import operator\nfs = [operator.attrgetter]", "SK401"),
        ("import sys\nsys.__dict__['modules']", "SK103"),
        ("import sys\nvars(sys)['modules']", "SK103"),
        ("import os\ngetattr(os, 'sys' + 'tem')('id')", "SK404"),
        ("globals()[name]", "SK401"),
    ],
)
def test_by_name_family_is_refused_in_both_profiles(source: str, rule: str) -> None:
    assert rule in rule_ids(source, NOTEBOOK), validate(source, NOTEBOOK).format_report()
    assert blocked(source, NOTEBOOK) and blocked(source, STRICT)


def test_harmless_by_name_uses_pass_in_notebook() -> None:
    assert passes_in_notebook("from operator import attrgetter\nkey = attrgetter('price')")
    assert passes_in_notebook("for i in range(3):\n    globals()[f'df_{i}'] = i")
    assert passes_in_notebook("getattr(model, 'coef_', None)")
