"""Run real notebooks on a plain kernel and in the sandbox, and compare them cell by cell.

Each notebook below the given folder runs with nbclient in its own folder (as Jupyter
Server starts a kernel), once per mode:

- ``plain``: a plain ipykernel on a Python with the image's package versions
  (``--plain-python``; make it with ``python -m venv`` and the image's package list,
  ``docker inspect IMAGE`` label ``sandbox-kernel.packages``);
- ``off``: "Python 3 (sandbox)" with validation off;
- ``default``: "Python 3 (sandbox)" with the default validation (block, profile
  ``notebook``).

The kernelspecs live in a private Jupyter data folder (``JUPYTER_PATH`` of this process
only), so no installed kernelspec is touched. Every cell runs, errors or not
(``allow_errors``); a cell over ``--timeout`` seconds is interrupted, and a notebook past
``--budget`` seconds stops (its remaining cells count as not run in every mode).
The sandbox modes run first: the sandbox never writes the host folder (only its
``outputs/`` door does), so what a plain run writes there is what both see next.

Per cell it records: status (ok / error / timeout / not run), the error's name and first
line, and which kinds of output it showed (stream names and MIME types; the sandbox's
own usage lines, validation reports and notices are set aside). A difference is a cell
that errs in one mode and not the other, errs with another name, or shows other kinds
of output. ``--json`` writes everything; the table gives notebooks, cells, and
differences per kind of source (the first folder level below the given folder) with
their causes.

The notebooks are third-party material: keep them outside the repository (e.g.
``/work/runcorpus/<kind>/<owner+repo>/...``); only the figures are committed.

A cell that times out in one mode only (a cell near ``--timeout`` on a loaded machine),
and any difference after it in that notebook, is counted apart, not as a difference.

Usage: ``python bench/run_notebooks.py FOLDER [--list FILE] [--modes plain,off,default]
[--timeout 60] [--budget 300] [--image IMG] [--plain-python PY] [--json FILE]
[--reuse-plain EARLIER.json] [--sandbox-python PY]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

from sandbox_kernel.install import write_kernel_spec  # noqa: E402

OWN_MIME_PREFIX = "application/vnd.sandbox-kernel."
REFUSALS = {"SandboxValidationError", "SandboxPackageInstall"}
NOT_RUN = "not run"


def make_kernelspecs(
    root: Path, plain_python: str, image: str, runtime: str, sandbox_python: str = ""
) -> dict[str, str]:
    """Kernelspecs of every mode in ``root/kernels``; returns mode -> kernel name."""
    tag = uuid.uuid4().hex[:6]
    names = {mode: f"s510-{mode}-{tag}" for mode in ("plain", "off", "default")}
    plain = root / "kernels" / names["plain"]
    plain.mkdir(parents=True)
    (plain / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [plain_python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (plain, image packages)",
                "language": "python",
            }
        )
    )
    base: dict[str, Any] = {"image": image, "warm_spare": False}
    if runtime:
        base["runtime"] = runtime
    for mode, settings in (("off", {**base, "validation": "off"}), ("default", base)):
        folder = write_kernel_spec(root / "kernels" / names[mode], settings, names[mode])
        if sandbox_python:  # another checkout's kernel (the "before" figures)
            spec = json.loads((folder / "kernel.json").read_text())
            spec["argv"][0] = sandbox_python
            (folder / "kernel.json").write_text(json.dumps(spec))
    return names


def output_kinds(outputs: list[Any]) -> list[str]:
    """The kinds of output a cell showed: ``stream:stdout``, MIME types, ``error``."""
    kinds: set[str] = set()
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            kinds.add(f"stream:{output.get('name')}")
        elif kind in ("display_data", "execute_result"):
            data = output.get("data", {})
            if not any(m.startswith(OWN_MIME_PREFIX) for m in data):
                kinds.update(data)
    return sorted(kinds)


def _stderr_text(outputs: list[Any]) -> str:
    return "".join(
        str(o.get("text", ""))
        for o in outputs
        if o.get("output_type") == "stream" and o.get("name") == "stderr"
    )


def run_notebook(path: Path, kernel_name: str, timeout: float, budget: float) -> dict[str, Any]:
    """Execute one notebook in its folder; per cell: status, error, output kinds."""
    nb = nbformat.read(str(path), as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=timeout,
        startup_timeout=180,
        allow_errors=True,
        interrupt_on_timeout=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    cells: list[dict[str, Any]] = []
    started = time.monotonic()
    problem = ""
    try:
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                if time.monotonic() - started > budget:
                    cells.append({"index": index, "status": NOT_RUN})
                    continue
                cell_start = time.monotonic()
                try:
                    client.execute_cell(cell, index)
                except Exception as err:  # the kernel died, or the client gave up
                    cells.append(
                        {
                            "index": index,
                            "status": "error",
                            "ename": type(err).__name__,
                            "evalue": str(err).splitlines()[0][:200] if str(err) else "",
                        }
                    )
                    problem = f"{type(err).__name__}: {err}"[:300]
                    break
                record: dict[str, Any] = {
                    "index": index,
                    "status": "ok",
                    "seconds": round(time.monotonic() - cell_start, 3),
                    "kinds": output_kinds(cell.outputs),
                }
                errors = [o for o in cell.outputs if o.get("output_type") == "error"]
                if errors:
                    ename = str(errors[-1].get("ename"))
                    record["status"] = "timeout" if ename == "KeyboardInterrupt" else "error"
                    record["ename"] = ename
                    lines = str(errors[-1].get("evalue", "")).splitlines()
                    record["evalue"] = lines[0][:200] if lines else ""
                stderr = _stderr_text(cell.outputs)
                if stderr:
                    record["stderr"] = stderr[:300]
                cells.append(record)
    except Exception as err:  # the kernel did not start
        problem = f"{type(err).__name__}: {err}"[:300]
    return {"cells": cells, "problem": problem, "seconds": round(time.monotonic() - started, 1)}


def compare(runs: dict[str, dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """Cells where ``mode`` differs from ``plain`` (both ran the cell)."""
    plain = {c["index"]: c for c in runs["plain"]["cells"]}
    other = {c["index"]: c for c in runs[mode]["cells"]}
    differences = []
    timed_out = False  # after a timeout on one side only, the two runs hold other state
    for index in sorted(plain.keys() | other.keys()):
        a, b = plain.get(index), other.get(index)
        if a is None or b is None or NOT_RUN in (a["status"], b["status"]):
            continue
        what = ""
        if timed_out or ("timeout" in (a["status"], b["status"]) and a["status"] != b["status"]):
            # A cell near the limit on a loaded machine, or a cell after it: not a
            # failure of either kernel.
            timed_out = True
            if a["status"] != b["status"] or a.get("ename") != b.get("ename"):
                what = "timeout"
        elif a["status"] != b["status"] or a.get("ename") != b.get("ename"):
            what = "error"
        elif a.get("kinds") != b.get("kinds"):
            what = "outputs"
        if what:
            differences.append(
                {
                    "index": index,
                    "what": what,
                    "plain": {k: a.get(k) for k in ("status", "ename", "evalue", "kinds")},
                    mode: {k: b.get(k) for k in ("status", "ename", "evalue", "kinds", "stderr")},
                    "refusal": b.get("ename") in REFUSALS,
                    "cause": "",  # filled in by hand after reading the cell (see README)
                }
            )
    return differences


def notebooks_below(folder: Path, listing: Path | None) -> list[Path]:
    if listing is not None:
        lines = listing.read_text(encoding="utf-8").splitlines()
        return [folder / line.strip() for line in lines if line.strip() and line[0] != "#"]
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--list", type=Path, help="notebooks to run, one path a line")
    parser.add_argument("--modes", default="plain,off,default")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per cell")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per notebook")
    parser.add_argument("--image", default=os.environ.get("SANDBOX_KERNEL_TEST_IMAGE", ""))
    parser.add_argument("--runtime", default="")
    parser.add_argument("--plain-python", default="/work/plainenv/bin/python")
    parser.add_argument(
        "--sandbox-python",
        default="",
        help="the Python whose sandbox_kernel runs the sandbox modes (default: this one)",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/notebooks-run.json")
    parser.add_argument(
        "--reuse-plain",
        type=Path,
        help="take the plain kernel's runs from an earlier --json (the same notebooks and "
        "packages) instead of running them again",
    )
    parser.add_argument(
        "--table", action="store_true", help="only print the table of --json (compared again)"
    )
    args = parser.parse_args()
    if args.table:
        results = json.loads(args.json.read_text())["notebooks"]
        for entry in results:
            runs = entry["runs"]
            entry["differences"] = {m: compare(runs, m) for m in runs if m != "plain"}
        print_table(results)
        return 0
    modes = [m for m in args.modes.split(",") if m]
    image = args.image or "sandbox-kernel:latest"

    data_dir = Path(tempfile.mkdtemp(prefix="run-notebooks-"))
    names = make_kernelspecs(data_dir, args.plain_python, image, args.runtime, args.sandbox_python)
    os.environ["JUPYTER_PATH"] = str(data_dir)
    order = [m for m in ("off", "default", "plain") if m in modes]

    earlier: dict[str, Any] = {}
    if args.reuse_plain is not None:
        for entry in json.loads(args.reuse_plain.read_text())["notebooks"]:
            earlier[entry["notebook"]] = entry["runs"]["plain"]
    results: list[dict[str, Any]] = []
    for path in notebooks_below(args.folder, args.list):
        relative = path.relative_to(args.folder)
        runs = {}
        for mode in order:
            if mode == "plain" and str(relative) in earlier:
                runs[mode] = earlier[str(relative)]
                continue
            runs[mode] = run_notebook(path, names[mode], args.timeout, args.budget)
        entry: dict[str, Any] = {
            "notebook": str(relative),
            "kind": relative.parts[0],
            "runs": runs,
            "differences": {m: compare(runs, m) for m in order if m != "plain" and "plain" in runs},
        }
        results.append(entry)
        line = ", ".join(f"{m} {len(d)}" for m, d in entry["differences"].items())
        print(f"{relative}: {len(runs[order[-1]]['cells'])} cells; differences: {line}", flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"image": image, "notebooks": results}, indent=1))
    print_table(results)
    return 0


def print_table(results: list[dict[str, Any]]) -> None:
    per_kind: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    causes: collections.Counter[str] = collections.Counter()
    for entry in results:
        counts = per_kind[entry["kind"]]
        counts["notebooks"] += 1
        plain = entry["runs"].get("plain", {"cells": []})["cells"]
        counts["cells"] += sum(1 for c in plain if c["status"] != NOT_RUN)
        counts["plain errors"] += sum(1 for c in plain if c["status"] in ("error", "timeout"))
        for mode, differences in entry["differences"].items():
            timeouts = [d for d in differences if d["what"] == "timeout"]
            differences = [d for d in differences if d["what"] != "timeout"]
            counts[f"{mode} diffs"] += len(differences)
            counts[f"{mode} notebooks differing"] += bool(differences)
            counts[f"{mode} refusals"] += sum(d["refusal"] for d in differences)
            counts["timeouts one side"] += len(timeouts)
            for d in differences:
                side = d[mode]
                cause = side.get("ename") or d["what"]
                causes[f"{mode}: {cause}"] += 1
    columns = [
        "notebooks",
        "cells",
        "plain errors",
        "off diffs",
        "off notebooks differing",
        "default diffs",
        "default refusals",
        "default notebooks differing",
        "timeouts one side",
    ]
    print("\n" + " | ".join(["kind", *columns]))
    total: collections.Counter[str] = collections.Counter()
    for kind, counts in sorted(per_kind.items()):
        total.update(counts)
        print(" | ".join([kind, *(str(counts[c]) for c in columns)]))
    print(" | ".join(["all", *(str(total[c]) for c in columns)]))
    print("\ncauses:")
    for cause, count in causes.most_common():
        print(f"  {count:4d}  {cause}")


if __name__ == "__main__":
    raise SystemExit(main())
