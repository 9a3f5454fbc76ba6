"""The usage meter: what each cell of one container cost, measured from outside it."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import SandboxError
from .counters import Counters, open_counters
from .model import CellUsage, Reading, cell_usage, under_gvisor

if TYPE_CHECKING:
    import docker

    from ..engine import Engine


def _cpu_quota(host_config: Mapping[str, Any]) -> float:
    """The container's CPU quota in CPUs from its HostConfig (0: none)."""
    if host_config.get("NanoCpus"):
        return float(host_config["NanoCpus"]) / 1e9
    quota, period = host_config.get("CpuQuota") or 0, host_config.get("CpuPeriod") or 100_000
    if quota > 0:
        return float(quota) / float(period)
    cpuset = str(host_config.get("CpusetCpus") or "")
    if cpuset:
        count = 0
        for part in cpuset.split(","):
            low, _, high = part.partition("-")
            count += int(high) - int(low) + 1 if high else 1
        return float(count)
    return 0.0


def _as_measured(usage: CellUsage) -> CellUsage:
    return usage


class UsageMeter:
    """Measures each cell of one container from outside it.

    Call :meth:`begin_cell` just before sending a cell and :meth:`end_cell` just after
    its reply; both are cheap on the local path. On the API path ``end_cell`` waits for
    one stats request (about 10 ms; up to a second when a request was made less than a
    second before), so call it from a thread there.

    Where the numbers come from is decided once, here: the container's cgroup files or
    the Docker stats API (:func:`.counters.open_counters`), and under gVisor only the
    numbers that are true there (:func:`.model.under_gvisor`).

    Args:
        client: the engine (engine.py), or a connected Docker client.
        container_id: the sandbox container (id or name).
        memory_limit_bytes: the configured memory limit, used when the engine reports none.
        pids_limit: the configured pids limit, used when the engine reports none.
        local: read the cgroup files (True), use the stats API (False) or decide by
            looking (None).
        reset_peaks: reset the kernel's memory peak at every cell start where that is
            allowed; False leaves host cgroup files untouched (the peak is then the
            high-water mark or sampled).
        gvisor: the container runs under gVisor.

    Raises:
        SandboxError: the container cannot be inspected, or ``local=True`` and its
            cgroup files cannot be read.
    """

    def __init__(
        self,
        client: Engine | docker.DockerClient,
        container_id: str,
        memory_limit_bytes: int,
        pids_limit: int,
        *,
        local: bool | None = None,
        reset_peaks: bool = True,
        gvisor: bool = False,
    ) -> None:
        from ..engine import EngineError, as_engine

        engine = as_engine(client)
        try:
            info = engine.inspect(container_id)
        except EngineError as err:
            raise SandboxError(
                f"Cannot inspect the sandbox container {container_id}: {err}"
            ) from err
        self._memory_limit = int(memory_limit_bytes or 0)
        self._pids_limit = int(pids_limit or 0)
        self._cpu_quota = _cpu_quota(info.get("HostConfig") or {})
        self._gvisor = gvisor
        self._view: Callable[[CellUsage], CellUsage] = under_gvisor if gvisor else _as_measured
        self._lock = threading.Lock()
        self._closed = False
        self._counters: Counters = open_counters(engine, info, local=local, reset_peaks=reset_peaks)
        self.source = self._counters.source
        self._started = 0.0
        self._previous_snapshot: Reading | None = None
        self._last_end_cpu_ns: int | None = None  # for the CPU used between cells

    @property
    def is_local(self) -> bool:
        """True when the meter reads cgroup files, False when it uses the stats API."""
        return self._counters.local

    @property
    def peak_resettable(self) -> bool:
        """True when each cell's memory peak comes from a kernel counter reset at its start."""
        return self._counters.peak_resettable

    def begin_cell(self) -> None:
        """Mark a cell's start: note the time, reset the peaks, start the sampler.

        Never blocks on the engine (see :class:`.counters.StatsApiCounters`).

        Raises:
            SandboxError: the meter is closed or the counters can no longer be read.
        """
        with self._lock:
            if self._closed:
                raise SandboxError("The usage meter is closed.")
            self._started = time.perf_counter()
            self._counters.begin()

    def end_cell(self) -> CellUsage:
        """Mark the cell's end and return what it cost.

        Raises:
            SandboxError: no cell was begun, or the counters could not be read (the
                container has gone, or the engine failed).
        """
        with self._lock:
            wall = time.perf_counter() - self._started
            if self._closed:
                raise SandboxError("The usage meter is closed.")
            begin, end, memory_max, pids_max = self._counters.end()
            usage = self._view(
                cell_usage(
                    begin,
                    end,
                    wall,
                    source=self.source,
                    peak_reset=self._counters.peak_resettable,
                    sampled_memory=memory_max,
                    sampled_pids=pids_max,
                    memory_limit_bytes=self._memory_limit,
                    pids_limit=self._pids_limit,
                )
            )
            # CPU the container used between the previous cell's end and this one's
            # start: background work, never this cell's.
            if self._last_end_cpu_ns is not None:
                usage.background_cpu_s = max(begin.cpu_ns - self._last_end_cpu_ns, 0) / 1e9
            self._last_end_cpu_ns = end.cpu_ns
            return usage

    def snapshot(self) -> dict[str, Any]:
        """The container's usage now, as the content of a ``usage_reply``.

        Keys as ipykernel's: ``kernel_cpu`` (percent of one CPU since the previous
        snapshot), ``kernel_memory`` (bytes in use), ``cpu_count`` (the CPU quota,
        rounded up), ``host_cpu_percent`` (percent of that quota) and
        ``host_virtual_memory`` (the sandbox's memory: total is its limit); plus
        ``sandbox`` with the raw counters. May block like :meth:`end_cell`.

        Raises:
            SandboxError: the counters could not be read.
        """
        with self._lock:
            if self._closed:
                raise SandboxError("The usage meter is closed.")
        reading = self._counters.now(1.0)
        previous = self._previous_snapshot or self._counters.first()
        self._previous_snapshot = reading
        cpu_percent = 0.0
        if previous is not None and reading.at > previous.at:
            cpu_percent = (
                100.0 * (reading.cpu_ns - previous.cpu_ns) / 1e9 / (reading.at - previous.at)
            )
        cpus = self._cpu_quota or float(reading.online_cpus or os.cpu_count() or 1)
        cpu_count = max(1, math.ceil(cpus - 1e-9))
        limit = reading.memory_limit or self._memory_limit
        if not limit:
            limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        used = reading.memory_working
        available = max(limit - used, 0)
        return {
            "kernel_cpu": round(max(cpu_percent, 0.0), 1),
            "kernel_memory": used,
            "cpu_count": cpu_count,
            "host_cpu_percent": round(max(cpu_percent, 0.0) / cpus, 1),
            "host_virtual_memory": {
                "total": limit,
                "available": available,
                "percent": round(100.0 * used / limit, 1) if limit else 0.0,
                "used": used,
                "free": available,
            },
            "sandbox": {
                "source": self.source,
                "cpu_quota": cpus,
                "cpu_time_s": reading.cpu_ns / 1e9,
                "memory_bytes": used,
                "memory_usage_bytes": reading.memory_usage,
                "memory_limit_bytes": limit,
                "pids": None if self._gvisor else reading.pids,
                "pids_limit": reading.pids_limit or self._pids_limit,
                "net_rx_bytes": reading.net_rx,
                "net_tx_bytes": reading.net_tx,
                "oom_kills": reading.oom_kills,
                "cpu_throttled_periods": reading.nr_throttled,
            },
        }

    def close(self) -> None:
        """Stop the threads and close the files. Idempotent; never raises."""
        self._closed = True
        self._counters.close()

    def __enter__(self) -> UsageMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
