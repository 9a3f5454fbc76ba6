"""The local source: a container's cgroup files (v1 or v2), found from its main process.

Used when the engine is on this machine: the files are opened once and re-read with
``pread``, a dozen reads per cell.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Mapping

from .model import Reading, limit_value

_CPU_COUNT = os.cpu_count() or 0  # os.cpu_count() reads sysfs each time: ask once
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


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
            memory_limit=limit_value(self._mem_limit.int()),
            memory_hwm=self._peak.int() if self._peak is not None else None,
            pids=self._pids.int(),
            pids_hwm=self._pids_peak.int() if self._pids_peak is not None else None,
            pids_limit=limit_value(self._pids_max.int()) if self._pids_max is not None else 0,
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
