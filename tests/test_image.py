"""The default image: its recipe digest, the skip-when-current build, and what the image holds.

The Docker tests reuse ``sandbox-kernel:latest`` (or $SANDBOX_KERNEL_TEST_IMAGE; CI builds it first): the
build test goes through the skip path, and only builds when the image is missing or
older than the recipe.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import docker
import pytest

from sandbox_kernel import image as image_module
from sandbox_kernel import imagerecipe
from sandbox_kernel.image import (
    BASE_IMAGE,
    RECIPE_FILES,
    RECIPE_LABEL,
    ImageBuildError,
    build_image,
    image_status,
    recipe_digest,
)
from sandbox_kernel.rootfs import mirror_from_sources

IMAGE = os.environ.get("SANDBOX_KERNEL_TEST_IMAGE", "sandbox-kernel:latest")
RECIPE = Path(image_module.__file__).with_name("recipe")

HARDENED = {
    "network_mode": "none",
    "read_only": True,
    "tmpfs": {"/tmp": "rw,noexec,nosuid,nodev,size=256m"},
    "user": "1000:1000",
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "environment": {"HOME": "/tmp/home", "MPLCONFIGDIR": "/tmp/.mpl"},
}


# -- the recipe, no Docker needed ---------------------------------------------------------


def test_recipe_digest_is_stable_and_covers_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = recipe_digest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert recipe_digest() == digest

    copy = tmp_path / "recipe"
    shutil.copytree(RECIPE, copy)
    monkeypatch.setattr(imagerecipe, "RECIPE_DIR", copy)
    assert recipe_digest() == digest
    for name in RECIPE_FILES:
        original = (copy / name).read_bytes()
        (copy / name).write_bytes(original + b"\n")
        assert recipe_digest() != digest, name
        (copy / name).write_bytes(original)
    monkeypatch.setattr(imagerecipe, "BUILD_STEPS_VERSION", "changed")
    assert recipe_digest() != digest


def test_requirements_pin_every_package() -> None:
    lines = [
        line.strip()
        for line in (RECIPE / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", line) for line in lines), lines
    names = {line.split("==")[0].lower() for line in lines}
    assert {"ipykernel", "numpy", "pandas", "scipy", "matplotlib", "tqdm", "ipywidgets"} <= names


def test_dockerfile_is_sane() -> None:
    text = (RECIPE / "Dockerfile").read_text()
    instructions = [
        line.split()[0]
        for line in re.sub(r"\\\n", " ", text).splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith(" ")
    ]
    assert instructions[0] == "FROM"
    assert f"FROM {BASE_IMAGE}" in text
    assert set(instructions) <= {"FROM", "COPY", "RUN", "ENV", "USER", "WORKDIR", "CMD"}
    assert re.search(r"^USER 1000:1000$", text, re.MULTILINE)
    # Every file the Dockerfile copies is part of the recipe (and so of the context).
    for match in re.finditer(r"^COPY (.+) \S+$", text, re.MULTILINE):
        for source in match.group(1).split():
            assert source in RECIPE_FILES, source
    assert subprocess.run(["sh", "-n", str(RECIPE / "finalize.sh")], check=False).returncode == 0


def test_mirror_is_read_from_apt_sources(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n"
    )
    one_line = tmp_path / "sources.list"
    one_line.write_text(
        "# deb http://old.example/debian bookworm main\n"
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://list.example/debian bookworm main\n"
    )
    missing = tmp_path / "missing"
    assert mirror_from_sources(deb822, one_line) == "http://mirror.example/debian"
    assert mirror_from_sources(missing, one_line) == "http://list.example/debian"
    assert mirror_from_sources(missing, missing) is None


def test_unknown_build_method_is_refused() -> None:
    with pytest.raises(ImageBuildError, match="unknown build method"):
        build_image(None, method="magic")  # type: ignore[arg-type]


# -- the engine ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture(scope="module")
def built(client: docker.DockerClient) -> str:
    """The id of an up-to-date sandbox-kernel:latest, built only when it is not."""
    return build_image(client, IMAGE, log=lambda line: None)


@pytest.mark.docker
def test_build_skips_when_the_recipe_label_matches(client: docker.DockerClient, built: str) -> None:
    lines: list[str] = []
    start = time.monotonic()
    again = build_image(client, IMAGE, log=lines.append)
    assert again == built
    assert time.monotonic() - start < 5
    assert lines == [f"{IMAGE} is up to date (recipe {recipe_digest()[:12]}); nothing to build"]


@pytest.mark.docker
def test_image_status(client: docker.DockerClient, built: str) -> None:
    status = image_status(client, IMAGE)
    assert status.exists and status.current
    assert status.id == built and status.recipe == recipe_digest()
    assert status.reference in (built, *client.images.get(IMAGE).attrs["RepoDigests"])
    assert status.size and status.size > 100 * 1024 * 1024
    assert client.images.get(IMAGE).labels[RECIPE_LABEL] == recipe_digest()

    missing = image_status(client, "sandbox-kernel-test-missing:none")
    assert not missing.exists and not missing.current and missing.id is None


def _run(client: docker.DockerClient, command: list[str]) -> str:
    output = client.containers.run(IMAGE, command, remove=True, **HARDENED)
    return bytes(output).decode()


@pytest.mark.docker
def test_image_runs_as_1000_without_setuid_files(client: docker.DockerClient, built: str) -> None:
    assert _run(client, ["id", "-u"]).strip() == "1000"
    assert _run(client, ["id", "-un"]).strip() == "sandbox"
    # find exits 1 on the folders uid 1000 may not read; only its list matters.
    found = _run(client, ["sh", "-c", "find / -xdev -perm /6000 2>/dev/null; true"])
    assert found.strip() == ""


@pytest.mark.docker
def test_image_imports_the_scientific_stack_from_bytecode(
    client: docker.DockerClient, built: str
) -> None:
    script = (
        "import os, sys, importlib\n"
        "import numpy, pandas, scipy, scipy.optimize, matplotlib\n"
        "matplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\n"
        "import ipykernel.kernelapp, tqdm, ipywidgets, zmq\n"
        "missing = [m.__name__ for m in list(sys.modules.values())\n"
        "           if getattr(m, '__file__', None) and m.__file__.endswith('.py')\n"
        "           and not os.path.exists(importlib.util.cache_from_source(m.__file__))]\n"
        "print('missing-pyc', len(missing), missing[:5])\n"
        "print('fontlist', sorted(os.listdir('/tmp/.mpl')))\n"
        "print('ok')\n"
    )
    output = _run(client, ["python3", "-c", script])
    assert output.strip().endswith("ok"), output
    # Every imported module has its .pyc in the read-only image.
    assert "missing-pyc 0 " in output, output
    # The font list came from the image (seeded at start), not built on import.
    assert re.search(r"fontlist \['fontlist-v[\d.]+\.json'\]", output), output
