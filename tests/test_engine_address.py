"""The engine is found the way the docker CLI finds it, Docker contexts included.

Docker Desktop on Linux, Colima, Rancher Desktop and remote contexts are reached
through the CLI's current context, not /var/run/docker.sock or DOCKER_HOST: a user
whose `docker ps` works must get a working kernel.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox_kernel.config import SandboxConfig
from sandbox_kernel.engine_address import connect, engine_address
from sandbox_kernel.errors import DockerUnavailableError

from harness import KernelSpecs, start_kernel, write_context

LOCAL_SOCKET = "/var/run/docker.sock"


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    return config


def test_the_current_context_is_used_when_nothing_else_is_set(docker_config: Path) -> None:
    write_context(docker_config, "desktop-like", "unix:///home/u/.docker/desktop/docker.sock")
    assert engine_address(SandboxConfig()) == {
        "base_url": "unix:///home/u/.docker/desktop/docker.sock"
    }


def test_docker_context_env_picks_another_context(
    docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_context(docker_config, "current", "unix:///run/current.sock")
    write_context(docker_config, "other", "tcp://10.1.2.3:2375", current=False)
    monkeypatch.setenv("DOCKER_CONTEXT", "other")
    assert engine_address(SandboxConfig())["base_url"] == "tcp://10.1.2.3:2375"
    monkeypatch.setenv("DOCKER_CONTEXT", "default")
    assert engine_address(SandboxConfig())["base_url"] == f"unix://{LOCAL_SOCKET}"


def test_docker_host_and_the_setting_win_over_the_context(
    docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_context(docker_config, "desktop-like", "unix:///run/desktop.sock")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    assert engine_address(SandboxConfig())["base_url"] == "tcp://127.0.0.1:2375"
    setting = SandboxConfig(docker_host="unix:///run/setting.sock")
    assert engine_address(setting) == {"base_url": "unix:///run/setting.sock"}


def test_no_context_means_the_local_socket(docker_config: Path) -> None:
    assert engine_address(SandboxConfig())["base_url"] == f"unix://{LOCAL_SOCKET}"


@pytest.mark.docker
def test_connect_goes_where_the_context_points(docker_config: Path, tmp_path: Path) -> None:
    # The same engine behind another path: reachable only through the context.
    elsewhere = tmp_path / "engine.sock"
    elsewhere.symlink_to(LOCAL_SOCKET)
    write_context(docker_config, "elsewhere", f"unix://{elsewhere}")
    assert connect(SandboxConfig()).ping()
    # And a context pointing nowhere fails, naming where it looked.
    (docker_config / "config.json").unlink()
    write_context(docker_config, "nowhere", f"unix://{tmp_path}/missing.sock")
    with pytest.raises(DockerUnavailableError, match=r"missing\.sock"):
        connect(SandboxConfig())


@pytest.mark.docker
def test_the_kernel_follows_the_current_context(specs: KernelSpecs, tmp_path: Path) -> None:
    docker_config = tmp_path / "docker-config"
    elsewhere = tmp_path / "engine.sock"
    elsewhere.symlink_to(LOCAL_SOCKET)
    write_context(docker_config, "elsewhere", f"unix://{elsewhere}")
    env = {"DOCKER_CONFIG": str(docker_config), "DOCKER_HOST": "", "DOCKER_CONTEXT": ""}
    with start_kernel(specs, env=env) as kernel:
        assert kernel.execute("print(6 * 7)").stdout.strip() == "42"
    # The proof that the context, not the default socket, was used: moved away, the
    # kernel reports the context's address.
    elsewhere.unlink()
    with start_kernel(specs, env=env) as kernel:
        cell = kernel.execute("print(1)")
        assert cell.status == "error" and cell.error is not None
        assert cell.error["ename"] == "DockerUnavailableError"
        assert str(elsewhere) in cell.error["evalue"]
