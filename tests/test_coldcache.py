"""The cold start's raw first request (coldcache.py, enginehttp.py, prelaunch.py).

The kernel process replays the create request the SDK sent at its last start, before
it imports the SDK, and keeps that container only when the request equals the one
spec.py gives for its settings now. What runs is always spec.py's container: a
stale, corrupt or edited cache never yields a kernel in anything else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from sandbox_kernel import coldcache, engine_address, enginehttp, prelaunch, spec
from sandbox_kernel.cli import load_settings
from sandbox_kernel.config import SandboxConfig
from sandbox_kernel.containers import launch_spare, list_containers
from sandbox_kernel.engine_address import connect
from sandbox_kernel.install import settings_argv
from sandbox_kernel.session import ContainerSession

from harness import BASE_SETTINGS, start_kernel

#: What makes a container a sandbox: compared between a raw-made and an SDK-made one.
HOST_FIELDS = (
    "ReadonlyRootfs",
    "CapDrop",
    "CapAdd",
    "SecurityOpt",
    "NetworkMode",
    "Privileged",
    "Memory",
    "MemorySwap",
    "NanoCpus",
    "PidsLimit",
    "Tmpfs",
    "Mounts",
    "Runtime",
    "Ulimits",
    "IpcMode",
    "Init",
    "AutoRemove",
    "ShmSize",
    "Devices",
    "LogConfig",
)
CONFIG_FIELDS = ("User", "Env", "Cmd", "Image", "WorkingDir", "Hostname", "NetworkDisabled")
PER_LAUNCH = (spec.LABEL_CONTROLLER, spec.LABEL_CREATED)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of the test's own (the user's is not touched)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "sandbox-kernel"


def _entry(cache: Path) -> Path:
    [path] = cache.glob("cold-*.json")
    return path


def _edit(cache: Path, change: Any) -> None:
    path = _entry(cache)
    entry = json.loads(path.read_text())
    change(entry["body"])
    path.write_text(json.dumps(entry))


# -- without an engine ---------------------------------------------------------------------
def test_the_labels_and_api_it_writes_are_specs_and_the_sdks() -> None:
    assert coldcache.LABEL == spec.LABEL
    assert coldcache.LABEL_ROLE == spec.LABEL_ROLE
    assert coldcache.LABEL_FINGERPRINT == spec.LABEL_FINGERPRINT
    assert coldcache.LABEL_CONTROLLER == spec.LABEL_CONTROLLER
    assert coldcache.LABEL_CREATED == spec.LABEL_CREATED
    assert f"/v{engine_address.API_VERSION}" == coldcache.API


def test_engine_answers_are_read_as_http_or_refused() -> None:
    parse = enginehttp._parse
    assert parse(b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\n{}\r\nxx") == (201, b"{}\r\n")
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n"
    )
    assert parse(chunked) == (200, b"[1,2]")
    assert parse(b"HTTP/1.1 204 No Content\r\n\r\n") == (204, b"")
    for bad in (
        b"",
        b"SSH-2.0\r\n\r\n",
        b"HTTP/1.1 abc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nab",
    ):
        with pytest.raises(enginehttp.EngineHTTPError):
            parse(bad)


def _store(config_files: list[str], **fields: Any) -> None:
    fingerprint = "ab" * 16
    labels = {
        spec.LABEL: "1",
        spec.LABEL_ROLE: "kernel",
        spec.LABEL_FINGERPRINT: fingerprint,
        spec.LABEL_CONTROLLER: "host:1",
        spec.LABEL_CREATED: "0",
    }
    entry: dict[str, Any] = {
        "socket": "/var/run/docker.sock",
        "host": "host",
        "config_files": config_files,
        "fingerprint": fingerprint,
        "warm_spare": False,
        "body": {"Image": "sha256:" + "0" * 64, "Labels": labels},
    }
    entry.update(fields)
    coldcache.store(["--SandboxConfig.memory=1g"], **entry)


def test_an_entry_is_read_only_as_written_by_this_user_for_these_inputs(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = ["--SandboxConfig.memory=1g"]
    config_file = tmp_path / "sandbox_kernel_config.py"
    config_file.write_text("c.SandboxConfig.memory = '1g'\n")
    _store([str(config_file)])
    path = _entry(cache)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert coldcache.load(flags) is not None  # the control: it is read as written
    assert coldcache.load(["--SandboxConfig.memory=2g"]) is None  # other flags
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    assert coldcache.load(flags) is None  # a remote engine: the SDK's
    monkeypatch.delenv("DOCKER_HOST")
    config_file.write_text("c.SandboxConfig.memory = '2g'\n")
    assert coldcache.load(flags) is None  # a config file changed since
    config_file.write_text("c.SandboxConfig.memory = '1g'\n")
    assert coldcache.load(flags) is not None

    good = path.read_bytes()
    path.chmod(0o664)
    assert coldcache.load(flags) is None  # others could have written it
    path.chmod(0o600)
    for corrupt in (good[: len(good) // 2], b"[]", b"\xff" * 100, b"{" * 100_000):
        path.write_bytes(corrupt)
        assert coldcache.load(flags) is None
    path.write_bytes(good + b" " * coldcache.MAX_ENTRY)
    assert coldcache.load(flags) is None  # too large
    path.unlink()
    target = tmp_path / "elsewhere.json"
    target.write_bytes(good)
    path.symlink_to(target)
    assert coldcache.load(flags) is None  # not followed
    path.unlink()

    for bad in (
        {"socket": "relative/docker.sock"},
        {"host": "a b"},
        {"fingerprint": "xyz"},
        {"warm_spare": "yes"},
        {"body": {"Image": "x", "Labels": {spec.LABEL_ROLE: "spare"}}},
        {"body": ["not", "a", "body"]},
    ):
        _store([str(config_file)], **bad)
        assert coldcache.load(flags) is None, bad


def test_a_fifo_named_by_the_cache_does_not_hang_the_start(cache: Path, tmp_path: Path) -> None:
    flags = ["--SandboxConfig.memory=1g"]
    config_file = tmp_path / "sandbox_kernel_config.py"
    config_file.write_text("c.SandboxConfig.memory = '1g'\n")
    _store([str(config_file)])
    assert coldcache.load(flags) is not None  # the control
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    path = _entry(cache)
    entry = json.loads(path.read_text())
    entry["files"][str(fifo)] = "0" * 64
    path.write_text(json.dumps(entry))
    assert coldcache.load(flags) is None  # read, it would block for ever
    path.unlink()
    os.mkfifo(path, 0o600)
    assert coldcache.load(flags) is None


def test_entries_are_bounded(cache: Path, tmp_path: Path) -> None:
    for index in range(coldcache.MAX_ENTRIES + 5):
        fingerprint = f"{index:02x}" * 16
        labels = {
            spec.LABEL: "1",
            spec.LABEL_ROLE: "kernel",
            spec.LABEL_FINGERPRINT: fingerprint,
            spec.LABEL_CONTROLLER: "h:1",
            spec.LABEL_CREATED: "0",
        }
        coldcache.store(
            [f"--SandboxConfig.pids={index + 10}"],
            socket="/s",
            host="h",
            config_files=[],
            fingerprint=fingerprint,
            warm_spare=False,
            body={"Image": "i", "Labels": labels},
        )
    assert len(list(cache.glob("cold-*.json"))) == coldcache.MAX_ENTRIES
    assert not list(cache.glob("*.tmp"))


# -- with the engine, the kernel process's path in this process ---------------------------
@pytest.fixture
def settings(docker_client: docker.DockerClient) -> Iterator[dict[str, Any]]:
    """Settings of their own (an env value), and their containers removed after."""
    settings = {**BASE_SETTINGS, "extra_env": {"COLD_TEST": uuid.uuid4().hex}}
    yield settings
    image_id = docker_client.images.get(settings["image"]).id
    fingerprint = spec.fingerprint(load_settings(settings_argv(settings)), image_id)
    for container in list_containers(docker_client, fingerprint=fingerprint):
        with contextlib.suppress(docker.errors.APIError):
            docker_client.api.remove_container(container["Id"], force=True, v=True)


def _start(settings: dict[str, Any]) -> ContainerSession:
    """What ``sandbox-kernel kernel`` does: begin first thing, take at the sandbox's start."""
    argv = settings_argv(settings)
    prelaunch.begin(["-f", "connection.json", *argv])
    config = load_settings(argv)
    session = prelaunch.take(config)
    if session is None:  # as InnerKernel.start goes on
        session = ContainerSession(config, connect(config), lambda *_: None, lambda _: None)
        session.launch()
        prelaunch.remember(session)
    assert session.container_id is not None
    return session


