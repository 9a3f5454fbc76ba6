"""The kernel process imports the Docker SDK without paramiko, and loads it for ssh://."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("paramiko")


def run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def test_import_without_ssh_leaves_paramiko_unloaded() -> None:
    out = run(
        "import sys\n"
        "from sandbox_kernel.dockersdk import import_without_ssh\n"
        "import_without_ssh()\n"
        "import docker, docker.api.client\n"
        "print('paramiko' in sys.modules, hasattr(docker.api.client, 'SSHHTTPAdapter'))\n"
        "import paramiko\n"  # the hiding ends with the import: programs can still use it
        "print(paramiko.__name__)\n"
    )
    assert out.splitlines() == ["False False", "paramiko"]


def test_ensure_ssh_transport_restores_ssh_support() -> None:
    out = run(
        "from sandbox_kernel.dockersdk import import_without_ssh, ensure_ssh_transport\n"
        "import_without_ssh()\n"
        "ensure_ssh_transport()\n"
        "import docker.api.client, docker.transport\n"
        "from docker.transport.sshconn import SSHHTTPAdapter\n"
        "print(docker.api.client.SSHHTTPAdapter is SSHHTTPAdapter is docker.transport.SSHHTTPAdapter)\n"
    )
    assert out == "True"


def test_a_program_importing_docker_first_gets_it_whole() -> None:
    out = run(
        "import sys, docker\n"
        "from sandbox_kernel.dockersdk import import_without_ssh\n"
        "import_without_ssh()\n"
        "import docker.api.client\n"
        "print(hasattr(docker.api.client, 'SSHHTTPAdapter'))\n"
    )
    assert out == "True"
