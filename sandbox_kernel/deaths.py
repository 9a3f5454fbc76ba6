"""Why the sandbox ended, in one sentence: the :class:`SandboxDiedError` its client raises.

A function of what the host knows once the channel to the relay closes: whether its
own teardown had begun, the kernel's exit status (the relay's EXITED frame; none when
the container ended first), the reason the channel closed, and the memory limit. Its
reasons are those errors.py lists, but ``"timeout"``: a cell's timeout is sandbox.py's.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from .errors import SandboxDiedError
from .session import UNRESPONSIVE_AFTER


def explain_death(
    reason: str,
    status: dict[str, Any] | None,
    *,
    stopping: bool,
    memory_bytes: int,
    oom_killed: Callable[[], bool],
) -> SandboxDiedError:
    """The error that says why the sandbox ended.

    Args:
        reason: why the channel closed (see :class:`~.session.ContainerSession`).
        status: the kernel's exit status, when the relay reported one.
        stopping: our own teardown began: a death now is no accident.
        memory_bytes: the sandbox's memory limit.
        oom_killed: whether the memory limit ended the container; asked (of the
            engine) only when there is no exit status.
    """
    if stopping:
        # Our own teardown: the kernel is shutting down or restarting.
        return SandboxDiedError(
            "The kernel was shut down or restarted while this cell ran.", "stopped"
        )
    limit_mib = memory_bytes // (1024 * 1024)
    lost = "the sandbox was restarted and its state is lost"
    if status is None:
        if oom_killed():
            return SandboxDiedError(
                f"This cell exceeded the sandbox memory limit ({limit_mib} MiB); {lost}.",
                "oom",
            )
        if reason == "unresponsive":
            return SandboxDiedError(
                f"The sandbox stopped responding for {UNRESPONSIVE_AFTER:g} s (its container "
                f"was paused or frozen); {lost}.",
                "lost",
            )
        if reason.startswith(("connection lost", "protocol error", "internal error")):
            return SandboxDiedError(
                f"The connection to the sandbox broke ({reason}); {lost}.", "lost"
            )
        return SandboxDiedError(
            f"The sandbox container was stopped from outside; {lost}.", "killed"
        )
    returncode = int(status.get("returncode", 0))
    if int(status.get("oom_kills", 0)) > 0:
        return SandboxDiedError(
            f"This cell exceeded the sandbox memory limit ({limit_mib} MiB); {lost}.", "oom"
        )
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return SandboxDiedError(
            f"The kernel in the sandbox was killed by {name}; {lost}.", "killed"
        )
    return SandboxDiedError(
        f"The kernel in the sandbox exited on its own (exit code {returncode}); {lost}.",
        "exited",
    )
