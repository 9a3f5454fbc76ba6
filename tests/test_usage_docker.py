"""The usage meter against real containers on the real engine: no mocks.

Each test starts a container like the sandbox's (512 MiB without swap, no network,
64 pids, a tmpfs at /tmp) that idles, and runs each "cell" as a ``docker exec`` of a
Python snippet between ``begin_cell`` and ``end_cell``. The same checks run on the
cgroup path (``local``), on the cgroup path with the peak reset turned off so that
the sampler must find the peak (``sampler``), and on the Docker stats API path
(``stats``), where the numbers are coarser and asserted loosely.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors
import pytest

from sandbox_kernel.errors import SandboxError
from sandbox_kernel.usage import CellUsage, CgroupCounters, UsageMeter

from harness import GVISOR, RUNTIME

pytestmark = pytest.mark.docker

MiB = 2**20
KINDS = ("local", "sampler", "stats")
IDLE = "import time\nwhile True: time.sleep(3600)"
# One second of CPU whatever else the host runs (a wall-clock loop gets less when busy).
BUSY_1S = "import time\nwhile time.process_time() < 1.0: pass"
#: The least host CPU that BUSY_1S shows. Under gVisor the sandbox's own clock (its
#: Sentry's accounting, which counts the ptrace platform's switches) runs ahead of what
#: the host charges: a second inside read 0.45-0.8 s on the host here (the less, the
#: busier the host), and the host's figure is what the machine spent, so it is the one
#: the usage line shows.
CPU_1S_LOW = 0.3 if GVISOR else 0.8


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    client = docker.from_env()
    client.ping()
    return client


@pytest.fixture(scope="module")
def image(client: docker.DockerClient) -> str:
    """The sandbox image: the release one when built, else the development one."""
    for name in ("sandbox-kernel:latest", "sandbox-kernel-dev:latest"):
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.get(name)
            return name
    pytest.fail("neither sandbox-kernel:latest nor sandbox-kernel-dev:latest is built")


Start = Callable[..., Any]


@pytest.fixture
def start(client: docker.DockerClient, image: str) -> Iterator[Start]:
    """Start sandbox-like containers; all are removed after the test."""
    started: list[Any] = []

    def run(**options: Any) -> Any:
        settings: dict[str, Any] = {
            "mem_limit": "512m",
            "memswap_limit": "512m",
            "network_mode": "none",
            "pids_limit": 64,
            "tmpfs": {"/tmp": "size=256m,mode=1777"},
            "labels": {"sandbox-kernel.test": "usage"},
            "name": f"sandbox-kernel-usage-test-{uuid.uuid4().hex[:8]}",
            "runtime": RUNTIME or None,
        }
        settings.update(options)
        container = client.containers.run(image, ["python3", "-c", IDLE], detach=True, **settings)
        started.append(container)
        return container

    yield run
    for container in started:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True, v=True)


def meter_for(client: docker.DockerClient, container: Any, kind: str) -> UsageMeter:
    if kind == "stats":
        meter = UsageMeter(client, container.id, 512 * MiB, 64, local=False, gvisor=GVISOR)
        # As in a kernel, where the first cell comes well after the start: the meter has
        # its first reading in hand (a test that starts at once could race it).
        meter.snapshot()
        return meter
    return UsageMeter(
        client, container.id, 512 * MiB, 64, local=True, reset_peaks=kind == "local", gvisor=GVISOR
    )


def execute(client: docker.DockerClient, container: Any, code: str) -> int:
    exec_id = client.api.exec_create(container.id, ["python3", "-c", code])["Id"]
    client.api.exec_start(exec_id)
    return int(client.api.exec_inspect(exec_id)["ExitCode"])


def cell(
    client: docker.DockerClient, container: Any, meter: UsageMeter, code: str
) -> tuple[CellUsage, int]:
    meter.begin_cell()
    code_rc = execute(client, container, code)
    return meter.end_cell(), code_rc


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- detection -----------------------------------------------------------------------------


def test_auto_detects_the_local_engine(client: docker.DockerClient, start: Start) -> None:
    container = start()
    with UsageMeter(client, container.id, 512 * MiB, 64) as meter:
        assert meter.is_local
        host_v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
        assert meter.source == ("cgroup-v2" if host_v2 else "cgroup-v1")
        if os.geteuid() == 0 and not host_v2:
            assert meter.peak_resettable  # root may reset v1's max_usage_in_bytes


def test_container_name_is_accepted_and_unknown_one_is_an_error(
    client: docker.DockerClient, start: Start
) -> None:
    container = start()
    with UsageMeter(client, container.name, 512 * MiB, 64) as meter:
        assert meter.is_local
    with pytest.raises(SandboxError, match="Cannot inspect"):
        UsageMeter(client, "no-such-sandbox-container", 512 * MiB, 64)


class TcpToUnix:
    """A TCP port that forwards to the engine's unix socket: a "remote" engine."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                outer, _ = self.server.accept()
                inner = socket.socket(socket.AF_UNIX)
                inner.connect(self.socket_path)
                self.conns += [outer, inner]
                for a, b in ((outer, inner), (inner, outer)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for sock in [self.server, *self.conns]:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def tcp_client() -> Iterator[docker.DockerClient]:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip("the engine is not on a unix socket")
    proxy = TcpToUnix(host[len("unix://") :])
    client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{proxy.port}")
    yield client
    client.close()
    proxy.close()


def test_an_engine_over_tcp_is_measured_through_the_api(
    tcp_client: docker.DockerClient, client: docker.DockerClient, start: Start
) -> None:
    container = start()
    with pytest.raises(SandboxError, match="not on a local unix socket"):
        UsageMeter(tcp_client, container.id, 512 * MiB, 64, local=True)
    with UsageMeter(tcp_client, container.id, 512 * MiB, 64) as meter:
        assert not meter.is_local and meter.source == "docker-stats"
        meter.snapshot()  # the first reading in hand, as in meter_for
        usage, _ = cell(client, container, meter, BUSY_1S)
        assert CPU_1S_LOW <= usage.cpu_time_s <= 1.3
        assert usage.memory_limit_bytes == 512 * MiB


def test_cgroup_files_unreadable_to_a_normal_user_are_detected(
    client: docker.DockerClient, start: Start
) -> None:
    """As an unprivileged uid (like a docker-group user), the peak cannot be reset."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to an unprivileged uid")
    container = start()
    pid = client.api.inspect_container(container.id)["State"]["Pid"]
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            counters = CgroupCounters.for_process(pid, container.id)
            reading = counters.read()
            ok = not counters.peak_resettable and reading.memory_limit == 512 * MiB
            os.write(write_fd, b"ok" if ok else repr((counters.peak_resettable, reading)).encode())
            code = 0
        except BaseException as err:
            os.write(write_fd, repr(err).encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    _, status = os.waitpid(child, 0)
    message = os.read(read_fd, 65536).decode()
    os.close(read_fd)
    assert message == "ok" and os.waitstatus_to_exitcode(status) == 0


# -- the numbers -------------------------------------------------------------------------------


def test_sleep_is_wall_time_not_cpu(client: docker.DockerClient, start: Start, kind: str) -> None:
    container = start()
    with meter_for(client, container, kind) as meter:
        usage, rc = cell(client, container, meter, "import time; time.sleep(1)")
    assert rc == 0
    assert 0.95 <= usage.wall_time_s <= 2.0
    assert usage.cpu_time_s < 0.3
    assert usage.source == ("docker-stats" if kind == "stats" else meter.source)


def test_busy_loop_is_cpu_time(client: docker.DockerClient, start: Start, kind: str) -> None:
    container = start()
    with meter_for(client, container, kind) as meter:
        usage, _ = cell(client, container, meter, BUSY_1S)
    assert CPU_1S_LOW <= usage.cpu_time_s <= 1.3
    assert usage.wall_time_s >= 1.0
    assert not usage.cpu_throttled  # no CPU quota on this container


def test_peak_is_per_cell(client: docker.DockerClient, start: Start, kind: str) -> None:
    container = start()
    hold = "import time\nb = bytearray(300 * 2**20)\ntime.sleep(0.3 if {sampled} else 0)"
    with meter_for(client, container, kind) as meter:
        if kind == "sampler":
            # Raise the all-time mark first, so the next peak can only come from samples.
            cell(client, container, meter, "b = bytearray(420 * 2**20)")
        big, rc = cell(client, container, meter, hold.format(sampled=kind == "sampler"))
        small, _ = cell(client, container, meter, "pass")
    assert rc == 0
    assert 300 * MiB <= big.peak_memory_bytes <= 480 * MiB, big
    assert big.memory_limit_bytes == 512 * MiB
    assert small.memory_bytes < 100 * MiB  # the 300 MiB went with the process
    if GVISOR:
        # gVisor hands freed memory back to the host late: the next cell's peak still
        # counts it, which is why the line marks gVisor's peaks approximate ("~").
        assert not big.peak_exact and not small.peak_exact and "peak ~" in big.text()
        return
    assert small.peak_memory_bytes < 200 * MiB, small
    if kind == "local":
        assert big.peak_exact and small.peak_exact
    if kind == "sampler":
        assert not big.peak_exact and not small.peak_exact
    if kind == "stats":
        assert not small.peak_exact


def test_limit_is_the_enforced_one(client: docker.DockerClient, start: Start, kind: str) -> None:
    # gVisor's own threads (about 60) count against the pids limit: 40 would not start.
    pids = 100 if GVISOR else 40
    container = start(mem_limit="384m", memswap_limit="384m", pids_limit=pids)
    with meter_for(client, container, kind) as meter:  # told 512 MiB / 64 pids
        usage, _ = cell(client, container, meter, "pass")
    assert usage.memory_limit_bytes == 384 * MiB
    assert usage.pids_limit == pids


LOOPBACK_TRAFFIC = (
    "import socket\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "for _ in range(200): s.sendto(b'x' * 1000, ('127.0.0.1', 9))\n"
)


def test_no_network_counts_zero_even_with_loopback_traffic(
    client: docker.DockerClient, start: Start, kind: str
) -> None:
    container = start()
    with meter_for(client, container, kind) as meter:
        usage, rc = cell(client, container, meter, LOOPBACK_TRAFFIC)
    assert rc == 0
    assert (usage.net_rx_bytes, usage.net_tx_bytes) == (0, 0)
    assert "net 0 B" in usage.text()


@pytest.mark.parametrize("kind", ["local", "stats"])
@pytest.mark.skipif(GVISOR, reason="runsc runs with --network=none: no traffic to count")
def test_network_traffic_is_counted(client: docker.DockerClient, start: Start, kind: str) -> None:
    container = start(network_mode="bridge")
    gateway = client.api.inspect_container(container.id)["NetworkSettings"]["Gateway"]
    code = (
        "import socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"for _ in range(200): s.sendto(b'x' * 1000, ('{gateway}', 9))\n"
    )
    with meter_for(client, container, kind) as meter:
        usage, rc = cell(client, container, meter, code)
    assert rc == 0
    assert 200_000 <= usage.net_tx_bytes <= 400_000


@pytest.mark.skipif(
    GVISOR,
    reason="under gVisor no process of the sandbox is the host OOM killer's: gVisor's kernel "
    "(the whole container) is, or gVisor ends the process itself first; the meter sees "
    "neither per process, and a `docker exec` into the ended container never returns. "
    "tests/test_usage_kernel.py checks that the notebook is told under both runtimes",
)
def test_oom_kill_is_reported(client: docker.DockerClient, start: Start, kind: str) -> None:
    container = start()
    with meter_for(client, container, kind) as meter:
        died, rc = cell(client, container, meter, "b = bytearray(700 * 2**20)")
        after, _ = cell(client, container, meter, "pass")
    assert rc == 137  # SIGKILL from the OOM killer
    assert died.oom_killed and "oom" in died.warnings
    assert not after.oom_killed
    if kind != "stats":  # the API path samples too rarely to see the short climb
        assert died.peak_memory_bytes >= 0.9 * 512 * MiB


@pytest.mark.parametrize("kind", ["local", "sampler"])
def test_tmpfs_writes_are_tmp_bytes(client: docker.DockerClient, start: Start, kind: str) -> None:
    container = start()
    with meter_for(client, container, kind) as meter:
        wrote, _ = cell(client, container, meter, "open('/tmp/f', 'wb').write(b'x' * (20 * 2**20))")
        removed, _ = cell(client, container, meter, "import os; os.remove('/tmp/f')")
    if GVISOR:
        # gVisor keeps all of the sandbox's memory, /tmp included, in one shared memory
        # file: the tmpfs's share cannot be told apart, so it is not shown.
        assert wrote.tmp_bytes is None and "tmp" not in wrote.text()
        return
    assert wrote.tmp_bytes is not None and removed.tmp_bytes is not None
    assert 20 * MiB <= wrote.tmp_bytes <= 22 * MiB
    assert -22 * MiB <= removed.tmp_bytes <= -20 * MiB
    assert "tmp +" in wrote.text()


def test_threads_show_in_the_pids_peak(
    client: docker.DockerClient, start: Start, kind: str
) -> None:
    container = start()
    # The API path samples from 2 s into a cell, and a busy collector answers up to a
    # second later: there the threads must outlive that.
    seconds = 4.0 if kind == "stats" else 1.0
    code = (
        "import threading, time\n"
        f"ts = [threading.Thread(target=time.sleep, args=({seconds},)) for _ in range(55)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
    )
    with meter_for(client, container, kind) as meter:
        usage, rc = cell(client, container, meter, code)
    assert rc == 0
    if GVISOR:
        # The cgroup counts gVisor's own threads, not the sandbox's: no pids are shown.
        assert usage.pids is None and usage.pids_peak is None and "pids" not in usage.text()
        return
    assert usage.pids_peak is not None and usage.pids is not None
    assert 56 <= usage.pids_peak <= 64  # 55 threads + the main thread (+ the idler)
    assert usage.pids < 5
    assert "pids" in usage.warnings and "(peak " in usage.text()


def test_cpu_quota_throttles(client: docker.DockerClient, start: Start, kind: str) -> None:
    container = start(nano_cpus=500_000_000)
    with meter_for(client, container, kind) as meter:
        usage, _ = cell(client, container, meter, BUSY_1S)
        snapshot = meter.snapshot()
    assert usage.cpu_throttled and "CPU throttled" in usage.text()
    assert CPU_1S_LOW <= usage.cpu_time_s <= 1.3
    # At half a CPU the wall time is about twice the CPU time (1 s of CPU: >= 1.6 s).
    assert usage.wall_time_s >= 1.6 * usage.cpu_time_s
    assert snapshot["cpu_count"] == 1


def test_snapshot_is_a_usage_reply(client: docker.DockerClient, start: Start, kind: str) -> None:
    container = start()
    with meter_for(client, container, kind) as meter:
        meter.snapshot()
        started = time.monotonic()
        execute(client, container, BUSY_1S)
        elapsed = time.monotonic() - started
        if kind == "stats":
            time.sleep(1.1)  # a measurement less than a second old would be reused
            elapsed += 1.1
        reply = meter.snapshot()
    assert reply["cpu_count"] == math.ceil(os.cpu_count() or 1)  # no quota: every CPU
    # BUSY_1S is at least CPU_1S_LOW of host CPU (less under gVisor: see there).
    low = 0.7 * CPU_1S_LOW / 0.8
    assert 100 / elapsed * low <= reply["kernel_cpu"] <= 100 / elapsed * 1.4
    memory = reply["host_virtual_memory"]
    assert memory["total"] == 512 * MiB
    assert memory["used"] == reply["kernel_memory"] and 0 < memory["used"] < 100 * MiB
    assert memory["available"] == memory["total"] - memory["used"]
    assert 0 < memory["percent"] < 20
    assert reply["sandbox"]["source"] == meter.source
    assert reply["sandbox"]["pids_limit"] == 64


def test_close_is_idempotent_and_ends_measuring(
    client: docker.DockerClient, start: Start, kind: str
) -> None:
    container = start()
    meter = meter_for(client, container, kind)
    meter.close()
    meter.close()
    with pytest.raises(SandboxError, match="closed"):
        meter.begin_cell()
    with pytest.raises(SandboxError, match="closed"):
        meter.end_cell()


def test_end_without_begin_is_an_error(
    client: docker.DockerClient, start: Start, kind: str
) -> None:
    container = start()
    with (
        meter_for(client, container, kind) as meter,
        pytest.raises(SandboxError, match="begin_cell"),
    ):
        meter.end_cell()


def test_a_removed_container_is_an_error_not_a_crash(
    client: docker.DockerClient, start: Start, kind: str
) -> None:
    container = start()
    with meter_for(client, container, kind) as meter:
        meter.begin_cell()
        container.remove(force=True, v=True)
        with pytest.raises(SandboxError):
            meter.end_cell()


def test_stats_baseline_answered_during_the_cell_is_refused(
    client: docker.DockerClient, start: Start
) -> None:
    """A busy collector may answer the start's request after the cell ran: no wrong numbers."""
    container, other = start(), start()
    client.api.stats(other.id, stream=False, one_shot=True)  # the collector now rests ~1 s
    meter = UsageMeter(client, container.id, 512 * MiB, 64, local=False)
    try:
        meter.begin_cell()  # no reading in hand yet: the first one is still on its way
        execute(client, container, "import time\nwhile time.process_time() < 0.3: pass")
        try:
            usage = meter.end_cell()
        except SandboxError as err:
            assert "too late" in str(err)
        else:  # an engine that answered at once: then the numbers must be right
            assert usage.cpu_time_s >= 0.25
    finally:
        meter.close()


def test_local_begin_and_end_are_cheap(client: docker.DockerClient, start: Start) -> None:
    container = start()
    with meter_for(client, container, "local") as meter:
        costs = []
        for _ in range(100):
            started = time.perf_counter()
            meter.begin_cell()
            meter.end_cell()
            costs.append(time.perf_counter() - started)
    # The budget is 2 ms a cell; the local path should be a tenth of that.
    assert statistics.median(costs) < 0.001, statistics.median(costs)
