"""Which usage numbers are exact and which sampled, per source: the one table.

The README's copy and the package docstring's are this table (tests keep them equal).
"""

from __future__ import annotations

#: Which numbers are exact and which sampled, per source: (number, v1, v2, stats API,
#: and what changes under gVisor whatever the source).
MEASUREMENTS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "wall time",
        "exact: monotonic clock around the cell",
        "exact: monotonic clock around the cell",
        "exact: monotonic clock around the cell",
        "exact",
    ),
    (
        "CPU time",
        "exact: cpuacct.usage delta",
        "exact: cpu.stat usage_usec delta",
        "exact counter; the window may start up to 30 s before the cell",
        "exact on the host: the sandbox's processes and gVisor's kernel working for them",
    ),
    (
        "peak memory",
        "exact: memory.max_usage_in_bytes reset at cell start (needs write access); else HWM or sampled",
        "exact: memory.peak reset per fd (kernel >= 6.12, write access); else HWM or sampled",
        "HWM of max_usage (v1 engines), else sampled every 2 s after the first 2 s",
        "approximate (~): gVisor's kernel (about 20 MiB) is in it, and memory freed in the sandbox returns to the host late, so a later cell's peak may still count it",
    ),
    (
        "memory at end",
        "exact: usage_in_bytes - total_inactive_file",
        "exact: memory.current - inactive_file",
        "exact: usage - inactive file, as `docker stats`",
        "as the source measures it, gVisor's kernel included",
    ),
    (
        "memory limit",
        "exact: memory.limit_in_bytes",
        "exact: memory.max",
        "exact: memory_stats.limit",
        "exact",
    ),
    (
        "pids now",
        "exact: pids.current",
        "exact: pids.current",
        "exact: pids_stats.current",
        "not shown: the cgroup counts gVisor's threads (about 60 idle), not the sandbox's processes",
    ),
    (
        "pids peak",
        "HWM of pids.peak, else sampled",
        "HWM of pids.peak, else sampled",
        "sampled",
        "not shown (as pids now)",
    ),
    (
        "net in / out",
        "exact: /proc/<pid>/net/dev delta, all interfaces but lo",
        "exact: /proc/<pid>/net/dev delta, all interfaces but lo",
        "exact: networks delta (no lo)",
        "exact (0: runsc runs with --network=none)",
    ),
    (
        "tmp bytes",
        "exact: total_shmem delta (tmpfs, /dev/shm, shared memory)",
        "exact: shmem delta (tmpfs, /dev/shm, shared memory)",
        "exact: shmem delta on v2 engines; none on v1 engines",
        "not shown: gVisor keeps all of the sandbox's memory in one shared memory file, so shmem is not the tmpfs",
    ),
    (
        "CPU throttled",
        "exact: cpu.stat nr_throttled delta",
        "exact: cpu.stat nr_throttled delta",
        "exact: throttled_periods delta",
        "exact",
    ),
    (
        "OOM killed",
        "exact: memory.oom_control oom_kill delta",
        "exact: memory.events oom_kill delta",
        'the engine\'s "oom" events (asynchronous: best effort)',
        "the host's OOM killer ends gVisor's kernel, so the whole sandbox: the cell's error says so; no usage line",
    ),
)


def measurements_table() -> str:
    """:data:`MEASUREMENTS` as a Markdown table, for the README and the docstring."""
    lines = [
        "| Number | cgroup v1 (local) | cgroup v2 (local) | Docker stats API | under gVisor (runsc) |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in MEASUREMENTS]
    return "\n".join(lines)
