"""A class at once: N sandbox kernels started together, against N plain ones.

Run as ``python bench/bench_kernel.py --class N [--runs R]`` (writes
bench/results/class.json): N kernels started at once (one thread each through jupyter_client, as a server does) in three waves,
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

import contextlib
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import docker
from bench_kernel import (
    NOTEBOOK_FOLDER,
    RESULTS,
    make_specs,
    process_cpu_s,
    run_cell,
    start,
    stop,
)
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from sandbox_kernel.install import write_kernel_spec


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
                    total += process_cpu_s(int(proc.name))
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
    from sandbox_kernel.containers import list_containers
    from sandbox_kernel.engine_address import connect
    from sandbox_kernel.prestart import waiting

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
    from sandbox_kernel.engine_address import connect
    from sandbox_kernel.prestart import prestart

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
        host_cpu = statistics.mean(process_cpu_s(p["host"][0]) for p in processes)
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


def measure_and_report(count: int, cells: int, runs_wanted: int) -> int:
    """Measure the class ``runs_wanted`` times, print the table, write class.json."""
    runs: list[dict[str, dict[str, Any]]] = []
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
        for _ in range(runs_wanted):
            runs.append(measure_class(specs, count, min(cells, 100)))
    report_class(runs, count)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "class.json").write_text(json.dumps({"count": count, "runs": runs}, indent=2))
    return 0
