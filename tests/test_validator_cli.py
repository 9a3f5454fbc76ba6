"""The ``validate`` command on real files: exit codes, text report and JSON shape."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox_kernel import validate_cli
from sandbox_kernel.validate_cli import add_arguments, main, run


def notebook(*cells: tuple[str, str | list[str]]) -> str:
    return json.dumps(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {},
            "cells": [
                {"cell_type": kind, "source": source, "metadata": {}, "outputs": []}
                for kind, source in cells
            ],
        }
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "clean.py": "import numpy as np\nx = np.arange(3)\n",
        "bad.py": "import subprocess\nsubprocess.run(['id'])\n",
        "clean.ipynb": notebook(
            ("markdown", "# Title\nimport os is fine in markdown"),
            ("code", ["%matplotlib inline\n", "import pandas as pd\n"]),
            ("code", "df = pd.read_csv('data/x.csv')"),
        ),
        "bad.ipynb": notebook(
            ("code", "x = 1"),
            ("markdown", "text"),
            ("code", ["!cat /etc/passwd\n"]),
            ("code", "eval('1')"),
        ),
        "broken.ipynb": "{not json",
        "notebook-shaped.ipynb": json.dumps({"cells": "nope"}),
        "syntax.py": "def f(:\n    pass\n",
    }
    out = {}
    for name, text in paths.items():
        out[name] = tmp_path / name
        out[name].write_text(text, encoding="utf-8")
    return out


def invoke(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_clean_files_exit_0(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = invoke(capsys, str(files["clean.py"]), str(files["clean.ipynb"]))
    assert code == 0
    assert "0 blocked" in out


def test_blocked_cell_exits_1(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = invoke(capsys, str(files["clean.py"]), str(files["bad.ipynb"]))
    assert code == 1
    assert f"{files['bad.ipynb']} cell 2: BLOCKED" in out
    assert "[SK601 shell-escape, score 50]" in out
    assert f"{files['bad.ipynb']} cell 3: BLOCKED" in out
    assert "2 blocked" in out


def test_unreadable_input_exits_2(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert invoke(capsys, str(files["broken.ipynb"]))[0] == 2
    assert invoke(capsys, str(files["notebook-shaped.ipynb"]))[0] == 2
    code, out = invoke(capsys, str(tmp_path / "missing.py"), str(files["bad.py"]))
    assert code == 2  # an unreadable input wins over a blocked cell
    assert "no such file" in out


def test_json_shape(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = invoke(capsys, "--json", str(files["bad.ipynb"]), str(files["bad.py"]))
    assert code == 1
    data = json.loads(out)
    assert list(data) == ["files"]
    nb, py = data["files"]
    assert nb["path"] == str(files["bad.ipynb"])
    assert [c["index"] for c in nb["cells"]] == [0, 2, 3]
    first, shell, evil = nb["cells"]
    assert set(first) >= {"index", "blocked", "risk_score", "violations"}
    assert first == {
        "index": 0,
        "blocked": False,
        "risk_score": 0,
        "violations": [],
        "syntax_error": None,
        "answer": None,
    }
    assert shell["blocked"] and shell["violations"][0]["rule_id"] == "SK601"
    assert shell["violations"][0]["line"] == 1
    assert evil["violations"][0]["rule_id"] == "SK201"
    assert py["cells"][0]["index"] == 0 and py["cells"][0]["blocked"]


def test_json_reports_unreadable_files(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = invoke(capsys, "--json", str(files["broken.ipynb"]))
    assert code == 2
    (entry,) = json.loads(out)["files"]
    assert entry["cells"] == [] and "cannot parse notebook" in entry["error"]


def test_policy_and_threshold_options(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert invoke(capsys, "--policy", "warn", str(files["bad.ipynb"]))[0] == 0
    assert invoke(capsys, "--policy", "off", str(files["bad.py"]))[0] == 0
    assert invoke(capsys, "--threshold", "1000", str(files["bad.py"]))[0] == 0
    assert invoke(capsys, "--threshold", "40", str(files["bad.py"]))[0] == 1


def test_syntax_error_is_reported_but_not_blocking(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = invoke(capsys, str(files["syntax.py"]))
    assert code == 0
    assert "syntax error" in out


def test_folders_are_searched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / "sub" / "a.py").write_text("x = 1\n")
    (tmp_path / "sub" / "b.ipy").write_text("!curl example.org\n")
    (tmp_path / ".ipynb_checkpoints" / "c.py").write_text("import os\n")
    (tmp_path / "notes.txt").write_text("import os\n")
    code, out = invoke(capsys, "--json", str(tmp_path))
    assert code == 1
    paths = [Path(f["path"]).name for f in json.loads(out)["files"]]
    assert paths == ["a.py", "b.ipy"]


def test_invalid_utf8_file_is_judged_not_crashed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bin.py"
    path.write_bytes(b"x = 1\n\xff\xfe\n")
    code, out = invoke(capsys, str(path))
    assert code == 1 and "SK801" in out


def test_subparser_integration(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    # the main CLI creates the subparser and calls these two functions
    parser = argparse.ArgumentParser(prog="sandbox-kernel")
    sub = parser.add_subparsers(dest="command")
    add_arguments(sub.add_parser("validate"))
    args = parser.parse_args(["validate", "--json", str(files["clean.py"])])
    assert run(args) == 0
    assert json.loads(capsys.readouterr().out)["files"][0]["cells"][0]["blocked"] is False


def test_runs_as_a_module(files: dict[str, Path]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox_kernel.validate_cli", str(files["bad.py"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "SK101" in proc.stdout


def test_exit_codes_are_documented() -> None:
    assert (validate_cli.EXIT_OK, validate_cli.EXIT_BLOCKED, validate_cli.EXIT_ERROR) == (0, 1, 2)


def test_old_format_notebooks_are_upgraded_and_judged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # nbformat 3 keeps cells in worksheets and calls a cell's source "input"
    v3 = {
        "nbformat": 3,
        "nbformat_minor": 0,
        "metadata": {"name": "old"},
        "worksheets": [
            {
                "cells": [
                    {"cell_type": "code", "input": "x = 1", "language": "python", "outputs": []},
                    {"cell_type": "markdown", "source": "text"},
                    {
                        "cell_type": "code",
                        "input": "!curl evil.example",
                        "language": "python",
                        "outputs": [],
                    },
                ]
            }
        ],
    }
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(v3))
    code, out = invoke(capsys, "--json", str(path))
    assert code == 1  # judged, not "unreadable" (2)
    cells = json.loads(out)["files"][0]["cells"]
    assert [(c["index"], c["blocked"]) for c in cells] == [(0, False), (2, True)]


def test_notebooks_in_other_languages_are_skipped_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r_notebook = json.loads(notebook(("code", "system('id')\nlibrary(ggplot2)")))
    r_notebook["metadata"] = {"kernelspec": {"name": "ir", "language": "R"}}
    (tmp_path / "r.ipynb").write_text(json.dumps(r_notebook))
    code, out = invoke(capsys, str(tmp_path / "r.ipynb"))
    assert code == 0
    assert "skipped (kernel language is r, not Python)" in out
    code, out = invoke(capsys, "--json", str(tmp_path / "r.ipynb"))
    assert json.loads(out)["files"][0]["skipped"] == "kernel language is r, not Python"


def test_profile_option_judges_as_the_kernel_or_the_sandbox_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "paths.py"
    path.write_text("import os\nos.makedirs('results', exist_ok=True)\n")
    assert invoke(capsys, str(path))[0] == 0  # the kernel's default: notebook
    assert invoke(capsys, "--profile", "notebook", str(path))[0] == 0
    code, out = invoke(capsys, "--profile", "strict", str(path))
    assert code == 1 and "SK101" in out


def test_answered_cells_are_blocked_and_say_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fetch.ipynb"
    path.write_text(
        notebook(("code", "!wget -nc https://example.org/closes.csv"), ("code", "x = 1"))
    )
    code, out = invoke(capsys, str(path))
    assert code == 1  # the kernel runs nothing of that cell: CI must see it
    assert "cell 0: BLOCKED, answered with SandboxNoNetwork" in out
    code, out = invoke(capsys, "--json", str(path))
    [cell] = [c for c in json.loads(out)["files"][0]["cells"] if c["blocked"]]
    assert cell["answer"]["ename"] == "SandboxNoNetwork"
    assert "notebook's folder" in cell["answer"]["evalue"]
    code, out = invoke(capsys, "--profile", "strict", str(path))
    assert code == 1 and "SK601" in out and "answered with" not in out
