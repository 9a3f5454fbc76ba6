"""Measure the validator on a folder of real notebooks, as a new user would meet it.

Every ``*.ipynb`` below the folder is read with nbformat (old formats upgraded in
memory, as Jupyter opens them); notebooks whose kernel language is not Python are
skipped. Each code cell is judged on its own with the chosen profile's default policy,
as the kernel would judge it. Cells that only install packages (``%pip install x``,
``!pip install x``) are counted apart: the kernel answers them with the command that
adds the package to the image rather than refusing them. Cells answered as downloads
(``!wget URL``, ``urlretrieve``: nothing runs, the answer says to put the file in the
notebook's folder) are counted apart too, and the figures are given both ways: with
those cells left aside, and with them counted as refused (columns ``(dl)``).

Prints, per kind of source (the first folder level below the given folder, e.g.
``quant``, ``teaching``, ``research``) and in total: notebooks judged, the share with
no refused cell, cells judged and the share refused, the rules that refused most, and
the p50/p99 time per cell. ``--sample N`` prints N refused cells drawn at random (with
a fixed seed) for a hand check. ``--json FILE`` writes the figures.

The notebooks themselves are third-party material: keep them outside the repository
(e.g. ``/work/corpus/notebooks``); only the figures are committed.

Usage: ``python bench/bench_notebooks.py FOLDER [--profile notebook|strict]
[--sample N] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox_kernel import validator as V  # noqa: E402
from sandbox_kernel.notebooks import NotebookSkipped, read_code_cells  # noqa: E402


def _policy(profile: str) -> Any:
    try:
        return V.Policy(profile=profile)  # type: ignore[call-arg]
    except TypeError:  # a validator without profiles (the "before" figures)
        return V.Policy()


def _install_only(source: str) -> bool:
    return bool(getattr(V, "is_install_cell", lambda _s: False)(source))


def _answer(result: Any) -> str | None:
    """The error name of an answered cell (install, download), None otherwise."""
    if hasattr(result, "answer"):
        found = result.answer()
        return found[0] if found else None
    message = getattr(result, "install_message", lambda: None)()  # older validators
    return "SandboxPackageInstall" if message else None


def measure(folder: Path, profile: str, sample: int) -> dict[str, Any]:
    policy = _policy(profile)
    kinds: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    rules: collections.Counter[str] = collections.Counter()
    refused: list[tuple[str, int, str, str]] = []
    timings: list[float] = []
    for path in sorted(folder.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        kind = path.relative_to(folder).parts[0]
        counts = kinds[kind]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cells = read_code_cells(path)
        except NotebookSkipped:
            counts["skipped (not Python)"] += 1
            continue
        except Exception:
            counts["unreadable"] += 1
            continue
        counts["notebooks"] += 1
        clean = True
        answered = False
        for index, source in cells:
            if not source.strip():
                continue
            if _install_only(source):
                counts["install cells"] += 1
                continue
            started = time.perf_counter()
            result = V.validate(source, policy)
            timings.append(time.perf_counter() - started)
            counts["cells"] += 1
            answer = _answer(result)
            if result.blocked and answer == "SandboxNoNetwork":
                # a download (`!wget URL`, urlretrieve) answered with where the file
                # goes: nothing ran; counted apart, and in the second figure as refused
                counts["download answers"] += 1
                answered = True
                continue
            if result.blocked and answer is not None:
                # answered with the command that adds the package, not refused
                counts["install answers (mixed cells)"] += 1
                continue
            if result.blocked:
                clean = False
                counts["refused cells"] += 1
                found = {v.rule_id for v in result.violations}
                rules.update(found)
                refused.append(
                    (str(path.relative_to(folder)), index, source, result.format_report())
                )
        counts["clean notebooks"] += clean
        counts["clean notebooks, downloads counted"] += clean and not answered
    total: collections.Counter[str] = collections.Counter()
    for counts in kinds.values():
        total.update(counts)
    figures: dict[str, Any] = {"profile": profile, "kinds": {}, "total": {}}
    for name, counts in [*sorted(kinds.items()), ("total", total)]:
        entry = dict(counts)
        entry["clean notebooks %"] = round(
            100 * counts["clean notebooks"] / max(1, counts["notebooks"]), 1
        )
        entry["refused cells %"] = round(100 * counts["refused cells"] / max(1, counts["cells"]), 2)
        # the same figures with download answers counted as refusals
        entry["refused or download-answered cells %"] = round(
            100 * (counts["refused cells"] + counts["download answers"]) / max(1, counts["cells"]),
            2,
        )
        entry["clean notebooks %, downloads counted"] = round(
            100 * counts["clean notebooks, downloads counted"] / max(1, counts["notebooks"]), 1
        )
        if name == "total":
            figures["total"] = entry
        else:
            figures["kinds"][name] = entry
    figures["rules"] = dict(rules.most_common())
    if timings:
        ordered = sorted(timings)
        figures["p50 ms"] = round(1000 * statistics.median(ordered), 3)
        figures["p99 ms"] = round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 3)
    rng = random.Random(9)
    figures["sample"] = [
        {"notebook": nb, "cell": index, "report": report}
        for nb, index, _source, report in rng.sample(refused, min(sample, len(refused)))
    ]
    figures["_refused_sources"] = refused
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--profile", default="notebook", choices=["notebook", "strict"])
    parser.add_argument("--sample", type=int, default=0, help="print N refused cells")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    figures = measure(args.folder, args.profile, args.sample)
    refused = figures.pop("_refused_sources")
    print(f"profile {figures['profile']}")
    header = (
        f"{'kind':<10} {'notebooks':>9} {'clean %':>8} {'cells':>7} {'refused %':>9} "
        f"{'install-only':>12} {'install+code':>12} {'downloads':>9} "
        f"{'clean % (dl)':>12} {'refused % (dl)':>14}"
    )
    print(header)
    for name, entry in [*figures["kinds"].items(), ("total", figures["total"])]:
        print(
            f"{name:<10} {entry.get('notebooks', 0):>9} {entry['clean notebooks %']:>8} "
            f"{entry.get('cells', 0):>7} {entry['refused cells %']:>9} "
            f"{entry.get('install cells', 0):>12} "
            f"{entry.get('install answers (mixed cells)', 0):>12} "
            f"{entry.get('download answers', 0):>9} "
            f"{entry['clean notebooks %, downloads counted']:>12} "
            f"{entry['refused or download-answered cells %']:>14}"
        )
    print("(dl): download answers counted as refused cells")
    skipped = figures["total"].get("skipped (not Python)", 0)
    if skipped:
        print(f"skipped (kernel not Python): {skipped}")
    print("rules that refused (cells):", ", ".join(f"{k} {v}" for k, v in figures["rules"].items()))
    print(f"time per cell: p50 {figures.get('p50 ms')} ms, p99 {figures.get('p99 ms')} ms")
    for item in figures["sample"]:
        print(f"\n--- {item['notebook']} cell {item['cell']}")
        source = next(s for nb, i, s, _r in refused if nb == item["notebook"] and i == item["cell"])
        print(source[:600])
        print(">>>", item["report"])
    if args.json:
        # the figures name the sampled cells and their rules only: the cells themselves
        # are third-party code, printed here and never written to the committed figures
        figures["sample"] = [
            {"notebook": item["notebook"], "cell": item["cell"],
             "rules": sorted(set(re.findall(r"\[(SK\d+)", item["report"])))}
            for item in figures["sample"]
        ]  # fmt: skip
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
