"""The introspection family: escapes through interpreter internals (SK103 on sys, SK301-SK303)."""

from __future__ import annotations

import pytest

from sandbox_kernel.validator import validate

from validator_checks import NOTEBOOK, STRICT, blocked, passes_in_notebook, rule_ids


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("x.__subclasses__()", "SK301"),
        ("f.__globals__", "SK301"),
        ("__builtins__", "SK301"),
        ("c.__mro__", "SK301"),
        ("g.gi_frame", "SK302"),
        ("tb.tb_frame.f_back", "SK302"),
        ("obj.__dict__", "SK303"),
    ],
)
def test_rule_fires_in_strict(source: str, rule: str) -> None:
    assert rule in rule_ids(source, STRICT), validate(source, STRICT).format_report()


def test_asking_whether_a_module_is_loaded_passes_in_notebook() -> None:
    assert passes_in_notebook("import sys\nIN_COLAB = 'google.colab' in sys.modules")
    assert passes_in_notebook("import sys\nok = 'x' not in sys.modules.keys()")
    assert blocked("import sys\nIN_COLAB = 'google.colab' in sys.modules", STRICT)


@pytest.mark.parametrize(
    "source",
    [
        "import sys\nsys.modules['os']",
        "import sys\nm = sys.modules\n'x' in m",
        "import sys\nsys.modules.get('subprocess')",
        "import sys\nsys._getframe(1)",
        "x.__subclasses__()",
        "f.__globals__['__builtins__']",
        "g.gi_frame.f_back",
    ],
)
def test_interpreter_escapes_are_refused_in_both_profiles(source: str) -> None:
    assert blocked(source, NOTEBOOK) and blocked(source, STRICT)
