"""What each cell cost, measured from outside the sandbox.

:class:`UsageMeter` reads the container's counters around every cell;
:class:`CellUsage` is one cell's result and renders the compact line shown under
the cell's output (``1.24 s wall · 1.10 s CPU · peak 312 MiB of 2 GiB · 3 pids ·
net 0 B``); :class:`SessionUsage` collects them for ``%sandbox usage``.

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

| Number | cgroup v1 (local) | cgroup v2 (local) | Docker stats API |
|---|---|---|---|
| wall time | exact: monotonic clock around the cell | exact: monotonic clock around the cell | exact: monotonic clock around the cell |
| CPU time | exact: cpuacct.usage delta | exact: cpu.stat usage_usec delta | exact counter; the window may start up to 30 s before the cell |
| peak memory | exact: memory.max_usage_in_bytes reset at cell start (needs write access); else HWM or sampled | exact: memory.peak reset per fd (kernel >= 6.12, write access); else HWM or sampled | HWM of max_usage (v1 engines), else sampled every 2 s after the first 2 s |
| memory at end | exact: usage_in_bytes - total_inactive_file | exact: memory.current - inactive_file | exact: usage - inactive file, as `docker stats` |
| memory limit | exact: memory.limit_in_bytes | exact: memory.max | exact: memory_stats.limit |
| pids now | exact: pids.current | exact: pids.current | exact: pids_stats.current |
| pids peak | HWM of pids.peak, else sampled | HWM of pids.peak, else sampled | sampled |
| net in / out | exact: /proc/<pid>/net/dev delta, all interfaces but lo | exact: /proc/<pid>/net/dev delta, all interfaces but lo | exact: networks delta (no lo) |
| tmp bytes | exact: total_shmem delta (tmpfs, /dev/shm, shared memory) | exact: shmem delta (tmpfs, /dev/shm, shared memory) | exact: shmem delta on v2 engines; none on v1 engines |
| CPU throttled | exact: cpu.stat nr_throttled delta | exact: cpu.stat nr_throttled delta | exact: throttled_periods delta |
| OOM killed | exact: memory.oom_control oom_kill delta | exact: memory.events oom_kill delta | the engine's "oom" events (asynchronous: best effort) |

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

import contextlib
import html
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, fields
from typing import Any

import docker
import docker.errors
import requests.exceptions

from .config import format_size
from .errors import SandboxError

log = logging.getLogger(__name__)

MIME_TYPE = "application/vnd.sandbox-kernel.usage+json"
#: The machine-readable part of :meth:`SessionUsage.report_bundle`.
REPORT_MIME_TYPE = "application/vnd.sandbox-kernel.usage-report+json"

#: Background CPU worth a mention in the line. An idle kernel uses about 0.4 ms a
#: second, and thread pools spin after their work (OpenBLAS for about a tenth of a
#: second per thread): below this, background is in the JSON only.
BACKGROUND_MIN_S = 0.25

#: Which numbers are exact and which sampled, per source: (number, v1, v2, stats API).
MEASUREMENTS: tuple[tuple[str, str, str, str], ...] = (
    ("wall time", *(("exact: monotonic clock around the cell",) * 3)),
    (
        "CPU time",
        "exact: cpuacct.usage delta",
        "exact: cpu.stat usage_usec delta",
        "exact counter; the window may start up to 30 s before the cell",
    ),
    (
        "peak memory",
        "exact: memory.max_usage_in_bytes reset at cell start (needs write access); "
        "else HWM or sampled",
        "exact: memory.peak reset per fd (kernel >= 6.12, write access); else HWM or sampled",
        "HWM of max_usage (v1 engines), else sampled every 2 s after the first 2 s",
    ),
    (
        "memory at end",
        "exact: usage_in_bytes - total_inactive_file",
        "exact: memory.current - inactive_file",
        "exact: usage - inactive file, as `docker stats`",
    ),
    (
        "memory limit",
        "exact: memory.limit_in_bytes",
        "exact: memory.max",
        "exact: memory_stats.limit",
    ),
    ("pids now", "exact: pids.current", "exact: pids.current", "exact: pids_stats.current"),
    ("pids peak", "HWM of pids.peak, else sampled", "HWM of pids.peak, else sampled", "sampled"),
    (
        "net in / out",
        *(("exact: /proc/<pid>/net/dev delta, all interfaces but lo",) * 2),
        "exact: networks delta (no lo)",
    ),
    (
        "tmp bytes",
        "exact: total_shmem delta (tmpfs, /dev/shm, shared memory)",
        "exact: shmem delta (tmpfs, /dev/shm, shared memory)",
        "exact: shmem delta on v2 engines; none on v1 engines",
    ),
    (
        "CPU throttled",
        *(("exact: cpu.stat nr_throttled delta",) * 2),
        "exact: throttled_periods delta",
    ),
    (
        "OOM killed",
        "exact: memory.oom_control oom_kill delta",
        "exact: memory.events oom_kill delta",
        'the engine\'s "oom" events (asynchronous: best effort)',
    ),
)


def measurements_table() -> str:
    """:data:`MEASUREMENTS` as a Markdown table, for the README and the docstring."""
    lines = [
        "| Number | cgroup v1 (local) | cgroup v2 (local) | Docker stats API |",
        "|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in MEASUREMENTS]
    return "\n".join(lines)


#: At or above this share of a limit, the usage line turns to the warning colour.
WARN_FRACTION = 0.8
#: Seconds between sampler readings on the local path, when the memory peak needs them.
LOCAL_SAMPLE_INTERVAL = 0.01
#: ... and when the kernel resets the memory peak, so that only pids are sampled.
LOCAL_PIDS_SAMPLE_INTERVAL = 0.05
#: On the API path: the sampler starts this long into a cell and then asks once per
#: this interval. Short cells are not sampled at all, because every stats request
#: holds the next one back by up to a second (see the module docstring), and a sample
#: in the cell's last second delays its end reading.
STATS_SAMPLE_INTERVAL = 2.0
#: On the API path, a measurement younger than this is reused as a cell's baseline.
STATS_BASELINE_MAX_AGE = 30.0
#: On the API path, between cells, a measurement is taken this often so that the next
#: cell has a baseline at hand (a request at the cell's start could be answered late).
STATS_IDLE_REFRESH = 15.0
#: A baseline answered later than this after the cell's start may have been taken
#: during the cell: the cell is not reported rather than reported too small.
_STATS_LATE_BASELINE = 0.05
#: Longest wait in end_cell for the API-path sampler's request in flight.
_STATS_JOIN_TIMEOUT = 5.0

# cgroup v1 reports "no limit" as a huge page-aligned number.
_UNLIMITED = 1 << 62
_CPU_COUNT = os.cpu_count() or 0  # os.cpu_count() reads sysfs each time: ask once
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


# -- the numbers of one cell ----------------------------------------------------------


def format_seconds(seconds: float) -> str:
    """Format a duration for people: ``12 ms``, ``1.24 s``, ``12.3 s``, ``2 min 05 s``."""
    if seconds < 0.9995:
        return f"{max(seconds, 0.0) * 1000:.0f} ms"
    if seconds < 9.995:
        return f"{seconds:.2f} s"
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass
class CellUsage:
    """What one cell cost, for the whole container.

    Attributes:
        wall_time_s: seconds from the cell's start to its end, on the controller's clock.
        cpu_time_s: user + system CPU seconds the container used during the cell.
        peak_memory_bytes: highest memory use during the cell (page cache included).
        memory_bytes: memory in use at the end, without inactive file cache.
        memory_limit_bytes: the container's memory limit (0: none).
        pids: processes and threads at the end.
        pids_peak: most processes and threads at once during the cell.
        net_rx_bytes: bytes received during the cell, all interfaces but loopback.
        net_tx_bytes: bytes sent during the cell, all interfaces but loopback.
        tmp_bytes: change in shared memory (the /tmp tmpfs) during the cell, or None
            where the source does not report it.
        cpu_throttled: the CPU quota held the container back during the cell.
        oom_killed: the kernel's OOM killer ended a process of the container.
        source: ``"cgroup-v1"``, ``"cgroup-v2"`` or ``"docker-stats"``.
        peak_exact: the peak is a kernel counter, not the maximum of samples.
        pids_limit: the container's pids limit (0: none).
        background_cpu_s: CPU seconds of work this cell did not do: what the
            container used between the previous cell's end and this cell's start, and
            (local engines) what threads already busy before the cell used during it
            (see :mod:`.attribution`). Shown apart, never part of ``cpu_time_s``.
        background_cells: the cells (execution counts) that started the threads
            behind ``background_cpu_s``, where the host could tell.
    """

    wall_time_s: float
    cpu_time_s: float
    peak_memory_bytes: int
    memory_bytes: int
    memory_limit_bytes: int
    pids: int
    pids_peak: int
    net_rx_bytes: int
    net_tx_bytes: int
    tmp_bytes: int | None
    cpu_throttled: bool
    oom_killed: bool
    source: str
    peak_exact: bool
    pids_limit: int = 0
    background_cpu_s: float = 0.0
    background_cells: list[int] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """Limits this cell came near or hit: ``memory``, ``pids``, ``throttled``, ``oom``."""
        found = []
        if (
            self.memory_limit_bytes
            and self.peak_memory_bytes >= WARN_FRACTION * self.memory_limit_bytes
        ):
            found.append("memory")
        if self.pids_limit and self.pids_peak >= WARN_FRACTION * self.pids_limit:
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

    def _parts(self) -> list[tuple[str, str]]:
        """The line's pieces, each with a level: ``""``, ``"warn"`` or ``"error"``."""
        warnings = self.warnings
        peak = f"peak {'' if self.peak_exact else '~'}{format_size(self.peak_memory_bytes)}"
        if self.memory_limit_bytes:
            peak += f" of {format_size(self.memory_limit_bytes)}"
            if "memory" in warnings:
                peak += f" ({100 * self.peak_memory_bytes / self.memory_limit_bytes:.0f}%)"
        pids = f"{self.pids} pid{'' if self.pids == 1 else 's'}"
        if self.pids_peak > self.pids:
            pids += f" (peak {self.pids_peak})"
        if "pids" in warnings:
            pids += f" of {self.pids_limit}"
        if self.net_rx_bytes or self.net_tx_bytes:
            net = f"net ↓{format_size(self.net_rx_bytes)} ↑{format_size(self.net_tx_bytes)}"
        else:
            net = "net 0 B"
        parts = [
            (f"{format_seconds(self.wall_time_s)} wall", ""),
            (f"{format_seconds(self.cpu_time_s)} CPU", ""),
            (peak, "warn" if "memory" in warnings else ""),
            (pids, "warn" if "pids" in warnings else ""),
            (net, ""),
        ]
        if self.tmp_bytes:
            sign = "+" if self.tmp_bytes > 0 else "-"
            parts.append((f"tmp {sign}{format_size(abs(self.tmp_bytes))}", ""))
        if self.background_cpu_s >= BACKGROUND_MIN_S:
            background = f"+{format_seconds(self.background_cpu_s)} CPU in the background"
            if self.background_cells:
                background += f" (threads of {', '.join(f'[{n}]' for n in self.background_cells)})"
            parts.append((background, "warn"))
        if self.cpu_throttled:
            parts.append(("CPU throttled", "warn"))
        if self.oom_killed:
            parts.append(("out of memory: a process was killed", "error"))
        return parts

    def text(self) -> str:
        """The compact line: ``1.24 s wall · 1.10 s CPU · peak 312 MiB of 2 GiB · ...``."""
        return " · ".join(text for text, _ in self._parts())

    def html(self) -> str:
        """The line as small, theme-aware HTML; parts near a limit in the warning colour."""
        colours = {
            "warn": "var(--jp-warn-color0, #f57c00)",
            "error": "var(--jp-error-color0, #d32f2f)",
        }
        pieces = []
        for text, level in self._parts():
            if level:
                pieces.append(
                    f'<span style="color: {colours[level]}; font-weight: 600">{html.escape(text)}</span>'
                )
            else:
                pieces.append(html.escape(text))
        how = "exact" if self.peak_exact else "sampled"
        title = f"Measured outside the sandbox ({self.source}); memory peak {how}"
        return (
            f'<div class="sandbox-kernel-usage" title="{html.escape(title)}" '
            'style="font-family: var(--jp-ui-font-family, sans-serif); '
            "font-size: var(--jp-ui-font-size0, 11px); "
            "color: var(--jp-ui-font-color2, #757575); "
            'margin: 2px 0 0 0; line-height: 1.4">' + " · ".join(pieces) + "</div>"
        )

    def latex(self) -> str:
        """The line for LaTeX and PDF exports of the notebook (nbconvert)."""
        return "\\texttt{\\small " + _latex_escape(self.text()) + "}"

    def bundle(self) -> dict[str, Any]:
        """A display_data mime bundle: text/plain, text/html, text/latex and the JSON."""
        return {
            "text/plain": self.text(),
            "text/html": self.html(),
            "text/latex": self.latex(),
            MIME_TYPE: self.to_json(),
        }


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "·": r"$\cdot$",
    "↓": r"$\downarrow$",
    "↑": r"$\uparrow$",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(char, char) for char in text)


