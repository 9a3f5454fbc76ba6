"""A notebook in a repository reads above its folder, as on a plain kernel.

Research and course repositories keep their notebooks in subfolders and their data,
helpers and figures next to them: ``pd.read_csv("../../data/x.csv")``,
``sys.path.append("../dx")``. With ``workspace_root = "repository"`` (the default) the
sandbox gets the repository (the nearest parent folder holding ``.git``) with the
kernel at the notebook's place in it; hidden files (``.git``, ``.env``) still stay out.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_workspace import execute, run_as_on_a_plain_kernel

from sandbox_kernel import Sandbox
from sandbox_kernel.workspace import repository_top

from harness import IMAGE, KernelSpecs, start_kernel


def make_repository(root: Path, *, extra_files: int = 0) -> Path:
    """A research repository; returns the notebook's folder, two levels down."""
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".env").write_text("TOKEN=secret\n")
    (root / "data").mkdir()
    (root / "data" / "prices.csv").write_text("date,close\n2024-01-02,101.5\n2024-01-03,102.25\n")
    (root / "data" / "rates.csv").write_text("date,rate\n2024-01-02,0.05\n")
    for index in range(extra_files):
        (root / "data" / f"extra{index}.csv").write_text("x\n1\n")
    (root / "lib").mkdir()
    (root / "lib" / "factors.py").write_text(
        "NAME = 'factors'\n\ndef double(x):\n    return 2 * x\n"
    )
    (root / "lib" / "setup_vars.py").write_text("HORIZON = 21\nprint('setup ran')\n")
    folder = root / "notebooks" / "momentum"
    folder.mkdir(parents=True)
    (folder / "params.json").write_text('{"window": 5}\n')
    return folder


#: Cells reaching above the notebook's folder, as repository notebooks do.
NOTEBOOK = [
    "import os\nos.path.relpath(os.getcwd(), os.path.abspath('../..'))",
    "print(open('../../data/prices.csv').read())",
    "import sys\nsys.path.append('../../lib')\nimport factors\nprint(factors.NAME, factors.double(21))",
    "%run ../../lib/setup_vars.py\nprint(HORIZON)",
    "import glob\nsorted(glob.glob('../../data/*.csv'))",
    "import json\nprint(json.load(open('params.json')))",
    "os.makedirs('outputs', exist_ok=True)\nopen('outputs/signal.txt', 'w').write('long')",
    "open('../../data/missing.csv')",
]


def test_a_notebook_in_a_repository_runs_as_in_a_plain_kernel(
    specs: KernelSpecs, tmp_path: Path
) -> None:
    plain_dir = make_repository(tmp_path / "plain")
    sandbox_dir = make_repository(tmp_path / "sandbox")
    got = run_as_on_a_plain_kernel(specs, plain_dir, sandbox_dir, NOTEBOOK)
    with start_kernel(specs, cwd=sandbox_dir) as kernel:
        hidden = execute(
            kernel, "import os\nprint(os.path.exists('../../.git'), os.path.exists('../../.env'))"
        )
        assert hidden.stdout == "False False\n"  # hidden files stay out of the copy
    assert "FileNotFoundError" in got[-1]  # the comparison can see a failure
    assert (sandbox_dir / "outputs" / "signal.txt").read_text() == "long"


def test_with_workspace_root_folder_paths_above_the_folder_are_missing(
    specs: KernelSpecs, tmp_path: Path
) -> None:
    """The control: the folder alone has no ../../data."""
    folder = make_repository(tmp_path / "repo")
    with start_kernel(specs, cwd=folder, workspace_root="folder") as kernel:
        assert "FileNotFoundError" in execute(kernel, NOTEBOOK[1]).text
        assert execute(kernel, NOTEBOOK[5]).stdout == "{'window': 5}\n"


def test_a_repository_over_a_cap_falls_back_to_the_folder_and_says_so(
    specs: KernelSpecs, tmp_path: Path
) -> None:
    folder = make_repository(tmp_path / "repo", extra_files=12)
    with start_kernel(specs, cwd=folder, workspace_max_files=10) as kernel:
        first = execute(kernel, "import json\nprint(json.load(open('params.json')))")
        assert first.stdout == "{'window': 5}\n"
        assert "workspace_max_files" in first.stderr
        assert "workspace_root='folder'" in first.stderr and "../data" in first.stderr
        assert "FileNotFoundError" in execute(kernel, NOTEBOOK[1]).text
        # Said once.
        assert execute(kernel, "print(1)").stderr == ""


def test_the_repository_is_the_nearest_git_folder_but_never_home_or_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_repository(tmp_path / "repo")
    assert repository_top(folder, hidden=False) == tmp_path / "repo"
    assert repository_top(tmp_path / "repo", hidden=False) == tmp_path / "repo"
    assert repository_top(tmp_path, hidden=False) is None  # no .git above
    hidden = tmp_path / "repo" / ".notebooks" / "x"
    hidden.mkdir(parents=True)
    assert repository_top(hidden, hidden=False) is None  # its copy would leave it out
    assert repository_top(hidden, hidden=True) == tmp_path / "repo"
    # A dotfiles repository in the home folder is not the notebook's project.
    home = tmp_path / "home"
    (home / ".git").mkdir(parents=True)
    (home / "work").mkdir()
    monkeypatch.setenv("HOME", str(home))
    assert repository_top(home / "work", hidden=False) is None


def test_the_sandbox_api_reads_and_writes_at_the_notebooks_place(tmp_path: Path) -> None:
    """With a repository copied, ``write_file``/``read_file`` stay relative to the
    working directory, the folder given, not the repository's top."""
    folder = make_repository(tmp_path / "repo")

    async def scenario() -> tuple[str, bytes]:
        async with Sandbox(image=IMAGE, warm_spare=False, validation="off", folder=folder) as sb:
            await sb.write_file("inputs/w.csv", b"w\n0.5\n")
            cell = await sb.execute(
                "import os\nprint(open('inputs/w.csv').read().split()[1], "
                "open('../../data/rates.csv').read().split()[1])\n"
                "open('result.txt', 'w').write(os.path.basename(os.getcwd()))"
            )
            return cell.stdout, await sb.read_file("result.txt")

    stdout, result = asyncio.run(scenario())
    assert stdout == "0.5 2024-01-02,0.05\n"
    assert result == b"momentum"


def test_after_the_sandbox_restarts_the_kernel_is_at_the_notebooks_place_again(
    specs: KernelSpecs, tmp_path: Path
) -> None:
    folder = make_repository(tmp_path / "repo")
    with start_kernel(specs, cwd=folder) as kernel:
        assert execute(kernel, NOTEBOOK[0]).text == "'notebooks/momentum'"
        died = kernel.execute("import os; os._exit(3)")
        assert died.error is not None and died.error["ename"] == "SandboxRestarted"
        assert execute(kernel, NOTEBOOK[0]).text == "'notebooks/momentum'"
        assert execute(kernel, NOTEBOOK[5]).stdout == "{'window': 5}\n"
