"""Sandbox kernel vs a plain local ipykernel, side by side in one run.

Measures, for each kernel, through jupyter_client as a frontend does:

* ready: from start_kernel to the first kernel_info reply (median of N starts, each
  6 s after the last, as between sessions); ready_cold: the same with no warm spare
  container to claim, as for the first kernel of the day (after one earlier start,
  untimed: the kernel's cached create request is there, as on every day but the
  first; see sandbox_kernel/coldcache.py);
* trivial cell round trip: execute_request to idle for ``1`` (p50, p90);
* 20 MB of printed output: a cell printing 20 MB, to idle; and the same as issue 12
  measured it, 20,000 ``sys.stdout.write`` lines of 1,000 bytes read by a minimal
  client (IOPub until idle), with the number of stream messages it took;
* restart: restart_kernel to ready;
* workload: a numpy/pandas cell (a 2,000-square matrix product, a rolling mean and a
  group-by over a million rows; median of 5), as a backtest does (the plain kernel
  needs numpy and pandas installed next to this script);
* memory: the kernel's footprint after the trivial cells. For the plain kernel its
  process's RSS; for the sandbox the outer kernel's RSS on the host plus the
  container's memory (the engine's figure without inactive page cache): the inner
  kernel and the relay.

Prints a table with the ratios sandbox/plain (the last run's, and their range over
all runs: timings on a small VM drift between runs) and writes
bench/results/kernel.json. With ``--runtime runsc`` a third kernel, the sandbox under
gVisor, runs in the same interleaving (its ratios are to the plain kernel too) and the
results go to bench/results/kernel-runsc.json. Usage: python bench/bench_kernel.py
[--starts 5] [--cells 200] [--runs 1] [--runtime runsc] [--class N]

``--class N`` measures a class instead (bench/results/class.json): N kernels started
at once (one thread each through jupyter_client, as a server does) in three waves,
each ``--runs`` times: plain; sandbox with no spare to start with (at most one is
claimed); sandbox after ``sandbox-kernel prestart N`` (run before the wave and not
timed in it: its own time is reported apart). For each: all ready, the start's CPU
per kernel (host process, container; the engine's daemons as an upper bound), a
trivial cell's p50 with the N up (idle, :data:`SETTLE_S` after the wave; and right
after it, while they settle), idle wake-ups and threads per kernel (host
processes, container processes, the engine's shim), memory per kernel with every
part counted (RSS and PSS), the spares claimed and those left after the N shut down.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from queue import Empty
from typing import Any

import docker
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sandbox_kernel.install import write_kernel_spec

RESULTS = Path(__file__).resolve().parent / "results"
# 20 MB printed, with nothing the validator refuses (plain print, no modules).
FLOOD = "line = 'x' * 999\nfor _ in range(20 * 1024):\n    print(line)"
#: 20 MB written line by line, as issue 12 measured it.
FLOOD_WRITE = (
    "import sys\nline = 'x' * 999 + '\\n'\nfor _ in range(20000):\n    sys.stdout.write(line)"
)
#: A backtest-like cell: BLAS, vectorised pandas and a group-by.
WORKLOAD = """
import numpy as np, pandas as pd
a = np.random.default_rng(0).standard_normal((2000, 2000))
(a @ a).sum()
prices = pd.Series(np.random.default_rng(1).standard_normal(1_000_000).cumsum())
signal = prices.rolling(50).mean() > prices.rolling(200).mean()
pd.DataFrame({"p": prices, "s": signal}).groupby("s")["p"].agg(["mean", "std"])
"""


def make_specs(root: Path, runtime: str = "") -> KernelSpecManager:
    kernels = root / "kernels"
    plain = kernels / "plain"
    plain.mkdir(parents=True)
    (plain / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "plain",
                "language": "python",
            }
        )
    )
    write_kernel_spec(kernels / "sandbox", settings={"warm_spare": True}, display_name="sandbox")
    if runtime:
        write_kernel_spec(
            kernels / runtime,
            settings={"warm_spare": True, "runtime": runtime},
            display_name=f"sandbox under {runtime}",
        )
    return KernelSpecManager(kernel_dirs=[str(kernels)])


def run_cell(kc: Any, code: str, timeout: float = 300) -> float:
    started = time.perf_counter()
    msg_id = kc.execute(code)
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if (
            msg["parent_header"].get("msg_id") == msg_id
            and msg["msg_type"] == "status"
            and msg["content"]["execution_state"] == "idle"
        ):
            return time.perf_counter() - started


def run_checked(kc: Any, code: str, timeout: float = 300) -> tuple[float, bool]:
    """:func:`run_cell`, also saying whether the cell raised."""
    started = time.perf_counter()
    msg_id = kc.execute(code)
    failed = False
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "error":
            failed = True
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return time.perf_counter() - started, failed


def run_streams(kc: Any, code: str, timeout: float = 300) -> tuple[float, int]:
    """:func:`run_cell`, also counting the cell's stream messages."""
    started = time.perf_counter()
    msg_id = kc.execute(code)
    streams = 0
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            streams += 1
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return time.perf_counter() - started, streams


