"""Benchmark the cell validator against Bandit on the validator corpus.

Measures, per cell and after a warm-up:

* our ``validate()`` in-process;
* Bandit in-process (its ``BanditManager`` built once, then one file per cell, the
  fairest use of Bandit's Python API);
* Bandit as a command per cell (``bandit -q -f json cell.py``, what a hook that runs
  the tool per cell pays), on a sample of cells because each run takes a while.

and the detection rates on the corpus: the fraction of dangerous cells we block (in
both profiles) and Bandit flags (any severity, any confidence), and the false
positives on benign cells. With ``--notebooks FOLDER`` (public notebooks kept outside
the repository, see ``bench/bench_notebooks.py``) the timings are also taken on a
sample of real notebook cells, the ``notebook`` profile as the kernel judges them.
Prints a table and writes ``bench/results/validator.json``.

Usage: ``python bench/bench_validator.py [--repeat N] [--cli-sample N]
[--notebooks FOLDER] [--sample N]``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from sandbox_kernel.notebooks import read_code_cells  # noqa: E402
from sandbox_kernel.validator import Policy, validate  # noqa: E402

NOTEBOOK = Policy(profile="notebook")


def validate_notebook(cell: str) -> object:
    return validate(cell, NOTEBOOK)


def real_cells(folder: Path, count: int) -> list[str]:
    """A fixed random sample of ``count`` non-empty code cells of the notebooks below."""
    import random

    cells: list[str] = []
    for path in sorted(folder.rglob("*.ipynb")):
        try:
            cells.extend(source for _, source in read_code_cells(path) if source.strip())
        except Exception:
            continue  # other languages and unreadable files: not cells to time
    return random.Random(9).sample(cells, min(count, len(cells)))


from validator_corpus import load  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "validator.json"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def time_per_cell(func: Callable[[str], object], cells: list[str], repeat: int) -> list[float]:
    """Seconds per call, ``repeat`` calls of each cell, after one warm-up pass."""
    for cell in cells:
        func(cell)
    samples = []
    for _ in range(repeat):
        for cell in cells:
            started = time.perf_counter()
            func(cell)
            samples.append(time.perf_counter() - started)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(samples, 50) * 1e3,
        "p99_ms": percentile(samples, 99) * 1e3,
        "mean_ms": statistics.fmean(samples) * 1e3,
        "samples": len(samples),
    }


class BanditInProcess:
    """Bandit's own pipeline (tokenise for nosec, parse, run every plugin) per cell."""

    def __init__(self) -> None:
        logging.disable(logging.CRITICAL)  # bandit logs every syntax error it skips
        from bandit.core import config, manager, metrics

        self._metrics = metrics.Metrics
        self.manager = manager.BanditManager(config.BanditConfig(), "file", quiet=True)

    def __call__(self, cell: str) -> list[Any]:
        mgr = self.manager
        mgr.results, mgr.skipped, mgr.scores = [], [], []
        mgr.metrics = self._metrics()
        mgr._parse_file("cell.py", io.BytesIO(cell.encode("utf-8")), ["cell.py"])
        return list(mgr.results)


