"""The numbers of one cell, and one look at the counters they come from.

:class:`Reading` is the container's counters at one moment, whatever the source;
:func:`cell_usage` turns two readings (and the sampler's maxima) into a
:class:`CellUsage`; :func:`under_gvisor` keeps only what is true under gVisor.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from . import render

#: At or above this share of a limit, the usage line turns to the warning colour.
WARN_FRACTION = 0.8
# cgroup v1 reports "no limit" as a huge page-aligned number.
_UNLIMITED = 1 << 62


@dataclass(frozen=True)
class Reading:
    """The container's counters at one moment. Cumulative counters only grow.

    Attributes:
        at: ``time.monotonic()`` when the reading was taken (on this host).
        memory_usage: raw memory use, page cache included (what peaks measure).
        memory_working: memory use without inactive file cache (what ``docker stats`` shows).
        memory_hwm: memory high-water mark (since the cgroup began or since the last
            reset), None when the source has none.
        pids_hwm: pids high-water mark, None when the source has none.
        shmem: shared memory (tmpfs included), None when the source has none.
        oom_kills: processes the OOM killer ended so far, None when unknown.
        online_cpus: CPUs the container could run on (0: unknown).
        requested_at: ``time.monotonic()`` when a stats request was sent: the engine
            took the numbers between this and ``at``.
        engine_time: the engine's timestamp of a stats document (``read``).
    """

    at: float
    cpu_ns: int
    memory_usage: int
    memory_working: int
    memory_limit: int
    memory_hwm: int | None
    pids: int
    pids_hwm: int | None
    pids_limit: int
    net_rx: int
    net_tx: int
    shmem: int | None
    nr_throttled: int
    oom_kills: int | None
    online_cpus: int = 0
    requested_at: float = 0.0
    engine_time: str = ""


def limit_value(value: Any) -> int:
    """A limit as bytes or a count, 0 for none (``max``, absent or cgroup v1's huge value)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 0
    return number if 0 < number < _UNLIMITED else 0


@dataclass
class CellUsage:
    """What one cell cost, for the whole container.

    Attributes:
        wall_time_s: seconds from the cell's start to its end, on the controller's clock.
        cpu_time_s: user + system CPU seconds the container used during the cell.
        peak_memory_bytes: highest memory use during the cell (page cache included).
        memory_bytes: memory in use at the end, without inactive file cache.
        memory_limit_bytes: the container's memory limit (0: none).
        pids: processes and threads at the end; None under gVisor, where the cgroup
            counts gVisor's own threads, not the sandbox's processes.
        pids_peak: most processes and threads at once during the cell (None likewise).
        net_rx_bytes: bytes received during the cell, all interfaces but loopback.
        net_tx_bytes: bytes sent during the cell, all interfaces but loopback.
        tmp_bytes: change in shared memory (the /tmp tmpfs) during the cell, or None
            where the source does not report it or, under gVisor, cannot tell it apart
            (gVisor keeps all of the sandbox's memory in one shared memory file).
        cpu_throttled: the CPU quota held the container back during the cell.
        oom_killed: the kernel's OOM killer ended a process of the container.
        source: ``"cgroup-v1"``, ``"cgroup-v2"`` or ``"docker-stats"``.
        peak_exact: the peak is a kernel counter, not the maximum of samples, of the
            sandbox's processes alone (never under gVisor: its own kernel's memory is
            in the figure too, and memory freed in the sandbox returns to the host late).
        pids_limit: the container's pids limit (0: none).
        gvisor: measured around a gVisor sandbox: see :func:`under_gvisor`.
        background_cpu_s: CPU seconds of work this cell did not do: what the
            container used between the previous cell's end and this cell's start, and
            (local engines) what threads already busy before the cell used during it
            (see :mod:`..attribution`). Shown apart, never part of ``cpu_time_s``.
        background_cells: the cells (execution counts) that started the threads
            behind ``background_cpu_s``, where the host could tell.
    """

    wall_time_s: float
    cpu_time_s: float
    peak_memory_bytes: int
    memory_bytes: int
    memory_limit_bytes: int
    pids: int | None
    pids_peak: int | None
    net_rx_bytes: int
    net_tx_bytes: int
    tmp_bytes: int | None
    cpu_throttled: bool
    oom_killed: bool
    source: str
    peak_exact: bool
    pids_limit: int = 0
    gvisor: bool = False
    background_cpu_s: float = 0.0
    background_cells: list[int] = dataclasses.field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """Limits this cell came near or hit: ``memory``, ``pids``, ``throttled``, ``oom``."""
        found = []
        if (
            self.memory_limit_bytes
            and self.peak_memory_bytes >= WARN_FRACTION * self.memory_limit_bytes
        ):
            found.append("memory")
        if (
            self.pids_limit
            and self.pids_peak is not None
            and self.pids_peak >= WARN_FRACTION * self.pids_limit
        ):
            found.append("pids")
        if self.cpu_throttled:
            found.append("throttled")
        if self.oom_killed:
            found.append("oom")
        return found

    def to_json(self) -> dict[str, Any]:
        """The JSON form, as in the ``application/vnd.sandbox-kernel.usage+json`` output."""
        # A flat dataclass: a shallow dict (asdict deep-copies, at a cost per cell).
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["wall_time_s"] = round(self.wall_time_s, 6)
        data["cpu_time_s"] = round(self.cpu_time_s, 6)
        data["background_cpu_s"] = round(self.background_cpu_s, 6)
        data["warnings"] = self.warnings
        return data

    def text(self) -> str:
        """The compact line: ``1.24 s wall · 1.10 s CPU · peak 312 MiB of 2 GiB · ...``."""
        return render.text(self)

    def html(self) -> str:
        """The line as small, theme-aware HTML; parts near a limit in the warning colour."""
        return render.html(self)

    def latex(self) -> str:
        """The line for LaTeX and PDF exports of the notebook (nbconvert)."""
        return render.latex(self)

    def bundle(self) -> dict[str, Any]:
        """A display_data mime bundle: text/plain, text/html, text/latex and the JSON."""
        return render.bundle(self)


def cell_usage(
    begin: Reading,
    end: Reading,
    wall_time_s: float,
    *,
    source: str,
    peak_reset: bool = False,
    sampled_memory: int = 0,
    sampled_pids: int = 0,
    memory_limit_bytes: int = 0,
    pids_limit: int = 0,
) -> CellUsage:
    """One cell's usage from the readings at its start and end.

    Args:
        begin: the reading at the cell's start (taken after any peak reset).
        end: the reading at its end.
        wall_time_s: the cell's wall time.
        source: where the readings came from.
        peak_reset: ``end.memory_hwm`` was reset at the cell's start, so it is the
            cell's own peak.
        sampled_memory: highest raw memory use the sampler saw during the cell.
        sampled_pids: most pids the sampler saw during the cell.
        memory_limit_bytes: the limit to show when the readings have none.
        pids_limit: the pids limit to use when the readings have none.
    """
    if peak_reset and end.memory_hwm is not None:
        peak, exact = max(end.memory_hwm, end.memory_usage), True
    elif (
        begin.memory_hwm is not None
        and end.memory_hwm is not None
        and end.memory_hwm > begin.memory_hwm
    ):
        # The all-time mark rose between the two readings: the cell set it.
        peak, exact = end.memory_hwm, True
    else:
        peak, exact = max(sampled_memory, begin.memory_usage, end.memory_usage), False
    if begin.pids_hwm is not None and end.pids_hwm is not None and end.pids_hwm > begin.pids_hwm:
        pids_peak = end.pids_hwm
    else:
        pids_peak = max(sampled_pids, begin.pids, end.pids)
    tmp = end.shmem - begin.shmem if end.shmem is not None and begin.shmem is not None else None
    oom = (
        begin.oom_kills is not None
        and end.oom_kills is not None
        and end.oom_kills > begin.oom_kills
    )
    return CellUsage(
        wall_time_s=wall_time_s,
        cpu_time_s=max(end.cpu_ns - begin.cpu_ns, 0) / 1e9,
        peak_memory_bytes=peak,
        memory_bytes=end.memory_working,
        memory_limit_bytes=end.memory_limit or memory_limit_bytes,
        pids=end.pids,
        pids_peak=pids_peak,
        net_rx_bytes=max(end.net_rx - begin.net_rx, 0),
        net_tx_bytes=max(end.net_tx - begin.net_tx, 0),
        tmp_bytes=tmp,
        cpu_throttled=end.nr_throttled > begin.nr_throttled,
        oom_killed=oom,
        source=source,
        peak_exact=exact,
        pids_limit=end.pids_limit or pids_limit,
    )


def under_gvisor(usage: CellUsage) -> CellUsage:
    """The cell's usage with only the numbers that are true under gVisor (runsc).

    Measured (see the README's runsc section): wall time, CPU time (the sandbox's
    processes plus gVisor's kernel working for them), the memory limit, the network and
    OOM kills are right. The cgroup holds gVisor's Sentry, not the sandbox's
    processes, so: pids counts the Sentry's threads (about 60 when idle) and is
    dropped; shmem counts gVisor's memory file, which holds *all* of the sandbox's
    memory (a 600 MiB bytearray read as "tmp +600 MiB"), so tmp is dropped; memory
    includes the Sentry (about 20 MiB) and freed memory returns to the host late, so
    the peak is marked approximate ("~").
    """
    return dataclasses.replace(
        usage,
        pids=None,
        pids_peak=None,
        tmp_bytes=None,
        peak_exact=False,
        gvisor=True,
    )