#: Where every kernel starts, as Jupyter starts it in the notebook's folder: a folder of
#: its own, so the sandbox copies nothing (run from a checkout, the sandbox would copy
#: the whole repository the bench runs in; the folder copy has its own tests).
NOTEBOOK_FOLDER = tempfile.mkdtemp(prefix="sk-bench-notebook-")


def start(name: str, specs: KernelSpecManager) -> tuple[KernelManager, Any, float]:
    km = KernelManager(kernel_name=name, kernel_spec_manager=specs)
    started = time.perf_counter()
    km.start_kernel(cwd=NOTEBOOK_FOLDER)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    return km, kc, time.perf_counter() - started


def remove_spares() -> None:
    """Remove the bench sandbox's warm spares (a cold start claims none); only those of
    its configuration: other kernels on the engine (other users') keep theirs."""
    from sandbox_kernel import spec
    from sandbox_kernel.config import SandboxConfig

    engine = docker.from_env().api
    config = SandboxConfig(warm_spare=True)
    mine = spec.fingerprint(config, engine.inspect_image(config.image)["Id"])
    selector = [f"{spec.LABEL_ROLE}=spare", f"{spec.LABEL_FINGERPRINT}={mine}"]
    for container in engine.containers(filters={"label": selector}):
        with contextlib.suppress(docker.errors.APIError):
            engine.remove_container(container["Id"], force=True, v=True)


def footprint_mb(km: KernelManager, kc: Any) -> float:
    """The kernel's memory in MiB: its process on the host, plus its container if any."""
    pid = km.provisioner.process.pid  # type: ignore[union-attr]
    with open(f"/proc/{pid}/status") as status:
        rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    total = rss_kib / 1024
    msg_id = kc.kernel_info()
    reply = kc.get_shell_msg(timeout=30)
    while reply["parent_header"].get("msg_id") != msg_id:  # skip earlier cells' replies
        reply = kc.get_shell_msg(timeout=30)
    info = reply["content"]
    container = (info.get("sandbox") or {}).get("container")
    if container:
        stats = docker.from_env().api.stats(container, stream=False)["memory_stats"]
        cache = stats.get("stats", {}).get("total_inactive_file", 0) or stats.get("stats", {}).get(
            "inactive_file", 0
        )
        total += (stats["usage"] - cache) / 2**20
    return total


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cold_floor(km: KernelManager, kc: Any) -> dict[str, float]:
    """What a cold start cannot go below: the CPU the two kernels' starts took, and the
    engine's create + start of a container from the same image doing nothing.

    Read right after ready: the outer kernel process's CPU, and the container's whole
    CPU (cgroup v1 cpuacct: the relay and the inner kernel).
    """
    outer = _cpu_s(km.provisioner.process.pid)  # type: ignore[union-attr]
    msg_id = kc.kernel_info()
    reply = kc.get_shell_msg(timeout=30)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=30)
    container = reply["content"]["sandbox"]["container"]
    inner = float("nan")
    for root in ("/sys/fs/cgroup/cpuacct/docker", "/sys/fs/cgroup/system.slice"):
        for name in (container, f"docker-{container}.scope"):
            for leaf in ("cpuacct.usage", "cpu.stat"):
                path = Path(root) / name / leaf
                if path.exists():
                    text = path.read_text()
                    inner = (
                        int(text) / 1e9
                        if leaf == "cpuacct.usage"
                        else int(text.split()[1]) / 1e6  # usage_usec
                    )
    engine = docker.from_env().api
    image = engine.inspect_container(container)["Image"]
    started = time.perf_counter()
    trivial = engine.create_container(image, command=["true"], network_disabled=True)
    engine.start(trivial["Id"])
    engine_s = time.perf_counter() - started
    engine.remove_container(trivial["Id"], force=True, v=True)
    return {
        "outer_cpu_s": outer,
        "inner_cpu_s": inner,
        "engine_create_start_s": engine_s,
        "floor_s": outer + inner + engine_s,
    }