def bandit_cli(cells: list[str]) -> list[float] | None:
    exe = shutil.which("bandit") or str(Path(sys.executable).with_name("bandit"))
    if not Path(exe).exists():
        return None
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cell.py"
        for index, cell in enumerate(cells):
            path.write_text(cell, encoding="utf-8")
            started = time.perf_counter()
            subprocess.run([exe, "-q", "-f", "json", str(path)], capture_output=True, check=False)
            if index:  # the first run warms the page cache
                samples.append(time.perf_counter() - started)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed passes over the corpus")
    parser.add_argument("--cli-sample", type=int, default=12, help="cells run through bandit CLI")
    parser.add_argument("--notebooks", type=Path, help="folder of real notebooks to time")
    parser.add_argument("--sample", type=int, default=3000, help="real cells to time")
    args = parser.parse_args(argv)

    dangerous = load("dangerous")
    benign = load("benign")
    cells = [src for _, src in dangerous + benign]

    ours = time_per_cell(validate, cells, args.repeat)
    ours_benign = time_per_cell(validate, [s for _, s in benign], args.repeat)
    bandit = BanditInProcess()
    theirs = time_per_cell(bandit, cells, max(1, args.repeat // 4))
    cli = bandit_cli([src for _, src in benign][: args.cli_sample + 1])

    real: dict[str, Any] | None = None
    if args.notebooks:
        sample = real_cells(args.notebooks, args.sample)
        mine_real = summary(time_per_cell(validate_notebook, sample, max(1, args.repeat // 4)))
        theirs_real = summary(time_per_cell(bandit, sample, 1))
        real = {"cells": len(sample), "validator_notebook": mine_real, "bandit": theirs_real}

    blocked = [name for name, src in dangerous if validate(src).blocked]
    blocked_notebook = [name for name, src in dangerous if validate(src, NOTEBOOK).blocked]
    flagged = [name for name, src in dangerous if bandit(src)]
    ours_fp = [name for name, src in benign if validate(src).violations]
    ours_fp_blocked = [name for name, src in benign if validate(src).blocked]
    bandit_fp = [name for name, src in benign if bandit(src)]

    o, t = summary(ours), summary(theirs)
    result: dict[str, Any] = {
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "ipython": metadata.version("ipython"),
            "bandit": metadata.version("bandit"),
        },
        "corpus": {"dangerous": len(dangerous), "benign": len(benign)},
        "validator": {"all_cells": o, "benign_cells": summary(ours_benign)},
        "bandit_in_process": t,
        "real_notebook_cells": real,
        "bandit_cli_per_cell": summary(cli) if cli else None,
        "speedup_p50": {
            "vs_bandit_in_process": t["p50_ms"] / o["p50_ms"],
            "vs_bandit_cli": (summary(cli)["p50_ms"] / o["p50_ms"]) if cli else None,
        },
        "detection": {
            "validator_blocked": len(blocked) / len(dangerous),
            "validator_blocked_notebook_profile": len(blocked_notebook) / len(dangerous),
            "bandit_flagged_any_severity": len(flagged) / len(dangerous),
            "missed_by_validator": sorted(set(n for n, _ in dangerous) - set(blocked)),
            "missed_by_bandit": sorted(set(n for n, _ in dangerous) - set(flagged)),
        },
        "false_positives": {
            "validator_any_finding": len(ours_fp) / len(benign),
            "validator_blocked": len(ours_fp_blocked) / len(benign),
            "bandit_any_finding": len(bandit_fp) / len(benign),
            "bandit_flagged": sorted(bandit_fp),
        },
    }

    rows = [
        ("per cell p50 (ms)", o["p50_ms"], t["p50_ms"]),
        ("per cell p99 (ms)", o["p99_ms"], t["p99_ms"]),
        ("dangerous caught", len(blocked) / len(dangerous), len(flagged) / len(dangerous)),
        ("benign with findings", len(ours_fp) / len(benign), len(bandit_fp) / len(benign)),
    ]
    print(f"corpus: {len(dangerous)} dangerous, {len(benign)} benign cells")
    print(f"{'':24}{'validator':>12}{'bandit (API)':>14}")
    for label, mine, other in rows:
        fmt = "{:>12.3f}{:>14.3f}" if "ms" in label else "{:>12.1%}{:>14.1%}"
        print(f"{label:24}" + fmt.format(mine, other))
    print(f"typical (benign) cell p50: {result['validator']['benign_cells']['p50_ms']:.3f} ms")
    print(
        f"dangerous refused by the notebook profile: {len(blocked_notebook) / len(dangerous):.1%}"
    )
    if real is not None:
        mine_r, theirs_r = real["validator_notebook"], real["bandit"]
        print(
            f"{real['cells']} real notebook cells: p50 {mine_r['p50_ms']:.3f} ms, "
            f"p99 {mine_r['p99_ms']:.3f} ms (bandit in-process p50 {theirs_r['p50_ms']:.3f} ms, "
            f"p99 {theirs_r['p99_ms']:.3f} ms)"
        )
    if cli:
        c = summary(cli)
        print(f"bandit CLI per cell: p50 {c['p50_ms']:.0f} ms, p99 {c['p99_ms']:.0f} ms")
        print(
            f"speedup at p50: {result['speedup_p50']['vs_bandit_cli']:.0f}x vs bandit CLI, ", end=""
        )
    print(f"{result['speedup_p50']['vs_bandit_in_process']:.1f}x vs bandit in-process")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
