"""Start the sandbox's container while the kernel process is still importing.

A cold start (no warm spare to claim) is two interpreters' starts and the engine's
work: the outer kernel importing ipykernel, the engine creating and starting the
container, the relay and the inner kernel booting inside it. They need not wait for
each other. ``sandbox-kernel kernel`` calls :func:`begin` first thing, before the
heavy imports; it launches the container (or claims a spare) on a thread, and the
sandbox's first start adopts it with :func:`take` when its configuration turns out
the same (the fingerprint: the settings the kernel ends up with may differ from the
ones read here, and then the early container is removed unused).

Before even the Docker SDK is imported, the thread sends the create request cached
at the last start (coldcache.py) and starts that container; then it is done. The
kernel adopts that container in :func:`take`, with its own settings and engine
client, only if the request equals the one the SDK builds for them now.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .coldcache import RawLaunch
    from .config import SandboxConfig
    from .engine import Engine
    from .session import ContainerSession

log = logging.getLogger(__name__)

_lock = threading.Lock()
_thread: threading.Thread | None = None
_launched: ContainerSession | None = None
_raw: RawLaunch | None = None
#: The kernel's --SandboxConfig flags, which key the cached request (None: no kernel).
_overrides: list[str] | None = None


#: Seconds :func:`begin` waits for the launch to reach the engine, at most.
ASKING_WAIT = 2.0


def begin(argv: Sequence[str]) -> None:
    """Launch this kernel's container on a thread (errors are left to the real start).

    Returns once the thread has asked the engine for the container (or failed): its
    imports and settings before that are on the cold start's critical path (the
    container, then the inner kernel's start, take longer than the outer kernel's
    imports), and Python's imports on two threads would share one interpreter lock.
    The engine's work then overlaps this process's imports.
    """
    global _thread, _overrides
    if _thread is not None:
        return  # begun already: ``python -m sandbox_kernel`` begins before the CLI's imports
    _overrides = overrides = [arg for arg in argv if arg.startswith("--SandboxConfig.")]
    asking = threading.Event()
    _thread = threading.Thread(
        target=_launch, args=(overrides, asking), name="sandbox-prelaunch", daemon=True
    )
    _thread.start()
    asking.wait(ASKING_WAIT)


def _launch(overrides: list[str], asking: threading.Event) -> None:
    global _launched, _raw
    raw = _raw_launch(overrides, asking)
    if raw is not None:
        # Nothing more here: the kernel adopts it with its own settings and engine
        # client (take), which it makes anyway; loading them here too would only
        # compete with the kernel's imports for this process's one interpreter lock.
        with _lock:
            _raw = raw
        return
    try:
        from .dockersdk import hide_ssh

        hide_ssh()  # a quicker start; ssh:// engines load the transport later
        from .cli import load_settings
        from .engine import connect_engine
        from .session import ContainerSession

        config = load_settings(overrides)
        session = ContainerSession(
            config, connect_engine(config), on_frame=lambda *_: None, on_closed=lambda _: None
        )
        session.launch(asking=asking)
    except Exception as err:  # the real start reports it, as one sentence
        log.debug("no early container: %s", err)
        return
    finally:
        asking.set()
    _remember(overrides, session)
    with _lock:
        _launched = session


def _raw_launch(overrides: list[str], asking: threading.Event) -> RawLaunch | None:
    """The container made from the cached request, if there is one (never raises).

    The kernel process goes on (``asking``) once the request is ready to leave:
    without the SDK there is nothing its imports could slow down but a few small
    JSON answers, and it need not idle while the engine works.
    """
    from . import coldcache

    try:
        entry = coldcache.load(overrides)
        return None if entry is None else coldcache.launch(entry, asking=asking.set)
    except Exception as err:
        log.debug("no raw first request: %s", err)
        return None


def take(config: SandboxConfig, client: Engine | None = None) -> ContainerSession | None:
    """The early container, if it was launched for this very configuration.

    Waits for the launch to finish; returns it at most once. A container launched
    for other settings is removed. ``client``: the kernel's engine client, for a
    container the cached request made (else one is connected).
    """
    global _launched, _thread, _raw
    thread, _thread = _thread, None
    if thread is not None:
        thread.join()
    with _lock:
        session, _launched = _launched, None
        raw, _raw = _raw, None
    if raw is not None:
        return _adopt(config, client, raw)
    if session is None:
        return None
    from . import spec

    if session.fingerprint != spec.fingerprint(config, session.image.id):
        log.debug("the early container was made for other settings; removing it")
        session.cleanup(wait=False)
        return None
    return session


def _adopt(config: SandboxConfig, client: Engine | None, raw: RawLaunch) -> ContainerSession | None:
    """The session of the container the cached request made, when that request is the
    one the SDK builds for these settings now, to the same engine. Otherwise that
    container is removed: None (the kernel's own start runs, see :func:`remember`)."""
    from .engine import connect_engine
    from .session import ContainerSession

    try:
        session = ContainerSession(
            config,
            client or connect_engine(config),
            on_frame=lambda *_: None,
            on_closed=lambda _: None,
        )
        if _same_request(session, raw) and _socket(session) == raw.socket:
            raw.started()
            session.adopt(raw.container_id)
            log.debug("the early container was made by the cached create request")
            return session
        log.debug("the cached create request is not today's; its container is removed")
    except Exception as err:
        log.debug("no early container: %s", err)
    raw.remove()
    return None


def _same_request(session: ContainerSession, raw: RawLaunch) -> bool:
    """Whether the request sent is the one the session would send now (spec.py's)."""
    from . import spec

    expected = session.kernel_request()
    # The second the labels were made is the one value that may differ.
    expected["Labels"][spec.LABEL_CREATED] = raw.body["Labels"][spec.LABEL_CREATED]
    return raw.body == expected


def remember(session: ContainerSession) -> None:
    """Cache the request of a container the kernel launched itself, when this process
    began with :func:`begin` (a kernel process: the one that reads the cache)."""
    if _overrides is not None:
        _remember(_overrides, session)


def _remember(overrides: list[str], session: ContainerSession) -> None:
    """Cache the request the SDK sent, for the next start's raw request (never raises)."""
    if not session.sent:
        return  # a claimed spare
    try:
        from jupyter_core.paths import jupyter_config_path

        from . import coldcache, spec

        socket = _socket(session)
        if socket is None:
            return
        coldcache.store(
            overrides,
            socket=socket,
            host=spec.controller_host(),
            config_files=[
                os.path.join(folder, f"sandbox_kernel_config{ext}")
                for folder in jupyter_config_path()
                for ext in (".py", ".json")
            ],
            fingerprint=session.fingerprint,
            warm_spare=session.config.warm_spare,
            body=session.sent["body"],
        )
    except Exception as err:
        log.debug("the create request was not cached: %s", err)


def _socket(session: ContainerSession) -> str | None:
    """The session's engine's unix socket, if local (without the SDK when it has none)."""
    if session.engine.socket is not None:
        return session.engine.socket
    from .engine_address import local_socket

    return local_socket(session.config)
