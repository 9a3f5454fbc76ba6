"""The two profiles: who gets which, and what ``strict`` keeps from the original executor."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from sandbox_kernel.config import SandboxConfig
from sandbox_kernel.errors import ConfigError
from sandbox_kernel.sandbox import Sandbox
from sandbox_kernel.validator import PROFILES, Policy, Violation, node_rule, validate
from sandbox_kernel.validator.walker import Walker

from validator_checks import NOTEBOOK, STRICT, blocked, rule_ids

# The executor this project grew from refused these with a risk score of at least 30
# (its status report's "dangerous os / eval / file I/O detection" and "block code with
# os / eval / file I/O" tests); strict keeps every one.
EXECUTOR_REFUSED = [
    "import os\nos.listdir('.')",
    "import os",
    "from os import path",
    "import subprocess\nsubprocess.run(['ls'])",
    "import socket\nsocket.socket()",
    "eval('2 + 2')",
    "exec('x = 1')",
    "with open('/tmp/test_file.txt', 'w') as f:\n    f.write('x')\nopen('/etc/passwd').read()",
    "%%writefile out.py\nprint(1)",
    "import shutil\nshutil.copy('a', 'b')",
]


@pytest.mark.parametrize("source", EXECUTOR_REFUSED)
def test_strict_keeps_the_original_executors_refusals(source: str) -> None:
    for result in (validate(source), validate(source, STRICT)):
        assert result.blocked and result.risk_score >= 30, result.format_report()
        assert result.profile == "strict"


def test_strict_is_the_library_and_sandbox_api_default() -> None:
    assert Policy().profile == "strict"
    assert Sandbox().policy().profile == "strict"  # builds no container
    assert Sandbox(validation_profile="notebook").policy().profile == "notebook"


def test_the_kernel_default_is_notebook_unless_the_administrator_says() -> None:
    sandbox = Sandbox(SandboxConfig())
    sandbox.default_profile = "notebook"  # what the kernel sets
    assert sandbox.policy().profile == "notebook"
    chosen = Sandbox(SandboxConfig(validation_profile="strict"))
    chosen.default_profile = "notebook"
    assert chosen.policy().profile == "strict"


def test_profile_settings_are_checked() -> None:
    assert Policy.from_config({"validation_profile": "notebook"}).profile == "notebook"
    assert Policy.from_config(SandboxConfig(validation_profile="strict")).profile == "strict"
    with pytest.raises(ConfigError, match="profile"):
        Policy(profile="lax")  # type: ignore[arg-type]
    assert set(PROFILES) == {"notebook", "strict"}


def test_modes_and_rule_scores_work_in_both_profiles() -> None:
    for profile in ("notebook", "strict"):
        warn = validate("import subprocess", Policy(profile=profile, mode="warn"))
        assert not warn.blocked and "SK101" in {v.rule_id for v in warn.violations}
        off = validate("import subprocess", Policy(profile=profile, mode="off"))
        assert not off.blocked and off.violations == []
        lowered = Policy(profile=profile, rule_scores={"SK101": 5})
        assert not blocked("import subprocess", lowered)
    # an administrator can make a notebook note a refusal again
    assert blocked("%watermark", Policy(profile="notebook", rule_scores={"SK603": 30}))


@node_rule(ast.Call)
def _no_sleep(walker: Walker, node: ast.Call) -> None:
    if walker.resolve(node.func) == "time.sleep":
        walker.emit("ORG100", node, "time.sleep() wastes the sandbox's time", score=40)


def _no_print(tree: ast.AST, source: str) -> list[Violation]:
    return [
        Violation("ORG101", "low", 40, n.lineno, n.col_offset, "print() is banned here")
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"
    ]


def test_custom_rules_use_the_same_registration_in_both_profiles() -> None:
    for profile in ("notebook", "strict"):
        policy = Policy(profile=profile, custom_rules=(_no_sleep, _no_print))
        assert rule_ids("import time\ntime.sleep(1)", policy) == {"ORG100"}
        assert rule_ids("print(1)", policy) == {"ORG101"}
        assert not blocked("import time\ntime.time()", policy)


def test_verdict_names_its_profile() -> None:
    assert validate("x = 1", NOTEBOOK).to_json()["profile"] == "notebook"
    assert validate("x = 1", STRICT).to_json()["profile"] == "strict"


def test_install_writes_the_profile_into_the_kernelspec(tmp_path: Path) -> None:
    from sandbox_kernel.cli import main

    assert main(["install", "--prefix", str(tmp_path), "--validation-profile", "strict"]) == 0
    [spec] = tmp_path.glob("share/jupyter/kernels/*/kernel.json")
    argv = json.loads(spec.read_text())["argv"]
    assert "--SandboxConfig.validation_profile=strict" in argv
    with pytest.raises(SystemExit):
        main(["install", "--prefix", str(tmp_path), "--validation-profile", "lax"])