# -- one look at the counters -----------------------------------------------------------


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


def _limit(value: Any) -> int:
    """A limit as bytes or a count, 0 for none (``max``, absent or cgroup v1's huge value)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 0
    return number if 0 < number < _UNLIMITED else 0


def reading_from_stats(
    doc: Mapping[str, Any], oom_kills: int | None = None, requested_at: float = 0.0
) -> Reading:
    """A :class:`Reading` from one Docker stats document (cgroup v1 or v2 engine).

    Args:
        doc: the JSON of ``GET /containers/<id>/stats?stream=false&one-shot=true``.
        oom_kills: OOM kills counted from the engine's events (stats do not have them).
        requested_at: when the request for it was sent (``time.monotonic()``).

    Raises:
        SandboxError: the document is empty, which the engine sends for a stopped container.
    """
    if str(doc.get("read", "")).startswith("0001-") or not doc.get("memory_stats"):
        raise SandboxError("The sandbox container is not running; it has no usage to read.")
    memory = doc.get("memory_stats") or {}
    mstats = memory.get("stats") or {}
    cpu = doc.get("cpu_stats") or {}
    usage = int(memory.get("usage", 0))
    # v1 engines name the hierarchical counters total_*; v2 engines have only the plain ones.
    inactive = mstats.get("total_inactive_file", mstats.get("inactive_file", 0))
    if "anon" in mstats:  # cgroup v2 engine
        shmem: int | None = int(mstats.get("shmem", 0))
    else:
        shmem = int(mstats["total_shmem"]) if "total_shmem" in mstats else None
    hwm = memory.get("max_usage")
    networks = doc.get("networks") or {}
    pids_stats = doc.get("pids_stats") or {}
    return Reading(
        at=time.monotonic(),
        cpu_ns=int((cpu.get("cpu_usage") or {}).get("total_usage", 0)),
        memory_usage=usage,
        memory_working=max(usage - int(inactive), 0),
        memory_limit=_limit(memory.get("limit")),
        memory_hwm=int(hwm) if hwm else None,
        pids=int(pids_stats.get("current", 0)),
        pids_hwm=None,
        pids_limit=_limit(pids_stats.get("limit")),
        net_rx=sum(int(n.get("rx_bytes", 0)) for name, n in networks.items() if name != "lo"),
        net_tx=sum(int(n.get("tx_bytes", 0)) for name, n in networks.items() if name != "lo"),
        shmem=shmem,
        nr_throttled=int((cpu.get("throttling_data") or {}).get("throttled_periods", 0)),
        oom_kills=oom_kills,
        online_cpus=int(cpu.get("online_cpus") or 0),
        requested_at=requested_at,
        engine_time=str(doc.get("read", "")),
    )


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


# -- local path: the container's cgroup files ------------------------------------------


class _Counter:
    """One counter file kept open and re-read with ``pread`` at offset 0.

    cgroup and /proc files regenerate their text on a read at offset 0, so one
    descriptor serves the meter's lifetime: no open/close per cell.
    """

    __slots__ = ("fd", "path")

    def __init__(self, path: str, *, writable: bool = False) -> None:
        self.path = path
        self.fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)

    def read(self) -> bytes:
        data = os.pread(self.fd, 16384, 0)
        while len(data) % 16384 == 0 and data:  # a long memory.stat: read the rest
            more = os.pread(self.fd, 16384, len(data))
            if not more:
                break
            data += more
        return data

    def int(self) -> int:
        text = self.read().strip()
        return 0 if text == b"max" else int(text)

    def write(self, data: bytes) -> None:
        os.pwrite(self.fd, data, 0)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _field(data: bytes, key: bytes) -> int:
    """The value of ``key`` in a flat-keyed file such as memory.stat (0 when absent)."""
    needle = key + b" "
    if data.startswith(needle):
        start = 0
    else:
        found = data.find(b"\n" + needle)
        if found < 0:
            return 0
        start = found + 1
    end = data.find(b"\n", start)
    return int(data[start + len(needle) : end if end >= 0 else None])


def _net_bytes(data: bytes) -> tuple[int, int]:
    """Bytes received and sent on every interface but ``lo``, from /proc/<pid>/net/dev."""
    rx = tx = 0
    for line in data.splitlines()[2:]:
        name, _, counters = line.partition(b":")
        if name.strip() == b"lo":
            continue
        values = counters.split()
        if len(values) >= 9:
            rx += int(values[0])
            tx += int(values[8])
    return rx, tx


def _unescape_mount(path: str) -> str:
    """A mountinfo path with its ``\\ooo`` escapes (space, tab, newline, backslash) undone."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), path)


