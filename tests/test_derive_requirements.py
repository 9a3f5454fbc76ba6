"""`sandbox-kernel image build --requirements`: a repository's requirements file runs
nothing on the host.

The file comes with a notebook's repository, which may be anyone's, and the host's pip
reads it. pip builds a local folder, an archive or a VCS checkout from source, running
its build code on the host, whatever ``--only-binary`` says. The attack: a folder whose
in-tree build backend (no package index needed) leaves a marker when imported. The
build refuses the line and the marker never appears; the negative control hands the
same line to the host's pip as the build would without the check, and the backend runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox_kernel.derive import _pip_install, requirement_lines
from sandbox_kernel.imagerecipe import ImageBuildError

ACCEPTED = [
    "numpy",
    "numpy==1.26.4",
    "pandas>=2,<3",
    "requests[socks]>=2.0",
    "tqdm; python_version > '3.8'",
    "scikit-learn ~= 1.4",
    "numpy==1.26.4 --hash=sha256:" + "a" * 64 + " --hash=sha256:" + "b" * 64,
]

REFUSED = [
    "./evilpkg",
    "/srv/evilpkg",
    "-e ./evilpkg",
    "file:///srv/evilpkg",
    "evil @ file:///srv/evilpkg",
    "evil @ https://example.org/evil-1.0.tar.gz",
    "git+https://example.org/evil.git",
    "https://example.org/evil-1.0.tar.gz",
    "evil-1.0.tar.gz",
    "evil-1.0-py3-none-any.whl",
    "--no-binary :all:",
    "numpy --no-binary numpy",
    "-r other.txt",
    "-c constraints.txt",
    "--index-url http://example.org/simple",
    "-i http://example.org/simple",
    "--extra-index-url http://example.org/simple",
    "--find-links /srv/wheels",
    "..",
]


@pytest.mark.parametrize("line", ACCEPTED)
def test_a_package_by_name_is_accepted(line: str) -> None:
    assert requirement_lines(None, [line]) == [line]


@pytest.mark.parametrize("line", REFUSED)
def test_anything_else_is_refused_by_name(line: str, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"numpy\n{line}  # from a repository\n")
    with pytest.raises(ImageBuildError, match="is not a package by name"):
        requirement_lines(requirements, [])


def _hostile_project(folder: Path, marker: Path) -> Path:
    """A project whose build backend, in the folder itself, leaves ``marker``."""
    project = folder / "evilpkg"
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
    )
    (project / "backend.py").write_text(
        f"open({str(marker)!r}, 'w').write('build code ran on the host')\n"
        "raise SystemExit('stop here')\n"
    )
    return project


@pytest.mark.docker
def test_a_requirements_file_cannot_run_code_on_the_host(tmp_path: Path) -> None:
    marker = tmp_path / "ran-on-the-host"
    project = _hostile_project(tmp_path / "repository", marker)
    requirements = project.parent / "requirements.txt"
    requirements.write_text("./evilpkg\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox_kernel",
            "image",
            "build",
            "--requirements",
            str(requirements),
        ],
        cwd=project.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'./evilpkg' is not a package by name" in done.stderr
    assert not marker.exists()


def test_the_hosts_pip_runs_that_code_without_the_check(tmp_path: Path) -> None:
    """Negative control: the line as the build would give it to pip, unchecked."""
    marker = tmp_path / "ran-on-the-host"
    project = _hostile_project(tmp_path / "repository", marker)
    work = tmp_path / "work"
    work.mkdir()
    env = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_NO_CACHE_DIR": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with pytest.raises(ImageBuildError, match="pip could not install"):
            _pip_install(work, work / "site", [str(project)], [], None, lambda _: None)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert marker.read_text() == "build code ran on the host"
