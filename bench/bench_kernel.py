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

``--class N`` measures a class instead: see bench/bench_class.py.
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


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cold_floor(km: KernelManager, kc: Any) -> dict[str, float]:
    """What a cold start cannot go below: the CPU the two kernels' starts took, and the
    engine's create + start of a container from the same image doing nothing.

    Read right after ready: the outer kernel process's CPU, and the container's whole
    CPU (cgroup v1 cpuacct: the relay and the inner kernel).
    """
    outer = process_cpu_s(km.provisioner.process.pid)  # type: ignore[union-attr]
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
    results: dict[str, dict[str, Any]] = {}
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
        from bench_class import measure_and_report

        return measure_and_report(args.klass, args.cells, args.runs)
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
