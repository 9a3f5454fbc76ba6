"""The environment family: no cell may change which program a shell line runs (SK103)."""

from __future__ import annotations

import pytest

from sandbox_kernel.validator import Policy, validate

NOTEBOOK = Policy(profile="notebook")
STRICT = Policy(profile="strict")


@pytest.mark.parametrize(
    "source",
    [
        'import os\nos.environ["PATH"] = ".:" + os.environ["PATH"]',
        'from os import environ as E\nE["LD_PRELOAD"] = "./x.so"',
        'os.environ.update(PATH=".")',
        'os.environ.update({"GCONV_PATH": "."})',
        "os.environ.update(settings)",
        'os.environ.setdefault("LD_LIBRARY_PATH", ".")',
        'os.environ |= {"SHELL": "./sh"}',
        'os.putenv("PATH", ".")',
        'del os.environ["PATH"]',
        "os.environ[key] = value",
        'env = os.environ\nenv["PATH"] = "."',
        "configure(os.environ)",
        'os.environ.data[b"PATH"] = b"."',
        'os.environ._data[b"PATH"] = b"."',
        'setter = os.environ.update\nsetter(PATH=".")',
        'os.environ.putenv("PATH", ".")',
        "%env PATH=/tmp/work:/usr/bin",
        "%set_env LD_PRELOAD libx.so",
        "%env $name=1",
    ],
)
def test_changing_what_a_shell_line_runs_is_refused(source: str) -> None:
    for policy in (NOTEBOOK, STRICT):
        assert validate(source, policy).blocked, source


@pytest.mark.parametrize(
    "source",
    [
        'import os\nos.environ["CUDA_VISIBLE_DEVICES"] = "-1"',
        'os.environ["TF_CONFIG"] = json.dumps(cfg)',
        'os.environ.setdefault("HF_HUB_OFFLINE", "1")',
        'os.environ.update({"OMP_NUM_THREADS": "1"}, MKL_NUM_THREADS="1")',
        'token = os.environ.get("API_TOKEN")',
        "for key, value in sorted(os.environ.items()):\n    print(key, value)",
        'os.environ.pop("HTTP_PROXY", None)',
        'home = os.environ["HOME"]',
        '"COLAB_GPU" in os.environ',
        "for key in os.environ:\n    print(key)",
        "print(dict(os.environ))",
        "%env MASTER_PORT=8891",
        "%env",
    ],
)
def test_everyday_environment_use_passes_in_notebook(source: str) -> None:
    result = validate(source, NOTEBOOK)
    assert not result.blocked and not result.violations, result.format_report()