def cgroup_dirs(pid: int, container_id: str, *, proc: str = "/proc") -> tuple[str, dict[str, str]]:
    """Where the cgroup files of process ``pid`` are, in this process's mount namespace.

    Args:
        pid: the process, as this host's /proc numbers it.
        container_id: the full container id; every directory found must contain it.
        proc: where procfs is mounted (tests point it at a prepared tree).

    Returns:
        ``("cgroup-v1", {controller: dir})`` when the memory controller is on a v1
        hierarchy, else ``("cgroup-v2", {"": dir})``.

    Raises:
        OSError: the process or a cgroup directory of it cannot be found or does not
            belong to ``container_id``.
    """
    with open(f"{proc}/{pid}/cgroup", encoding="utf-8") as file:
        membership = [line.rstrip("\n").split(":", 2) for line in file if line.count(":") >= 2]
    v1_paths: dict[str, str] = {}
    v2_path = None
    for _hier, controllers, path in membership:
        if controllers:
            for controller in controllers.split(","):
                v1_paths[controller] = path
        else:
            v2_path = path
    v1_mounts: dict[str, tuple[str, str]] = {}
    v2_mount = None
    with open(f"{proc}/self/mountinfo", encoding="utf-8") as file:
        for line in file:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(fields) < 5 or len(rfields) < 3:
                continue
            root, point = _unescape_mount(fields[3]), _unescape_mount(fields[4])
            if rfields[0] == "cgroup":
                for option in rfields[2].split(","):
                    v1_mounts.setdefault(option, (root, point))
            elif rfields[0] == "cgroup2" and v2_mount is None:
                v2_mount = (root, point)

    def resolve(path: str, mount: tuple[str, str]) -> str:
        root, point = mount
        if root != "/":
            # The hierarchy is mounted from a sub-tree (we run in a container ourselves).
            if path != root and not path.startswith(root.rstrip("/") + "/"):
                raise OSError(f"cgroup {path} is outside the mounted sub-tree {root}")
            path = path[len(root.rstrip("/")) :]
        directory = os.path.join(point, path.lstrip("/"))
        if container_id not in directory:
            raise OSError(f"cgroup {directory} of pid {pid} is not the container's")
        if not os.path.isdir(directory):
            raise OSError(f"cgroup directory {directory} does not exist")
        return directory

    if "memory" in v1_paths and "memory" in v1_mounts:
        dirs = {}
        for controller in ("memory", "cpuacct", "pids", "cpu"):
            if controller in v1_paths and controller in v1_mounts:
                dirs[controller] = resolve(v1_paths[controller], v1_mounts[controller])
        if "cpuacct" not in dirs or "pids" not in dirs:
            raise OSError("the cpuacct or pids controller is not mounted")
        return "cgroup-v1", dirs
    if v2_path is not None and v2_mount is not None:
        directory = resolve(v2_path, v2_mount)
        if not os.path.exists(os.path.join(directory, "memory.current")):
            raise OSError(f"{directory} has no memory controller")
        return "cgroup-v2", {"": directory}
    raise OSError(f"no memory cgroup found for pid {pid}")


