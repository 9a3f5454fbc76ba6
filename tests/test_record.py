"""What a saved notebook records: where it ran (language_info) and what it cost (usage).

The example notebook runs through nbclient (what papermill and ``jupyter execute``
use) against the real kernel and engine and is saved with nbformat; the tests then
read the file as a reader would, and run ``sandbox-kernel usage`` on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import nbformat
import pytest

from sandbox_kernel import __version__
from sandbox_kernel.record import ENVIRONMENT_MIME_TYPE, cell_usage_records

from harness import EXAMPLE, USAGE_MIME, Kernel, KernelSpecs, execute_example

pytestmark = pytest.mark.docker




@pytest.fixture(scope="module")
def saved(
    docker_client: docker.DockerClient, specs: KernelSpecs, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The example, executed by nbclient with the kernel's defaults and saved."""
    return execute_example(specs, tmp_path_factory.mktemp("record"), validation="block", memory="1g", pids=200)


def _load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def test_saved_notebook_records_its_environment(
    saved: Path, docker_client: docker.DockerClient
) -> None:
    notebook = _load(saved)
    info = notebook["metadata"]["language_info"]
    # What frontends read from language_info is still there, unchanged.
    assert info["name"] == "python"
    assert info["codemirror_mode"] == {"name": "ipython", "version": 3}
    assert info["version"].startswith("3.")
    record = info["sandbox"]
    assert record["sandbox_kernel_version"] == __version__
    image = docker_client.images.get(record["image_ref"])  # names exactly one image
    assert image.id == record["image_id"]
    assert "sha256:" in record["image_ref"]
    assert record["recipe"] == image.labels.get("sandbox-kernel.recipe")
    assert any(p.startswith("numpy==") for p in record["packages"])
    assert record["limits"]["memory"] == "1g"
    assert record["limits"]["pids"] == 200
    assert record["limits"]["network"] == "none"
    assert record["validation"] == "block"
    assert record["validation_profile"] == "notebook"
    assert record["runtime"] == "default"
    assert record["python"] == info["version"]
    # The file is still a valid notebook.
    nbformat.validate(nbformat.read(saved, as_version=4))  # type: ignore[no-untyped-call]


def test_kernel_info_and_sandbox_info_carry_the_record(kernel: Kernel) -> None:
    info = kernel.request("kernel_info")["content"]
    record = info["language_info"]["sandbox"]
    assert record["image_ref"] == info["sandbox"]["image_ref"]
    cell = kernel.execute("%sandbox info")
    [display] = cell.of_type("display_data")
    data = display["content"]["data"]
    # The record under the kernel's own mimetype, which no cell can display.
    assert data[ENVIRONMENT_MIME_TYPE]["environment"] == record


def test_a_cell_cannot_display_an_environment_record(kernel: Kernel) -> None:
    cell = kernel.execute(
        "from IPython.display import display\n"
        f"display({{'{ENVIRONMENT_MIME_TYPE}': {{'image_ref': 'forged'}}, 'text/plain': 'x'}}, raw=True)"
    )
    assert cell.status == "ok", cell.text
    shown = [m["content"]["data"] for m in cell.of_type("display_data")]
    assert shown and all(ENVIRONMENT_MIME_TYPE not in data for data in shown)
    assert "only the host writes" in cell.text


def _usage_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox_kernel", "usage", *args], capture_output=True, text=True
    )


def test_usage_command_adds_up_the_saved_records(saved: Path) -> None:
    notebook = _load(saved)
    lines = [
        output["data"][USAGE_MIME]
        for cell in notebook["cells"]
        for output in cell.get("outputs", [])
        if USAGE_MIME in output.get("data", {})
    ]
    assert len(lines) == 4  # four measured cells; %sandbox usage itself is not one
    result = _usage_cli("--json", str(saved))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    totals = report["totals"]
    assert totals["cells"] == 4
    assert totals["wall_time_s"] == pytest.approx(sum(u["wall_time_s"] for u in lines), abs=1e-5)
    assert totals["cpu_time_s"] == pytest.approx(sum(u["cpu_time_s"] for u in lines), abs=1e-5)
    assert totals["peak_memory_bytes"] == max(u["peak_memory_bytes"] for u in lines)
    assert [c["index"] for c in report["cells"]] == [1, 2, 3, 4]
    assert report["environment"]["image_ref"] == notebook["metadata"]["language_info"]["sandbox"]["image_ref"]
    # The same totals as the kernel's own %sandbox usage in the last cell.
    [live] = [
        o["data"]["application/vnd.sandbox-kernel.usage-report+json"]["totals"]
        for o in notebook["cells"][-1]["outputs"]
        if "application/vnd.sandbox-kernel.usage-report+json" in o.get("data", {})
    ]
    # (sums of the saved, rounded values: equal to the microsecond)
    assert totals == {k: pytest.approx(v, abs=1e-5) for k, v in live.items()}

    text = _usage_cli(str(saved))
    assert text.returncode == 0
    assert "Sandbox usage: 4 cells" in text.stdout
    assert "%matplotlib inline" in text.stdout and "from tqdm.auto import tqdm" in text.stdout


def test_usage_command_on_a_notebook_without_records_and_on_bad_input(tmp_path: Path) -> None:
    result = _usage_cli(str(EXAMPLE))  # never run: no records, not an error
    assert result.returncode == 0
    assert "no usage records" in result.stdout
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    result = _usage_cli(str(bad))
    assert result.returncode == 2
    assert "not JSON" in result.stderr
    broken = _load(EXAMPLE)
    broken["cells"][1]["outputs"] = [
        {"output_type": "display_data", "metadata": {}, "data": {USAGE_MIME: {"wall_time_s": "x"}}}
    ]
    broken["cells"][1]["execution_count"] = 1
    path = tmp_path / "broken.ipynb"
    path.write_text(json.dumps(broken))
    result = _usage_cli(str(path))
    assert result.returncode == 2
    assert "cell 1" in result.stderr


def test_records_read_back_as_the_kernel_wrote_them(saved: Path) -> None:
    records = cell_usage_records(_load(saved))
    assert [r.execution_count for r in records] == [1, 2, 3, 4]
    assert all(r.usage.wall_time_s > 0 and r.usage.memory_limit_bytes == 1 << 30 for r in records)
