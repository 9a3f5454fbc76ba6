"""Warm spares: at most one unclaimed spare per configuration, however many kernels
make one at the same instant (a class starting together)."""

from __future__ import annotations

import contextlib
import threading
import uuid

import docker
import pytest

from sandbox_kernel import prelaunch, spec
from sandbox_kernel.cli import load_settings
from sandbox_kernel.config import SandboxConfig
from sandbox_kernel.containers import launch_spare, list_containers
from sandbox_kernel.engine_address import connect
from sandbox_kernel.install import settings_argv
from sandbox_kernel.session import ContainerSession

from harness import BASE_SETTINGS, IMAGE, KernelSpecs, start_kernel

pytestmark = pytest.mark.docker


def _launch_at_once(config: SandboxConfig, image_id: str, count: int) -> None:
    barrier = threading.Barrier(count)

    def launch() -> None:
        client = connect(config)  # one client each, as separate kernel processes have
        barrier.wait()
        launch_spare(client, config, image_id)

    threads = [threading.Thread(target=launch) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def _unclaimed(client: docker.DockerClient, fingerprint: str) -> list[str]:
    found = list_containers(client, role="spare", fingerprint=fingerprint, unclaimed=True)
    return [c["Names"][0] for c in found]


def test_kernels_starting_at_once_leave_one_spare(docker_client: docker.DockerClient) -> None:
    # A configuration of its own (an env value), so no other test's spare counts.
    config = SandboxConfig(image=IMAGE, extra_env={"SPARE_TEST": uuid.uuid4().hex})
    other = SandboxConfig(image=IMAGE, extra_env={"SPARE_TEST": uuid.uuid4().hex})
    image_id = docker_client.images.get(IMAGE).id
    fingerprint = spec.fingerprint(config, image_id)
    other_fingerprint = spec.fingerprint(other, image_id)
    try:
        _launch_at_once(config, image_id, 8)
        # Exactly one: none would pass a check of "at most one" without testing it.
        assert _unclaimed(docker_client, fingerprint) == ["/" + spec.spare_name(fingerprint)]
        # A second wave while that one waits adds nothing.
        _launch_at_once(config, image_id, 4)
        assert len(_unclaimed(docker_client, fingerprint)) == 1
        # Negative control: another configuration gets a spare of its own.
        launch_spare(docker_client, other, image_id)
        assert len(_unclaimed(docker_client, other_fingerprint)) == 1
    finally:
        for fp in (fingerprint, other_fingerprint):
            for container in list_containers(docker_client, fingerprint=fp):
                docker_client.api.remove_container(container["Id"], force=True, v=True)


def test_the_container_launched_while_the_kernel_imports_is_the_one_it_uses(
    docker_client: docker.DockerClient,
) -> None:
    settings = {**BASE_SETTINGS, "extra_env": {"PRELAUNCH_TEST": uuid.uuid4().hex}}
    config = load_settings(settings_argv(settings))
    prelaunch.begin(["-f", "connection.json", *settings_argv(settings)])
    early = prelaunch.take(config)
    assert early is not None and early.container_id is not None
    try:
        assert docker_client.api.inspect_container(early.container_id)["State"]["Running"]
        assert prelaunch.take(config) is None  # handed out once
    finally:
        early.cleanup()
    # Negative control: a container launched for other settings is not used, and goes.
    prelaunch.begin(settings_argv(settings))
    other = load_settings(settings_argv({**settings, "extra_env": {"PRELAUNCH_TEST": "other"}}))
    assert prelaunch.take(other) is None
    assert not list_containers(
        docker_client, fingerprint=spec.fingerprint(config, early.image.id), status="running"
    ) or _gone_soon(docker_client, spec.fingerprint(config, early.image.id))


def _gone_soon(client: docker.DockerClient, fingerprint: str) -> bool:
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not list_containers(client, fingerprint=fingerprint, status="running"):
            return True
        time.sleep(0.2)
    return False


def test_a_kernel_process_makes_one_container(specs: KernelSpecs) -> None:
    """The early container is adopted, not doubled by a second launch."""
    with start_kernel(specs) as kernel:
        container = kernel.container_id
        pid = kernel.km.provisioner.process.pid  # type: ignore[union-attr]
        client = docker.from_env()
        made = [
            c
            for c in list_containers(client)
            if (c.get("Labels") or {}).get(spec.LABEL_CONTROLLER, "").endswith(f":{pid}")
        ]
        assert [c["Id"] for c in made] == [container]


def _wait_for_spare(client: docker.DockerClient, fingerprint: str) -> None:
    import time

    deadline = time.monotonic() + 30
    while not list_containers(
        client, role="spare", fingerprint=fingerprint, status="running", unclaimed=True
    ):
        assert time.monotonic() < deadline, "no spare started"
        time.sleep(0.1)


def test_a_spare_is_claimed_by_one_kernel_only(docker_client: docker.DockerClient) -> None:
    """Kernels that see the same spare at the same instant: one gets it, the others
    make their own container (two kernels on one container would share a notebook)."""
    config = SandboxConfig(image=IMAGE, extra_env={"CLAIM_TEST": uuid.uuid4().hex})
    image_id = docker_client.images.get(IMAGE).id
    fingerprint = spec.fingerprint(config, image_id)
    count = 6
    sessions: list[ContainerSession] = []
    won = 0

    def claim(session: ContainerSession, barrier: threading.Barrier, claimed: list[str]) -> None:
        barrier.wait()
        if session._claim_spare():
            claimed.append(str(session.container_id))

    try:
        for attempt in range(3):  # the race is narrow: three spares, three rushes
            launch_spare(docker_client, config, image_id)
            _wait_for_spare(docker_client, fingerprint)
            rush = [
                ContainerSession(config, connect(config), lambda *_: None, lambda _: None)
                for _ in range(count)
            ]
            sessions += rush
            barrier = threading.Barrier(count)
            claimed: list[str] = []
            threads = [threading.Thread(target=claim, args=(s, barrier, claimed)) for s in rush]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert len(claimed) <= 1, f"rush {attempt}: {len(claimed)} kernels claimed one spare"
            won += len(claimed)
        # Not none either (on a shared engine a spare may be removed under a rush).
        assert won >= 1
    finally:
        for session in sessions:
            session.cleanup()
        for container in list_containers(docker_client, fingerprint=fingerprint):
            with contextlib.suppress(docker.errors.APIError):  # removing itself meanwhile
                docker_client.api.remove_container(container["Id"], force=True)


def test_a_container_that_two_controllers_open_serves_neither(
    docker_client: docker.DockerClient,
) -> None:
    """Defence in depth behind the claim: were two kernels ever attached to one spare,
    the relay ends it at the second OPEN, and each kernel starts a new container."""
    import time

    from sandbox_kernel.wire import Kind

    config = SandboxConfig(image=IMAGE, extra_env={"DOUBLE_OPEN": uuid.uuid4().hex})
    image_id = docker_client.images.get(IMAGE).id
    fingerprint = spec.fingerprint(config, image_id)
    launch_spare(docker_client, config, image_id)
    _wait_for_spare(docker_client, fingerprint)
    [spare] = list_containers(docker_client, fingerprint=fingerprint)
    heard: dict[str, list[Kind]] = {"a": [], "b": []}
    closed: list[str] = []
    sessions = {
        who: ContainerSession(
            config,
            connect(config),
            lambda kind, _parts, who=who: heard[who].append(kind),
            closed.append,
        )
        for who in heard
    }
    try:
        for session in sessions.values():
            session.container_id = spare["Id"]
            session._attach()
        sessions["a"].open()
        deadline = time.monotonic() + 30
        while Kind.HELLO not in heard["a"]:
            assert time.monotonic() < deadline, "no HELLO"
            time.sleep(0.1)
        time.sleep(2.5)  # a PING or two: one controller is served
        assert closed == [] and Kind.PONG in heard["a"]
        sessions["b"].open()
        while len(closed) < 2:
            assert time.monotonic() < deadline + 30, f"still serving: {closed}"
            time.sleep(0.1)
    finally:
        for session in sessions.values():
            session.cleanup()
        for container in list_containers(docker_client, fingerprint=fingerprint):
            with contextlib.suppress(docker.errors.APIError):
                docker_client.api.remove_container(container["Id"], force=True)
