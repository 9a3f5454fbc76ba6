"""What usage collection costs a cell: begin_cell + end_cell, local and API paths.

Starts a sandbox-like container, then times ``begin_cell()`` and ``end_cell()`` of
trivial cells (nothing runs between them) on

* the local path (cgroup files), back to back, with and without the memory peak reset;
* the Docker stats API path, with cells ``--stats-gap`` seconds apart as when a person
  runs them (the engine makes at most one stats collection per second per container);
* the API path back to back, as in "Run All" (each end waits for the engine's next
  collection: this is the worst case, timed over a few cells);

and the CPU the local sampler thread costs while a cell runs (with the peak reset it
only samples pids, every 50 ms; without, memory and pids every 10 ms). Prints a table and
writes bench/results/usage.json. Target: begin + end under 2 ms on the local path.

    .venv/bin/python bench/bench_usage.py [--iterations 200] [--stats-iterations 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import docker.errors

from sandbox_kernel.usage import UsageMeter

MiB = 2**20
RESULTS = Path(__file__).parent / "results" / "usage.json"


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50, p99 and max of durations in seconds, as milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 4),
        "p99_ms": round(p99 * 1000, 4),
        "max_ms": round(ordered[-1] * 1000, 4),
        "n": len(ordered),
    }


def time_cells(meter: UsageMeter, iterations: int, gap: float = 0.0) -> dict[str, Any]:
    begins, ends, totals = [], [], []
    for _ in range(iterations):
        if gap:
            time.sleep(gap)
        t0 = time.perf_counter()
        meter.begin_cell()
        t1 = time.perf_counter()
        meter.end_cell()
        t2 = time.perf_counter()
        begins.append(t1 - t0)
        ends.append(t2 - t1)
        totals.append(t2 - t0)
    return {
        "begin": percentiles(begins),
        "end": percentiles(ends),
        "total": percentiles(totals),
    }


def sampler_cpu_percent(meter: UsageMeter, seconds: float = 2.0) -> float:
    """CPU of this process while a cell of ``seconds`` runs, in percent of one CPU."""
    cpu0 = time.process_time()
    meter.begin_cell()
    time.sleep(seconds)
    meter.end_cell()
    return round(100 * (time.process_time() - cpu0) / seconds, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200, help="cells on the local path")
    parser.add_argument("--stats-iterations", type=int, default=200, help="spaced API-path cells")
    parser.add_argument("--stats-gap", type=float, default=1.05, help="seconds between them")
    parser.add_argument("--burst", type=int, default=10, help="back-to-back API-path cells")
    parser.add_argument(
        "--image", default="", help="image (default: sandbox-kernel:latest, else -dev)"
    )
    args = parser.parse_args()

    client = docker.from_env()
    image = args.image
    if not image:
        for name in ("sandbox-kernel:latest", "sandbox-kernel-dev:latest"):
            try:
                client.images.get(name)
            except docker.errors.ImageNotFound:
                continue
            image = name
            break
    container = client.containers.run(
        image,
        ["python3", "-c", "import time\nwhile True: time.sleep(3600)"],
        detach=True,
        mem_limit="512m",
        memswap_limit="512m",
        network_mode="none",
        pids_limit=64,
        tmpfs={"/tmp": "size=256m,mode=1777"},
        name=f"sandbox-kernel-usage-bench-{uuid.uuid4().hex[:8]}",
    )
    results: dict[str, Any] = {
        "host": {
            "kernel": platform.release(),
            "python": platform.python_version(),
            "docker": client.version().get("Version"),
            "image": image,
        },
        "target_ms": 2.0,
    }
    try:
        with UsageMeter(client, container.id, 512 * MiB, 64, local=True) as meter:
            results["host"]["source"] = meter.source
            results["host"]["peak_resettable"] = meter.peak_resettable
            time_cells(meter, 20)  # warm up
            results["local"] = time_cells(meter, args.iterations)
            results["local_sampler_cpu_percent"] = sampler_cpu_percent(meter)
        # Without the peak reset (a user in the docker group) the sampler reads faster.
        with UsageMeter(
            client, container.id, 512 * MiB, 64, local=True, reset_peaks=False
        ) as meter:
            results["local_no_reset"] = time_cells(meter, args.iterations)
            results["local_no_reset_sampler_cpu_percent"] = sampler_cpu_percent(meter)
        with UsageMeter(client, container.id, 512 * MiB, 64, local=False) as meter:
            time.sleep(1.1)
            results["stats_spaced"] = time_cells(meter, args.stats_iterations, args.stats_gap)
            results["stats_spaced"]["gap_s"] = args.stats_gap
            results["stats_back_to_back"] = time_cells(meter, args.burst)
    finally:
        container.remove(force=True, v=True)

    print(f"{'path':<22}{'part':<7}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'n':>6}")
    for path in ("local", "local_no_reset", "stats_spaced", "stats_back_to_back"):
        for part in ("begin", "end", "total"):
            row = results[path][part]
            print(
                f"{path:<22}{part:<7}{row['p50_ms']:>10.3f}{row['p99_ms']:>10.3f}"
                f"{row['max_ms']:>10.3f}{row['n']:>6}"
            )
    for key in ("local_sampler_cpu_percent", "local_no_reset_sampler_cpu_percent"):
        print(f"{key}: {results[key]}% of one CPU while a cell runs")
    verdict = "meets" if results["local"]["total"]["p99_ms"] < 2.0 else "MISSES"
    print(f"local p99 {results['local']['total']['p99_ms']:.3f} ms {verdict} the 2 ms target")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