def drain_shell(kc: Any) -> None:
    """Drop the replies left on shell: wait_for_ready takes any kernel_info_reply, and
    one left by a start that took two requests would end the next wait at once."""
    with contextlib.suppress(Empty):
        while True:
            kc.shell_channel.get_msg(timeout=0.05)


def stop(km: KernelManager, kc: Any) -> None:
    kc.stop_channels()
    km.shutdown_kernel(now=False)


def measure(
    specs: KernelSpecManager, starts: int, cells: int, names: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """The kernels, interleaved step by step, so drift on the machine hits all alike."""
    cold: dict[str, float] = {}
    for name in names[1:]:
        stop(*start(name, specs)[:2])  # yesterday's start: its create request is cached
    remove_spares()  # the first start of the day: nothing to claim
    floor: dict[str, float] = {}
    for name in names:
        km, kc, cold[name] = start(name, specs)
        if name == "sandbox":
            floor = cold_floor(km, kc)
        stop(km, kc)
    time.sleep(6)  # as between real sessions; lets the sandbox's warm spare start
    ready: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(starts):
        for name in names:
            km, kc, took = start(name, specs)
            ready[name].append(took)
            stop(km, kc)
        time.sleep(6)

    # Restart right after a start, as someone who restarts at once does (the new
    # spare has not booted yet).
    soon: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(3):
        for name in names:
            km, kc, _took = start(name, specs)
            drain_shell(kc)
            started = time.perf_counter()
            km.restart_kernel(now=False)
            kc.wait_for_ready(timeout=120)
            soon[name].append(time.perf_counter() - started)
            stop(km, kc)
        time.sleep(6)

    kernels = {name: start(name, specs)[:2] for name in names}
    for _ in range(10):
        for _km, kc in kernels.values():
            run_cell(kc, "1")
    trips: dict[str, list[float]] = {n: [] for n in names}
    floods: dict[str, list[float]] = {n: [] for n in names}
    writes: dict[str, list[float]] = {n: [] for n in names}
    messages: dict[str, list[int]] = {n: [] for n in names}
    restarts: dict[str, list[float]] = {n: [] for n in names}
    workloads: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(cells):
        for name, (_km, kc) in kernels.items():
            trips[name].append(run_cell(kc, "1"))
    memory = {name: footprint_mb(km, kc) for name, (km, kc) in kernels.items()}
    for _ in range(5):
        for name, (_km, kc) in kernels.items():
            floods[name].append(run_cell(kc, FLOOD))
    for _ in range(5):
        for name, (_km, kc) in kernels.items():
            took, streams = run_streams(kc, FLOOD_WRITE)
            writes[name].append(took)
            messages[name].append(streams)
    for _ in range(5):
        for name, (_km, kc) in kernels.items():
            took, failed = run_checked(kc, WORKLOAD)
            # numpy and pandas may be missing beside a plain kernel (the host's venv):
            # a cell that failed fast is not a figure
            workloads[name].append(math.nan if failed else took)
    for _ in range(starts):
        time.sleep(6)
        for name, (km, kc) in kernels.items():
            started = time.perf_counter()
            km.restart_kernel(now=False)
            kc.wait_for_ready(timeout=120)
            restarts[name].append(time.perf_counter() - started)
    for km, kc in kernels.values():
        stop(km, kc)
    results = {}
    for name in names:
        trip = sorted(trips[name])
        results[name] = {
            "ready_s": statistics.median(ready[name]),
            "ready_cold_s": cold[name],
            "trivial_p50_ms": 1000 * trip[len(trip) // 2],
            "trivial_p90_ms": 1000 * trip[int(len(trip) * 0.9)],
            "output_20mb_s": statistics.median(floods[name]),
            "output_20mb_write_s": statistics.median(writes[name]),
            "output_20mb_messages": statistics.median(messages[name]),
            "restart_s": statistics.median(restarts[name]),
            "workload_s": (
                None
                if any(math.isnan(t) for t in workloads[name])
                else statistics.median(workloads[name])
            ),
            "restart_soon_s": statistics.median(soon[name]),
            "memory_mb": memory[name],
        }
    results["sandbox_floor"] = floor
    return results


TARGETS = {
    "ready_s": 1.3,
    "ready_cold_s": 1.5,
    "restart_soon_s": 1.0,
    "trivial_p50_ms": 1.25,
    "trivial_p90_ms": 1.25,
    "output_20mb_s": 1.2,
    "output_20mb_write_s": 1.2,
    "restart_s": 1.0,
}


def report(runs: list[dict[str, dict[str, Any]]], kernel: str = "sandbox") -> list[dict[str, Any]]:
    """One row per metric: the last run's figures and ``kernel``'s ratio in every run."""
    last = runs[-1]
    rows = []
    print(f"{'metric':<18}{'plain':>10}{kernel:>10}{'ratio':>8}{'all runs':>14}{'target':>8}")
    floors = [run["sandbox_floor"] for run in runs if run.get("sandbox_floor")]
    if floors:
        print(
            "cold-start floor (outer CPU + inner CPU + engine create/start): "
            + ", ".join(
                f"{f['outer_cpu_s']:.2f}+{f['inner_cpu_s']:.2f}+{f['engine_create_start_s']:.2f}"
                f"={f['floor_s']:.2f} s"
                for f in floors
            )
        )
    for key, value in last["plain"].items():
        if value is None or last[kernel].get(key) is None:
            print(f"{key:<18}{'n/a (the cell failed on one side)':>40}")
            continue
        ratios = [
            run[kernel][key] / run["plain"][key]
            for run in runs
            if run["plain"][key] and run[kernel].get(key) is not None
        ]
        target = TARGETS.get(key)
        met = sum(ratio <= target for ratio in ratios) if target else None
        rows.append(
            {
                "metric": key,
                "plain": value,
                kernel: last[kernel][key],
                "ratio": ratios[-1] if ratios else None,
                "ratios": ratios,
                "target": target,
                "runs_meeting_target": met,
            }
        )
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"
        print(
            f"{key:<18}{value:>10.3f}{last[kernel][key]:>10.3f}"
            f"{(ratios[-1] if ratios else float('nan')):>8.2f}{spread:>14}"
            f"{(f'{target:.2f}' if target else '-'):>8}"
        )
    return rows


def _proc_status(pid: int) -> dict[str, int]:
    """Summed over the process's threads: context switches; and its thread count."""
    out = {"switches": 0, "threads": 0}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        with contextlib.suppress(OSError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    out["switches"] += int(line.split()[1])
        out["threads"] += 1
    return out


def _memory_kib(pid: int) -> dict[str, int]:
    """RSS and PSS (shared pages split among their users) of one process, in KiB."""
    out = {"rss": 0, "pss": 0}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                out["rss"] = int(line.split()[1])
            elif line.startswith("Pss:"):
                out["pss"] = int(line.split()[1])
    return out


def _shim_pids() -> dict[str, int]:
    """The engine's per-container shim processes, by container id."""
    shims = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and b"-id" in argv:
                shims[argv[argv.index(b"-id") + 1].decode()] = int(proc.name)
    return shims


def _kernel_processes(km: KernelManager, kc: Any, shims: dict[str, int]) -> dict[str, list[Any]]:
    """Every process a kernel costs: on the host, in its container, the shim."""
    parts: dict[str, list[Any]] = {"host": [km.provisioner.process.pid]}  # type: ignore[union-attr]
    msg_id = kc.kernel_info()
    reply = kc.get_shell_msg(timeout=60)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=60)
    container = (reply["content"].get("sandbox") or {}).get("container")
    if container:
        top = docker.from_env().api.top(container, ps_args="-o pid")
        parts["container"] = [int(row[0]) for row in top.get("Processes") or []]
        parts["shim"] = [shims[container]] if container in shims else []
        parts["container_id"] = [container]
    return parts


def _start_at_once(
    name: str, specs: KernelSpecManager, count: int, retries: list[int] | None = None
) -> tuple[list[Any], float]:
    """``count`` kernels started together, one thread each; the time until all are ready.

    ``retries`` receives the index of each kernel started again after a failed start.
    """
    kernels: list[Any] = [None] * count
    retries = [] if retries is None else retries
    barrier = threading.Barrier(count + 1)

    def one(index: int) -> None:
        barrier.wait()
        for attempt in (1, 2):
            km = KernelManager(kernel_name=name, kernel_spec_manager=specs)
            km.start_kernel(cwd=NOTEBOOK_FOLDER)
            kc = km.client()
            kc.start_channels()
            try:
                kc.wait_for_ready(timeout=90)
                break
            except RuntimeError:
                # jupyter_client picks free ports, then the kernel binds them: with
                # twenty starting at once a port is sometimes taken in between (the
                # plain kernel too). Counted; the wave's time includes the retry.
                kc.stop_channels()
                km.shutdown_kernel(now=True)
                if attempt == 2:
                    raise
                retries.append(index)
        kernels[index] = (km, kc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return kernels, time.perf_counter() - started


def _unclaimed_spares(fingerprints: set[str]) -> int:
    """Unclaimed spares of the class's configuration (other runs on the engine aside)."""
    engine = docker.from_env().api
    found = engine.containers(filters={"label": "sandbox-kernel.role=spare"})
    return sum(
        1
        for c in found
        if any("-spare-" in n for n in c.get("Names", []))
        and (c.get("Labels") or {}).get("sandbox-kernel.fingerprint") in fingerprints
    )


def _cgroup_cpu_s(container: str) -> float:
    """A container's whole CPU so far (cgroup v1 cpuacct, or v2 cpu.stat), or NaN."""
    for root in ("/sys/fs/cgroup/cpuacct/docker", "/sys/fs/cgroup/system.slice"):
        for name in (container, f"docker-{container}.scope"):
            v1, v2 = Path(root) / name / "cpuacct.usage", Path(root) / name / "cpu.stat"
            if v1.exists():
                return int(v1.read_text()) / 1e9
            if v2.exists():
                return int(v2.read_text().split()[1]) / 1e6
    return float("nan")


def _engine_cpu_s() -> float:
    """CPU so far of the engine's daemons (dockerd, containerd): shared with anything
    else using the engine, so a wave's difference is an upper bound."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if (proc / "comm").read_text().strip() in ("dockerd", "containerd"):
                    total += _cpu_s(int(proc.name))
    return total


def _class_config(specs: KernelSpecManager) -> Any:
    from sandbox_kernel.cli import load_settings
    from sandbox_kernel.prestart import kernelspec_settings

    return load_settings(kernelspec_settings(specs.get_kernel_spec("sandbox").argv))


def _class_fingerprint(specs: KernelSpecManager) -> str:
    from sandbox_kernel import spec

    config = _class_config(specs)
    return spec.fingerprint(config, docker.from_env().images.get(config.image).id)


def _class_spares(specs: KernelSpecManager, *, remove: bool = False) -> int:
    """The unclaimed spares of the class's own configuration (a value of its own in the
    environment: other users of a shared engine keep theirs, and its kernels claim
    none of theirs); ``remove``: remove them (and any claimed one left)."""
    from sandbox_kernel.prestart import waiting
    from sandbox_kernel.session import connect, list_containers

    client = connect(_class_config(specs))
    fingerprint = _class_fingerprint(specs)
    if remove:
        for container in list_containers(client, role="spare", fingerprint=fingerprint):
            with contextlib.suppress(docker.errors.APIError):
                client.api.remove_container(container["Id"], force=True)
    return len(waiting(client, fingerprint))


def _container_events(since: float, fingerprint: str) -> dict[str, int]:
    """How many sandbox containers the engine created, renamed (claims), killed and
    removed from ``since`` until now: a claimed spare dropped for a new container
    shows as a rename and a removal more than the kernels need."""
    found: dict[str, int] = {}
    for event in docker.from_env().api.events(
        since=int(since),
        until=int(time.time()) + 1,
        filters={"type": "container", "label": f"sandbox-kernel.fingerprint={fingerprint}"},
        decode=True,
    ):
        status = str(event.get("status") or event.get("Action"))
        if status in ("create", "rename", "kill", "destroy"):
            found[status] = found.get(status, 0) + 1
    return found


def _prestart_class(specs: KernelSpecManager, count: int) -> float:
    """``sandbox-kernel prestart count`` for the class's kernelspec; its wall time."""
    from sandbox_kernel.prestart import prestart
    from sandbox_kernel.session import connect

    config = _class_config(specs)
    started = time.perf_counter()
    done = prestart(connect(config), config, count, 600)
    took = time.perf_counter() - started
    print(f"prestart {count}: {len(done.started)} started, settled={done.settled}, {took:.1f} s")
    return took


#: The class's waves: (label, kernelspec, pre-started beforehand).
WAVES = (
    ("plain", "plain", False),
    ("sandbox", "sandbox", False),
    ("sandbox_prestarted", "sandbox", True),
)


#: Seconds the N wait, idle, before the trivial cell's p50 is measured with them up.
SETTLE_S = 8.0


def measure_class(specs: KernelSpecManager, count: int, cells: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    # The class's configuration is new to this run: one untimed start caches its create
    # request, as any earlier day's would have (see measure).
    stop(*start("sandbox", specs)[:2])
    for label, name, prestarted in WAVES:
        _class_spares(specs, remove=True)
        time.sleep(2)
        prestart_s = _prestart_class(specs, count) if prestarted else 0.0
        topups = 0
        if prestarted:
            time.sleep(2)
            # On a shared engine someone's cleanup may remove them meanwhile: top up.
            while _class_spares(specs) < count and topups < 3:
                topups += 1
                prestart_s += _prestart_class(specs, count)
                time.sleep(2)
        waiting_at_start = _class_spares(specs)
        engine_before = _engine_cpu_s()
        wave_began = time.time()
        retried: list[int] = []
        kernels, all_ready = _start_at_once(name, specs, count, retried)
        engine_s = (_engine_cpu_s() - engine_before) / count
        events = (
            _container_events(wave_began, _class_fingerprint(specs)) if name == "sandbox" else {}
        )
        # The CPU each kernel's start took, read right after all are ready: the host
        # process, and the container (for pre-started ones mostly spent before).
        shims = _shim_pids()
        processes = [_kernel_processes(km, kc, shims) for km, kc in kernels]
        host_cpu = statistics.mean(_cpu_s(p["host"][0]) for p in processes)
        containers = [cid for p in processes for cid in p.get("container_id", [])]
        container_cpu = statistics.mean(_cgroup_cpu_s(c) for c in containers) if containers else 0.0
        claimed = sum(
            1
            for c in containers
            if "-claimed-" in docker.from_env().api.inspect_container(c)["Name"]
        )
        for _km, kc in kernels:
            run_cell(kc, "1")
        _, busy_kc = kernels[0]
        # Right after the wave, the kernels are still settling (the sandbox's warm spare
        # boots, each host process loads its policy and meter): measured apart.
        starting = sorted(run_cell(busy_kc, "1") for _ in range(cells // 4))
        # Then with the N up and idle, one working, as in class after the first minute.
        time.sleep(SETTLE_S)
        trips = sorted(run_cell(busy_kc, "1") for _ in range(cells))
        engine = docker.from_env().api
        fingerprints = {
            engine.inspect_container(c)["Config"]["Labels"]["sandbox-kernel.fingerprint"]
            for c in containers
        }
        time.sleep(3)  # idle: let the start's work settle
        every = [
            pid
            for parts in processes
            for part, pids in parts.items()
            if part != "container_id"
            for pid in pids
        ]
        before = {pid: _proc_status(pid) for pid in every}
        idle_s = 10.0
        time.sleep(idle_s)
        after = {pid: _proc_status(pid) for pid in every}
        wakeups: dict[str, float] = {}
        threads: dict[str, float] = {}
        memory: dict[str, dict[str, float]] = {}
        for part in ("host", "container", "shim"):
            pids = [pid for parts in processes for pid in parts.get(part, [])]
            if not pids:
                continue
            switches = sum(after[p]["switches"] - before[p]["switches"] for p in pids)
            wakeups[part] = switches / idle_s / count
            threads[part] = sum(after[p]["threads"] for p in pids) / count
            kib = [_memory_kib(p) for p in pids]
            memory[part] = {
                "rss_mib": sum(k["rss"] for k in kib) / 1024 / count,
                "pss_mib": sum(k["pss"] for k in kib) / 1024 / count,
            }
        for km, kc in kernels:
            stop(km, kc)
        time.sleep(2)
        results[label] = {
            "all_ready_s": all_ready,
            "prestart_s_not_in_all_ready": prestart_s,
            "starts_retried": len(retried),
            "spares_waiting_at_start": waiting_at_start,
            "prestart_topups": topups,
            "engine_events_while_starting": events,
            "claimed_spares": claimed,
            "start_cpu_s_per_kernel": {
                "host": host_cpu,
                "container": container_cpu,
                "engine_upper_bound": engine_s,
            },
            "trivial_p50_ms": 1000 * trips[len(trips) // 2],
            "trivial_p50_ms_while_starting": 1000 * starting[len(starting) // 2],
            "idle_wakeups_per_s_per_kernel": wakeups,
            "threads_per_kernel": threads,
            "memory_per_kernel": memory,
            "memory_rss_mib_per_kernel": sum(m["rss_mib"] for m in memory.values()),
            "memory_pss_mib_per_kernel": sum(m["pss_mib"] for m in memory.values()),
            "unclaimed_spares_after": _unclaimed_spares(fingerprints) if containers else 0,
        }
    return results


def report_class(runs: list[dict[str, dict[str, Any]]], count: int) -> None:
    print(f"a class of {count} kernels started at once ({len(runs)} runs)")
    labels = [label for label, _, _ in WAVES if label != "plain"]
    print(f"{'':<28}{'plain':>9}" + "".join(f"{label:>20}" for label in labels))
    for key in (
        "all_ready_s",
        "trivial_p50_ms",
        "trivial_p50_ms_while_starting",
        "memory_rss_mib_per_kernel",
        "memory_pss_mib_per_kernel",
    ):
        cells = []
        for label in labels:
            ratios = [run[label][key] / run["plain"][key] for run in runs]
            cells.append(f"{runs[-1][label][key]:>7.2f} ({min(ratios):.2f}-{max(ratios):.2f}x)")
        print(f"{key:<28}{runs[-1]['plain'][key]:>9.2f}" + "".join(f"{c:>20}" for c in cells))
    for key in (
        "start_cpu_s_per_kernel",
        "idle_wakeups_per_s_per_kernel",
        "threads_per_kernel",
        "memory_per_kernel",
    ):
        print(f"{key}:")
        for label, _, _ in WAVES:
            print(f"  {label:<20}{runs[-1][label][key]}")
    for label in labels:
        print(
            f"{label}: spares waiting at the start "
            f"{[run[label]['spares_waiting_at_start'] for run in runs]}, "
            f"claimed {[run[label]['claimed_spares'] for run in runs]}, "
            f"unclaimed after {[run[label]['unclaimed_spares_after'] for run in runs]}"
        )
    print(
        "prestart (done before the wave, not in its all_ready_s):",
        [round(run["sandbox_prestarted"]["prestart_s_not_in_all_ready"], 1) for run in runs],
        "s",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument(
        "--runs", type=int, default=1, help="repeat the whole measurement; ratios for each"
    )
    parser.add_argument(
        "--runtime", default="", help="also measure the sandbox under this runtime (runsc)"
    )
    parser.add_argument(
        "--class", dest="klass", type=int, default=0, help="measure N kernels started at once"
    )
    args = parser.parse_args()
    names = ("plain", "sandbox", *((args.runtime,) if args.runtime else ()))
    runs = []
    if args.klass:
        with tempfile.TemporaryDirectory() as tmp:
            specs = make_specs(Path(tmp))
            write_kernel_spec(  # a configuration of its own (see _class_spares)
                Path(tmp) / "kernels" / "sandbox",
                settings={
                    "warm_spare": True,
                    "extra_env": {"SANDBOX_BENCH_CLASS": os.urandom(8).hex()},
                },
                display_name="sandbox",
            )
            for _ in range(args.runs):
                runs.append(measure_class(specs, args.klass, min(args.cells, 100)))
        report_class(runs, args.klass)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "class.json").write_text(
            json.dumps({"count": args.klass, "runs": runs}, indent=2)
        )
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        specs = make_specs(Path(tmp), args.runtime)
        for number in range(args.runs):
            runs.append(measure(specs, args.starts, args.cells, names))
            print(f"run {number + 1} of {args.runs} done", file=sys.stderr)
    rows = report(runs)
    result: dict[str, Any] = {"runs": runs, "rows": rows, **runs[-1]}
    if args.runtime:
        print()
        result["rows_" + args.runtime] = report(runs, args.runtime)
    RESULTS.mkdir(exist_ok=True)
    name = f"kernel-{args.runtime}.json" if args.runtime else "kernel.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