class CgroupCounters:
    """The counter files of one container's cgroup (v1 or v2), opened once.

    Use :meth:`for_process` to find them from the container's main process.

    Args:
        source: ``"cgroup-v1"`` or ``"cgroup-v2"``.
        dirs: the cgroup directory per v1 controller (``memory``, ``cpuacct``,
            ``pids``, optionally ``cpu``), or ``{"": dir}`` for v2.
        net_dev: the ``net/dev`` file of the container's network namespace.
        reset_peaks: try to make the memory peak per-cell by resetting it.

    Raises:
        OSError: a needed file cannot be found or read.
        ValueError: a file does not hold what it should.
    """

    def __init__(
        self, source: str, dirs: Mapping[str, str], net_dev: str, *, reset_peaks: bool = True
    ) -> None:
        self.source = source
        self.peak_resettable = False
        self._files: list[_Counter] = []
        try:
            self._open(dirs, net_dev, reset_peaks)
            self.read()  # every file parses, or fail now rather than at the first cell
        except BaseException:
            self.close()
            raise

    def _counter(
        self, path: str, *, optional: bool = False, writable: bool = False
    ) -> _Counter | None:
        try:
            counter = _Counter(path, writable=writable)
        except FileNotFoundError:
            if optional:
                return None
            raise
        self._files.append(counter)
        return counter

    def _need(self, path: str) -> _Counter:
        counter = self._counter(path)
        assert counter is not None
        return counter

    @classmethod
    def for_process(
        cls, pid: int, container_id: str, *, reset_peaks: bool = True
    ) -> CgroupCounters:
        """The counters of the container whose main process is ``pid`` (host numbering).

        Raises:
            OSError: the process, its cgroup or a needed file cannot be found or read,
                or the cgroup is not the container's.
            ValueError: a file does not hold what it should.
        """
        source, dirs = cgroup_dirs(pid, container_id)
        return cls(source, dirs, f"/proc/{pid}/net/dev", reset_peaks=reset_peaks)

    def _open(self, dirs: Mapping[str, str], net_dev: str, reset_peaks: bool) -> None:
        j = os.path.join
        self._net = self._need(net_dev)
        if self.source == "cgroup-v1":
            mem, pids = dirs["memory"], dirs["pids"]
            self._cpu = self._need(j(dirs["cpuacct"], "cpuacct.usage"))
            self._mem = self._need(j(mem, "memory.usage_in_bytes"))
            self._mem_limit = self._need(j(mem, "memory.limit_in_bytes"))
            self._mem_stat = self._need(j(mem, "memory.stat"))
            self._oom = self._need(j(mem, "memory.oom_control"))
            self._cpu_stat = (
                self._counter(j(dirs["cpu"], "cpu.stat"), optional=True) if "cpu" in dirs else None
            )
            peak_name = j(mem, "memory.max_usage_in_bytes")
            self._peak_reset_value = b"0"
        else:
            base = dirs[""]
            pids = base
            self._cpu_stat = self._need(j(base, "cpu.stat"))
            self._cpu = self._cpu_stat
            self._mem = self._need(j(base, "memory.current"))
            self._mem_limit = self._need(j(base, "memory.max"))
            self._mem_stat = self._need(j(base, "memory.stat"))
            self._oom = self._need(j(base, "memory.events"))
            peak_name = j(base, "memory.peak")
            # Any non-empty write resets memory.peak, for reads through the same fd only.
            self._peak_reset_value = b"reset\n"
        self._pids = self._need(j(pids, "pids.current"))
        self._pids_peak = self._counter(j(pids, "pids.peak"), optional=True)
        self._pids_max = self._counter(j(pids, "pids.max"), optional=True)
        self._peak: _Counter | None = None
        if reset_peaks:
            # Root may write v1's max_usage_in_bytes; v2's memory.peak is writable from
            # kernel 6.12 on. A user in the docker group owns neither file: fall back.
            with contextlib.suppress(OSError):
                self._peak = self._counter(peak_name, optional=True, writable=True)
                if self._peak is not None:
                    self._peak.write(self._peak_reset_value)
                    self.peak_resettable = True
        if self._peak is None or not self.peak_resettable:
            self._peak = self._counter(peak_name, optional=True)

    def reset_peak(self) -> None:
        """Restart the memory peak at the current use (only if :attr:`peak_resettable`)."""
        if self.peak_resettable and self._peak is not None:
            self._peak.write(self._peak_reset_value)

    def sample(self) -> tuple[int, int]:
        """Raw memory use and pids now: the sampler's two cheap reads."""
        return self._mem.int(), self._pids.int()

    def read(self) -> Reading:
        """Every counter now.

        Raises:
            OSError: the cgroup is gone (the container ended).
        """
        v1 = self.source == "cgroup-v1"
        stat = self._mem_stat.read()
        usage = self._mem.int()
        if v1:
            cpu_ns = self._cpu.int()
            inactive = _field(stat, b"total_inactive_file")
            shmem = _field(stat, b"total_shmem")
        else:
            cpu_ns = _field(self._cpu.read(), b"usage_usec") * 1000
            inactive = _field(stat, b"inactive_file")
            shmem = _field(stat, b"shmem")
        cpu_stat = self._cpu_stat.read() if self._cpu_stat is not None else b""
        rx, tx = _net_bytes(self._net.read())
        return Reading(
            at=time.monotonic(),
            cpu_ns=cpu_ns,
            memory_usage=usage,
            memory_working=max(usage - inactive, 0),
            memory_limit=_limit(self._mem_limit.int()),
            memory_hwm=self._peak.int() if self._peak is not None else None,
            pids=self._pids.int(),
            pids_hwm=self._pids_peak.int() if self._pids_peak is not None else None,
            pids_limit=_limit(self._pids_max.int()) if self._pids_max is not None else 0,
            net_rx=rx,
            net_tx=tx,
            shmem=shmem,
            nr_throttled=_field(cpu_stat, b"nr_throttled"),
            oom_kills=_field(self._oom.read(), b"oom_kill"),
            online_cpus=_CPU_COUNT,
        )

    def close(self) -> None:
        for counter in self._files:
            counter.close()
        self._files.clear()


