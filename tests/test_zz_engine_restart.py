"""The Docker engine restarting under a running kernel leaves no container behind.

Runs last (it restarts the engine every other test uses) and only as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import docker
import pytest

from harness import KernelSpecs, start_kernel

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(os.geteuid() != 0, reason="restarting the engine needs root"),
]


def _engine_up() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def restart_engine() -> None:
    if (
        shutil.which("systemctl")
        and subprocess.run(["systemctl", "is-active", "--quiet", "docker"]).returncode == 0
    ):
        subprocess.run(["systemctl", "restart", "docker"], check=True)
    else:
        subprocess.run(["pkill", "-TERM", "-x", "dockerd"], check=True)
        deadline = time.monotonic() + 60
        while subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True).returncode == 0:
            assert time.monotonic() < deadline, "dockerd did not stop"
            time.sleep(0.3)
        with open("/var/log/dockerd.log", "ab") as log:
            subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 60
    while not _engine_up():
        assert time.monotonic() < deadline, "dockerd did not come back"
        time.sleep(0.3)


def test_engine_restart_leaves_nothing_and_the_kernel_recovers(specs: KernelSpecs) -> None:
    with start_kernel(specs) as kernel:
        kernel.execute("survivor = 1")
        before = kernel.container_id
        restart_engine()
        client = docker.from_env()
        time.sleep(1)
        leftovers = client.containers.list(all=True, filters={"label": "sandbox-kernel"})
        assert before not in {c.id for c in leftovers}
        cell = kernel.execute("print('survivor' in dir())", timeout=120)
        assert cell.status == "ok", cell.text
        assert cell.stdout.strip() == "False"
        assert "state is lost" in cell.stderr
    time.sleep(1)
    assert not docker.from_env().containers.list(all=True, filters={"label": "sandbox-kernel"})
