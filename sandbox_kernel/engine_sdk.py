"""The engine calls of a start through the Docker SDK: every engine that is not a local
unix socket (TCP, TLS, SSH, remote contexts), and programs that pass their own client.

See engine.py. The SDK's errors become :class:`~.engine.EngineError` with the
engine's status and message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from .engine import EngineError, Image

if TYPE_CHECKING:
    import docker


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    import docker.errors
    import requests.exceptions

    try:
        yield
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        status = getattr(err, "status_code", None)
        raise EngineError(status if isinstance(status, int) else None, reason(err)) from err


def reason(err: BaseException) -> str:
    """One line saying why (the engine's explanation when the SDK has one)."""
    text = getattr(err, "explanation", None) or str(err) or type(err).__name__
    return str(text).strip().splitlines()[0][:300]


class SdkEngine:
    """An engine reached through a connected Docker SDK client."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.socket: str | None = None

    @property
    def sdk(self) -> docker.DockerClient:
        return self.client

    def info(self) -> dict[str, Any]:
        with _errors():
            return dict(self.client.info())

    def image(self, name: str) -> Image:
        with _errors():
            return Image(dict(self.client.api.inspect_image(name)))

    def containers(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        with _errors():
            return list(self.client.api.containers(all=True, filters=filters))

    def create(self, body: dict[str, Any], name: str) -> str:
        with _errors():
            return str(self.client.api.create_container_from_config(body, name)["Id"])

    def start(self, container: str) -> None:
        with _errors():
            self.client.api.start(container)

    def rename(self, container: str, name: str) -> None:
        with _errors():
            self.client.api.rename(container, name)

    def inspect(self, container: str) -> dict[str, Any]:
        with _errors():
            return dict(self.client.api.inspect_container(container))

    def attach(self, container: str) -> tuple[Any, Any, bytes]:
        with _errors():
            sock = self.client.api.attach_socket(
                container, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
        # unix and plain-TCP attach give a SocketIO around the socket; TLS gives the
        # SSL socket directly; SSH gives a channel. All have recv/sendall.
        return sock, getattr(sock, "_sock", sock), b""

    def kill(self, container: str, signal: str) -> None:
        with _errors():
            self.client.api.kill(container, signal=signal)

    def put_archive(self, container: str, path: str, archive: IO[bytes] | bytes) -> None:
        with _errors():
            self.client.api.put_archive(container, path, archive)

    def get_archive(self, container: str, path: str) -> Iterator[bytes] | None:
        import docker.errors

        try:
            with _errors():
                chunks, _ = self.client.api.get_archive(container, path, chunk_size=1 << 20)
        except EngineError as err:
            if isinstance(err.__cause__, docker.errors.NotFound):
                return None
            raise
        return (bytes(chunk) for chunk in chunks)

    def remove(self, container: str) -> None:
        with _errors():
            self.client.api.remove_container(container, force=True, v=True)
