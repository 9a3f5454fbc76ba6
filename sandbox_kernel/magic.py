"""``%sandbox usage`` / ``%sandbox info``: cells the outer kernel answers itself.

They are never forwarded: what they show is the host's (the usage history, the
sandbox's settings and environment record), not anything a cell could produce.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cellrun import ErrorInfo
from .record import ENVIRONMENT_MIME_TYPE, LANGUAGE_INFO_KEY

if TYPE_CHECKING:
    from .kernel import SandboxKernel


def is_sandbox_magic(command: str) -> bool:
    """Whether a cell's stripped code is a ``%sandbox`` command."""
    return command == "%sandbox" or command.startswith(("%sandbox ", "%sandbox\t"))


def sandbox_magic(command: str, kernel: SandboxKernel) -> dict[str, Any] | ErrorInfo:
    """The display bundle answering ``command``, or the UsageError it is."""
    if "\n" in command:
        return ErrorInfo("UsageError", "%sandbox must be alone in its cell")
    words = command.split()
    sub = words[1] if len(words) > 1 else "info"
    if sub == "usage":
        return kernel.sandbox.usage_history.report_bundle()
    if sub == "info":
        info = {**kernel.kernel_info["sandbox"], "banner": kernel.banner}
        # The record under the kernel's own mimetype, which no cell can display
        # (application/json stays for JSON viewers, but anyone can print that).
        record = {**info, "environment": kernel.language_info[LANGUAGE_INFO_KEY]}
        return {
            "text/plain": kernel.banner,
            "application/json": info,
            ENVIRONMENT_MIME_TYPE: record,
        }
    return ErrorInfo("UsageError", f"unknown %sandbox command {sub!r}; use 'usage' or 'info'")
