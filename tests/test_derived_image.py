"""Derived images (`image build --add/--requirements/--wheelhouse`) and the package list.

A derived image is built on the test image from a local wheel folder with no index
reachable (the index URL is a closed loopback port and pip runs with --no-index), its
package becomes importable in the sandbox, a second build finds it up to date, a
changed wheel makes another image, and a missing wheel gives a clear error. The image's
exact package list shows in ``%sandbox info``, the kernel_info banner and ``doctor``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from sandbox_kernel import Sandbox
from sandbox_kernel.config import SandboxConfig
from sandbox_kernel.doctor import run_doctor
from sandbox_kernel.install import display_name_for, get_kernel_dict

from harness import IMAGE, KernelSpecs, start_kernel

pytestmark = pytest.mark.docker

PROBE = "sk-probe-pkg"


def make_wheel(folder: Path, version: str = "1.0", answer: int = 42) -> Path:
    """A tiny pure-Python wheel, made here: nothing comes from an index."""
    module = "sk_probe_pkg"
    dist = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"ANSWER = {answer}\n".encode(),
        f"{dist}/METADATA": (
            f"Metadata-Version: 2.1\nName: {PROBE}\nVersion: {version}\n"
        ).encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def build(*args: str) -> subprocess.CompletedProcess[str]:
    """`sandbox-kernel image build ...` with no package index reachable."""
    env = {
        **os.environ,
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",  # a closed port: any use fails
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_FIND_LINKS": "",
    }
    return subprocess.run(
        [sys.executable, "-m", "sandbox_kernel", "image", "build", "--base", IMAGE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.fixture
def made_images(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(name, force=True)


def tag_of(output: str) -> str:
    """The image name of the build's result line, ``NAME: sha256:...``."""
    [line] = [line for line in output.splitlines() if ": sha256:" in line]
    return line.split(": ")[0]


def test_a_derived_image_builds_offline_from_a_wheelhouse(
    tmp_path: Path, made_images: list[str], docker_client: docker.DockerClient
) -> None:
    wheelhouse = tmp_path / "wheels"
    make_wheel(wheelhouse)
    first = build("--add", PROBE, "--wheelhouse", str(wheelhouse))
    assert first.returncode == 0, first.stderr + first.stdout
    tag = tag_of(first.stdout)
    made_images.append(tag)
    assert tag.startswith("sandbox-kernel:") and tag != IMAGE
    assert f"added: {PROBE}==1.0" in first.stdout
    assert f"sandbox-kernel install --user --image {tag} --name sandbox-{PROBE}" in first.stdout

    labels = docker_client.images.get(tag).labels
    packages = labels["sandbox-kernel.packages"].split(",")
    assert f"{PROBE}==1.0" in packages
    base = docker_client.images.get(IMAGE).labels["sandbox-kernel.packages"].split(",")
    assert set(packages) - set(base) == {f"{PROBE}==1.0"}

    async def run() -> tuple[str, str]:
        async with Sandbox(image=tag, warm_spare=False, validation="off") as sandbox:
            probe = await sandbox.execute(
                "import sk_probe_pkg, numpy\nprint(sk_probe_pkg.ANSWER, numpy.__version__)\n"
                "print(open('/usr/local/share/sandbox-kernel/packages.txt').read().count('\\n'))"
            )
            return probe.stdout, probe.stderr

    stdout, stderr = asyncio.run(run())
    answer, numpy_version = stdout.split()[:2]
    assert answer == "42", stderr
    assert f"numpy=={numpy_version}" in base  # the base's numpy, not another
    assert int(stdout.split()[2]) == len(packages)

    again = build("--add", PROBE, "--wheelhouse", str(wheelhouse))
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout
    assert tag_of(again.stdout) == tag

    make_wheel(wheelhouse, answer=43)  # same name and version, other content
    changed = build("--add", PROBE, "--wheelhouse", str(wheelhouse))
    assert changed.returncode == 0, changed.stderr
    other = tag_of(changed.stdout)
    made_images.append(other)
    assert other != tag


def test_a_missing_wheel_says_how_to_get_it(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheels"
    make_wheel(wheelhouse)
    result = build("--add", "polars", "--wheelhouse", str(wheelhouse))
    assert result.returncode == 2
    assert "'polars' has no wheel" in result.stderr and "pip download" in result.stderr


def test_without_a_wheelhouse_the_closed_index_is_what_fails(tmp_path: Path) -> None:
    """The control: the same build without --wheelhouse needs the index, and has none."""
    result = build("--add", PROBE)
    assert result.returncode == 2
    assert "pip could not install" in result.stderr


def test_a_wheel_at_another_version_of_a_base_package_is_refused(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheels"
    make_wheel(wheelhouse)
    fake = make_wheel(tmp_path / "other", version="0.0.1")
    fake.rename(wheelhouse / "tqdm-0.0.1-py3-none-any.whl")
    result = build("--add", PROBE, "--wheelhouse", str(wheelhouse))
    assert result.returncode == 2
    assert "tqdm 0.0.1" in result.stderr and "the image has" in result.stderr


def test_one_kernelspec_per_image_says_which() -> None:
    assert display_name_for(None) == "Python 3 (sandbox)"
    assert display_name_for("sandbox-kernel:latest") == "Python 3 (sandbox)"
    assert display_name_for("sandbox-kernel:3f2a9c81d0e4") == (
        "Python 3 (sandbox: sandbox-kernel:3f2a9c81d0e4)"
    )
    spec = get_kernel_dict({"image": "sandbox-kernel:3f2a9c81d0e4"}, "x")
    assert "--SandboxConfig.image=sandbox-kernel:3f2a9c81d0e4" in spec["argv"]


def test_install_with_an_image_names_it_in_the_launcher(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox_kernel",
            "install",
            "--prefix",
            str(tmp_path),
            "--image",
            "sandbox-kernel:3f2a9c81d0e4",
            "--name",
            "sandbox-polars",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    spec = json.loads((tmp_path / "share/jupyter/kernels/sandbox-polars/kernel.json").read_text())
    assert spec["display_name"] == "Python 3 (sandbox: sandbox-kernel:3f2a9c81d0e4)"


def test_the_package_list_shows_in_info_banner_and_doctor(
    specs: KernelSpecs, docker_client: docker.DockerClient
) -> None:
    packages = docker_client.images.get(IMAGE).labels["sandbox-kernel.packages"].split(",")
    numpy = next(p for p in packages if p.startswith("numpy=="))
    with start_kernel(specs) as kernel:
        info = kernel.request("kernel_info")["content"]
        assert numpy in info["banner"]
        assert info["sandbox"]["packages"] == packages
        cell = kernel.execute("%sandbox info")
        data = cell.of_type("display_data")[0]["content"]["data"]
        assert numpy in data["text/plain"]
        assert data["application/json"]["packages"] == packages
    lines: list[str] = []
    run_doctor(SandboxConfig(image=IMAGE), out=lines.append)
    [line] = [line for line in lines if " packages: " in line]
    assert line.strip().startswith("ok") and numpy in line
