"""``sandbox-kernel reproduce``: the example reproduces; a changed output is reported.

Notebooks are executed by nbclient against the real kernel and saved; the command then
runs them again in the environment they record (the same image by digest, limits and
profile), through the installed kernel module and the real engine.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import nbformat
import pytest

from sandbox_kernel.compare import Tolerance

from harness import EXAMPLE, KernelSpecs, execute_example, execute_notebook

pytestmark = pytest.mark.docker


def _reproduce(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox_kernel", "reproduce", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def saved(
    docker_client: docker.DockerClient, specs: KernelSpecs, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return execute_example(specs, tmp_path_factory.mktemp("reproduce"), validation="block")


def test_example_notebook_reproduces(saved: Path) -> None:
    result = _reproduce("--json", str(saved))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["identical"] is True
    assert [c["status"] for c in report["cells"]] == ["identical"] * 5
    assert report["image"] == _load(saved)["metadata"]["language_info"]["sandbox"]["image_ref"]
    # The usage lines are there side by side, not compared.
    first = report["cells"][0]["usage"]
    assert "wall" in first["saved"][0] and "wall" in first["now"][0]


def test_changed_outputs_are_differences(saved: Path, tmp_path: Path) -> None:
    notebook = _load(saved)
    cell = notebook["cells"][4]  # prints the best parameters and draws the equity curve
    for output in cell["outputs"]:
        if output["output_type"] == "stream":
            output["text"] = "".join(output["text"]).replace("best: fast=", "best: fast=9")
        elif "image/png" in output.get("data", {}):
            png = bytearray(base64.b64decode("".join(output["data"]["image/png"])))
            png[-20] ^= 0xFF
            output["data"]["image/png"] = base64.b64encode(bytes(png)).decode()
    changed = saved.parent / "changed.ipynb"  # beside it: the same data folder
    changed.write_text(json.dumps(notebook))

    result = _reproduce("--json", str(changed))
    assert result.returncode == 1, result.stdout + result.stderr
    cells = {c["index"]: c for c in json.loads(result.stdout)["cells"]}
    assert cells[4]["status"] == "different"
    found = "\n".join(cells[4]["differences"])
    assert "stream stdout" in found and "best: fast=" in found
    assert "image/png differs" in found
    assert all(cells[i]["status"] == "identical" for i in (1, 2, 3, 5))

    text = _reproduce(str(changed))
    assert text.returncode == 1
    assert "cell 4 [4]: different" in text.stdout
    assert "4 identical, 1 different, 0 failed" in text.stdout


def test_a_cell_that_raises_now_is_reported_failed(saved: Path, tmp_path: Path) -> None:
    notebook = _load(saved)
    notebook["cells"][2]["source"] = "raise RuntimeError('not any more')"
    path = tmp_path / "fails.ipynb"
    path.write_text(json.dumps(notebook))
    result = _reproduce("--json", str(path))
    assert result.returncode == 1
    cells = {c["index"]: c for c in json.loads(result.stdout)["cells"]}
    assert cells[2]["status"] == "failed"


def test_a_missing_image_is_named_with_how_to_get_it(saved: Path, tmp_path: Path) -> None:
    notebook = _load(saved)
    record = notebook["metadata"]["language_info"]["sandbox"]
    record["image_ref"] = "example.org/sandbox-kernel@sha256:" + "0" * 64
    path = tmp_path / "elsewhere.ipynb"
    path.write_text(json.dumps(notebook))
    result = _reproduce(str(path))
    assert result.returncode == 2
    assert "not on this Docker engine" in result.stderr
    assert f"docker pull {record['image_ref']}" in result.stderr
    assert "sandbox-kernel image build" in result.stderr


def test_a_notebook_that_records_no_environment_is_unrunnable(tmp_path: Path) -> None:
    result = _reproduce(str(EXAMPLE))  # never run, so it records nothing
    assert result.returncode == 2
    assert "records no sandbox environment" in result.stderr
    bad = tmp_path / "bad.ipynb"
    bad.write_text("[]")
    assert _reproduce(str(bad)).returncode == 2


def test_addresses_differ_unless_tolerated(
    docker_client: docker.DockerClient, specs: KernelSpecs, tmp_path: Path
) -> None:
    notebook = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    notebook.cells = [
        nbformat.v4.new_code_cell("class Thing:\n    pass\nprint(Thing())"),  # type: ignore[no-untyped-call]
        nbformat.v4.new_code_cell("print(round(2 / 3, 6))"),  # type: ignore[no-untyped-call]
    ]
    notebook.metadata["kernelspec"] = {
        "name": "sandbox",
        "display_name": "sandbox",
        "language": "python",
    }
    execute_notebook(notebook, specs)
    path = tmp_path / "addresses.ipynb"
    nbformat.write(notebook, path)

    strict = _reproduce("--json", str(path))
    assert strict.returncode == 1, strict.stdout + strict.stderr
    cells = json.loads(strict.stdout)["cells"]
    assert cells[0]["status"] == "different" and "0x" in "".join(cells[0]["differences"])
    assert cells[1]["status"] == "identical"

    tolerant = _reproduce("--json", "--ignore-addresses", str(path))
    assert tolerant.returncode == 0, tolerant.stdout + tolerant.stderr


def test_tolerances_cover_what_legitimately_varies() -> None:
    exact = Tolerance()
    assert exact.text("took 1.25 s at 0x7f00aa10") == "took 1.25 s at 0x7f00aa10"
    timings = Tolerance(timings=True)
    assert timings.text("took 1.25 s, 35 ms, 12.3it/s [00:01<00:02]") == timings.text(
        "took 2.5 s, 3 ms, 99it/s [00:03<00:00]"
    )
    assert Tolerance(addresses=True).text("<A at 0x7f00aa10>") == "<A at 0x…>"
    floats = Tolerance(float_digits=6)
    assert floats.text("0.30000000000000004 and 1.0000001") == floats.text("0.3 and 1.0")
    assert floats.text("0.31") != floats.text("0.3")


# -- a notebook's record is a claim, not a configuration ----------------------------------
#
# `reproduce` runs notebooks that come from elsewhere (a paper's repository). Their
# environment record is data written by whoever saved the file: it may ask for the host's
# network, no validation, no limits. The run keeps this machine's settings wherever the
# record would loosen them, and says which recorded values it did not use.

_PROBES = [
    # the network namespace: "none" leaves only loopback; the host's has more (the path
    # is built so that the validator, which is not what this test is about, passes it)
    "import os; where = '/'.join(['', 'sys', 'class', 'net'])\n"
    "print('interfaces:', sorted(os.listdir(where)))",
    # a capability the notebook profile refuses: runs only with validation off
    "import subprocess; print('shell ran:', subprocess.run(['true']).returncode == 0)",
]


def _hostile_record(saved: Path, folder: Path) -> Path:
    notebook = _load(saved)
    record = notebook["metadata"]["language_info"]["sandbox"]
    record["limits"].update(network="host", memory="64g", pids=100_000)
    record["validation"] = "off"
    record["validation_profile"] = "notebook"
    notebook["cells"] += [
        nbformat.v4.new_code_cell(probe)  # type: ignore[no-untyped-call]
        for probe in _PROBES
    ]
    path = folder / "hostile.ipynb"
    path.write_text(json.dumps(notebook))
    return path


def _probe_outputs(path: Path) -> str:
    cells = _load(path)["cells"][-len(_PROBES) :]
    return json.dumps([cell["outputs"] for cell in cells])


def test_a_recorded_environment_cannot_loosen_the_sandbox(saved: Path, tmp_path: Path) -> None:
    path = _hostile_record(saved, saved.parent)
    rerun = tmp_path / "rerun.ipynb"
    result = _reproduce("--json", "--write", str(rerun), str(path))
    assert result.returncode == 1, result.stdout + result.stderr  # the probes differ
    seen = _probe_outputs(rerun)
    assert "interfaces: ['lo']" in seen, seen
    assert "shell ran: True" not in seen and "blocked by the sandbox validator" in seen, seen
    report = json.loads(result.stdout)
    kept = "\n".join(report["not_used"])
    for name in ("network", "memory", "pids", "validation"):
        assert name in kept, kept


def test_recorded_looser_settings_need_the_users_own_flag(saved: Path, tmp_path: Path) -> None:
    """Negative control: the probes see the host's network and run the shell when the
    user asks for those settings explicitly, so the test above can fail."""
    path = _hostile_record(saved, saved.parent)
    rerun = tmp_path / "rerun.ipynb"
    result = _reproduce(
        "--write",
        str(rerun),
        str(path),
        "--SandboxConfig.network_mode=host",
        "--SandboxConfig.validation=off",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    seen = _probe_outputs(rerun)
    assert "interfaces: ['lo']" not in seen and "interfaces:" in seen, seen
    assert "shell ran: True" in seen, seen
