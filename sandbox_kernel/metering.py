"""What each cell of one sandbox cost: its container's usage meter, the per-thread ledger
that tells a cell's CPU from threads an earlier cell left busy, and the session's history.

The :class:`~.sandbox.Sandbox` runs cells; this measures them. A measurement is a
display: nothing here may fail a cell (a meter or ledger that breaks is switched off).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import SandboxError

if TYPE_CHECKING:
    import docker

    from .attribution import BackgroundLedger
    from .config import SandboxConfig
    from .engine import Engine
    from .usage import CellUsage, SessionUsage, UsageMeter

log = logging.getLogger(__name__)


class CellMetering:
    """The usage of one sandbox's cells, one cell at a time."""

    def __init__(self) -> None:
        self.meter: UsageMeter | None = None
        # Local engines only: per-thread CPU, read from the host's /proc.
        self.ledger: BackgroundLedger | None = None
        # A remote engine's figures, still on their way for the last cell.
        self.pending: asyncio.Future[None] | None = None
        self._history: SessionUsage | None = None

    @property
    def history(self) -> SessionUsage:
        """Every measured cell of the sandbox's lifetime (for ``%sandbox usage``)."""
        if self._history is None:
            from .usage import SessionUsage

            self._history = SessionUsage()
        return self._history

    def attach(
        self, client: Engine | docker.DockerClient, container_id: str, config: SandboxConfig
    ) -> None:
        """Measure this container from now on (called off the event loop: it blocks)."""
        from .runtime import is_gvisor
        from .usage import UsageMeter

        self.meter = UsageMeter(
            client,
            container_id,
            config.memory_bytes,
            config.pids,
            gvisor=is_gvisor(config.runtime),
        )
        if self.meter.is_local:
            self.ledger = _background_ledger(client, container_id)

    def detach(self) -> None:
        """The container is going: stop measuring it."""
        if self.meter is not None:
            self.meter.close()
            self.meter = None
        self._drop_ledger()  # it followed that container's threads

    async def begin(self, execution_count: int | None) -> UsageMeter | None:
        """Before a cell is sent: the meter that measures it, or None."""
        if self.pending is not None:
            await self.pending  # the meter measures one cell at a time
        meter = self.meter
        if meter is not None:
            try:
                meter.begin_cell()
            except SandboxError as err:
                # The container died since the last cell (its cgroup is gone) and the
                # sandbox has not heard yet: the cell's send finds out and restarts it.
                # Usage is a display; it must never fail a cell.
                log.debug("this cell runs unmeasured: %s", err)
                return None
            # Before the cell is sent: a thread that works for the cell from its first
            # instant must not be seen working before it (attribution.py).
            self._ledger_call("begin", execution_count)
        return meter

    async def finish(
        self, meter: UsageMeter | None, code: str | None, execution_count: int | None
    ) -> CellUsage | None:
        """Measure the cell just run; list it in :attr:`history` unless ``code`` is None."""
        if meter is None:
            return None
        try:
            usage = meter.end_cell() if meter.is_local else await asyncio.to_thread(meter.end_cell)
        except Exception as err:  # usage is a display; it must never fail a cell
            log.debug("no usage for this cell: %s", err)
            return None
        background, cells = self._ledger_call("end") if meter.is_local else (0.0, [])
        if self.ledger is not None:
            from .attribution import SETTLE_S

            asyncio.get_running_loop().call_later(
                SETTLE_S, self._ledger_settle, self.ledger, self.ledger.ends
            )
        if background:
            # Threads an earlier cell left busy worked during this cell: theirs, not its.
            usage.cpu_time_s = max(usage.cpu_time_s - background, 0.0)
            usage.background_cpu_s += background
        usage.background_cells = cells  # who started the threads busy before this cell
        if code is not None:
            self.history.add(execution_count, code, usage)
        return usage

    def finish_later(
        self,
        meter: UsageMeter,
        code: str | None,
        execution_count: int | None,
        on_usage: Callable[[CellUsage], None],
    ) -> None:
        """A remote engine's stats can take up to a second: the reply and the next cell
        do not wait for them, ``on_usage`` gets the line when it comes."""
        self.pending = asyncio.ensure_future(self._late(meter, code, execution_count, on_usage))

    async def _late(
        self,
        meter: UsageMeter,
        code: str | None,
        execution_count: int | None,
        on_usage: Callable[[CellUsage], None],
    ) -> None:
        usage = await self.finish(meter, code, execution_count)
        self.pending = None
        if usage is not None:
            on_usage(usage)

    def snapshot(self) -> dict[str, Any]:
        """Current container usage, for ``usage_request`` (thread-safe, may block briefly)."""
        meter = self.meter
        return meter.snapshot() if meter is not None else {}

    def _ledger_settle(self, ledger: BackgroundLedger, ends: int) -> None:
        if ledger is self.ledger:
            try:
                ledger.settle(ends)
            except (OSError, ValueError) as err:
                log.debug("no per-thread attribution any more: %s", err)
                self._drop_ledger()

    def _ledger_call(
        self, step: str, execution_count: int | None = None
    ) -> tuple[float, list[int]]:
        """Run the ledger's ``begin`` or ``end``; a failure switches it off, never the cell."""
        ledger = self.ledger
        if ledger is None:
            return 0.0, []
        try:
            if step == "begin":
                ledger.begin(execution_count)
                return 0.0, []
            return ledger.end()
        except (OSError, ValueError) as err:
            log.debug("no per-thread attribution any more: %s", err)
            self._drop_ledger()
            return 0.0, []

    def _drop_ledger(self) -> None:
        ledger, self.ledger = self.ledger, None
        if ledger is not None:
            ledger.close()


def _background_ledger(
    client: Engine | docker.DockerClient, container_id: str
) -> BackgroundLedger | None:
    """The per-thread ledger of a local container, or None where /proc cannot see it."""
    from .attribution import BackgroundLedger
    from .engine import as_engine

    try:
        info = as_engine(client).inspect(container_id)
        return BackgroundLedger.for_container(int(info["State"]["Pid"]), str(info["Id"]))
    except Exception as err:  # a remote or rootless engine: no attribution, no failure
        log.debug("no per-thread attribution: %s", err)
        return None