# -- API path: the Docker stats endpoint ------------------------------------------------


class _StatsCounters:
    """Readings from the Docker stats API, plus OOM kills from the engine's events.

    Args:
        client: the Docker client.
        container_id: the full container id.
    """

    source = "docker-stats"
    peak_resettable = False

    def __init__(self, client: docker.DockerClient, container_id: str) -> None:
        self._api = client.api
        self._id = container_id
        # one-shot needs API 1.41 (Docker 20.10); older engines take two samples (~2 s).
        self._one_shot: bool | None = True
        with contextlib.suppress(Exception):
            if docker.utils.version_lt(self._api.api_version, "1.41"):
                self._one_shot = None
        self.oom_kills = 0
        self._events: Any = None
        self._closed = False
        self._events_thread = threading.Thread(
            target=self._count_ooms, name=f"usage-oom-{container_id[:12]}", daemon=True
        )
        self._events_ready = threading.Event()
        self._events_thread.start()
        # Stats have no OOM counter; the engine's "oom" events are the only remote source.
        # Connecting takes milliseconds; bounded so that a slow engine cannot hold us.
        self._events_ready.wait(0.5)

    def _count_ooms(self) -> None:
        try:
            self._events = self._api.events(
                decode=True, filters={"container": self._id, "event": "oom"}
            )
        except Exception:
            log.debug("cannot follow the engine's oom events", exc_info=True)
            return
        finally:
            self._events_ready.set()
        if self._closed:  # closed while connecting
            with contextlib.suppress(Exception):
                self._events.close()
            return
        try:
            for event in self._events:
                if event.get("status") == "oom" or event.get("Action") == "oom":
                    self.oom_kills += 1
        except Exception:
            if not self._closed:
                log.debug("the engine's event stream ended", exc_info=True)

    def read(self) -> Reading:
        """One stats document as a reading (about 10 ms; up to 1 s if one was just taken).

        Raises:
            SandboxError: the engine failed or the container is not running.
        """
        requested = time.monotonic()
        try:
            doc = self._api.stats(self._id, stream=False, one_shot=self._one_shot)
        except (
            docker.errors.DockerException,
            requests.exceptions.RequestException,
            OSError,
        ) as err:
            raise SandboxError(
                f"The Docker engine did not report the sandbox's usage: {err}"
            ) from err
        try:
            return reading_from_stats(doc, self.oom_kills, requested)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise SandboxError(f"The Docker engine sent unreadable stats: {err!r}") from err

    def close(self) -> None:
        self._closed = True
        events, self._events = self._events, None
        if events is not None:
            with contextlib.suppress(Exception):
                events.close()


# -- the sampler --------------------------------------------------------------------------


