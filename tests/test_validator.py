"""Unit tests of the validator's engine: preparation, the walk, policies, results.

Each capability family has its own file, test_validator_<family>.py, with one row per
technique of its rules in both profiles.
"""

from __future__ import annotations

import ast
import json
import sys
import textwrap
import time
import types
from collections.abc import Iterator

import pytest

from sandbox_kernel.errors import ConfigError
from sandbox_kernel.validator import (
    MAX_SOURCE_CHARS,
    Policy,
    ValidationResult,
    Violation,
    validate,
)
from sandbox_kernel.validator.rules import RULES

from validator_checks import blocked, rule_ids


@pytest.mark.parametrize(
    "source",
    [
        "import numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt",
        "import time, math, random, datetime, collections, itertools, functools, json",
        "import csv, re, statistics, dataclasses, typing",
        "from scipy import optimize, stats\nimport statsmodels.api as sm",
        "from sklearn.linear_model import Ridge\nfrom tqdm.auto import tqdm",
        "from concurrent.futures import ProcessPoolExecutor\nimport multiprocessing as mp",
        "from re import compile\npattern = compile(r'\\d+')",
        "import platform\nplatform.system()",
        "model.eval()\nmodel.train()",
        "df.query('a > @lo')\ndf.eval('c = a + b')",
        "getattr(obj, 'const', None)\nhasattr(obj, name)",
        "class A:\n    def __init__(self):\n        super().__init__()\n"
        "    def __repr__(self):\n        return f'{self.__class__.__name__}()'",
        "if __name__ == '__main__':\n    main()",
        "open('results.txt', 'w').write('ok')\npd.read_csv('data/x.csv').to_csv('out.csv')",
        "open('/data/prices/x.csv')\nopen('/tmp/scratch.txt', 'w')\nopen('/dev/null', 'w')",
        "'/'.join(parts)\nurl.split('/')",
        "np.load('x.npy')\nnp.load('x.npz', allow_pickle=False)",
        "x = 10 % 3\ny = '%s%%' % x\nz = x != 2",
        "%matplotlib inline",
        "%timeit sum(range(10))",
        "%%time\nx = sum(range(10))",
        "%precision 3",
        "%%capture cap --no-stderr\nprint(1)",
        "%load_ext autoreload\n%autoreload 2",
        "%%html\n<b>bold</b>",
        "np.mean?",
        "vars(args)",
        "type(self)(1)",
        "d = {'eval': 0.5, 'system': 'A'}\nresults['eval']",
        "\u03c3 = 0.2\n\u03bc = 0.05\nprint(\u03c3, \u03bc)",
        "label = '\uff12\uff10\uff12\uff14\u5e74 \uff35\uff33\uff24'  # \uff46\uff55\uff4c\uff4c",
        "time = 3",
        "history = []\nhistory.append(1)",
    ],
)
def test_benign_passes(source: str) -> None:
    result = validate(source)
    assert not result.blocked
    assert result.violations == [], result.format_report()


def test_every_violation_is_well_formed() -> None:
    source = "import os\nx = eval('1')\n!ls\n"
    result = validate(source)
    assert [v.line for v in result.violations] == sorted(v.line for v in result.violations)
    for v in result.violations:
        assert v.rule_id in RULES
        assert v.name == RULES[v.rule_id].name
        assert v.severity in ("low", "medium", "high", "critical")
        assert v.score > 0 and v.line >= 1 and v.column >= 0
        assert v.message and " — " in v.message
    assert {(v.rule_id, v.line) for v in result.violations} >= {
        ("SK101", 1),
        ("SK201", 2),
        ("SK601", 3),
    }


def test_dangerous_defaults_score_at_least_30() -> None:
    for rule_id in ("SK101", "SK201", "SK503", "SK601"):
        assert RULES[rule_id].score >= 30
    assert validate("import os").risk_score >= 30
    assert validate("eval('1')").risk_score >= 30
    assert validate("open('/etc/shadow')").risk_score >= 30


def test_risk_score_counts_each_rule_once() -> None:
    # ten imports of dangerous modules are one rule: 40, not 400
    source = "\n".join(f"import {m}" for m in ["os", "sys", "socket", "pickle", "gc"])
    assert validate(source).risk_score == RULES["SK101"].score
    # weak findings of different rules add up
    assert validate("obj.__dict__").risk_score == 15
    assert validate("obj.__dict__\nlocals()").risk_score == 25


