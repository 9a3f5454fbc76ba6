"""Any image with python3 and ipykernel is a sandbox image: one with ipykernel 6.

The relay patches ipykernel inside the container to make it quicker (no busy status
of its own, no empty flushes, output sent by the megabyte). Those patches must hold,
or step aside, on the ipykernel that a user's own image happens to have; 6.x is still
the most common one. The image is the default one with ipykernel 6 put in place of 7,
built from the wheel on PyPI with a local base (no registry needed).
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from harness import IMAGE, Kernel, KernelSpecs, start_kernel

pytestmark = pytest.mark.docker

IPYKERNEL_6 = "6.29.5"
TAG = f"sandbox-kernel-test-ipykernel:{IPYKERNEL_6}"
BASE_LABEL = "sandbox-kernel.test.base"
SITE = "/usr/local/lib/python3.11/dist-packages"
DOCKERFILE = f"""\
FROM {IMAGE}
USER root
RUN rm -rf {SITE}/ipykernel {SITE}/ipykernel-*.dist-info
COPY site/ {SITE}/
USER 1000
"""


def _build_context(wheel: Path) -> io.BytesIO:
    """A docker build context: the Dockerfile and the wheel's files under site/."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar, zipfile.ZipFile(wheel) as whl:
        entries = [("Dockerfile", DOCKERFILE.encode())]
        entries += [
            (f"site/{name}", whl.read(name)) for name in whl.namelist() if not name.endswith("/")
        ]
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


@pytest.fixture(scope="module")
def ipykernel6_image(docker_client: docker.DockerClient) -> str:
    base_id = docker_client.images.get(IMAGE).id
    try:
        if docker_client.images.get(TAG).labels.get(BASE_LABEL) == base_id:
            return TAG  # built before, on the same base
    except docker.errors.ImageNotFound:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        download = ("download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest", tmp)
        subprocess.run(
            [sys.executable, "-m", "pip", *download, f"ipykernel=={IPYKERNEL_6}"],
            check=True,
            timeout=300,
        )
        [wheel] = Path(tmp).glob("ipykernel-*.whl")
        docker_client.images.build(
            fileobj=_build_context(wheel),
            custom_context=True,
            tag=TAG,
            rm=True,
            labels={BASE_LABEL: base_id},
        )
    return TAG


@pytest.fixture(scope="module")
def kernel6(ipykernel6_image: str, specs: KernelSpecs) -> Iterator[Kernel]:
    with start_kernel(specs, image=ipykernel6_image) as kernel:
        yield kernel


def test_the_image_really_has_ipykernel_6(kernel6: Kernel) -> None:
    cell = kernel6.execute("import ipykernel\nprint(ipykernel.__version__)")
    assert cell.stdout.strip() == IPYKERNEL_6


def test_cells_keep_state_and_show_results_streams_and_errors(kernel6: Kernel) -> None:
    assert kernel6.execute("value = 20").status == "ok"
    cell = kernel6.execute("import sys\nprint('out')\nprint('err', file=sys.stderr)\nvalue * 2 + 2")
    assert (cell.stdout, cell.stderr) == ("out\n", "err\n")
    [result] = cell.of_type("execute_result")
    assert result["content"]["data"]["text/plain"] == "42"
    assert cell.usage is not None and cell.usage["wall_time_s"] > 0
    failed = kernel6.execute("1 / 0")
    assert failed.status == "error" and failed.error is not None
    assert failed.error["ename"] == "ZeroDivisionError"
    kinds = [m["msg_type"] for m in cell.messages]
    assert kinds.count("status") == 2 and kinds.count("execute_input") == 1


def test_input_and_interrupt(kernel6: Kernel) -> None:
    answered = kernel6.execute("name = input('who? ')\nprint('hi', name)", stdin=["quant"])
    assert answered.stdout.strip().endswith("hi quant")
    reply = kernel6.interrupt_running_cell("import time\nfor _ in range(600): time.sleep(0.1)")
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    kernel6.drain_iopub()
    assert kernel6.execute("print(name)").stdout.strip() == "quant"


def test_megabytes_of_output_arrive_whole_and_in_pieces(kernel6: Kernel) -> None:
    cell = kernel6.execute("line = 'y' * 999\nfor _ in range(8 * 1024):\n    print(line)")
    assert cell.stdout == ("y" * 999 + "\n") * (8 * 1024)
    assert len(cell.of_type("stream")) > 1, "all the output came at the end of the cell"
