"""One exception family for everything that can go wrong around the sandbox.

Every Docker error is wrapped into a :class:`SandboxError` subclass whose message is
one readable sentence that says what happened and, where there is one, what to do.
The kernel shows these messages in the notebook; programs catch ``SandboxError``.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base class of every error raised by sandbox-kernel."""


class DockerUnavailableError(SandboxError):
    """The Docker engine is not running or cannot be reached."""


class ImageNotFoundError(SandboxError):
    """The sandbox image does not exist on the Docker engine."""


class ContainerStartError(SandboxError):
    """The engine refused to create or start the sandbox container."""


class KernelNotReadyError(SandboxError):
    """The kernel inside the container did not answer within the startup timeout."""


class SandboxDiedError(SandboxError):
    """The sandbox (its kernel or its whole container) ended while in use.

    Attributes:
        reason: ``"oom"`` (memory limit), ``"killed"`` (from outside or by a signal),
            ``"exited"`` (the kernel exited on its own), ``"lost"`` (the engine
            connection broke, or the relay stopped answering), ``"timeout"`` (a cell
            ran past the timeout and ignored the interrupt) or ``"stopped"`` (shut
            down or restarted by its user).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ProtocolError(SandboxError):
    """The container sent something that is not a valid relay frame."""


class ConfigError(SandboxError):
    """A setting has a value that cannot work (bad size, bad mount, ...)."""
