"""Notebook files from elsewhere, read by the host's commands (no engine needed).

``validate``, ``usage`` and ``reproduce`` read notebooks anyone may have written: a
paper's repository, a student's hand-in. Each hostile file below gets a one-line error
(exit 2) or a report, never a traceback, and nothing in it reaches the terminal as a
control sequence.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox_kernel.record import USAGE_MIME_TYPE
from sandbox_kernel.terminal import printable
from sandbox_kernel.usage_cli import report_text

ESC = "\x1b"
_GOOD_USAGE = {
    "wall_time_s": 1.0,
    "cpu_time_s": 0.5,
    "peak_memory_bytes": 100,
    "memory_bytes": 100,
    "memory_limit_bytes": 1000,
    "pids": 1,
    "pids_peak": 1,
    "net_rx_bytes": 0,
    "net_tx_bytes": 0,
    "tmp_bytes": 0,
    "cpu_throttled": False,
    "oom_killed": False,
    "source": "cgroup-v1",
    "peak_exact": True,
}


def _notebook(usage: Any = None, source: str = "x = 1") -> dict[str, Any]:
    outputs = (
        []
        if usage is None
        else [{"output_type": "display_data", "metadata": {}, "data": {USAGE_MIME_TYPE: usage}}]
    )
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"language_info": {"name": "python"}},
        "cells": [
            {
                "cell_type": "code",
                "id": "c",
                "metadata": {},
                "execution_count": 1,
                "source": source,
                "outputs": outputs,
            }
        ],
    }


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox_kernel", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


HOSTILE_RECORDS = {
    "not a number": {**_GOOD_USAGE, "wall_time_s": "abc"},
    "NaN": {**_GOOD_USAGE, "wall_time_s": float("nan")},
    "infinite": {**_GOOD_USAGE, "cpu_time_s": float("inf")},
    "huge": {**_GOOD_USAGE, "peak_memory_bytes": 10**400},
    "negative": {**_GOOD_USAGE, "memory_limit_bytes": -1},
    "bool for a count": {**_GOOD_USAGE, "pids": True},
    "long text": {**_GOOD_USAGE, "source": "x" * 10_000},
    "list of junk": {**_GOOD_USAGE, "background_cells": ["a"]},
    "fields missing": {"wall_time_s": 1.0},
}


@pytest.mark.parametrize("name", HOSTILE_RECORDS)
def test_usage_refuses_a_malformed_record_in_one_line(name: str, tmp_path: Path) -> None:
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(_notebook(HOSTILE_RECORDS[name]), allow_nan=True))
    result = _run("usage", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("sandbox-kernel usage: cell 0: not a usage record")
    assert len(result.stderr) < 300


def test_a_good_record_reads(tmp_path: Path) -> None:
    """Control: the records above differ from a readable one in one field each."""
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(_notebook(_GOOD_USAGE)))
    result = _run("usage", str(path))
    assert result.returncode == 0, result.stderr
    assert "1.00 s" in result.stdout


@pytest.mark.parametrize("command", ["usage", "validate", "reproduce"])
@pytest.mark.parametrize(
    "content",
    [
        b"[" * 200_000 + b"]" * 200_000,  # deeper than the JSON parser's stack
        b'{"cells": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
        b"\xff\xfe not utf-8",
        b"[]",
        b"",
    ],
    ids=["deep", "deep-inside", "not-utf8", "not-an-object", "empty"],
)
def test_unreadable_files_get_one_line(command: str, content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bad.ipynb"
    path.write_bytes(content)
    result = _run(command, str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "bad.ipynb" in result.stderr + result.stdout


SEQUENCES = [f"{ESC}[2J", f"{ESC}]0;owned{ESC}\\", "\r", "\u202e", "\x9b31m"]


@pytest.mark.parametrize("command", ["usage", "validate"])
def test_control_characters_reach_the_terminal_as_text(command: str, tmp_path: Path) -> None:
    source = "print('hi')  # " + "".join(SEQUENCES)
    path = tmp_path / f"name{ESC}[31m.ipynb"  # a hostile file name too
    path.write_text(json.dumps(_notebook(_GOOD_USAGE, source=source)))
    result = _run(command, str(path))
    shown = result.stdout + result.stderr
    assert result.returncode in (0, 1), shown
    for sequence in SEQUENCES:
        assert sequence not in shown
    assert "\\x1b[2J" in shown or (command == "validate" and "\\x1b[31m" in shown)


def test_reports_are_built_raw_and_made_printable_when_shown() -> None:
    """Negative control: without :func:`printable` the report carries the sequences."""
    from sandbox_kernel.record import cell_usage_records

    records = cell_usage_records(_notebook(_GOOD_USAGE, source=f"x = 1  {ESC}[2J"))
    text = report_text(Path("n.ipynb"), records)
    assert f"{ESC}[2J" in text
    assert f"{ESC}[2J" not in printable(text) and "\\x1b[2J" in printable(text)
    assert printable("a\tb\nc") == "a\tb\nc"
