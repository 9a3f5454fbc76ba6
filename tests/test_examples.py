"""The shipped example notebook passes the validator as a team's CI would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_example_notebook_passes_the_validator_cli() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox_kernel",
            "validate",
            str(ROOT / "examples" / "backtest.ipynb"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 blocked" in result.stdout
