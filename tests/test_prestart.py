"""A teacher's pre-started sandboxes (``sandbox-kernel prestart N``): claimed one each
by the next N kernel starts of the same configuration, bounded, expiring like spares,
removed by cleanup, counted by doctor."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator

import docker
import pytest

from sandbox_kernel import spec
from sandbox_kernel.cli import load_settings, main
from sandbox_kernel.config import SandboxConfig
from sandbox_kernel.containers import list_containers, remove_orphans
from sandbox_kernel.doctor import run_doctor
from sandbox_kernel.engine_address import connect
from sandbox_kernel.errors import ConfigError
from sandbox_kernel.install import settings_argv
from sandbox_kernel.prestart import parse_ttl, prestart, waiting
from sandbox_kernel.session import ContainerSession

from harness import BASE_SETTINGS, IMAGE, KernelSpecs, start_kernel

pytestmark = pytest.mark.docker


@pytest.fixture
def settings(docker_client: docker.DockerClient) -> Iterator[dict[str, object]]:
    """Settings of their own (an env value): no other test's kernel claims these."""
    settings = {**BASE_SETTINGS, "warm_spare": True, "extra_env": {"PRESTART": uuid.uuid4().hex}}
    yield settings
    fingerprint = _fingerprint(docker_client, settings)
    for container in list_containers(docker_client, fingerprint=fingerprint):
        with contextlib.suppress(docker.errors.APIError):  # removing itself meanwhile
            docker_client.api.remove_container(container["Id"], force=True)


def _config(settings: dict[str, object]) -> SandboxConfig:
    return load_settings(settings_argv(settings))


def _fingerprint(client: docker.DockerClient, settings: dict[str, object]) -> str:
    return spec.fingerprint(_config(settings), client.images.get(IMAGE).id)


def test_the_next_kernels_claim_one_prestarted_sandbox_each(
    docker_client: docker.DockerClient, settings: dict[str, object]
) -> None:
    config = _config(settings)
    done = prestart(docker_client, config, 3, 120)
    assert done.settled and len(done.started) == 3
    made = {c["Id"] for c in waiting(docker_client, done.fingerprint)}
    assert len(made) == 3
    # Three kernels at the same instant: three different sandboxes, all pre-started.
    sessions = [
        ContainerSession(config, connect(config), lambda *_: None, lambda _: None) for _ in range(3)
    ]
    barrier = threading.Barrier(3)

    def launch(session: ContainerSession) -> None:
        barrier.wait()
        session.launch()

    threads = [threading.Thread(target=launch, args=(s,)) for s in sessions]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert all(s.claimed_spare for s in sessions)
        assert {s.container_id for s in sessions} == made
        assert waiting(docker_client, done.fingerprint) == []
        # Negative control: the fourth start finds none left and makes its own.
        fourth = ContainerSession(config, connect(config), lambda *_: None, lambda _: None)
        sessions.append(fourth)
        fourth.launch()
        assert not fourth.claimed_spare and fourth.container_id not in made
    finally:
        for session in sessions:
            session.cleanup()


def test_a_kernel_started_after_prestart_runs_in_a_prestarted_sandbox(
    docker_client: docker.DockerClient, settings: dict[str, object]
) -> None:
    done = prestart(docker_client, _config(settings), 1, 120)
    [made] = [c["Id"] for c in waiting(docker_client, done.fingerprint)]
    specs = KernelSpecs()
    try:
        with start_kernel(specs, **settings) as kernel:
            assert kernel.container_id == made
            assert (
                kernel.execute("import os; print(os.environ['PRESTART'])").stdout.strip()
                == (
                    settings["extra_env"]["PRESTART"]  # type: ignore[index]
                )
            )
        # Negative control: other settings do not claim it.
        done = prestart(docker_client, _config(settings), 1, 120)
        [made] = [c["Id"] for c in waiting(docker_client, done.fingerprint)]
        with start_kernel(specs, **{**settings, "extra_env": {"PRESTART": "other"}}) as kernel:
            assert kernel.container_id != made
    finally:
        specs.cleanup()
        for container in list_containers(
            docker_client,
            fingerprint=_fingerprint(
                docker_client, {**settings, "extra_env": {"PRESTART": "other"}}
            ),
        ):
            with contextlib.suppress(docker.errors.APIError):
                docker_client.api.remove_container(container["Id"], force=True)


def test_prestart_is_bounded_and_counts_those_already_waiting(
    docker_client: docker.DockerClient, settings: dict[str, object]
) -> None:
    config = _config(settings)
    with pytest.raises(ConfigError, match="between 1 and 40"):
        prestart(docker_client, config, 41, 60)
    with pytest.raises(ConfigError, match="between 1 and 2"):
        prestart(docker_client, _config({**settings, "prestart_limit": 2}), 3, 60)
    for bad in ("", "soon", "0", "13h", "-5m"):
        with pytest.raises(ConfigError, match="--ttl"):
            parse_ttl(bad)
    assert [parse_ttl(t) for t in ("90", "90s", "45m", "2h", "1.5h")] == [90, 90, 2700, 7200, 5400]
    first = prestart(docker_client, config, 2, 60, wait=False)
    again = prestart(docker_client, config, 3, 60, wait=False)
    assert (len(first.started), again.waiting_before, len(again.started)) == (2, 2, 1)
    assert len(waiting(docker_client, first.fingerprint)) == 3
    assert prestart(docker_client, config, 3, 60, wait=False).started == []


def test_unclaimed_prestarted_sandboxes_expire(
    docker_client: docker.DockerClient, settings: dict[str, object]
) -> None:
    done = prestart(docker_client, _config(settings), 2, 1, wait=False)
    assert len(list_containers(docker_client, fingerprint=done.fingerprint)) == 2
    deadline = time.monotonic() + 60
    while list_containers(docker_client, fingerprint=done.fingerprint):
        assert time.monotonic() < deadline, "pre-started sandboxes outlived their ttl"
        time.sleep(0.5)


def test_cleanup_removes_them_and_doctor_counts_them(
    docker_client: docker.DockerClient, settings: dict[str, object]
) -> None:
    config = _config(settings)
    assert main(["prestart", "2", "--ttl", "10m", "--kernel", "", *settings_argv(settings)]) == 0
    fingerprint = _fingerprint(docker_client, settings)
    assert len(waiting(docker_client, fingerprint)) == 2
    lines: list[str] = []
    run_doctor(config, out=lines.append)
    [line] = [line for line in lines if " spares: " in line]
    assert "2 waiting for this configuration (2 pre-started" in line
    removed = remove_orphans(docker_client, fingerprint=fingerprint)
    assert len(removed) == 2 and all(name.startswith("sandbox-kernel-spare-") for name in removed)
    assert waiting(docker_client, fingerprint) == []
    lines.clear()
    run_doctor(config, out=lines.append)
    assert any("spares: none waiting" in line for line in lines)
