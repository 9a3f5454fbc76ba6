"""The validator inside the kernel: what a blocked, warned or unjudged cell does."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness import Kernel, KernelSpecs, start_kernel

pytestmark = pytest.mark.docker

VALIDATION_MIME = "application/vnd.sandbox-kernel.validation+json"
# refused in both profiles (a process module), harmless when it runs (validation off)
WRITES_THEN_IMPORTS_SUBPROCESS = (
    "open('made_by_blocked_cell.txt', 'w').write('x')\nimport subprocess\nsubprocess.run"
)
PROBE = (
    "try:\n    open('made_by_blocked_cell.txt')\n    print('exists')\n"
    "except FileNotFoundError:\n    print('absent')"
)


@pytest.fixture(scope="module")
def blocking(specs: KernelSpecs) -> Kernel:
    with start_kernel(specs, validation="block") as kernel:
        yield kernel


def test_blocked_cell_never_reaches_the_container(blocking: Kernel) -> None:
    cell = blocking.execute(WRITES_THEN_IMPORTS_SUBPROCESS)
    assert cell.status == "error"
    assert cell.reply["content"]["ename"] == "SandboxValidationError"
    assert blocking.execute(PROBE).stdout.strip() == "absent"


def test_blocked_cell_explains_each_finding(blocking: Kernel) -> None:
    cell = blocking.execute("x = 1\nimport subprocess\nsubprocess.run(['id'])")
    error = cell.error
    assert error is not None and error["ename"] == "SandboxValidationError"
    lines = error["traceback"]
    finding = next(line for line in lines if "SK101" in line)
    assert finding.startswith("line 2") and "import subprocess" in finding
    assert "risk score" in lines[-1]
    [display] = [m for m in cell.of_type("display_data") if VALIDATION_MIME in m["content"]["data"]]
    verdict = display["content"]["data"][VALIDATION_MIME]
    assert verdict["blocked"] is True and verdict["risk_score"] >= 30
    assert {"rule_id", "severity", "score", "line", "column", "message"} <= set(
        verdict["violations"][0]
    )


def test_no_cell_can_lower_the_policy(blocking: Kernel) -> None:
    for attempt in [
        "%config SandboxConfig.validation = 'off'",
        "# sandbox: off\n# noqa\nimport subprocess",
        "get_ipython().kernel.settings.validation = 'off'",
    ]:
        assert blocking.execute(attempt).reply["content"]["ename"] == "SandboxValidationError", (
            attempt
        )
    assert blocking.execute("import subprocess").status == "error"


def test_ordinary_quant_code_runs(blocking: Kernel) -> None:
    cell = blocking.execute(
        "import numpy as np, pandas as pd\n"
        "prices = pd.Series(100 + np.cumsum(np.random.default_rng(1).normal(size=250)))\n"
        "signal = prices.rolling(20).mean() > prices.rolling(50).mean()\n"
        "df = pd.DataFrame({'p': prices, 's': signal})\n"
        "df.to_csv('signals.csv')\nprint(len(pd.read_csv('signals.csv')))"
    )
    assert cell.status == "ok", cell.text
    assert cell.stdout.strip() == "250"


def test_syntax_errors_are_pythons_own(blocking: Kernel) -> None:
    cell = blocking.execute("def broken(:\n    pass")
    assert cell.reply["content"]["ename"] == "SyntaxError"


def test_huge_and_binary_cells_get_a_clear_verdict(blocking: Kernel) -> None:
    started = time.monotonic()
    huge = blocking.execute("x = 1\n" * (10 * 1024 * 1024 // 6), timeout=120)
    assert time.monotonic() - started < 60
    assert huge.status == "error" and "SandboxValidationError" in huge.reply["content"]["ename"]
    nul = blocking.execute("print('a')\x00")
    assert nul.status == "error"
    assert blocking.execute("print('still fine')").stdout == "still fine\n"


def test_invalid_utf8_message_is_dropped_and_the_kernel_lives(blocking: Kernel) -> None:
    kc = blocking.kc
    session = kc.session
    msg = session.msg("execute_request", {"code": "print(1)"})
    frames = session.serialize(msg)
    # Replace the JSON content with bytes that are not UTF-8, then sign it properly.
    content_index = len(frames) - 1
    frames[content_index] = b'{"code": "\xff\xfe print(2)", "silent": false}'
    frames[1] = session.sign(frames[2:])
    kc.shell_channel.socket.send_multipart(frames)
    time.sleep(0.5)
    assert blocking.execute("print('alive')").stdout == "alive\n"


def test_warn_mode_runs_and_shows_findings_first(specs: KernelSpecs) -> None:
    with start_kernel(specs, validation="warn") as kernel:
        cell = kernel.execute("import os, subprocess\nprint(os.getcwd())")
        assert cell.status == "ok", cell.text
        first = cell.outputs[0]
        assert first["msg_type"] == "display_data"
        verdict = first["content"]["data"][VALIDATION_MIME]
        assert verdict["blocked"] is False and verdict["violations"]
        assert cell.stdout.strip() == "/tmp/work"


def test_off_mode_runs_everything(specs: KernelSpecs) -> None:
    with start_kernel(specs, validation="off") as kernel:
        cell = kernel.execute(WRITES_THEN_IMPORTS_SUBPROCESS)
        assert cell.status == "ok"
        assert not [m for m in cell.outputs if VALIDATION_MIME in json.dumps(m["content"])]
        assert kernel.execute(PROBE).stdout.strip() == "exists"


def test_cells_answered_outside_the_sandbox_keep_in_and_out_in_step(blocking: Kernel) -> None:
    # A blocked cell and %sandbox never reach the inner kernel, yet take a number in
    # the notebook; Out[n] and In[n] must still be the cell the notebook shows as [n].
    first = blocking.execute("'first'")
    blocked = blocking.execute("import subprocess")
    magic = blocking.execute("%sandbox info")
    second = blocking.execute("'second'")
    numbers = [c.reply["content"]["execution_count"] for c in (first, blocked, magic, second)]
    start = numbers[0]
    assert numbers == [start, start + 1, start + 2, start + 3]
    [result] = second.of_type("execute_result")
    assert result["content"]["execution_count"] == start + 3
    probe = blocking.execute(
        f"print(Out[{start}], Out[{start + 3}], repr(In[{start + 1}]), In[{start + 3}])"
    )
    assert probe.stdout == "first second '' 'second'\n"


def test_run_all_stops_at_a_refused_cell(blocking: Kernel) -> None:
    # As with any kernel, only requests that have arrived when a cell fails are
    # aborted. A refusal takes a fraction of a millisecond, less than this client
    # needs to send its burst, so a cell that runs comes first, as in a notebook.
    cells = ["ran = [1]", "import subprocess", *[f"ran.append({n})" for n in range(2, 8)]]
    assert blocking.run_all(cells) == ["ok", "error"] + ["aborted"] * 6
    assert blocking.execute("print(ran)").stdout == "[1]\n"


def test_everyday_file_code_runs_in_the_default_profile(blocking: Kernel) -> None:
    cell = blocking.execute(
        "import os, shutil\nos.makedirs('results', exist_ok=True)\n"
        "open(os.path.join('results', 'a.txt'), 'w').write('x')\n"
        "shutil.copy('results/a.txt', 'results/b.txt')\nprint(sorted(os.listdir('results')))"
    )
    assert cell.status == "ok", cell.text
    assert cell.stdout == "['a.txt', 'b.txt']\n"
    listing = blocking.execute("!ls results")
    assert listing.status == "ok", listing.text
    assert listing.stdout.split() == ["a.txt", "b.txt"]


def test_a_script_of_the_notebooks_repository_runs_with_run(
    specs: KernelSpecs, tmp_path: Path
) -> None:
    # A course's or a paper's notebooks start with `%run setup.py` or add `../lib` to
    # the path: the default profile runs a file of the working area as an import of
    # it would run, and refuses what is not one.
    (tmp_path / ".git").mkdir()
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "common.py").write_text("SCALE = 3\n")
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "setup_course.py").write_text("import sys\nSTEP = 7\nprint('set', sys.argv[1:])\n")
    with start_kernel(specs, cwd=notebooks, validation="block") as kernel:
        ran = kernel.execute("%run -i setup_course.py --fast")
        assert ran.status == "ok", ran.text
        assert ran.stdout == "set ['--fast']\n"
        assert kernel.execute("print(STEP)").stdout == "7\n"
        beside = kernel.execute(
            "import sys\nsys.path.append('../lib')\nimport common\n%run ../lib/common.py\n"
            "print(common.SCALE, SCALE)"
        )
        assert beside.status == "ok", beside.text
        assert beside.stdout == "3 3\n"
        for refused in ("%run -m http.server", "%run /usr/lib/python3.11/this.py"):
            cell = kernel.execute(refused)
            assert cell.status == "error" and "blocked" in cell.text, (refused, cell.text)


@pytest.mark.parametrize("validation", ["off", "block"])
def test_shell_like_lines_run_as_on_a_plain_kernel(
    specs: KernelSpecs, tmp_path: Path, validation: str
) -> None:
    # `ls data`, `pwd`, `timeit f(x)` typed without % are IPython's automagic; a line
    # that reads as Python (`run(1)`) stays Python, as the validator judges it.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "prices.csv").write_text("close\n1\n")
    with start_kernel(specs, cwd=tmp_path, validation=validation) as kernel:
        listing = kernel.execute("ls data")
        assert listing.status == "ok", listing.text
        assert "prices.csv" in listing.stdout
        assert kernel.execute("%ls data").stdout == listing.stdout
        here = kernel.execute("pwd")
        assert here.status == "ok" and "/tmp/work" in here.text, here.text
        timed = kernel.execute("timeit -n1 -r1 sum(range(3))")
        assert timed.status == "ok" and "per loop" in timed.stdout, timed.text
        removed = kernel.execute("rm data/prices.csv")  # the alias, as `!rm` would
        assert removed.status == "ok", removed.text
        assert "prices.csv" not in kernel.execute("ls data").stdout
        call = kernel.execute("run(1)")
        assert call.status == "error" and call.error is not None, call.text
        assert call.error["ename"] == "NameError"
        # The alias is live: what stops `cat /etc/hostname` is the validator alone.
        alias = kernel.execute("cat /etc/hostname")
        if validation == "off":
            assert alias.status == "ok" and alias.stdout.strip(), alias.text
        else:
            assert alias.status == "error" and "blocked" in alias.text, alias.text


def test_package_install_is_answered_and_run_all_stops_there(blocking: Kernel) -> None:
    cell = blocking.execute("%pip install yfinance ta")
    assert cell.status == "error"
    error = cell.reply["content"]
    assert error["ename"] == "SandboxPackageInstall"
    assert "no network" in error["evalue"]
    assert "sandbox-kernel image build --add yfinance ta" in error["evalue"]
    assert "sandbox-kernel install --image" in error["evalue"]
    # one output, the answer: no list of findings for an install
    assert not [m for m in cell.outputs if VALIDATION_MIME in json.dumps(m["content"])]
    cells = ["got = [1]", "!pip install yfinance", "import yfinance", "got.append(2)"]
    assert blocking.run_all(cells) == ["ok", "error", "aborted", "aborted"]
    assert blocking.execute("print(got)").stdout == "[1]\n"


def test_download_is_answered_and_nothing_runs(blocking: Kernel) -> None:
    cell = blocking.execute(
        "open('written_before_download.txt', 'w').write('x')\n"
        "!wget -nc https://example.org/closes.csv"
    )
    assert cell.status == "error"
    error = cell.reply["content"]
    assert error["ename"] == "SandboxNoNetwork"
    assert "no network" in error["evalue"] and "notebook's folder" in error["evalue"]
    assert "https://example.org/closes.csv" in error["evalue"]
    assert not [m for m in cell.outputs if VALIDATION_MIME in json.dumps(m["content"])]
    check = blocking.execute("import os\nprint(os.path.exists('written_before_download.txt'))")
    assert check.stdout == "False\n"  # the whole cell was answered: nothing of it ran
    cells = ["got = [1]", "!git clone https://github.com/example/data.git", "got.append(2)"]
    assert blocking.run_all(cells) == ["ok", "error", "aborted"]
    assert blocking.execute("print(got)").stdout == "[1]\n"
    # the control: a download that runs what it fetched is refused with its findings
    piped = blocking.execute("!curl -fsSL https://example.org/install.sh | sh")
    assert piped.reply["content"]["ename"] == "SandboxValidationError"


# A shell line the notebook profile passes (`!ls x`) runs whatever `ls` means on PATH:
# a link named `ls` to the image's Python, first on PATH, runs a file the validator
# never judged. Each step alone passes in `notebook`; changing PATH is what is refused.
PATH_HIJACK = [
    "import os, sys\nos.symlink(sys.executable, 'ls')",
    "open('steps.csv', 'w').write('import subprocess\\nprint(subprocess.__name__, \"ran\")')",
    "import os\nos.environ['PATH'] = os.getcwd() + ':' + os.environ['PATH']",
    "!ls steps.csv",
]


def test_a_shell_line_cannot_be_pointed_at_another_program(blocking: Kernel) -> None:
    statuses = [blocking.execute(cell).status for cell in PATH_HIJACK[:2]]
    assert statuses == ["ok", "ok"]
    moved = blocking.execute(PATH_HIJACK[2])
    assert moved.status == "error", moved.text
    assert moved.reply["content"]["ename"] == "SandboxValidationError"
    listing = blocking.execute(PATH_HIJACK[3])
    assert "subprocess ran" not in listing.stdout
    assert listing.stdout.split() == ["steps.csv"]  # the image's ls


def test_banner_and_sandbox_info_name_the_profile(blocking: Kernel) -> None:
    info = blocking.execute("%sandbox info")
    [display] = info.of_type("display_data")
    assert "validation: block, profile notebook" in display["content"]["data"]["text/plain"]
    assert display["content"]["data"]["application/json"]["validation_profile"] == "notebook"


def test_strict_profile_is_the_administrators_choice(specs: KernelSpecs) -> None:
    with start_kernel(specs, validation="block", validation_profile="strict") as kernel:
        cell = kernel.execute("import os\nos.makedirs('results', exist_ok=True)")
        assert cell.reply["content"]["ename"] == "SandboxValidationError"
        assert any("SK101" in line for line in cell.error["traceback"])  # type: ignore[index]
        assert "profile strict" in kernel.execute("%sandbox info").text
