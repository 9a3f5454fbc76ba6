"""Where the Docker engine is, found the way the docker CLI finds it, and a checked
client of the Docker SDK for it.

The kernel's own start reaches a local engine without the SDK (engine.connect_engine);
this is how every other engine is reached, and what the CLI's commands use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .config import SandboxConfig
from .dockersdk import ensure_ssh_transport, import_sdk
from .engine_sdk import reason as _reason
from .errors import DockerUnavailableError

if TYPE_CHECKING:
    import docker

#: The engine API version we speak: Docker 20.10 and newer. Pinned, so that the
#: client never asks the engine before ``trust_env`` is off (see :func:`connect`).
API_VERSION = "1.41"


def engine_address(config: SandboxConfig) -> dict[str, Any]:
    """Where the engine is, as Docker client arguments, found the way the docker CLI does.

    The ``docker_host`` setting; else ``DOCKER_HOST`` (with ``DOCKER_TLS_VERIFY`` and
    ``DOCKER_CERT_PATH``); else the CLI's current context (``DOCKER_CONTEXT`` or
    ``currentContext`` in ``~/.docker/config.json``), which is how Docker Desktop on
    Linux, Colima, Rancher Desktop and remote contexts are reached; else the local
    socket.

    Raises:
        docker.errors.DockerException: the environment or the context is invalid.
    """
    if config.docker_host:
        return {"base_url": config.docker_host}
    import_sdk()
    import docker.context

    kwargs: dict[str, Any] = docker.utils.kwargs_from_env()
    if "base_url" in kwargs:
        return kwargs
    context = docker.context.ContextAPI.get_context(os.environ.get("DOCKER_CONTEXT") or None)
    if context is not None and context.Host:
        kwargs["base_url"] = context.Host
        if context.TLSConfig is not None:
            kwargs["tls"] = context.TLSConfig
    return kwargs


def local_socket(config: SandboxConfig) -> str | None:
    """The path of the engine's unix socket when the engine is local, else None
    (TCP, TLS, SSH: only the SDK speaks to those).

    Raises:
        docker.errors.DockerException: the environment or the context is invalid.
    """
    import_sdk()
    import docker.constants

    address = engine_address(config)
    base_url = str(address.get("base_url") or docker.constants.DEFAULT_UNIX_SOCKET)
    for scheme in ("unix://", "http+unix://"):
        if base_url.startswith(scheme) and "tls" not in address:
            return base_url.removeprefix(scheme)
    return None


def connect(config: SandboxConfig, timeout: float = 10.0) -> docker.DockerClient:
    """A client for the configured engine, checked with a ping.

    Raises:
        DockerUnavailableError: the engine is not running or not reachable.
    """
    import_sdk()
    import docker.errors
    import requests.exceptions

    where = config.docker_host or os.environ.get("DOCKER_HOST") or "the local socket"
    try:
        kwargs = engine_address(config)
        where = str(kwargs.get("base_url") or where)
        if where.startswith("ssh://"):
            ensure_ssh_transport()
        client = docker.DockerClient(version=API_VERSION, timeout=timeout, **kwargs)
        # The engine API is not the web: no HTTP proxy from the environment, and no
        # REQUESTS_CA_BUNDLE overriding the engine's own CA (DOCKER_CERT_PATH).
        client.api.trust_env = False
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as err:
        reason = _reason(err)
        hint = (
            " Check DOCKER_CERT_PATH and DOCKER_TLS_VERIFY."
            if "SSL" in reason or "TLS" in reason
            else " Start it (e.g. `sudo systemctl start docker` or `dockerd &`) or set DOCKER_HOST."
        )
        raise DockerUnavailableError(
            f"The Docker engine is not reachable at {where}: {reason}.{hint}"
        ) from err
    return client
