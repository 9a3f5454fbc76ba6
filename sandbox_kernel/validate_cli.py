"""``sandbox-kernel validate``: judge .py files and notebooks like the kernel does.

Teams run it in CI over their notebooks::

    sandbox-kernel validate notebooks/ scripts/backtest.py
    sandbox-kernel validate --json --policy warn analysis.ipynb

Each code cell of a notebook is judged on its own, as the kernel would judge it by
default (profile ``notebook``; ``--profile strict`` judges as the ``Sandbox`` API
does); a ``.py`` (or any other) file is one cell. Notebooks in old formats (v3) are
upgraded in memory with nbformat, as Jupyter opens them; notebooks whose kernel
language is not Python are skipped with a note. Folders are
searched for ``*.py``, ``*.ipy`` and ``*.ipynb``, skipping hidden folders and
``.ipynb_checkpoints``.

Exit status: 0 when nothing is blocked, 1 when a cell is blocked, 2 when an input
cannot be read or parsed (a missing file, a notebook that is not JSON). A cell with a
Python syntax error is reported but does not change the status: the kernel lets Python
refuse it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .notebooks import NotebookSkipped, read_code_cells
from .terminal import show
from .validator import Policy, ValidationResult, validate

EXIT_OK = 0
EXIT_BLOCKED = 1
EXIT_ERROR = 2

_SOURCE_SUFFIXES = (".py", ".ipy", ".ipynb")


@dataclass
class _FileReport:
    path: str
    cells: list[tuple[int, ValidationResult]] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": self.path,
            "cells": [
                {
                    "index": index,
                    "blocked": result.blocked,
                    "risk_score": result.risk_score,
                    "violations": [v.to_json() for v in result.violations],
                    "syntax_error": result.syntax_error.to_json() if result.syntax_error else None,
                    # installs and downloads: the kernel answers them (nothing runs)
                    "answer": _answer_json(result),
                }
                for index, result in self.cells
            ],
        }
        if self.error is not None:
            data["error"] = self.error
        if self.skipped is not None:
            data["skipped"] = self.skipped
        return data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``validate`` options to ``parser`` (the main CLI's subparser)."""
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help=".py files, .ipynb notebooks or folders"
    )
    parser.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    parser.add_argument(
        "--policy",
        choices=["block", "warn", "off"],
        default="block",
        help="block: risky cells fail the run (default); warn: report only; off: judge nothing",
    )
    parser.add_argument(
        "--profile",
        choices=["notebook", "strict"],
        default="notebook",
        help="notebook: judge as the kernel does by default; strict: as the Sandbox API does",
    )
    parser.add_argument(
        "--threshold", type=int, default=30, metavar="N", help="risk score that blocks (30)"
    )


def _expand(path: Path) -> Iterator[Path]:
    if not path.is_dir():
        yield path
        return
    for child in sorted(path.rglob("*")):
        parts = child.relative_to(path).parts
        if any(p.startswith(".") or p == "__pycache__" for p in parts):
            continue  # hidden folders, .ipynb_checkpoints, caches
        if child.is_file() and child.suffix in _SOURCE_SUFFIXES:
            yield child


def _judge_file(path: Path, policy: Policy) -> _FileReport:
    report = _FileReport(str(path))
    try:
        raw = path.read_bytes()
    except OSError as exc:
        report.error = f"cannot read: {exc.strerror or exc}"
        return report
    if path.suffix == ".ipynb":
        try:
            cells = read_code_cells(path)
        except NotebookSkipped as exc:
            report.skipped = str(exc)
            return report
        except (OSError, ValueError) as exc:
            report.error = f"cannot parse notebook: {exc}"
            return report
        report.cells = [(index, validate(source, policy)) for index, source in cells]
    else:
        report.cells = [(0, validate(raw, policy))]
    return report


def _answer_json(result: ValidationResult) -> dict[str, str] | None:
    answer = result.answer()
    return None if answer is None else {"ename": answer[0], "evalue": answer[1]}


def _format_text(reports: list[_FileReport]) -> str:
    out: list[str] = []
    cells = blocked = 0
    for report in reports:
        if report.error is not None:
            out.append(f"{report.path}: ERROR {report.error}")
            continue
        if report.skipped is not None:
            out.append(f"{report.path}: skipped ({report.skipped})")
            continue
        notebook = report.path.endswith(".ipynb")
        for index, result in report.cells:
            cells += 1
            blocked += result.blocked
            if not result.violations and result.syntax_error is None:
                continue
            where = f"{report.path} cell {index}" if notebook else report.path
            answer = result.answer()
            state = "BLOCKED" if result.blocked else "findings"
            if answer is not None:
                state = f"BLOCKED, answered with {answer[0]}"
            out.append(f"{where}: {state} (risk score {result.risk_score})")
            out.extend("  " + line for line in result.format_report().splitlines()[:-1])
    errors = sum(r.error is not None for r in reports)
    skipped = sum(r.skipped is not None for r in reports)
    out.append(
        f"{len(reports)} file(s), {cells} cell(s) judged: {blocked} blocked"
        + (f", {errors} unreadable" if errors else "")
        + (f", {skipped} skipped (not Python)" if skipped else "")
    )
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    """Judge ``args.paths`` and print the report; returns the exit status (0, 1 or 2)."""
    try:
        policy = Policy.from_config(
            mode=args.policy, threshold=args.threshold, profile=getattr(args, "profile", "notebook")
        )
    except ConfigError as exc:
        show(f"sandbox-kernel validate: {exc}", file=sys.stderr)
        return EXIT_ERROR
    reports: list[_FileReport] = []
    for name in args.paths:
        path = Path(name)
        if not path.exists():
            reports.append(_FileReport(name, error="no such file or folder"))
            continue
        reports.extend(_judge_file(p, policy) for p in _expand(path))
    if args.json:
        show(json.dumps({"files": [r.to_json() for r in reports]}, indent=2))
    else:
        show(_format_text(reports))
    if any(r.error is not None for r in reports):
        return EXIT_ERROR
    if any(result.blocked for r in reports for _, result in r.cells):
        return EXIT_BLOCKED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run ``validate`` standalone: ``python -m sandbox_kernel.validate_cli PATH...``."""
    parser = argparse.ArgumentParser(
        prog="sandbox-kernel validate",
        description="Judge .py files and notebooks with the sandbox-kernel cell validator.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
