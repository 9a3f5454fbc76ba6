"""``sandbox-kernel usage NOTEBOOK``: what a saved notebook cost, without running it.

The figures come from the notebook's usage records alone (the
``application/vnd.sandbox-kernel.usage+json`` line under each cell, which only the
host writes): totals (wall, CPU, memory peak) and one row per measured cell, as
``%sandbox usage`` shows them for a live session.

Exit status: 0 when the notebook was read (with or without records), 2 when it cannot
be read or a record is malformed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .config import format_size
from .record import UsageRecord, cell_usage_records, recorded_environment
from .terminal import show
from .usage import SessionUsage, format_seconds

EXIT_OK = 0
EXIT_ERROR = 2


def read_notebook(path: Path) -> dict[str, Any]:
    """A saved notebook as nbformat 4 JSON.

    Raises:
        ValueError: when the file cannot be read or is not a notebook.
    """
    from .notebooks import read_notebook as read

    try:
        return dict(read(path))
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def session_of(records: list[UsageRecord]) -> SessionUsage:
    """The records as a :class:`SessionUsage`, so the totals are computed one way."""
    session = SessionUsage()
    for record in records:
        session.add(record.execution_count, record.code, record.usage)
    return session


def report_json(path: Path, records: list[UsageRecord], notebook: dict[str, Any]) -> dict[str, Any]:
    return {
        "path": str(path),
        "environment": recorded_environment(notebook),
        "totals": session_of(records).totals(),
        "cells": [
            {
                "index": r.cell_index,
                "execution_count": r.execution_count,
                "code": r.code.strip().splitlines()[0] if r.code.strip() else "",
                "usage": r.usage.to_json(),
            }
            for r in records
        ],
    }


def report_text(path: Path, records: list[UsageRecord]) -> str:
    session = session_of(records)
    # top=0: the summary line alone, worded as %sandbox usage words it
    lines = [f"{path}", session.report_bundle(top=0)["text/plain"]]
    if not records:
        lines.append("(the notebook has no usage records: it was not run with sandbox-kernel)")
        return "\n".join(lines)
    rows = [["cell", "wall", "CPU", "peak", "code"]]
    for record, entry in zip(records, session.records, strict=True):
        usage = record.usage
        count = "[ ]" if record.execution_count is None else f"[{record.execution_count}]"
        rows.append(
            [
                f"{record.cell_index} {count}",
                format_seconds(usage.wall_time_s),
                format_seconds(usage.cpu_time_s),
                ("" if usage.peak_exact else "~") + format_size(usage.peak_memory_bytes),
                entry.code + (f"  ({', '.join(usage.warnings)})" if usage.warnings else ""),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines.append("")
    for row in rows:
        cells = [row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(4)]
        lines.append("  " + "  ".join(cells) + "  " + row[4])
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``usage`` options to ``parser`` (the main CLI's subparser)."""
    parser.add_argument("notebook", metavar="NOTEBOOK", help="a saved .ipynb notebook")
    parser.add_argument("--json", action="store_true", help="print totals and cells as JSON")


def run(args: argparse.Namespace) -> int:
    path = Path(args.notebook)
    try:
        notebook = read_notebook(path)
        records = cell_usage_records(notebook)
    except ValueError as exc:
        show(f"sandbox-kernel usage: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        show(json.dumps(report_json(path, records, notebook), indent=2))
    else:
        show(report_text(path, records))
    return EXIT_OK
