"""Start the sandbox's container while the kernel process is still importing.

A cold start (no warm spare to claim) is two interpreters' starts and the engine's
work: the outer kernel importing ipykernel, the engine creating and starting the
container, the relay and the inner kernel booting inside it. They need not wait for
each other. ``sandbox-kernel kernel`` calls :func:`begin` first thing, before the
heavy imports; it launches the container (or claims a spare) on a thread, and the
sandbox's first start adopts it with :func:`take` when its configuration turns out
the same (the fingerprint: the settings the kernel ends up with may differ from the
ones read here, and then the early container is removed unused).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import SandboxConfig
    from .session import ContainerSession

log = logging.getLogger(__name__)

_lock = threading.Lock()
_thread: threading.Thread | None = None
_launched: ContainerSession | None = None


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
    global _thread
    overrides = [arg for arg in argv if arg.startswith("--SandboxConfig.")]
    asking = threading.Event()
    _thread = threading.Thread(
        target=_launch, args=(overrides, asking), name="sandbox-prelaunch", daemon=True
    )
    _thread.start()
    asking.wait(ASKING_WAIT)


def _launch(overrides: list[str], asking: threading.Event) -> None:
    global _launched
    try:
        from .cli import load_settings
        from .session import ContainerSession, connect

        config = load_settings(overrides)
        session = ContainerSession(
            config, connect(config), on_frame=lambda *_: None, on_closed=lambda _: None
        )
        session.launch(asking=asking)
    except Exception as err:  # the real start reports it, as one sentence
        log.debug("no early container: %s", err)
        return
    finally:
        asking.set()
    with _lock:
        _launched = session


def take(config: SandboxConfig) -> ContainerSession | None:
    """The early container, if it was launched for this very configuration.

    Waits for the launch to finish; returns it at most once. A container launched
    for other settings is removed.
    """
    global _launched, _thread
    thread, _thread = _thread, None
    if thread is not None:
        thread.join()
    with _lock:
        session, _launched = _launched, None
    if session is None:
        return None
    from . import spec

    if session.fingerprint != spec.fingerprint(config, session.image.id):
        log.debug("the early container was made for other settings; removing it")
        session.cleanup(wait=False)
        return None
    return session