class _Sampler:
    """A background thread that samples memory and pids while a cell runs.

    Between cells it blocks on an event: no wake-ups, no cost. It holds no lock while
    it works, so ``begin_cell``/``end_cell`` never wait for it; each cell's maxima live
    in their own small list, replaced (not cleared) at a cell's start, so a sample that
    lands late goes into the old cell's list and not into the new cell's.

    Args:
        probe: returns raw memory use, pids, and a full reading when it has one.
        interval: seconds between samples.
        delay: seconds into a cell before the first sample.
        name: the thread's name.
        sleep: between samples, sleep rather than wait on the cell's end. A plain sleep
            costs half the CPU of a timed wait; for a short interval it is as good.
        idle_refresh: between cells, probe this often (seconds) to keep
            :attr:`last_reading` fresh; None: never.
    """

    def __init__(
        self,
        probe: Callable[[], tuple[int, int, Reading | None]],
        interval: float,
        delay: float,
        name: str,
        *,
        sleep: bool = False,
        idle_refresh: float | None = None,
    ) -> None:
        self._probe = probe
        self._sleep = sleep
        self._idle_refresh = idle_refresh
        self._interval = interval
        self._delay = delay
        self._running = threading.Event()  # set while a cell runs
        self._ended = threading.Event()  # set when it ends: cuts the sampler's sleep short
        self._idle = threading.Event()  # clear while a probe is in flight
        self._idle.set()
        self._closed = False
        self._maxima = [0, 0]  # memory, pids of the current cell
        self.last_reading: Reading | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def start_cell(self) -> None:
        self._maxima = [0, 0]
        self._ended.clear()
        self._running.set()

    def stop_cell(self) -> tuple[int, int]:
        """End the cell's sampling; returns the highest memory and pids seen."""
        self._running.clear()
        self._ended.set()
        memory, pids = self._maxima
        return memory, pids

    def wait_idle(self, timeout: float) -> tuple[int, int]:
        """Wait for a sample in flight to land; returns the cell's maxima."""
        self._idle.wait(timeout)
        memory, pids = self._maxima
        return memory, pids

    def note(self, reading: Reading) -> None:
        """Keep ``reading`` as the latest measurement unless a later one is there."""
        last = self.last_reading
        if last is None or reading.at >= last.at:
            self.last_reading = reading

    def close(self) -> None:
        self._closed = True
        self._ended.set()
        self._running.set()

    def _refresh(self) -> None:
        """Between cells: take a reading so that the next cell has a recent baseline."""
        last = self.last_reading
        if self._idle_refresh and last and time.monotonic() - last.at < self._idle_refresh:
            return
        self._idle.clear()
        try:
            _, _, reading = self._probe()
        except Exception:
            log.debug("idle usage reading failed", exc_info=True)
            return
        finally:
            self._idle.set()
        if reading is not None:
            self.note(reading)

    def _run(self) -> None:
        while True:
            if not self._running.wait(self._idle_refresh):
                self._refresh()
                continue
            if self._closed:
                return
            maxima = self._maxima
            if self._delay and self._ended.wait(self._delay):
                continue
            while not self._ended.is_set() and maxima is self._maxima:
                self._idle.clear()
                try:
                    memory, pids, reading = self._probe()
                except Exception:
                    memory = pids = 0
                    reading = None
                finally:
                    self._idle.set()
                if memory > maxima[0]:
                    maxima[0] = memory
                if pids > maxima[1]:
                    maxima[1] = pids
                if reading is not None:
                    self.note(reading)
                if self._sleep:
                    time.sleep(self._interval)
                else:
                    self._ended.wait(self._interval)
            if self._closed:
                return


# -- the meter ----------------------------------------------------------------------------


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


