"""The start's engine calls without the Docker SDK (engine.py, engine_raw.py).

A local unix-socket engine is asked with the standard library until the kernel is
ready; every other engine through the SDK. Both must say the same thing when the
engine refuses, read the engine's answers as untrusted input, and give the kernel the
same container (spec.py's body: tests/test_seams.py compares it with the SDK's).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_remote_engine import engine_proxy

from sandbox_kernel.config import SandboxConfig
from sandbox_kernel.engine import DEFAULT_SOCKET, EngineError, connect_engine, raw_socket
from sandbox_kernel.engine_address import connect, local_socket
from sandbox_kernel.engine_raw import RawEngine
from sandbox_kernel.engine_sdk import SdkEngine
from sandbox_kernel.errors import ContainerStartError, DockerUnavailableError, ImageNotFoundError
from sandbox_kernel.session import ContainerSession

from harness import BASE_SETTINGS, KernelSpecs, accepted, start_kernel


# -- without an engine ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "setting", "raw"),
    [
        ({}, "", DEFAULT_SOCKET),
        ({"DOCKER_HOST": "unix:///run/other.sock"}, "", "/run/other.sock"),
        ({}, "unix:///run/setting.sock", "/run/setting.sock"),
        ({"DOCKER_HOST": "tcp://127.0.0.1:2375"}, "", None),
        ({"DOCKER_HOST": "ssh://user@host"}, "", None),
        ({"DOCKER_HOST": "unix:///run/x.sock", "DOCKER_TLS_VERIFY": "1"}, "", None),
        ({"DOCKER_CONTEXT": "elsewhere"}, "", None),
        ({"current_context": "elsewhere"}, "", None),
        ({"current_context": "default"}, "", DEFAULT_SOCKET),
    ],
)
def test_the_raw_path_is_taken_only_where_the_sdk_finds_the_same_socket(
    env: dict[str, str],
    setting: str,
    raw: str | None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    env = dict(env)
    context = env.pop("current_context", None)
    if context is not None:
        (tmp_path / "config.json").write_text(json.dumps({"currentContext": context}))
        if context != "default":
            from harness import write_context

            write_context(tmp_path, context, "tcp://10.9.9.9:2375")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = SandboxConfig(docker_host=setting)
    assert raw_socket(config) == raw
    if raw is not None:  # the SDK's resolution agrees wherever the raw path is taken
        assert local_socket(config) == raw


@contextlib.contextmanager
def fake_engine(tmp_path: Path, answer: bytes) -> Iterator[str]:
    """A unix socket that answers every request with ``answer`` (a hostile engine)."""
    path = str(tmp_path / "engine.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()

    def serve() -> None:
        for conn in accepted(listener):
            with conn:
                conn.recv(65536)
                with contextlib.suppress(OSError):
                    conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield path
    finally:
        listener.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]",  # a list where an object is due
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnope!",  # not JSON
        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (2 << 20),  # too long
        b"SSH-2.0-OpenSSH\r\n\r\n",  # not HTTP
        b'HTTP/1.1 500 Oops\r\nContent-Length: 26\r\n\r\n{"message": "it broke\\nx"}',
    ],
    ids=["list", "text", "long", "ssh", "500"],
)
def test_odd_engine_answers_are_refused_with_a_clear_error(tmp_path: Path, answer: bytes) -> None:
    with fake_engine(tmp_path, answer) as path:
        engine = RawEngine(path, SandboxConfig(), timeout=5)
        with pytest.raises(EngineError) as caught:
            engine.inspect("abc")
        if answer.startswith(b"HTTP/1.1 500"):
            assert caught.value.status == 500 and caught.value.reason == "it broke"
        # The session words it as for the SDK: one sentence.
        with pytest.raises(ImageNotFoundError if b" 404 " in answer else DockerUnavailableError):
            ContainerSession(SandboxConfig(), engine, lambda *_: None, lambda _: None)


@pytest.mark.parametrize(
    ("answer", "first"),
    [
        (b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", b""),
        (
            b"HTTP/1.1 101 UPGRADED\r\n\r\n\x01\x00\x00\x00\x00\x00\x00\x02hi",
            b"\x01" + bytes(6) + b"\x02hi",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", None),
        (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", None),
        (b"HTTP/1.1 101 " + b"x" * (64 << 10), None),
    ],
    ids=["upgraded", "with-stream", "not-upgraded", "missing", "endless-head"],
)
def test_the_attach_is_an_upgrade_or_refused(
    tmp_path: Path, answer: bytes, first: bytes | None
) -> None:
    with fake_engine(tmp_path, answer) as path:
        engine = RawEngine(path, SandboxConfig(), timeout=5)
        if first is None:
            with pytest.raises(EngineError):
                engine.attach("abc")
            return
        holder, sock, got = engine.attach("abc")
        try:
            assert got == first and sock.gettimeout() is None
        finally:
            holder.close()


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"abcde",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcdEXTRA", b"abcd"),
        (b"HTTP/1.1 200 OK\r\n\r\nto the end", b"to the end"),
        (b'HTTP/1.1 404 Not Found\r\nContent-Length: 18\r\n\r\n{"message": "nah"}', None),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", EngineError),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc", EngineError),
        (b'HTTP/1.1 500 Oops\r\nContent-Length: 21\r\n\r\n{"message": "broken"}', EngineError),
    ],
    ids=["chunked", "length", "to-eof", "missing", "cut", "bad-chunk", "500"],
)
def test_an_archive_is_read_as_it_comes_or_refused(
    tmp_path: Path, answer: bytes, body: object
) -> None:
    with fake_engine(tmp_path, answer) as path:
        engine = RawEngine(path, SandboxConfig(), timeout=5)
        if body is EngineError:
            with pytest.raises(EngineError):
                chunks = engine.get_archive("abc", "/tmp/work/outputs")
                b"".join(chunks or [])
            return
        chunks = engine.get_archive("abc", "/tmp/work/outputs")
        assert (None if chunks is None else b"".join(chunks)) == body


# -- against the real engine --------------------------------------------------------------
def _both(config: SandboxConfig) -> list[object]:
    path = raw_socket(config)
    assert path is not None
    return [RawEngine(path, config), SdkEngine(connect(config))]


@pytest.mark.docker
def test_a_missing_image_is_the_same_sentence_either_way() -> None:
    config = SandboxConfig(image="sandbox-kernel:no-such-image-for-engine-test")
    said = []
    for engine in _both(config):
        with pytest.raises(ImageNotFoundError) as caught:
            ContainerSession(config, engine, lambda *_: None, lambda _: None)  # type: ignore[arg-type]
        said.append(str(caught.value))
    assert said[0] == said[1] and "sandbox-kernel image build" in said[0]


@pytest.mark.docker
def test_a_refused_create_is_the_same_sentence_either_way(tmp_path: Path) -> None:
    """A bind mount of a folder that does not exist: the engine refuses the create."""
    config = SandboxConfig(
        image=BASE_SETTINGS["image"], mounts=[f"{tmp_path}/absent:/data"], warm_spare=False
    )
    said = []
    for engine in _both(config):
        session = ContainerSession(config, engine, lambda *_: None, lambda _: None)  # type: ignore[arg-type]
        with pytest.raises(ContainerStartError) as caught:
            session.launch(use_spare=False)
        said.append(str(caught.value))
    assert said[0] == said[1] and said[0].startswith("The engine refused to create")


@pytest.mark.docker
def test_an_engine_socket_that_does_not_answer_falls_back_to_the_sdks_error(
    tmp_path: Path,
) -> None:
    config = SandboxConfig(docker_host=f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(DockerUnavailableError) as raw:
        connect_engine(config)
    with pytest.raises(DockerUnavailableError) as sdk:
        connect(config)
    assert str(raw.value) == str(sdk.value)


@pytest.mark.docker
@pytest.mark.parametrize("over_tcp", [False, True], ids=["unix", "tcp"])
def test_a_kernel_is_ready_without_the_sdk_on_a_local_socket_only(
    over_tcp: bool, specs: KernelSpecs, tmp_path: Path
) -> None:
    """The installed kernel through jupyter_client: on the local socket its start
    never imports the Docker SDK (kernel_info says what was loaded at ready); the same
    engine through a TCP proxy on loopback takes the SDK's path."""
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    folder = tmp_path / "notebook"
    folder.mkdir()
    (folder / "data.csv").write_text("a,b\n")
    with contextlib.ExitStack() as stack:
        if over_tcp:
            port = stack.enter_context(engine_proxy(None))
            env["DOCKER_HOST"] = f"tcp://127.0.0.1:{port}"
        for _ in range(2):  # the first start (SDK-made, cached) and the next (raw request)
            with start_kernel(specs, env=env, cwd=folder) as kernel:
                info = kernel.kc.kernel_info(reply=True, timeout=30)["content"]["sandbox"]
                assert info["engine_client"] == ("docker-sdk" if over_tcp else "stdlib")
                assert info["docker_sdk_loaded"] is over_tcp
                # The folder copied in, a cell measured (usage line), the outputs folder
                # looked at: still without the SDK on the local socket.
                cell = kernel.execute("print(open('data.csv').read().strip(), sum(range(10)))")
                assert cell.stdout.strip() == "a,b 45", cell.text
                if not over_tcp:  # (through TCP it follows the reply: test_remote_engine)
                    assert cell.usage is not None and cell.usage["wall_time_s"] > 0
                host = kernel.execute("import socket; print(socket.gethostname())")
                assert host.stdout.strip() == "sandbox"
                info = kernel.kc.kernel_info(reply=True, timeout=30)["content"]["sandbox"]
                assert info["docker_sdk_loaded"] is over_tcp
    assert os.environ.get("DOCKER_HOST") is None or over_tcp
