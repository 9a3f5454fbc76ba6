"""One interface over the two ways of reading a container's counters around a cell.

:class:`Counters` is what the meter needs: mark a cell's start, give the readings
around it with the sampler's maxima, read the counters now, close. There are two
implementations, chosen once when the sandbox starts (:func:`open_counters`):

* :class:`LocalCounters`: the container's cgroup files, read synchronously; the peak
  is reset at the cell's start where allowed, and a sampler fills in otherwise;
* :class:`StatsApiCounters`: the Docker stats API, where every request may wait up to a
  second for the engine's collector; baselines are reused or fetched on a thread.

What gVisor changes is not the source but which numbers are true: the meter applies
:func:`.model.under_gvisor` to either.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import SandboxError
from .cgroup import CgroupCounters
from .model import Reading
from .sampler import Sampler
from .stats import StatsReader

if TYPE_CHECKING:
    import docker

    from ..engine import Engine

log = logging.getLogger(__name__)

#: Seconds between sampler readings on the local path, when the memory peak needs them.
LOCAL_SAMPLE_INTERVAL = 0.01
#: The same when the peak is a reset kernel counter and only the pids need sampling.
LOCAL_PIDS_SAMPLE_INTERVAL = 0.05
#: Seconds between stats requests during a cell on the API path, and before the first:
#: the engine makes at most one collection per second, and a request during one waits.
STATS_SAMPLE_INTERVAL = 2.0
#: Oldest stats reading (seconds) still used as a cell's baseline.
STATS_BASELINE_MAX_AGE = 30.0
#: Between cells on the API path, a background reading this often keeps the baseline
#: recent (so that begin_cell never asks the engine).
STATS_IDLE_REFRESH = 15.0
#: A baseline asked for at the cell's start but taken later than this is refused.
_STATS_LATE_BASELINE = 0.05
#: Seconds end_cell waits for a stats reading in flight.
_STATS_JOIN_TIMEOUT = 5.0


class Counters(Protocol):
    """A container's counters, read around cells."""

    #: ``"cgroup-v1"``, ``"cgroup-v2"`` or ``"docker-stats"``.
    source: str
    #: Each cell's memory peak comes from a kernel counter reset at its start.
    peak_resettable: bool
    #: The counters are files on this machine (no engine round trip).
    local: bool

    def begin(self) -> None:
        """A cell starts: reset what can be reset, take or arrange its baseline, sample."""

    def end(self) -> tuple[Reading, Reading, int, int]:
        """The cell ended: its readings at start and end, and the sampled memory and pids."""
        ...

    def now(self, max_age: float) -> Reading:
        """The counters now, or a reading no older than ``max_age`` seconds."""
        ...

    def first(self) -> Reading | None:
        """The reading taken when the counters were opened, if it is in hand."""
        ...

    def close(self) -> None:
        """Stop the threads and close the files; never raises."""


def _gone(err: Exception) -> SandboxError:
    return SandboxError(f"The sandbox's usage counters are gone: {err}")


class LocalCounters:
    """The cgroup files of a container on this machine.

    Args:
        cgroup: the opened counter files.
        name: a name for the sampler thread.
    """

    local = True

    def __init__(self, cgroup: CgroupCounters, name: str) -> None:
        self._cgroup = cgroup
        self.source = cgroup.source
        self.peak_resettable = cgroup.peak_resettable
        self._begin: Reading | None = None
        self._sampler = Sampler(
            self._probe,
            LOCAL_PIDS_SAMPLE_INTERVAL if cgroup.peak_resettable else LOCAL_SAMPLE_INTERVAL,
            0.0,
            name,
            sleep=True,
        )
        self._first: Reading | None = None
        with contextlib.suppress(OSError, ValueError):
            self._first = cgroup.read()

    def _probe(self) -> tuple[int, int, Reading | None]:
        memory, pids = self._cgroup.sample()
        return memory, pids, None

    def _read(self) -> Reading:
        try:
            return self._cgroup.read()
        except (OSError, ValueError) as err:
            raise _gone(err) from err

    def begin(self) -> None:
        try:
            self._cgroup.reset_peak()
        except OSError as err:
            raise _gone(err) from err
        self._begin = self._read()
        self._sampler.start_cell()

    def end(self) -> tuple[Reading, Reading, int, int]:
        memory_max, pids_max = self._sampler.stop_cell()
        begin, self._begin = self._begin, None
        if begin is None:
            raise SandboxError("end_cell() without begin_cell().")
        return begin, self._read(), memory_max, pids_max

    def now(self, max_age: float) -> Reading:
        return self._read()  # a read costs microseconds: always fresh

    def first(self) -> Reading | None:
        return self._first

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._sampler.close()
            # The sampler may be mid-read: let it finish before the fds go.
            self._sampler.wait_idle(1.0)
        with contextlib.suppress(Exception):
            self._cgroup.close()


