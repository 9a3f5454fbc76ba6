"""Telling work an earlier cell left running from the work of the cell that runs now.

The usage meter measures the container as a whole: a thread a cell started and left
burning is charged to whichever cell runs while it burns. Where the engine is local,
the host can see the container's threads (its cgroup lists them, ``/proc`` has each
one's CPU time in nanoseconds, ``schedstat``), and a thread that kept running while
*no* cell ran - from :data:`SETTLE_S` after one cell's end to the next one's start -
is background work. Its CPU during the next cell is shown as background, not as that
cell's.

When cells run back to back ("Run All"), there is no quiet window to judge in (a
pause shorter than ``SETTLE_S + MIN_WINDOW_S``, half a second, tells nothing
reliable: thread pools still spin, the kernel's IOPub thread may be sending). There a
Python thread started during an earlier cell (the inner kernel names them
:data:`~.bootstrap.THREAD_NAME`) that ran between that cell's end and the next one's
start, or is running at that start, is background work too. Native thread pools
(BLAS, OpenMP) are not Python threads: they work for whichever cell calls them, and
stay that cell's; so does a Python thread that was idle when the cell began (a pool
the cell hands work to).

What is left out on purpose: the inner kernel's main thread (it runs the cells, and
finishes each request's housekeeping after the end) and the relay process (it moves
every message, for whichever cell).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field

from .bootstrap import THREAD_NAME

#: Thread pools spin a while after their work before they sleep (OpenBLAS about a
#: tenth of a second), and the kernel's IOPub thread sends the cell's last messages:
#: the threads are looked at again this long after a cell's end, when that is over.
SETTLE_S = 0.3

#: Shortest quiet window (from that look to the next cell's start) that is judged.
MIN_WINDOW_S = 0.2

#: Share of the quiet window a thread must have run to count as background work
#: (low enough for a burning thread on a machine whose cores are shared).
BUSY_FRACTION = 0.2


@dataclass
class _Snapshot:
    at: float
    cpu_ns: dict[int, int] = field(default_factory=dict)


class BackgroundLedger:
    """Per-thread CPU of one container, read at each cell's start and end.

    Args:
        tasks_file: the cgroup file listing every thread of the container (v1
            ``tasks``, v2 ``cgroup.threads``), host thread ids.
        excluded: threads never judged (the kernel's main thread, the relay's).
        proc: where procfs is mounted.
    """

    def __init__(self, tasks_file: str, excluded: set[int], proc: str = "/proc") -> None:
        self._tasks_file = tasks_file
        self._excluded = excluded
        self._proc = proc
        self._settled: _Snapshot | None = None  # SETTLE_S after the previous cell's end
        self._ended: _Snapshot | None = None  # at the previous cell's end
        self._python: dict[int, bool] = {}  # whether each thread is a Python thread
        self._ends = 0  # cells ended so far, so that a late settle() is ignored
        self._begin: _Snapshot | None = None
        self._busy: set[int] = set()
        # The cell (execution count) during which each thread was first seen; None
        # for the kernel's own threads and those born while no cell ran.
        self._born: dict[int, int | None] = {}
        self._cell: int | None = None
        # Each thread's schedstat kept open and re-read with pread at offset 0 (procfs
        # regenerates its text there): one read per thread on every cell's path, not an
        # open, a read and a close. Not the tasks file: cgroup v1 serves a reopened
        # descriptor the thread list it built up to a second before.
        self._schedstat: dict[int, int] = {}

    @classmethod
    def for_container(
        cls, init_pid: int, container_id: str, proc: str = "/proc"
    ) -> BackgroundLedger:
        """The ledger of a local container whose first process is ``init_pid`` (the relay).

        Raises:
            OSError: the container's threads or its kernel process cannot be found.
        """
        from .usage import cgroup_dirs

        version, dirs = cgroup_dirs(init_pid, container_id, proc=proc)
        if version == "cgroup-v1":
            tasks_file = os.path.join(dirs["cpuacct"], "tasks")
        else:
            tasks_file = os.path.join(dirs[""], "cgroup.threads")
        relay = {int(tid) for tid in os.listdir(f"{proc}/{init_pid}/task")}
        kernels = set()
        for tid in _read_ids(tasks_file):
            with contextlib.suppress(OSError), open(f"{proc}/{tid}/cmdline", "rb") as file:
                if tid not in relay and b"ipykernel" in file.read():
                    kernels.add(_tgid(proc, tid))
        if not kernels:
            raise OSError("the inner kernel's process was not found in the container")
        return cls(tasks_file, relay | kernels, proc)

    def _snapshot(self) -> _Snapshot:
        snapshot = _Snapshot(time.monotonic())
        tids = _read_ids(self._tasks_file)
        for tid in set(self._schedstat) - set(tids):
            os.close(self._schedstat.pop(tid))  # an ended thread: its id may come back
        for tid in tids:
            if tid in self._excluded:
                continue
            ns = self._schedstat_ns(tid)
            if ns is not None:
                snapshot.cpu_ns[tid] = ns
        return snapshot

    def _schedstat_ns(self, tid: int) -> int | None:
        """The thread's CPU time in ns, or None if it ended meanwhile."""
        fd = self._schedstat.get(tid)
        for _ in range(2):  # a kept descriptor of an ended thread whose id was reused
            try:
                if fd is None:
                    fd = os.open(f"{self._proc}/{tid}/schedstat", os.O_RDONLY | os.O_CLOEXEC)
                    self._schedstat[tid] = fd
                return int(os.pread(fd, 128, 0).split()[0])
            except (OSError, ValueError, IndexError):
                if fd is not None:
                    os.close(self._schedstat.pop(tid))
                    fd = None
        return None

    def close(self) -> None:
        """Close the kept descriptors (safe twice; the ledger reopens them if used)."""
        fds, self._schedstat = list(self._schedstat.values()), {}
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def begin(self, execution_count: int | None = None) -> None:
        """At a cell's start: which threads kept busy since the previous cell ended."""
        now = self._snapshot()
        self._cell = execution_count
        for tid in now.cpu_ns:
            self._born.setdefault(tid, None)
        self._busy = set()
        settled, self._settled = self._settled, None
        ended, self._ended = self._ended, None
        if settled is not None and now.at - settled.at >= MIN_WINDOW_S:
            threshold = BUSY_FRACTION * (now.at - settled.at) * 1e9
            self._busy = {
                tid
                for tid, ns in now.cpu_ns.items()
                if ns - settled.cpu_ns.get(tid, 0) >= threshold
            }
        if ended is not None:
            self._busy |= self._left_running(ended, now)
        self._begin = now

    def _left_running(self, ended: _Snapshot, now: _Snapshot) -> set[int]:
        """Python threads an earlier cell started that worked since the last cell's end
        (or are running now): however short the pause, not the next cell's work."""
        return {
            tid
            for tid, ns in now.cpu_ns.items()
            if self._born.get(tid) is not None
            and tid in ended.cpu_ns
            and tid not in self._busy
            and self._is_python(tid)
            and (ns > ended.cpu_ns[tid] or self._running(tid))
        }

    def _is_python(self, tid: int) -> bool:
        known = self._python.get(tid)
        if known is None:
            # Named when it started (bootstrap.py), before any cell could see it end.
            try:
                with open(f"{self._proc}/{tid}/comm", "rb") as file:
                    known = file.read().strip() == THREAD_NAME.encode()
            except OSError:
                known = False
            self._python[tid] = known
        return known

    def _running(self, tid: int) -> bool:
        try:
            with open(f"{self._proc}/{tid}/stat", "rb") as file:
                return file.read().rsplit(b")", 1)[1].split()[0] == b"R"
        except (OSError, IndexError):
            return False

    @property
    def ends(self) -> int:
        """How many cells have ended: pass it to :meth:`settle`."""
        return self._ends

    def settle(self, ends: int) -> None:
        """:data:`SETTLE_S` after a cell's end: the look that busy threads are judged from.

        Ignored when another cell has begun or ended since (``ends`` is stale).
        """
        if ends == self._ends and self._begin is None:
            self._settled = self._snapshot()

    def end(self) -> tuple[float, list[int]]:
        """At a cell's end: CPU seconds the busy threads used during the cell, and the
        cells (execution counts) in which those threads were first seen."""
        now = self._snapshot()
        begin, self._begin, self._settled = self._begin, None, None
        self._ended = now
        self._ends += 1
        for tid in now.cpu_ns:
            self._born.setdefault(tid, self._cell)
        for tid in [t for t in self._born if t not in now.cpu_ns]:
            del self._born[tid]  # ended: its id may be reused
            self._python.pop(tid, None)
        if begin is None:
            return 0.0, []
        spent = sum(
            max(now.cpu_ns[tid] - begin.cpu_ns[tid], 0)
            for tid in self._busy
            if tid in now.cpu_ns and tid in begin.cpu_ns
        )
        cells = {self._born.get(tid) for tid in self._busy}
        return spent / 1e9, sorted(c for c in cells if c is not None)


def _read_ids(path: str) -> list[int]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, 65536)]
        while chunks[-1]:  # thousands of threads: read the rest
            chunks.append(os.read(fd, 65536))
    finally:
        os.close(fd)
    return [int(word) for word in b"".join(chunks).split()]


def _tgid(proc: str, tid: int) -> int:
    with open(f"{proc}/{tid}/status", encoding="utf-8") as file:
        for line in file:
            if line.startswith("Tgid:"):
                return int(line.split()[1])
    raise OSError(f"thread {tid} has no Tgid")
