"""A restart right after a start: the warm spare the successor will claim starts its
kernel while the old kernel process exits, not after its warm delay (issue 12).

The old kernel wakes it with SIGUSR1 through the engine (containers.wake_spare); the
relay listens for that signal only during the warm delay (relay.wait_warm)."""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

import docker
import pytest

from sandbox_kernel import spec
from sandbox_kernel.config import SandboxConfig
from sandbox_kernel.containers import create_container, list_containers, wake_spare
from sandbox_kernel.session import ContainerSession

from harness import IMAGE, KernelSpecs, start_kernel

pytestmark = pytest.mark.docker

SIGUSR1 = 10


def _processes(client: docker.DockerClient, container_id: str) -> int:
    return len(client.api.top(container_id)["Processes"] or [])


def _relay_catches_sigusr1(client: docker.DockerClient, container_id: str) -> bool:
    """Whether PID 1 (the relay) has a handler for SIGUSR1 (SigCgt in its status)."""
    exec_id = client.api.exec_create(container_id, ["cat", "/proc/1/status"])["Id"]
    status = client.api.exec_start(exec_id).decode()
    [caught] = [line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")]
    return bool(int(caught, 16) & (1 << (SIGUSR1 - 1)))


def _wait(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _remove(client: docker.DockerClient, fingerprint: str) -> None:
    for container in list_containers(client, fingerprint=fingerprint):
        with contextlib.suppress(docker.errors.APIError):  # removing itself meanwhile
            client.api.remove_container(container["Id"], force=True, v=True)


def _slow_spare(client: docker.DockerClient, config: SandboxConfig) -> str:
    """A started spare whose warm delay is far longer than any test: only a wake
    starts its kernel early."""
    image_id = client.images.get(config.image).id
    container_id = create_container(
        client,
        config,
        image_id,
        role="spare",
        fingerprint=spec.fingerprint(config, image_id),
        claim_timeout=600,
        warm_delay=600,
    )
    client.api.start(container_id)
    return container_id


def test_a_woken_spare_starts_its_kernel_and_an_unwoken_one_waits(
    docker_client: docker.DockerClient,
) -> None:
    image_id = docker_client.images.get(IMAGE).id
    configs = [SandboxConfig(image=IMAGE, extra_env={"WAKE_TEST": uuid.uuid4().hex}) for _ in "ab"]
    fingerprints = [spec.fingerprint(config, image_id) for config in configs]
    try:
        woken, control = (_slow_spare(docker_client, config) for config in configs)
        for container_id in (woken, control):
            # The probe sees the handler while the relay waits (it can see a handler).
            _wait(
                lambda c=container_id: _relay_catches_sigusr1(docker_client, c),
                "the waiting relay has no SIGUSR1 handler",
            )
            assert _processes(docker_client, container_id) == 1
        wake_spare(docker_client, fingerprints[0])
        _wait(lambda: _processes(docker_client, woken) >= 2, "the woken spare has no kernel")
        # Negative control: the spare nobody woke still waits, its kernel not started.
        assert _processes(docker_client, control) == 1
        assert _relay_catches_sigusr1(docker_client, control)
        # Once its kernel runs, the relay has no handler: a SIGUSR1 to the init of a PID
        # namespace is then dropped, from the engine as from any process of the sandbox.
        assert not _relay_catches_sigusr1(docker_client, woken)
        wake_spare(docker_client, fingerprints[0])
        assert docker_client.api.inspect_container(woken)["State"]["Running"]
        assert _processes(docker_client, woken) >= 2
    finally:
        for fp in fingerprints:
            _remove(docker_client, fp)


def _kill_signals(client: docker.DockerClient, container_id: str, since: int) -> list[str]:
    events = client.api.events(
        since=since,
        until=int(time.time()) + 1,
        filters={"container": container_id, "event": "kill"},
        decode=True,
    )
    return [str(event["Actor"]["Attributes"].get("signal")) for event in events]


def _spare_of(client: docker.DockerClient, fingerprint: str) -> str:
    def found() -> list[dict[str, Any]]:
        return list_containers(
            client, role="spare", fingerprint=fingerprint, status="running", unclaimed=True
        )

    _wait(lambda: bool(found()), "no warm spare started")
    return str(found()[0]["Id"])


@pytest.mark.parametrize("restart", [True, False])
def test_a_kernel_shut_down_for_a_restart_wakes_its_spare(
    docker_client: docker.DockerClient, specs: KernelSpecs, restart: bool
) -> None:
    # restart=False is the negative control: a plain shutdown leaves the spare to its
    # warm delay (nobody is about to claim it).
    env = {"WAKE_TEST": uuid.uuid4().hex}
    with start_kernel(specs, warm_spare=True, extra_env=env) as kernel:
        labels = docker_client.api.inspect_container(kernel.container_id)["Config"]["Labels"]
        fingerprint = labels[spec.LABEL_FINGERPRINT]
        try:
            spare = _spare_of(docker_client, fingerprint)
            since = int(time.time()) - 1
            process = kernel.km.provisioner.process  # type: ignore[union-attr]
            kernel.kc.shutdown(restart=restart)
            assert process.wait(timeout=30) == 0
            signals = _kill_signals(docker_client, spare, since)
            assert signals == ([str(SIGUSR1)] if restart else []), signals
        finally:
            _remove(docker_client, fingerprint)


#: What a kernel left behind: its variable, and the daemon it started.
LEFT_BEHIND = (
    "import os\n"
    "sleeping = [p for p in os.listdir('/proc') if p.isdigit()"
    " and open(f'/proc/{p}/cmdline', 'rb').read() == b'sleep\\x001000\\x00']\n"
    "print('precious' in dir(), sleeping)"
)


def _volumes(client: docker.DockerClient, container_id: str) -> list[str]:
    mounts = client.api.inspect_container(container_id)["Mounts"]
    return [str(m["Name"]) for m in mounts if m.get("Type") == "volume"]


def test_restart_right_after_start_is_fresh_and_leaves_nothing(
    docker_client: docker.DockerClient, specs: KernelSpecs
) -> None:
    env = {"WAKE_TEST": uuid.uuid4().hex}
    fingerprint = ""
    volumes: list[str] = []
    try:
        with start_kernel(specs, warm_spare=True, extra_env=env) as kernel:
            first = kernel.container_id
            fingerprint = docker_client.api.inspect_container(first)["Config"]["Labels"][
                spec.LABEL_FINGERPRINT
            ]
            volumes += _volumes(docker_client, first)
            kernel.execute(
                "import subprocess\nprecious = 1\n"
                "daemon = subprocess.Popen(['sleep', '1000'], start_new_session=True)"
            )
            # The probe's control: before the restart it sees the variable and the daemon.
            assert kernel.execute(LEFT_BEHIND).stdout.startswith("True ['"), "probe blind"
            kernel.km.restart_kernel(now=False)
            kernel.kc.wait_for_ready(timeout=60)
            second = kernel.container_id
            assert second != first
            # The successor claimed the spare the old kernel woke on its way out.
            assert "-claimed-" in docker_client.api.inspect_container(second)["Name"]
            cell = kernel.execute(LEFT_BEHIND)
            assert cell.stdout.strip() == "False []", cell.text
            volumes += _volumes(docker_client, second)
            assert len(volumes) == 2, volumes

        # After the shutdown, nothing of either kernel is left: not their containers,
        # not their working-directory volumes (the new spare, unclaimed, may wait).
        def leftovers() -> list[str]:
            return [
                c["Names"][0]
                for c in list_containers(docker_client, fingerprint=fingerprint)
                if "-spare-" not in c["Names"][0]
            ]

        _wait(lambda: not leftovers(), f"containers left: {leftovers()}", timeout=20)
        _remove(docker_client, fingerprint)

        def volumes_left() -> list[str]:
            names = {v["Name"] for v in docker_client.api.volumes()["Volumes"] or []}
            return [v for v in volumes if v in names]

        _wait(lambda: not volumes_left(), f"volumes left: {volumes_left()}", timeout=20)
    finally:
        if fingerprint:
            _remove(docker_client, fingerprint)


def test_a_claim_starts_the_kernel_of_a_spare_still_in_its_warm_delay(
    docker_client: docker.DockerClient,
) -> None:
    # The claimer's first frame wakes the relay while the kernel process still imports
    # (before its OPEN). The unwoken spare of the first test is the control.
    config = SandboxConfig(image=IMAGE, warm_spare=True, extra_env={"WAKE_TEST": uuid.uuid4().hex})
    spare = _slow_spare(docker_client, config)
    session = ContainerSession(config, docker_client, lambda *_: None, lambda _: None)
    try:
        _wait(lambda: _relay_catches_sigusr1(docker_client, spare), "the relay is not waiting yet")
        session.launch()
        assert session.claimed_spare and session.container_id == spare
        _wait(lambda: _processes(docker_client, spare) >= 2, "the claimed spare has no kernel")
    finally:
        session.cleanup()
        _remove(docker_client, session.fingerprint)