def test_lines_and_columns_point_at_the_cell_as_written() -> None:
    source = "\n\nx = 1\n!cat /etc/passwd\ny = eval('2')\n"
    result = validate(source)
    lines = {v.rule_id: (v.line, v.column) for v in result.violations}
    assert lines["SK601"] == (4, 0)
    assert lines["SK201"] == (5, 4)
    assert result.violations[0].excerpt == "!cat /etc/passwd"


def test_cell_magic_body_lines_map_to_the_cell() -> None:
    result = validate("%%time\nx = 1\nimport os\n")
    (v,) = result.violations
    assert (v.rule_id, v.line, v.excerpt) == ("SK101", 3, "import os")


def test_excerpt_is_truncated() -> None:
    source = "import os  # " + "x" * 500
    (v,) = validate(source).violations
    assert len(v.excerpt) <= 80 and v.excerpt.endswith("…")


# -- IPython syntax ----------------------------------------------------------------


def test_automagic_line_is_judged_as_the_alias() -> None:
    # plain ast.parse accepts this as a division; IPython's automagic runs `cat`
    ast.parse("cat /etc/passwd")
    result = validate("cat /etc/passwd")
    assert result.blocked and "SK604" in {v.rule_id for v in result.violations}


def test_automagic_of_an_allowed_magic_judges_its_argument() -> None:
    assert not blocked("who")
    assert not blocked("time sum(range(3))")
    assert blocked("time __import__('os')")


def test_automagic_not_applied_to_assignments_or_python_first_lines() -> None:
    assert not blocked("ls = [1, 2]")
    assert not blocked("time.sleep(0)\nx = 1")
    assert not blocked("history -= 1\nx = 2")
    assert blocked("cat /etc/passwd\nx = 1")  # multi-line: still conservative
    assert blocked("cat ../../etc/passwd")
    assert not blocked("run(strategy)")  # a call, although automagic would say %run
    assert not blocked("load_data = 1\nsave(df)")


def test_prompts_are_stripped_like_ipython_does() -> None:
    assert blocked("In [1]: import os")
    assert blocked(">>> import os\n>>> os.system('id')")
    assert blocked("x = {\n   ...: __import__('os')}")


def test_nested_magic_bodies_are_judged() -> None:
    assert blocked("%%capture out\n%%time\nimport os\n")
    assert blocked("%%timeit -n 1 import os\nx = 1\n")  # the setup statement too
    assert blocked("%time !id")
    assert blocked("%%time\ncat /etc/passwd")  # single-line body: automagic applies
    assert not blocked("%%capture\n%%time\nx = 1\n")


def test_magic_nesting_is_bounded() -> None:
    source = "%%capture\n" * 20 + "x = 1\n"
    result = validate(source)
    assert result.blocked and "SK803" in {v.rule_id for v in result.violations}


def test_imports_in_dead_branches_do_not_hide_builtins() -> None:
    assert blocked("if False:\n    from math import eval\neval('1')")
    assert blocked("try:\n    from nowhere import exec\nexcept ImportError:\n    pass\nexec(s)")
    assert blocked("import platform\nplatform.system('id')")
    assert blocked("import platform as os\nos.listdir('.')")
    assert not blocked("import platform\nprint(platform.system())")


def test_strings_that_look_like_magics_are_not_magics() -> None:
    assert not blocked("s = '''\n!ls\n%system id\n'''")
    assert not blocked("msg = 'run !ls or %time'")


def test_user_written_transformer_output_is_judged_by_magic_name() -> None:
    assert not blocked("get_ipython().run_line_magic('matplotlib', 'inline')")
    assert blocked("get_ipython().run_cell_magic('bash', '', 'id')")
    assert blocked("get_ipython().system('id')")


def test_help_syntax_is_allowed() -> None:
    assert not blocked("np.mean?")
    assert not blocked("np.mean??")
    assert not blocked("?")


def test_history_and_matplotlib_arguments_are_checked() -> None:
    assert not blocked("%history -n 1-5")
    assert blocked("%history -f out.py")
    assert not blocked("%matplotlib widget")
    assert blocked("%matplotlib module://evil")
    assert blocked("%aimport os")
    assert not blocked("%aimport numpy")