def _created_since(client: docker.DockerClient, since: float, fingerprint: str) -> list[str]:
    """Containers of this configuration the engine created since then (its event log)."""
    events = client.api.events(
        since=int(since) - 1,
        until=time.time() + 0.5,
        filters={"type": "container", "event": "create", "label": f"{spec.LABEL_FINGERPRINT}"},
        decode=True,
    )
    return [
        e["id"]
        for e in events
        if e.get("Actor", {}).get("Attributes", {}).get(spec.LABEL_FINGERPRINT) == fingerprint
        and e.get("timeNano", 0) >= since * 1e9
    ]


def _gone(client: docker.DockerClient, container_id: str) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            client.api.inspect_container(container_id)
        except docker.errors.NotFound:
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def prelaunch_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """What the kernel process's start says, at debug level (where the paths are told)."""
    caplog.set_level(logging.DEBUG, logger="sandbox_kernel.prelaunch")
    return caplog


def _raw_taken(log: pytest.LogCaptureFixture) -> bool:
    return "made by the cached create request" in log.text


@pytest.mark.docker
def test_the_second_cold_start_sends_the_cached_request_and_gets_the_same_sandbox(
    docker_client: docker.DockerClient,
    settings: dict[str, Any],
    cache: Path,
    prelaunch_log: pytest.LogCaptureFixture,
) -> None:
    first = _start(settings)  # no entry yet: the SDK's request, then cached
    try:
        assert not _raw_taken(prelaunch_log)
        assert _entry(cache).exists()
        second = _start(settings)
    finally:
        made = docker_client.api.inspect_container(first.container_id)
        first.cleanup()
    try:
        assert _raw_taken(prelaunch_log)
        raw = docker_client.api.inspect_container(second.container_id)
        assert raw["State"]["Running"]
        for field in HOST_FIELDS:
            assert raw["HostConfig"].get(field) == made["HostConfig"].get(field), field
        for field in CONFIG_FIELDS:
            assert raw["Config"].get(field) == made["Config"].get(field), field
        labels = {k: v for k, v in raw["Config"]["Labels"].items() if k not in PER_LAUNCH}
        assert labels == {k: v for k, v in made["Config"]["Labels"].items() if k not in PER_LAUNCH}
        assert raw["Config"]["Labels"][spec.LABEL_CONTROLLER] == spec.controller_id()
        # The hardening is there (not merely equal on both): spec.py's container.
        assert raw["HostConfig"]["NetworkMode"] == "none"
        assert raw["HostConfig"]["ReadonlyRootfs"] and raw["HostConfig"]["CapDrop"] == ["ALL"]
        assert not raw["HostConfig"]["Privileged"]
    finally:
        second.cleanup()


