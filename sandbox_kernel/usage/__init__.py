"""What each cell cost, measured from outside the sandbox.

:class:`UsageMeter` reads the container's counters around every cell;
:class:`CellUsage` is one cell's result and renders the compact line shown under
the cell's output (``1.24 s wall · 1.10 s CPU · peak 312 MiB of 2 GiB · 3 pids ·
net 0 B``); :class:`SessionUsage` collects them for ``%sandbox usage``.

The package, one owner per module: ``model`` (the numbers: :class:`Reading`,
:class:`CellUsage`, :func:`cell_usage`, :func:`under_gvisor`), ``render`` (the line as
text, HTML, LaTeX), ``measurements`` (the table below), ``cgroup`` (the local source),
``stats`` (the Docker stats API), ``sampler``, ``counters`` (one interface over the two
sources, chosen once per sandbox), ``meter`` (:class:`UsageMeter`) and ``report``
(:class:`SessionUsage`).

Every number comes from the host side: the container's cgroup files when the engine
is local, the Docker stats API when it is not. Nothing is asked of the code inside
the sandbox, so that code cannot fake its own numbers. The numbers are for the
container as a whole (relay, kernel and every child process).

Where the numbers come from
---------------------------

The engine counts as local when the client talks to a unix socket, ``/proc/<pid>``
of the container's main process exists, its ``/proc/<pid>/cgroup`` names a cgroup
whose path contains the container id (this rules out Docker Desktop's VM and
forwarded sockets) and that cgroup's files are readable. Otherwise the meter uses
``GET /containers/<id>/stats?stream=false&one-shot=true``.

"Exact" means read from a kernel counter at the cell's start and end; "sampled" means
the maximum of readings taken on a background thread while the cell runs, which can
miss a spike shorter than the sampling interval (locally 10 ms, or 50 ms for pids
when the memory peak is reset; 2 s via the API).
"HWM" means a high-water mark that cannot be reset: when the cell raises it, the new
mark is the cell's exact peak; otherwise the peak is sampled.

| Number | cgroup v1 (local) | cgroup v2 (local) | Docker stats API | under gVisor (runsc) |
|---|---|---|---|---|
| wall time | exact: monotonic clock around the cell | exact: monotonic clock around the cell | exact: monotonic clock around the cell | exact |
| CPU time | exact: cpuacct.usage delta | exact: cpu.stat usage_usec delta | exact counter; the window may start up to 30 s before the cell | exact on the host: the sandbox's processes and gVisor's kernel working for them |
| peak memory | exact: memory.max_usage_in_bytes reset at cell start (needs write access); else HWM or sampled | exact: memory.peak reset per fd (kernel >= 6.12, write access); else HWM or sampled | HWM of max_usage (v1 engines), else sampled every 2 s after the first 2 s | approximate (~): gVisor's kernel (about 20 MiB) is in it, and memory freed in the sandbox returns to the host late, so a later cell's peak may still count it |
| memory at end | exact: usage_in_bytes - total_inactive_file | exact: memory.current - inactive_file | exact: usage - inactive file, as `docker stats` | as the source measures it, gVisor's kernel included |
| memory limit | exact: memory.limit_in_bytes | exact: memory.max | exact: memory_stats.limit | exact |
| pids now | exact: pids.current | exact: pids.current | exact: pids_stats.current | not shown: the cgroup counts gVisor's threads (about 60 idle), not the sandbox's processes |
| pids peak | HWM of pids.peak, else sampled | HWM of pids.peak, else sampled | sampled | not shown (as pids now) |
| net in / out | exact: /proc/<pid>/net/dev delta, all interfaces but lo | exact: /proc/<pid>/net/dev delta, all interfaces but lo | exact: networks delta (no lo) | exact (0: runsc runs with --network=none) |
| tmp bytes | exact: total_shmem delta (tmpfs, /dev/shm, shared memory) | exact: shmem delta (tmpfs, /dev/shm, shared memory) | exact: shmem delta on v2 engines; none on v1 engines | not shown: gVisor keeps all of the sandbox's memory in one shared memory file, so shmem is not the tmpfs |
| CPU throttled | exact: cpu.stat nr_throttled delta | exact: cpu.stat nr_throttled delta | exact: throttled_periods delta | exact |
| OOM killed | exact: memory.oom_control oom_kill delta | exact: memory.events oom_kill delta | the engine's "oom" events (asynchronous: best effort) | the host's OOM killer ends gVisor's kernel, so the whole sandbox: the cell's error says so; no usage line |

Memory includes the page cache, as the kernel counts it against the limit; the peak
is the raw usage, "memory at end" leaves out inactive file cache like ``docker
stats``. "tmp bytes" is the change in shared memory during the cell: the private
/tmp is a tmpfs, whose pages are shmem charged to the container, so a cell that
writes 10 MiB into /tmp shows ``tmp +10 MiB`` (and deleting files shows a negative
number). Shared anonymous memory and /dev/shm count there too.

Cost: on the local path :meth:`UsageMeter.begin_cell` and :meth:`UsageMeter.end_cell`
are a dozen ``pread``/``pwrite`` calls on file descriptors kept open for the meter's
lifetime (well under a millisecond together); the sampler is a background thread that
only runs while a cell does. On the API path all calls but the one in ``end_cell``
run on a background thread. The engine makes at most one stats collection per second
(for all its clients: a request within a second of the previous collection waits for
the next one), so ``begin_cell`` does not ask: it reuses the latest measurement, which
a background refresh keeps younger than 15 s between cells. The cell's CPU time then
includes the sandbox's idle CPU since that measurement, normally far below a
millisecond per second. ``end_cell`` asks once, which takes about 10 ms, or up to a
second after another request (a long cell's sample, "Run All", another stats client).
"""

from __future__ import annotations

from .cgroup import CgroupCounters, cgroup_dirs
from .counters import (
    LOCAL_PIDS_SAMPLE_INTERVAL,
    LOCAL_SAMPLE_INTERVAL,
    STATS_BASELINE_MAX_AGE,
    STATS_IDLE_REFRESH,
    STATS_SAMPLE_INTERVAL,
    Counters,
    LocalCounters,
    StatsApiCounters,
    open_counters,
)
from .measurements import MEASUREMENTS, measurements_table
from .meter import UsageMeter
from .model import WARN_FRACTION, CellUsage, Reading, cell_usage, under_gvisor
from .render import BACKGROUND_MIN_S, MIME_TYPE, format_seconds
from .report import REPORT_MIME_TYPE, SessionUsage
from .stats import reading_from_stats

__all__ = [
    "BACKGROUND_MIN_S",
    "LOCAL_PIDS_SAMPLE_INTERVAL",
    "LOCAL_SAMPLE_INTERVAL",
    "MEASUREMENTS",
    "MIME_TYPE",
    "REPORT_MIME_TYPE",
    "STATS_BASELINE_MAX_AGE",
    "STATS_IDLE_REFRESH",
    "STATS_SAMPLE_INTERVAL",
    "WARN_FRACTION",
    "CellUsage",
    "CgroupCounters",
    "Counters",
    "LocalCounters",
    "Reading",
    "SessionUsage",
    "StatsApiCounters",
    "UsageMeter",
    "cell_usage",
    "cgroup_dirs",
    "format_seconds",
    "measurements_table",
    "open_counters",
    "reading_from_stats",
    "under_gvisor",
]