class UsageMeter:
    """Measures each cell of one container from outside it.

    Call :meth:`begin_cell` just before sending a cell and :meth:`end_cell` just after
    its reply; both are cheap on the local path. On the API path ``end_cell`` waits for
    one stats request (about 10 ms; up to a second when a request was made less than a
    second before), so call it from a thread there.

    Args:
        client: a connected Docker client.
        container_id: the sandbox container (id or name).
        memory_limit_bytes: the configured memory limit, used when the engine reports none.
        pids_limit: the configured pids limit, used when the engine reports none.
        local: read the cgroup files (True), use the stats API (False) or decide by
            looking (None).
        reset_peaks: reset the kernel's memory peak at every cell start where that is
            allowed; False leaves host cgroup files untouched (the peak is then the
            high-water mark or sampled).

    Raises:
        SandboxError: the container cannot be inspected, or ``local=True`` and its
            cgroup files cannot be read.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        container_id: str,
        memory_limit_bytes: int,
        pids_limit: int,
        *,
        local: bool | None = None,
        reset_peaks: bool = True,
    ) -> None:
        try:
            info = client.api.inspect_container(container_id)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
            raise SandboxError(
                f"Cannot inspect the sandbox container {container_id}: {err}"
            ) from err
        self._id: str = info["Id"]
        self._memory_limit = int(memory_limit_bytes or 0)
        self._pids_limit = int(pids_limit or 0)
        self._cpu_quota = _cpu_quota(info.get("HostConfig") or {})
        self._lock = threading.Lock()
        self._closed = False
        self._cgroup: CgroupCounters | None = None
        self._stats: _StatsCounters | None = None
        if local is not False:
            reason = self._open_local(client, info, reset_peaks)
            if reason and local:
                raise SandboxError(f"Cannot read the sandbox's cgroup files: {reason}.")
            if reason:
                log.info("usage via the Docker stats API: %s", reason)
        self.source: str
        self._sampler: _Sampler
        if self._cgroup is not None:
            self.source = self._cgroup.source
            self._sampler = _Sampler(
                self._probe_local,
                LOCAL_PIDS_SAMPLE_INTERVAL
                if self._cgroup.peak_resettable
                else LOCAL_SAMPLE_INTERVAL,
                0.0,
                f"usage-sampler-{self._id[:12]}",
                sleep=True,
            )
        else:
            self._stats = _StatsCounters(client, self._id)
            self.source = _StatsCounters.source
            self._sampler = _Sampler(
                self._probe_stats,
                STATS_SAMPLE_INTERVAL,
                STATS_SAMPLE_INTERVAL,
                f"usage-sampler-{self._id[:12]}",
                idle_refresh=STATS_IDLE_REFRESH,
            )
        self._begin: Reading | None = None
        self._baseline: Future[Reading] | None = None
        self._started = 0.0
        self._started_monotonic = 0.0
        self._previous_snapshot: Reading | None = None
        self._pending: Future[Reading] | None = None
        self._last_end_cpu_ns: int | None = None  # for the CPU used between cells
        if self._cgroup is not None:
            with contextlib.suppress(OSError):
                self._previous_snapshot = self._cgroup.read()
        else:
            # A first reading in the background: the first cell's baseline and the
            # first snapshot's reference point, without blocking the caller.
            self._pending = self._fetch()

    def _open_local(
        self, client: docker.DockerClient, info: Mapping[str, Any], reset_peaks: bool
    ) -> str:
        """Open the cgroup files; returns why not, or ``""`` on success."""
        base_url = str(getattr(client.api, "base_url", ""))
        # docker-py names every unix-socket engine http+docker://localhost.
        if base_url != "http+docker://localhost":
            return f"the engine is not on a local unix socket ({base_url})"
        pid = int((info.get("State") or {}).get("Pid") or 0)
        if pid <= 0 or not os.path.exists(f"/proc/{pid}"):
            return f"the container's process {pid} is not visible here"
        try:
            self._cgroup = CgroupCounters.for_process(pid, self._id, reset_peaks=reset_peaks)
        except (OSError, ValueError) as err:
            return str(err)
        return ""

    @property
    def is_local(self) -> bool:
        """True when the meter reads cgroup files, False when it uses the stats API."""
        return self._cgroup is not None

    @property
    def peak_resettable(self) -> bool:
        """True when each cell's memory peak comes from a kernel counter reset at its start."""
        return self._cgroup is not None and self._cgroup.peak_resettable

    def _probe_local(self) -> tuple[int, int, Reading | None]:
        assert self._cgroup is not None
        memory, pids = self._cgroup.sample()
        return memory, pids, None

    def _probe_stats(self) -> tuple[int, int, Reading | None]:
        assert self._stats is not None
        reading = self._stats.read()
        return reading.memory_usage, reading.pids, reading

    def _read(self) -> Reading:
        try:
            if self._cgroup is not None:
                return self._cgroup.read()
            assert self._stats is not None
            return self._stats.read()
        except (OSError, ValueError) as err:
            raise SandboxError(f"The sandbox's usage counters are gone: {err}") from err

    def _recent_stats(self, max_age: float) -> Reading | None:
        reading = self._sampler.last_reading
        if reading is not None and time.monotonic() - reading.at < max_age:
            return reading
        return None

    def begin_cell(self) -> None:
        """Mark a cell's start: note the time, reset the peaks, start the sampler.

        Never blocks on the engine. On the API path the baseline is the latest
        measurement (kept recent between cells), else one asked for now on a thread.

        Raises:
            SandboxError: the meter is closed or the counters can no longer be read.
        """
        with self._lock:
            if self._closed:
                raise SandboxError("The usage meter is closed.")
            self._started = time.perf_counter()
            self._started_monotonic = time.monotonic()
            if self._cgroup is not None:
                try:
                    self._cgroup.reset_peak()
                except OSError as err:
                    raise SandboxError(f"The sandbox's usage counters are gone: {err}") from err
                self._begin = self._read()
            else:
                self._begin = self._recent_stats(STATS_BASELINE_MAX_AGE)
                if self._begin is None:
                    pending = self._pending
                    # The first reading may still be on its way: it is as good a baseline.
                    self._baseline = pending if pending and not pending.done() else self._fetch()
                self._pending = None
            self._sampler.start_cell()

    def _fetch(self) -> Future[Reading]:
        """Read the stats on a thread; the reading also becomes the latest measurement."""
        future: Future[Reading] = Future()

        def fetch() -> None:
            try:
                reading = self._read()
            except BaseException as err:
                future.set_exception(err)
                return
            if self._previous_snapshot is None:
                self._previous_snapshot = reading
            self._sampler.note(reading)
            future.set_result(reading)

        threading.Thread(target=fetch, name=f"usage-fetch-{self._id[:12]}", daemon=True).start()
        return future

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
            begin, self._begin = self._begin, None
            if self._cgroup is not None:
                memory_max, pids_max = self._sampler.stop_cell()
                if begin is None:
                    raise SandboxError("end_cell() without begin_cell().")
                end = self._read()
            else:
                self._sampler.stop_cell()
                end = self._read()
                memory_max, pids_max = self._sampler.wait_idle(_STATS_JOIN_TIMEOUT)
                self._sampler.note(end)
                if begin is None:
                    begin = self._collect_baseline()
                    if begin.at > self._started_monotonic + _STATS_LATE_BASELINE:
                        # Another stats client keeps the engine's collector busy: the
                        # reading asked for at the start may be from the middle.
                        raise SandboxError(
                            "The Docker engine answered too late to measure this cell."
                        )
            usage = cell_usage(
                begin,
                end,
                wall,
                source=self.source,
                peak_reset=self.peak_resettable,
                sampled_memory=memory_max,
                sampled_pids=pids_max,
                memory_limit_bytes=self._memory_limit,
                pids_limit=self._pids_limit,
            )
            if self._last_end_cpu_ns is not None:
                usage.background_cpu_s = max(begin.cpu_ns - self._last_end_cpu_ns, 0) / 1e9
            self._last_end_cpu_ns = end.cpu_ns
            return usage

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
        reading = None if self._cgroup is not None else self._recent_stats(1.0)
        if reading is None:
            reading = self._read()
            if self._stats is not None:
                self._sampler.note(reading)
        previous, self._previous_snapshot = self._previous_snapshot, reading
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
                "pids": reading.pids,
                "pids_limit": reading.pids_limit or self._pids_limit,
                "net_rx_bytes": reading.net_rx,
                "net_tx_bytes": reading.net_tx,
                "oom_kills": reading.oom_kills,
                "cpu_throttled_periods": reading.nr_throttled,
            },
        }

    def close(self) -> None:
        """Stop the threads and close the files. Idempotent; never raises."""
        with contextlib.suppress(Exception):
            self._closed = True
            self._sampler.close()
        with contextlib.suppress(Exception):
            if self._cgroup is not None:
                # The sampler may be mid-read: let it finish before the fds go.
                self._sampler.wait_idle(1.0)
                self._cgroup.close()
        with contextlib.suppress(Exception):
            if self._stats is not None:
                self._stats.close()

    def __enter__(self) -> UsageMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the session view ---------------------------------------------------------------------


@dataclass
class _CellRecord:
    execution_count: int | None
    code: str
    usage: CellUsage


