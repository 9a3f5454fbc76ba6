"""sandbox-kernel: a Jupyter kernel that runs every cell in a hardened Docker container.

Data flow: frontend -> :mod:`.kernel` (outer kernel) -> :mod:`.validator` ->
:mod:`.session` (container + relay) -> inner IPython kernel -> outputs + :mod:`.usage`.

Programs use :class:`Sandbox` (``async with Sandbox() as sb: await sb.execute(code)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .cellrun import ExecutionResult
    from .sandbox import Sandbox

__all__ = ["ExecutionResult", "Sandbox", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported lazily: the validator and CLI must not pay for docker/jupyter_client.
    if name in ("Sandbox", "ExecutionResult"):
        from . import sandbox

        return getattr(sandbox, name)
    raise AttributeError(name)
