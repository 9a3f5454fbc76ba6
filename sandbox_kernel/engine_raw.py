"""The engine calls of a start over a local unix socket, with the standard library.

See engine.py for why. Each call is one HTTP request on its own connection
(enginehttp.py); answers are untrusted input: bounded in size, parsed as JSON, and
anything but the expected status raises :class:`~.engine.EngineError` with the
engine's own message (as the SDK's errors carry it), so the session words both the
same. The attach is the HTTP upgrade the SDK's ``attach_socket`` makes.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from .engine import EngineError, Image
from .enginehttp import EngineHTTPError, quote, request, send, stream, upgrade

if TYPE_CHECKING:
    import socket

    import docker

    from .config import SandboxConfig

#: The engine API version the SDK is pinned to (engine_address.API_VERSION).
API = "/v1.41"
#: The largest container list read: each entry carries the relay's text (~90 kB), and
#: a class pre-starts tens of spares of one configuration.
MAX_LIST = 32 << 20


class RawEngine:
    """A local engine, asked over its unix socket without the Docker SDK."""

    def __init__(self, socket: str, config: SandboxConfig, timeout: float = 10.0) -> None:
        self.socket: str | None = socket
        self.path = socket
        self.config = config
        self.timeout = timeout
        self._sdk: docker.DockerClient | None = None
        self._sdk_lock = threading.Lock()

    def _call(
        self,
        method: str,
        target: str,
        body: Any = None,
        *,
        ok: tuple[int, ...] = (200,),
        limit: int = 1 << 20,
    ) -> Any:
        try:
            status, answer = request(
                self.path, method, API + target, body, timeout=self.timeout, limit=limit
            )
        except EngineHTTPError as err:
            raise EngineError(None, str(err)) from err
        if status not in ok:
            raise EngineError(status, _message(status, answer))
        return answer

    def ping(self) -> None:
        try:  # answered with the text "OK", not JSON
            status, _ = send(self.path, "GET", "/_ping", timeout=self.timeout).answer(self.timeout)
        except EngineHTTPError as err:
            raise EngineError(None, str(err)) from err
        if status != 200:
            raise EngineError(status, f"the engine answered {status} to a ping")

    def info(self) -> dict[str, Any]:
        return _mapping(self._call("GET", "/info"))

    def image(self, name: str) -> Image:
        return Image(_mapping(self._call("GET", f"/images/{quote(name, '/:')}/json")))

    def containers(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        # As the SDK's convert_filters: every value a list of strings.
        converted = {
            key: [str(v) for v in value] if isinstance(value, list) else [str(value)]
            for key, value in filters.items()
        }
        target = f"/containers/json?all=1&filters={quote(json.dumps(converted))}"
        found = self._call("GET", target, limit=MAX_LIST)
        if not isinstance(found, list) or not all(isinstance(c, dict) for c in found):
            raise EngineError(200, "the engine's container list is not a list")
        return found

    def create(self, body: dict[str, Any], name: str) -> str:
        created = _mapping(
            self._call("POST", f"/containers/create?name={quote(name)}", body, ok=(201,))
        )
        container_id = created.get("Id")
        if not isinstance(container_id, str) or not container_id.isalnum():
            raise EngineError(201, "the engine's answer to the create has no container id")
        return container_id

    def start(self, container: str) -> None:
        self._call("POST", f"/containers/{quote(container)}/start", ok=(204, 304))

    def rename(self, container: str, name: str) -> None:
        self._call("POST", f"/containers/{quote(container)}/rename?name={quote(name)}", ok=(204,))

    def inspect(self, container: str) -> dict[str, Any]:
        return _mapping(self._call("GET", f"/containers/{quote(container)}/json"))

    def attach(self, container: str) -> tuple[socket.socket, socket.socket, bytes]:
        target = f"{API}/containers/{quote(container)}/attach?stdin=1&stdout=1&stderr=1&stream=1"
        try:
            sock, first = upgrade(self.path, target, timeout=self.timeout)
        except EngineHTTPError as err:
            raise EngineError(None, str(err)) from err
        return sock, sock, first

    def kill(self, container: str, signal: str) -> None:
        self._call("POST", f"/containers/{quote(container)}/kill?signal={quote(signal)}", ok=(204,))

    def put_archive(self, container: str, path: str, archive: IO[bytes] | bytes) -> None:
        target = f"{API}/containers/{quote(container)}/archive?path={quote(path)}"
        try:
            status, answer = request(
                self.path,
                "PUT",
                target,
                archive,
                timeout=self.timeout,
                content_type="application/x-tar",
            )
        except EngineHTTPError as err:
            raise EngineError(None, str(err)) from err
        if status != 200:
            raise EngineError(status, _message(status, answer))

    def get_archive(self, container: str, path: str) -> Iterator[bytes] | None:
        target = f"{API}/containers/{quote(container)}/archive?path={quote(path)}"
        try:
            status, body = stream(self.path, target, timeout=self.timeout)
        except EngineHTTPError as err:
            raise EngineError(None, str(err)) from err
        if status == 200:
            return _engine_errors(body)
        answer = b"".join(itertools.islice(_engine_errors(body), 64))[:65536]
        body.close()  # type: ignore[attr-defined]
        if status == 404:
            return None
        try:
            message = _message(status, json.loads(answer))
        except ValueError:
            message = f"the engine answered {status}"
        raise EngineError(status, message)

    def remove(self, container: str) -> None:
        self._call("DELETE", f"/containers/{quote(container)}?force=1&v=1", ok=(204,))

    @property
    def sdk(self) -> docker.DockerClient:
        """The SDK's client for this socket, made at the first call (imports the SDK)."""
        with self._sdk_lock:
            if self._sdk is None:
                from .engine_address import connect

                self._sdk = connect(self.config)
            return self._sdk


def _engine_errors(chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from chunks
    except EngineHTTPError as err:
        raise EngineError(None, str(err)) from err
    finally:
        chunks.close()  # type: ignore[attr-defined]


def _mapping(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise EngineError(200, "the engine's answer is not a JSON object")
    return answer


def _message(status: int, answer: Any) -> str:
    """The engine's error message (its ``message`` field), as the SDK's errors carry it."""
    message = answer.get("message") if isinstance(answer, dict) else None
    if not isinstance(message, str) or not message.strip():
        return f"the engine answered {status}"
    return message.strip().splitlines()[0][:300]