class StatsApiCounters:
    """The Docker stats API for one container.

    ``begin`` never blocks on the engine: the baseline is the latest reading (kept
    younger than :data:`STATS_IDLE_REFRESH` between cells), else one asked for now on a
    thread. ``end`` asks once (about 10 ms, up to a second after another request).

    Args:
        client: the Docker client.
        container_id: the full container id.
    """

    local = False
    peak_resettable = False

    def __init__(self, client: docker.DockerClient, container_id: str) -> None:
        self._reader = StatsReader(client, container_id)
        self.source = StatsReader.source
        self._id = container_id
        self._sampler = Sampler(
            self._probe,
            STATS_SAMPLE_INTERVAL,
            STATS_SAMPLE_INTERVAL,
            f"usage-sampler-{container_id[:12]}",
            idle_refresh=STATS_IDLE_REFRESH,
        )
        self._begin: Reading | None = None
        self._started = 0.0
        self._baseline: Future[Reading] | None = None
        # A first reading in the background: the first cell's baseline and the first
        # snapshot's reference point, without blocking the caller.
        self._first: Future[Reading] | None = self._fetch()
        self._pending: Future[Reading] | None = self._first

    def _probe(self) -> tuple[int, int, Reading | None]:
        reading = self._reader.read()
        return reading.memory_usage, reading.pids, reading

    def _recent(self, max_age: float) -> Reading | None:
        reading = self._sampler.last_reading
        if reading is not None and time.monotonic() - reading.at < max_age:
            return reading
        return None

    def _fetch(self) -> Future[Reading]:
        """Read the stats on a thread; the reading also becomes the latest measurement."""
        future: Future[Reading] = Future()

        def fetch() -> None:
            try:
                reading = self._reader.read()
            except BaseException as err:
                future.set_exception(err)
                return
            self._sampler.note(reading)
            future.set_result(reading)

        threading.Thread(target=fetch, name=f"usage-fetch-{self._id[:12]}", daemon=True).start()
        return future

    def begin(self) -> None:
        self._started = time.monotonic()
        self._begin = self._recent(STATS_BASELINE_MAX_AGE)
        if self._begin is None:
            pending = self._pending
            # The first reading may still be on its way: it is as good a baseline.
            self._baseline = pending if pending and not pending.done() else self._fetch()
        self._pending = None
        self._sampler.start_cell()

    def end(self) -> tuple[Reading, Reading, int, int]:
        begin, self._begin = self._begin, None
        self._sampler.stop_cell()
        end = self._reader.read()
        memory_max, pids_max = self._sampler.wait_idle(_STATS_JOIN_TIMEOUT)
        self._sampler.note(end)
        if begin is None:
            begin = self._collect_baseline()
            if begin.at > self._started + _STATS_LATE_BASELINE:
                # Another stats client keeps the engine's collector busy: the reading
                # asked for at the start may be from the middle.
                raise SandboxError("The Docker engine answered too late to measure this cell.")
        return begin, end, memory_max, pids_max

    def _collect_baseline(self) -> Reading:
        future, self._baseline = self._baseline, None
        if future is None:
            raise SandboxError("end_cell() without begin_cell().")
        try:
            return future.result(_STATS_JOIN_TIMEOUT)
        except FutureTimeout as err:
            raise SandboxError(
                "The Docker engine did not report the sandbox's usage in time."
            ) from err

    def now(self, max_age: float) -> Reading:
        reading = self._recent(max_age)
        if reading is None:
            reading = self._reader.read()
            self._sampler.note(reading)
        return reading

    def first(self) -> Reading | None:
        first = self._first
        if first is None or not first.done() or first.exception() is not None:
            return None
        return first.result()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._sampler.close()
        with contextlib.suppress(Exception):
            self._reader.close()


def open_counters(
    engine: Engine,
    info: Mapping[str, Any],
    *,
    local: bool | None,
    reset_peaks: bool,
) -> Counters:
    """The counters of the container ``info`` describes: its cgroup files when they can be
    read here (and ``local`` is not False), else the stats API.

    Raises:
        SandboxError: ``local=True`` and the cgroup files cannot be read.
    """
    container_id = str(info["Id"])
    if local is not False:
        cgroup, reason = _open_cgroup(engine, info, reset_peaks)
        if cgroup is not None:
            return LocalCounters(cgroup, f"usage-sampler-{container_id[:12]}")
        if local:
            raise SandboxError(f"Cannot read the sandbox's cgroup files: {reason}.")
        log.info("usage via the Docker stats API: %s", reason)
    return StatsApiCounters(engine.sdk, container_id)


def _open_cgroup(
    engine: Engine, info: Mapping[str, Any], reset_peaks: bool
) -> tuple[CgroupCounters | None, str]:
    """The cgroup files, or None and why not."""
    if engine.socket is None:  # asked through the SDK (the raw engine is local)
        base_url = str(getattr(engine.sdk.api, "base_url", ""))
        # docker-py names every unix-socket engine http+docker://localhost.
        if base_url != "http+docker://localhost":
            return None, f"the engine is not on a local unix socket ({base_url})"
    pid = int((info.get("State") or {}).get("Pid") or 0)
    if pid <= 0 or not os.path.exists(f"/proc/{pid}"):
        return None, f"the container's process {pid} is not visible here"
    try:
        return CgroupCounters.for_process(pid, str(info["Id"]), reset_peaks=reset_peaks), ""
    except (OSError, ValueError) as err:
        return None, str(err)
