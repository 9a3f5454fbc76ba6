"""`sandbox-kernel doctor`: what the sandbox runs with, what is missing, how to fix it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import BOOTSTRAP_PATCHES, IMAGE, python_m_argv, write_context

pytestmark = pytest.mark.docker


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if not any(arg.startswith("--SandboxConfig.image=") for arg in args):
        args = (f"--SandboxConfig.image={IMAGE}", *args)
    return subprocess.run(
        [sys.executable, "-m", "sandbox_kernel", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_a_working_setup_passes_every_check_and_names_the_image_digest() -> None:
    done = doctor("--run")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for check in ("docker engine", "cgroups", "seccomp", "image", "seccomp profile", "kernel"):
        assert f"  ok    {check}: " in out, check
    assert "FAIL" not in out
    [image_line] = [line for line in out.splitlines() if line.startswith("  ok    image: ")]
    assert "sha256:" in image_line  # named by its digest, for reproducible notebooks
    assert "ran a cell with Python 3." in out
    assert "  ok    validation: block, profile notebook" in out  # the kernel's default
    # The inner kernel's patches (bootstrap.py) as the relay's HELLO reported them.
    assert f"  ok    inner patches: all {BOOTSTRAP_PATCHES} applied: " in out
    assert out.rstrip().endswith("all good")


def test_an_unreachable_engine_fails_with_the_fix() -> None:
    done = doctor("--SandboxConfig.docker_host=unix:///nonexistent/docker.sock")
    assert done.returncode == 1
    assert "FAIL" in done.stdout
    assert "not reachable at unix:///nonexistent/docker.sock" in done.stdout
    assert "dockerd" in done.stdout or "DOCKER_HOST" in done.stdout  # how to fix it


def test_a_missing_image_names_the_build_command() -> None:
    done = doctor("--SandboxConfig.image=sandbox-kernel-test-absent:none")
    assert done.returncode == 1
    assert "sandbox-kernel image build" in done.stdout


def test_the_engine_address_comes_from_the_docker_context(tmp_path: Path) -> None:
    elsewhere = tmp_path / "engine.sock"
    elsewhere.symlink_to("/var/run/docker.sock")
    config = tmp_path / "docker-config"
    write_context(config, "elsewhere", f"unix://{elsewhere}")
    done = doctor(env={"DOCKER_CONFIG": str(config), "DOCKER_HOST": "", "DOCKER_CONTEXT": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"unix://{elsewhere}" in done.stdout


def _engine_has_runsc() -> bool:
    import docker

    return "runsc" in (docker.from_env().info().get("Runtimes") or {})


def test_doctor_names_gvisor_and_whether_the_profile_will_be_in_force() -> None:
    done = doctor()
    assert done.returncode == 0, done.stdout + done.stderr
    [line] = [line for line in done.stdout.splitlines() if line[8:].startswith("gvisor: ")]
    if _engine_has_runsc():
        assert "--oci-seccomp" in line and "the seccomp profile will be in force" in line
    else:
        assert "not registered" in line


def test_doctor_run_proves_seccomp_from_inside_under_each_runtime() -> None:
    runtimes = ["", "runsc"] if _engine_has_runsc() else [""]
    for runtime in runtimes:
        done = doctor("--run", f"--SandboxConfig.runtime={runtime}")
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert "  ok    seccomp in the sandbox: Seccomp: 2 in /proc/self/status" in out, out
        assert "socket(AF_INET) refused" in out, out
        expected = "gVisor's kernel answers" if runtime else "the host's kernel answers"
        assert expected in out, out


def test_doctor_fails_on_a_runtime_the_engine_lacks() -> None:
    done = doctor("--SandboxConfig.runtime=runsc-not-registered")
    assert done.returncode == 1
    assert "FAIL  runtime: The Docker engine has no runtime 'runsc-not-registered'" in done.stdout


def test_doctor_fails_on_a_kernelspec_that_starts_the_kernel_with_python_m(
    tmp_path: Path,
) -> None:
    """Such a kernelspec lets a notebook's folder run code on the host (see
    tests/test_escape_folder.py); doctor names it and how to rewrite it. Control: the
    same kernelspec with the command ``sandbox-kernel install`` writes passes."""
    from sandbox_kernel.install import get_kernel_dict

    spec = get_kernel_dict()
    old = python_m_argv(spec["argv"])
    for name, argv in (("sk-old", old), ("sk-new", spec["argv"])):
        (tmp_path / "kernels" / name).mkdir(parents=True)
        (tmp_path / "kernels" / name / "kernel.json").write_text(json.dumps({**spec, "argv": argv}))
    done = doctor(env={"JUPYTER_PATH": str(tmp_path)})
    assert done.returncode == 1
    assert "  FAIL  kernelspec sk-old: starts the kernel with `python -m`" in done.stdout
    assert "sk-new" not in done.stdout