def test_nothing_in_the_cell_lowers_the_policy() -> None:
    for prefix in ["# sandbox: off\n", "# noqa\n", "# nosec\n", "%config Validator.mode='off'\n"]:
        assert blocked(prefix + "import os"), prefix
    assert blocked("import os  # sandbox: off")


# -- bad input ---------------------------------------------------------------------


def test_too_large_cell_is_blocked() -> None:
    result = validate("x = 1\n" * (MAX_SOURCE_CHARS // 6 + 1))
    assert result.blocked and [v.rule_id for v in result.violations] == ["SK802"]
    assert "too large" in result.violations[0].message
    small = Policy(max_source_chars=10)
    assert blocked("x = 123456789", small)
    assert not blocked("x" * 100, Policy(mode="off", max_source_chars=10))


def test_ten_megabyte_cell_is_fast() -> None:
    started = time.perf_counter()
    result = validate("a" * 10_000_000)
    assert result.blocked
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "source",
    [
        "-" * 100_000 + "1",
        "a" + ".b" * 100_000,
        "x" + "+x" * 100_000,
        "(" * 100_000 + ")" * 100_000,
        "lambda: " * 50_000 + "1",
        "a" + "[0]" * 100_000,
        "if x: pass\n" + "elif x: pass\n" * 30_000,
    ],
)
def test_deep_nesting_gives_a_verdict(source: str) -> None:
    started = time.perf_counter()
    result = validate(source)
    assert time.perf_counter() - started < 10
    assert result.blocked or result.syntax_error is not None


def test_deep_but_parseable_expression_is_judged_without_recursion() -> None:
    depth = 800  # below the parser's limit, far above a recursive visitor's
    source = "y = " + "x + " * depth + "eval('1')"
    result = validate(source)
    assert "SK201" in {v.rule_id for v in result.violations}


def test_nul_bytes_are_blocked() -> None:
    result = validate("x = 1\n!ls\x00\n")
    assert result.blocked and result.violations[0].rule_id == "SK801"
    assert result.violations[0].line == 2


def test_bytes_are_accepted_and_invalid_utf8_is_blocked() -> None:
    assert rule_ids(b"import os") == {"SK101"}
    assert not blocked("x = '\u00e9'".encode())
    result = validate(b"x = 1\n\xff\xfe")
    assert result.blocked and result.violations[0].rule_id == "SK801"
    assert not blocked(bytearray(b"x = 1"))


def test_lone_surrogates_are_blocked() -> None:
    assert blocked("x = '\ud800'")


def test_wrong_type_raises_type_error() -> None:
    with pytest.raises(TypeError):
        validate(123)  # type: ignore[arg-type]


def test_syntax_error_is_reported_not_blocked() -> None:
    result = validate("x = 1\ndef f(:\n    pass\n")
    assert not result.blocked
    assert result.syntax_error is not None and result.syntax_error.line == 2
    assert "syntax error" in result.format_report()
    assert result.to_json()["syntax_error"]["line"] == 2


def test_unparseable_cell_naming_dangerous_things_is_blocked() -> None:
    # valid on Python 3.12 (PEP 701), a syntax error on 3.11: never let version skew
    # between host and sandbox turn a syntax error into an unjudged cell
    source = 'f"{__import__("os").system("id")}"'
    result = validate(source)
    if result.syntax_error is not None:
        assert result.blocked and "SK804" in {v.rule_id for v in result.violations}
    else:
        assert result.blocked  # parsed (3.12+): judged node by node
    for source in ["!id\ndef f(:\n", "def f(:\n    open('/etc/passwd')", "x = (\n%system id"]:
        result = validate(source)
        assert result.blocked and result.syntax_error is not None, source


def test_unparseable_benign_cell_is_not_blocked() -> None:
    for source in ["%matplotlib inline\ndef f(:\n", "print('pos'", "x = [1, 2\nopen('data/x')"]:
        result = validate(source)
        assert not result.blocked and result.syntax_error is not None, source


def test_internal_failure_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    import sandbox_kernel.validator as mod

    def boom(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(mod.walker.Walker, "run", boom)
    result = validate("x = 1")
    assert result.blocked and result.violations[0].rule_id == "SK803"


# -- policies ----------------------------------------------------------------------


def test_warn_mode_lists_but_never_blocks() -> None:
    result = validate("import os\n!ls", Policy(mode="warn"))
    assert not result.blocked and result.risk_score >= 90 and result.violations
    assert "Warning only" in result.format_report()
    assert not validate("x" * (MAX_SOURCE_CHARS + 1), Policy(mode="warn")).blocked


def test_off_mode_judges_nothing() -> None:
    result = validate("import os\x00" * 10, Policy(mode="off"))
    assert result == ValidationResult(False, 0, [], None, "off", 30)
    assert validate(b"\xff" * 10_000_000, Policy(mode="off")).violations == []


def test_threshold() -> None:
    assert not blocked("import os", Policy(threshold=41))
    assert blocked("import os", Policy(threshold=40))
    assert blocked("obj.__dict__", Policy(threshold=10))
    # input limits block whatever the threshold
    assert blocked("x\x00", Policy(threshold=10_000))


def test_rule_scores_override_and_disable() -> None:
    policy = Policy(rule_scores={"SK101": 5})
    result = validate("import os", policy)
    assert not result.blocked and result.violations[0].score == 5
    assert validate("import os", Policy(rule_scores={"SK101": 0})).violations == []
    assert blocked("obj.__dict__", Policy(rule_scores={"SK303": 30}))


def test_extra_banned_and_allowed_modules() -> None:
    policy = Policy(banned_modules={"yfinance", "numpy.random"}, allowed_modules=["sys"])
    assert blocked("import yfinance", policy)
    assert blocked("from numpy.random import default_rng", policy)
    assert not blocked("import numpy", policy)
    assert not blocked("import sys\nprint(sys.version)", policy)
    assert blocked("import os", policy)
    assert "banned by the administrator" in validate("import yfinance", policy).format_report()


def test_banned_and_allowed_calls_and_attributes() -> None:
    policy = Policy(
        banned_calls={"print", "pd.read_sql"},
        banned_attributes={"to_sql"},
        allowed_calls={"compile"},
        allowed_attributes={"__dict__"},
    )
    assert rule_ids("print(1)", policy) == {"SK901"}
    assert rule_ids("import pandas as pd\npd.read_sql(q, c)", policy) == {"SK901"}
    assert rule_ids("df.to_sql('t', c)", policy) == {"SK902"}
    assert rule_ids("getattr(df, 'to_sql')", policy) == {"SK902"}
    assert not blocked("code = compile('1', 'f', 'eval')", policy)
    assert not blocked("obj.__dict__", policy)


def test_banned_and_allowed_magics() -> None:
    policy = Policy(banned_magics={"timeit"}, allowed_magics={"env"})
    assert blocked("%timeit 1", policy)
    assert not blocked("%env", policy)


def _no_print_rule(tree: ast.AST, source: str) -> Iterator[Violation]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "print":
            yield Violation(
                "ORG001", "high", 35, node.lineno, node.col_offset, "print — use logging"
            )


def _broken_rule(tree: ast.AST, source: str) -> Iterator[Violation]:
    raise ValueError("oops")


@pytest.fixture
def rules_module(monkeypatch: pytest.MonkeyPatch) -> str:
    module = types.ModuleType("org_rules_for_test")
    module.no_print = _no_print_rule  # type: ignore[attr-defined]
    module.broken = _broken_rule  # type: ignore[attr-defined]
    module.not_callable = 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "org_rules_for_test", module)
    return "org_rules_for_test"


def test_custom_rule_by_dotted_path(rules_module: str) -> None:
    policy = Policy.from_config(custom_rules=[f"{rules_module}:no_print"])
    result = validate("x = 1\nprint(x)", policy)
    (v,) = result.violations
    assert (v.rule_id, v.line, v.excerpt, v.score) == ("ORG001", 2, "print(x)", 35)
    assert result.blocked
    # the dotted form without a colon works too, and scores can be overridden
    policy = Policy(custom_rules=(f"{rules_module}.no_print",), rule_scores={"ORG001": 1})
    assert not validate("print(1)", policy).blocked


def test_custom_rule_callable_and_line_mapping() -> None:
    result = validate("\n\n%matplotlib inline\nprint(1)", Policy(custom_rules=(_no_print_rule,)))
    (v,) = result.violations
    assert v.line == 4


def test_failing_custom_rule_fails_closed(rules_module: str) -> None:
    result = validate("x = 1", Policy(custom_rules=(f"{rules_module}:broken",)))
    assert result.blocked and result.violations[0].rule_id == "SK900"
    assert "oops" in result.violations[0].message


def test_bad_custom_rule_path_is_a_config_error(rules_module: str) -> None:
    with pytest.raises(ConfigError):
        Policy.from_config(custom_rules=["no_such_module_xyz:rule"])
    with pytest.raises(ConfigError):
        Policy.from_config(custom_rules=[f"{rules_module}:not_callable"])
    # built directly, the policy defers the error to validate(), which fails closed
    result = validate("x = 1", Policy(custom_rules=("no_such_module_xyz:rule",)))
    assert result.blocked and result.violations[0].rule_id == "SK900"


def test_entry_point_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    import sandbox_kernel.validator as mod

    monkeypatch.setattr(mod.policy, "entry_point_rules", lambda: (("org", _no_print_rule, ""),))
    assert rule_ids("print(1)") == {"ORG001"}
    assert rule_ids("print(1)", Policy(entry_point_rules=False)) == set()


def test_policy_from_config_object_and_mapping() -> None:
    from sandbox_kernel.config import SandboxConfig

    cfg = SandboxConfig(validation="warn")
    policy = Policy.from_config(cfg)
    assert policy.mode == "warn" and policy.threshold == 30
    policy = Policy.from_config(
        {"validation": "block", "validation_threshold": "50", "banned_modules": "a, b"},
        allowed_magics=["env"],
    )
    assert policy.threshold == 50
    assert policy.banned_modules == frozenset({"a", "b"})
    assert policy.allowed_magics == frozenset({"env"})


@pytest.mark.parametrize(
    "values",
    [
        {"mode": "strict"},
        {"threshold": "high"},
        {"threshold": True},
        {"rule_scores": {"SK101": "x"}},
        {"banned_modules": [1, 2]},
        {"custom_rules": [3]},
        {"no_such_setting": 1},
    ],
)
def test_policy_rejects_bad_values(values: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Policy.from_config(**values)


def test_policy_is_immutable() -> None:
    policy = Policy(banned_modules={"x"})
    with pytest.raises(AttributeError):
        policy.mode = "off"  # type: ignore[misc]
    assert isinstance(policy.banned_modules, frozenset)
    with pytest.raises(TypeError):
        policy.rule_scores["SK101"] = 0  # type: ignore[index]


# -- result API --------------------------------------------------------------------


def test_to_json_shape_and_report() -> None:
    result = validate("import os\n")
    data = result.to_json()
    json.dumps(data)
    assert set(data) >= {"blocked", "risk_score", "violations", "syntax_error", "mode"}
    assert data["violations"][0] == {
        "rule_id": "SK101",
        "name": "dangerous-module",
        "severity": "critical",
        "score": 40,
        "line": 1,
        "column": 0,
        "message": "import of 'os' — 'os' gives shell, process and file-system access",
        "excerpt": "import os",
    }
    report = result.format_report().splitlines()
    assert report[0] == (
        "line 1, col 0: `import os`: import of 'os' — 'os' gives shell, process and file-system access "
        "[SK101 dangerous-module, score 40]"
    )
    assert report[-1].startswith("Cell blocked by the sandbox validator: risk score 40")


def test_report_of_a_clean_cell() -> None:
    assert validate("x = 1").format_report() == "No findings: risk score 0."


def test_typical_cell_is_fast() -> None:
    cell = textwrap.dedent(
        """\
        import numpy as np
        import pandas as pd
        prices = pd.read_csv('data/prices.csv', index_col=0, parse_dates=True)
        rets = prices.pct_change().dropna()
        signal = rets.rolling(20).mean() / rets.rolling(20).std()
        pnl = (np.sign(signal).shift(1) * rets).sum(axis=1)
        print(f"Sharpe {pnl.mean() / pnl.std() * np.sqrt(252):.2f}")
        """
    )
    validate(cell)
    runs = []
    for _ in range(50):
        started = time.perf_counter()
        validate(cell)
        runs.append(time.perf_counter() - started)
    assert sorted(runs)[len(runs) // 2] < 0.005  # p50 is ~0.2 ms; generous for CI