TAMPERING = {
    "host network": lambda body: body["HostConfig"].update(NetworkMode="host"),
    "privileged": lambda body: body["HostConfig"].update(Privileged=True),
    "writable root, capabilities kept": lambda body: body["HostConfig"].update(
        ReadonlyRootfs=False, CapDrop=None
    ),
}


@pytest.mark.docker
@pytest.mark.parametrize("tamper", TAMPERING, ids=list(TAMPERING))
def test_a_tampered_cached_request_never_yields_a_kernel_in_its_container(
    docker_client: docker.DockerClient,
    settings: dict[str, Any],
    cache: Path,
    prelaunch_log: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tamper: str,
) -> None:
    _start(settings).cleanup()
    _edit(cache, TAMPERING[tamper])
    config = load_settings(settings_argv(settings))
    fingerprint = spec.fingerprint(config, docker_client.images.get(config.image).id)
    since = time.time()
    adopted = _start(settings)
    try:
        host = docker_client.api.inspect_container(adopted.container_id)["HostConfig"]
        made = _created_since(docker_client, since, fingerprint)
    finally:
        adopted.cleanup()
    # The tampered request did make a container (the attack was tried) ...
    assert "is not today's" in prelaunch_log.text
    assert len(made) == 2 and adopted.container_id == made[-1]
    # ... which was removed, and the kernel's is spec.py's.
    assert _gone(docker_client, made[0])
    assert host["NetworkMode"] == "none" and not host["Privileged"]
    assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"]

    # Negative control: without the comparison the tampered container is the kernel's.
    prelaunch_log.clear()
    _start(settings).cleanup()  # the entry is rewritten by that start: tamper again
    _edit(cache, TAMPERING[tamper])
    monkeypatch.setattr(prelaunch, "_same_request", lambda *_: True)
    loose = _start(settings)
    try:
        host = docker_client.api.inspect_container(loose.container_id)["HostConfig"]
        assert _raw_taken(prelaunch_log)
        assert (
            host["NetworkMode"] == "host"
            or host["Privileged"]
            or not (host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"])
        )
    finally:
        loose.cleanup()


@pytest.mark.docker
def test_settings_changed_in_a_config_file_do_not_reuse_the_old_request(
    docker_client: docker.DockerClient,
    settings: dict[str, Any],
    cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    prelaunch_log: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter"))
    config_file = tmp_path / "jupyter" / "sandbox_kernel_config.py"
    config_file.parent.mkdir()

    def memory_of(session: ContainerSession) -> int:
        return int(
            docker_client.api.inspect_container(session.container_id)["HostConfig"]["Memory"]
        )

    config_file.write_text("c.SandboxConfig.memory = '1g'\n")
    _start(settings).cleanup()
    # The file changed: its digest no longer matches the entry's; no raw request.
    config_file.write_text("c.SandboxConfig.memory = '768m'\n")
    session = _start(settings)
    try:
        assert memory_of(session) == 768 * 1024 * 1024
        assert not _raw_taken(prelaunch_log)
    finally:
        session.cleanup()

    # A file whose value comes from elsewhere (here the environment) looks unchanged:
    # the raw request leaves with the old body, and the comparison throws it away.
    config_file.write_text(
        "import os\nc.SandboxConfig.memory = os.environ.get('COLD_TEST_MEMORY', '1g')\n"
    )
    _start(settings).cleanup()  # cached with 1g
    monkeypatch.setenv("COLD_TEST_MEMORY", "768m")
    prelaunch_log.clear()
    session = _start(settings)
    try:
        assert "is not today's" in prelaunch_log.text and not _raw_taken(prelaunch_log)
        assert memory_of(session) == 768 * 1024 * 1024
    finally:
        session.cleanup()


@pytest.mark.docker
def test_a_waiting_spare_is_claimed_and_no_raw_container_made(
    docker_client: docker.DockerClient,
    settings: dict[str, Any],
    cache: Path,
    prelaunch_log: pytest.LogCaptureFixture,
) -> None:
    settings = {**settings, "warm_spare": True}
    config = load_settings(settings_argv(settings))
    image_id = docker_client.images.get(config.image).id
    fingerprint = spec.fingerprint(config, image_id)
    first = _start(settings)
    first.cleanup()
    assert _entry(cache).exists()
    launch_spare(docker_client, config, image_id)
    deadline = time.monotonic() + 30
    while not list_containers(
        docker_client, role="spare", fingerprint=fingerprint, status="running", unclaimed=True
    ):
        assert time.monotonic() < deadline, "no spare started"
        time.sleep(0.1)
    since = time.time()
    claimed = _start(settings)
    try:
        assert claimed.claimed_spare
        assert not _raw_taken(prelaunch_log)
        assert _created_since(docker_client, since, fingerprint) == []
    finally:
        claimed.cleanup()
    # Control: with no spare waiting, the same start does send the cached request.
    for container in list_containers(docker_client, role="spare", fingerprint=fingerprint):
        with contextlib.suppress(docker.errors.APIError):
            docker_client.api.remove_container(container["Id"], force=True, v=True)
    cold = _start(settings)
    cold.cleanup()
    assert _raw_taken(prelaunch_log)


def _garbage(cache: Path) -> None:
    _entry(cache).write_text('{"schema": 1, "body": ')


def _missing_image(cache: Path) -> None:
    _edit(cache, lambda body: body.update(Image="sha256:" + "0" * 64))


@pytest.mark.docker
@pytest.mark.parametrize(
    ("spoil", "said"),
    [(_garbage, ""), (_missing_image, "no raw first request")],
    ids=["corrupt", "refused"],
)
def test_a_corrupt_or_refused_request_falls_back_to_the_sdks_and_leaves_nothing(
    docker_client: docker.DockerClient,
    settings: dict[str, Any],
    cache: Path,
    prelaunch_log: pytest.LogCaptureFixture,
    spoil: Any,
    said: str,
) -> None:
    """A cache that does not parse, and a request the engine refuses (an image it
    lacks): the start goes on as without a cache, and writes the entry anew."""
    _start(settings).cleanup()
    spoil(cache)
    config = load_settings(settings_argv(settings))
    fingerprint = spec.fingerprint(config, docker_client.images.get(config.image).id)
    since = time.time()
    session = _start(settings)
    try:
        assert said in prelaunch_log.text and not _raw_taken(prelaunch_log)
        assert _created_since(docker_client, since, fingerprint) == [session.container_id]
        assert docker_client.api.inspect_container(session.container_id)["State"]["Running"]
        assert coldcache.load(settings_argv(settings)) is not None
    finally:
        session.cleanup()


# -- through the installed kernel and jupyter_client ---------------------------------------
@pytest.mark.docker
def test_a_kernel_starts_in_the_container_its_cached_request_made(
    docker_client: docker.DockerClient, settings: dict[str, Any], tmp_path: Path
) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    config = load_settings(settings_argv(settings))
    fingerprint = spec.fingerprint(config, docker_client.images.get(config.image).id)
    with start_kernel(env=env, **settings) as kernel:
        assert kernel.execute("print(1 + 1)").stdout.strip() == "2"
    entry = _entry(tmp_path / "cache" / "sandbox-kernel")
    written = entry.stat().st_mtime_ns
    since = time.time()
    with start_kernel(env=env, **settings) as kernel:
        assert kernel.execute("print(2 + 2)").stdout.strip() == "4"
        container = kernel.container_id
    # One container made, and not by the SDK's request (that start rewrites the entry).
    assert _created_since(docker_client, since, fingerprint) == [container]
    assert entry.stat().st_mtime_ns == written

    # Tampered: the kernel still starts, in spec.py's container; the other one is gone.
    def host_network(body: dict[str, Any]) -> None:
        body["HostConfig"]["NetworkMode"] = "host"
        body["HostConfig"]["Privileged"] = True

    _edit(tmp_path / "cache" / "sandbox-kernel", host_network)
    since = time.time()
    with start_kernel(env=env, **settings) as kernel:
        container = kernel.container_id
        host = docker_client.api.inspect_container(container)["HostConfig"]
        assert host["NetworkMode"] == "none" and not host["Privileged"]
        assert kernel.execute("print(3 + 3)").stdout.strip() == "6"
    made = _created_since(docker_client, since, fingerprint)
    assert len(made) == 2 and made[-1] == container
    assert _gone(docker_client, made[0])


@pytest.mark.docker
def test_config_of_a_container_is_not_loosened_by_the_body_builder(
    docker_client: docker.DockerClient,
) -> None:
    """spec.create_body is what the SDK's create_container sent before it: compare a
    container made each way (the kernel's request, rebuilt by hand as it was)."""
    config = SandboxConfig(image=BASE_SETTINGS["image"], extra_env={"COLD_TEST": "body"})
    image_id = docker_client.images.get(config.image).id
    options = spec.container_options(config)
    labels = spec.labels("kernel", "0" * 32)
    old = docker_client.api.create_container(
        image_id,
        command=spec.relay_command(config, claim_timeout=60),
        labels=labels,
        host_config=docker_client.api.create_host_config(**options["host_config"]),
        **options["container"],
    )["Id"]
    body = spec.create_body(
        config,
        image_id,
        version=engine_address.API_VERSION,
        role="kernel",
        fingerprint_="0" * 32,
        claim_timeout=60,
    )
    body["Labels"] = labels
    new = docker_client.api.create_container_from_config(body)["Id"]
    try:
        a, b = (docker_client.api.inspect_container(i) for i in (old, new))
        assert a["HostConfig"] == b["HostConfig"]
        for field in (*CONFIG_FIELDS, "Labels", "AttachStdin", "OpenStdin", "StdinOnce", "Tty"):
            assert a["Config"].get(field) == b["Config"].get(field), field
    finally:
        for container in (old, new):
            docker_client.api.remove_container(container, force=True, v=True)


def test_the_cache_folder_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert coldcache.folder() == os.path.join(str(tmp_path), "sandbox-kernel")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert coldcache.folder() == os.path.join(str(tmp_path), ".cache", "sandbox-kernel")