def _code_label(code: str, width: int = 48) -> str:
    """The first non-blank line of a cell, shortened."""
    line = next((ln.strip() for ln in code.splitlines() if ln.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


@dataclass
class SessionUsage:
    """Every measured cell of a kernel session, for ``%sandbox usage``."""

    records: list[_CellRecord] = field(default_factory=list)

    def add(self, execution_count: int | None, code: str, usage: CellUsage) -> None:
        """Record one cell's usage (the code is kept as a one-line label only)."""
        self.records.append(_CellRecord(execution_count, _code_label(code), usage))

    def totals(self) -> dict[str, Any]:
        """Sums and maxima over the session's cells."""
        usages = [r.usage for r in self.records]
        return {
            "cells": len(usages),
            "wall_time_s": round(sum(u.wall_time_s for u in usages), 6),
            "cpu_time_s": round(sum(u.cpu_time_s for u in usages), 6),
            "background_cpu_s": round(sum(u.background_cpu_s for u in usages), 6),
            "peak_memory_bytes": max((u.peak_memory_bytes for u in usages), default=0),
            "memory_limit_bytes": usages[-1].memory_limit_bytes if usages else 0,
            "pids_peak": max((u.pids_peak for u in usages), default=0),
            "net_rx_bytes": sum(u.net_rx_bytes for u in usages),
            "net_tx_bytes": sum(u.net_tx_bytes for u in usages),
            "throttled_cells": sum(u.cpu_throttled for u in usages),
            "oom_cells": sum(u.oom_killed for u in usages),
        }

    def _top(self, key: Callable[[_CellRecord], float], top: int) -> list[_CellRecord]:
        return sorted(self.records, key=key, reverse=True)[: max(top, 0)]

    def report_bundle(self, top: int = 5) -> dict[str, Any]:
        """Totals and the ``top`` cells by wall time and by memory peak, as a mime bundle.

        Returns:
            ``{"text/plain": table, "text/html": table, REPORT_MIME_TYPE: json}``.
        """
        totals = self.totals()
        by_time = self._top(lambda r: r.usage.wall_time_s, top)
        by_memory = self._top(lambda r: r.usage.peak_memory_bytes, top)

        def entry(record: _CellRecord) -> dict[str, Any]:
            return {
                "execution_count": record.execution_count,
                "code": record.code,
                "usage": record.usage.to_json(),
            }

        data = {
            "totals": totals,
            "top_by_time": [entry(r) for r in by_time],
            "top_by_memory": [entry(r) for r in by_memory],
        }
        return {
            "text/plain": self._text(totals, by_time, by_memory),
            "text/html": self._html(totals, by_time, by_memory),
            REPORT_MIME_TYPE: data,
        }

    @staticmethod
    def _summary(totals: Mapping[str, Any]) -> str:
        if not totals["cells"]:
            return "Sandbox usage: no cells measured yet."
        peak = format_size(totals["peak_memory_bytes"])
        if totals["memory_limit_bytes"]:
            peak += f" of {format_size(totals['memory_limit_bytes'])}"
        parts = [
            f"{totals['cells']} cell{'' if totals['cells'] == 1 else 's'}",
            f"{format_seconds(totals['wall_time_s'])} wall",
            f"{format_seconds(totals['cpu_time_s'])} CPU",
            f"peak {peak}",
            f"net ↓{format_size(totals['net_rx_bytes'])} ↑{format_size(totals['net_tx_bytes'])}",
        ]
        if totals.get("background_cpu_s", 0) >= BACKGROUND_MIN_S:
            parts.append(f"{format_seconds(totals['background_cpu_s'])} CPU in the background")
        if totals["throttled_cells"]:
            parts.append(f"{totals['throttled_cells']} throttled")
        if totals["oom_cells"]:
            parts.append(f"{totals['oom_cells']} out of memory")
        return "Sandbox usage: " + " · ".join(parts)

    @staticmethod
    def _row(record: _CellRecord) -> list[str]:
        usage = record.usage
        count = "[ ]" if record.execution_count is None else f"[{record.execution_count}]"
        return [
            count,
            format_seconds(usage.wall_time_s),
            format_seconds(usage.cpu_time_s),
            ("" if usage.peak_exact else "~") + format_size(usage.peak_memory_bytes),
            record.code,
        ]

    _HEADERS = ("cell", "wall", "CPU", "peak", "code")

    def _text(
        self, totals: Mapping[str, Any], by_time: list[_CellRecord], by_memory: list[_CellRecord]
    ) -> str:
        lines = [self._summary(totals)]
        for title, records in (("Slowest cells", by_time), ("Largest memory peaks", by_memory)):
            if not records:
                continue
            rows = [list(self._HEADERS)] + [self._row(r) for r in records]
            widths = [max(len(row[i]) for row in rows) for i in range(len(self._HEADERS) - 1)]
            lines += ["", f"{title}:"]
            for row in rows:
                cells = [
                    row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(4)
                ]
                lines.append("  " + "  ".join(cells) + "  " + row[4])
        return "\n".join(lines)

    def _html(
        self, totals: Mapping[str, Any], by_time: list[_CellRecord], by_memory: list[_CellRecord]
    ) -> str:
        cell_style = "padding: 1px 8px; text-align: right; border: none"
        parts = [
            '<div class="sandbox-kernel-usage-report" style="font-family: '
            "var(--jp-ui-font-family, sans-serif); font-size: var(--jp-ui-font-size1, 13px); "
            'color: var(--jp-ui-font-color1, inherit)">',
            f"<div><b>{html.escape(self._summary(totals))}</b></div>",
        ]
        for title, records in (("Slowest cells", by_time), ("Largest memory peaks", by_memory)):
            if not records:
                continue
            parts.append(
                f'<div style="margin-top: 6px; color: var(--jp-ui-font-color2, #757575)">{title}</div>'
                '<table style="border-collapse: collapse; margin: 0">'
                "<tr>"
                + "".join(f'<th style="{cell_style}">{h}</th>' for h in self._HEADERS)
                + "</tr>"
            )
            for record in records:
                row = self._row(record)
                colour = (
                    ' style="color: var(--jp-warn-color0, #f57c00)"'
                    if record.usage.warnings
                    else ""
                )
                parts.append(
                    f"<tr{colour}>"
                    + "".join(f'<td style="{cell_style}">{html.escape(v)}</td>' for v in row[:4])
                    + f'<td style="{cell_style}; text-align: left"><code>{html.escape(row[4])}</code></td>'
                    + "</tr>"
                )
            parts.append("</table>")
        parts.append("</div>")
        return "".join(parts)
