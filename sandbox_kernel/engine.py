"""The engine calls a sandbox's start makes: one narrow interface, two ways to make them.

A kernel's start asks the engine for a handful of things (the image, a spare to claim
or a container to create and start, the attach) and nothing else until its kernel
answers. Importing the Docker SDK (requests, urllib3, docker-py) and making its client
costs about 0.1 s of CPU, a tenth of a start's, twenty times over in a class. So for
a local engine reached over its unix socket, :class:`~.engine_raw.RawEngine` makes
these calls with the standard library (enginehttp.py); every other engine (TCP, TLS,
SSH, a context pointing elsewhere) gets :class:`~.engine_sdk.SdkEngine`, the SDK's
client behind the same calls. The session (session.py) knows only :class:`Engine`:
each call is defined once, and its errors become the same sentences either way.

What is not on the start's path (usage stats, archive copies, the event log) uses
the SDK's client, :attr:`Engine.sdk`, made when first needed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import docker

    from .config import SandboxConfig

#: The SDK's default local socket (docker.constants.DEFAULT_UNIX_SOCKET).
DEFAULT_SOCKET = "/var/run/docker.sock"


class EngineError(Exception):
    """The engine refused a call, or could not be asked.

    Attributes:
        status: the engine's HTTP status, or None when there was no answer.
        reason: one line saying why (the engine's own message when it gave one).
    """

    def __init__(self, status: int | None, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Image:
    """An image as the engine describes it (``GET /images/{name}/json``)."""

    def __init__(self, attrs: dict[str, Any]) -> None:
        self.attrs = attrs
        self.id = str(attrs.get("Id") or "")

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.attrs.get("Config") or {}).get("Labels") or {})


class Engine(Protocol):
    """What the session asks of the engine. Every call raises :class:`EngineError`."""

    #: The local socket's path when the engine is reached over one, else None.
    socket: str | None

    def info(self) -> dict[str, Any]: ...

    def image(self, name: str) -> Image: ...

    def containers(self, filters: dict[str, Any]) -> list[dict[str, Any]]: ...

    def create(self, body: dict[str, Any], name: str) -> str: ...

    def start(self, container: str) -> None: ...

    def rename(self, container: str, name: str) -> None: ...

    def inspect(self, container: str) -> dict[str, Any]: ...

    def attach(self, container: str) -> tuple[Any, Any, bytes]:
        """The attach connection as it is to be kept and closed, the socket to read and
        write (recv/sendall/shutdown), and the stream's bytes already read."""
        ...

    def kill(self, container: str, signal: str) -> None: ...

    def put_archive(self, container: str, path: str, archive: IO[bytes] | bytes) -> None:
        """Extract a tar (from a seekable file, or bytes) at ``path`` in the container."""
        ...

    def get_archive(self, container: str, path: str) -> Iterator[bytes] | None:
        """A tar of ``path`` in the container as it comes; None when there is no such path."""
        ...

    def remove(self, container: str) -> None:
        """Remove it, running or not, with its anonymous volumes."""
        ...

    @property
    def sdk(self) -> docker.DockerClient:
        """The Docker SDK's client for this engine (made when first asked for)."""
        ...


def as_engine(client: Engine | docker.DockerClient) -> Engine:
    """An :class:`Engine` for a connected SDK client (or the engine itself)."""
    from .engine_raw import RawEngine
    from .engine_sdk import SdkEngine

    if isinstance(client, (RawEngine, SdkEngine)):
        return client
    # One per client: check_runtime remembers a good answer on it.
    engine: Engine = client.__dict__.setdefault("_sandbox_engine", SdkEngine(client))
    return engine


def raw_socket(config: SandboxConfig) -> str | None:
    """The engine's unix socket when it is surely local, found without the SDK; None
    whenever the SDK's own resolution (engine_address.engine_address) might say otherwise.

    Local: the ``docker_host`` setting or ``DOCKER_HOST`` is ``unix://``, or neither is
    set and no docker CLI context is chosen (``DOCKER_CONTEXT`` or the config's
    ``currentContext``, other than ``default``). TLS settings in the environment, TCP,
    SSH and named contexts: None.
    """
    host = config.docker_host
    if not host:
        if os.environ.get("DOCKER_TLS_VERIFY") is not None or os.environ.get("DOCKER_CERT_PATH"):
            return None
        host = os.environ.get("DOCKER_HOST") or ""
    if not host:
        if _chosen_context() not in ("", "default"):
            return None
        return DEFAULT_SOCKET
    for scheme in ("unix://", "http+unix://"):
        if host.startswith(scheme):
            path = host.removeprefix(scheme)
            return path if path.startswith("/") else None
    return None


def docker_config_file() -> str:
    """The docker CLI's config, whose ``currentContext`` can choose the engine."""
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(base, "config.json")


def _chosen_context() -> str | None:
    """The docker CLI context chosen by the environment or its config ("" for none);
    None when the config cannot be read (then the SDK decides)."""
    if os.environ.get("DOCKER_CONTEXT"):
        return os.environ["DOCKER_CONTEXT"]
    try:
        with open(docker_config_file(), "rb") as file:
            config = json.loads(file.read(1 << 20))
    except FileNotFoundError:
        return ""
    except (OSError, ValueError):
        return None
    current = config.get("currentContext") if isinstance(config, dict) else None
    return current if isinstance(current, str) else ""


def connect_engine(config: SandboxConfig) -> Engine:
    """The engine the settings name, checked: a local unix socket is reached without
    the SDK; anything else, or a local socket that does not answer, through the SDK
    (whose error then says what is wrong, as for every engine).

    Raises:
        DockerUnavailableError: the engine is not running or not reachable.
    """
    path = raw_socket(config)
    if path is not None:
        from .engine_raw import RawEngine

        engine = RawEngine(path, config)
        try:
            engine.ping()
            return engine
        except EngineError:
            pass  # the SDK's connect says why, in the words it always used
    from .engine_address import connect
    from .engine_sdk import SdkEngine

    return SdkEngine(connect(config))
