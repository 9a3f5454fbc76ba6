"""Run examples/backtest.ipynb through the installed "Python 3 (sandbox)" kernel.

Prints each cell's text output (and the usage line under it), writes the executed
notebook next to it as backtest.executed.ipynb, and exits non-zero if a cell failed or
its results (outputs/grid.csv, outputs/equity.png) did not come back.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

HERE = Path(__file__).resolve().parent


def cell_text(output: dict) -> str:
    if output["output_type"] == "stream":
        return str(output["text"])
    if output["output_type"] == "error":
        return f"{output['ename']}: {output['evalue']}\n"
    data = output.get("data", {})
    if "image/png" in data:
        return "[figure]\n"
    return str(data.get("text/plain", "")) + "\n"


def main() -> int:
    source = HERE / "backtest.ipynb"
    notebook = nbformat.read(source, as_version=4)
    # The kernel starts in the notebook's folder, as Jupyter Server starts it: the
    # sandbox sees a copy of examples/ (data/prices.csv) and its outputs/ come back.
    client = NotebookClient(
        notebook,
        kernel_name="sandbox",
        timeout=300,
        startup_timeout=120,
        resources={"metadata": {"path": str(HERE)}},
    )
    failed = False
    try:
        client.execute()
    except CellExecutionError as err:
        failed = True
        print(err, file=sys.stderr)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        print(f"--- cell {index} ---")
        print("".join(cell_text(o) for o in cell.get("outputs", [])).rstrip())
    results = sorted(p.name for p in (HERE / "outputs").iterdir() if p.name != "README.md")
    print(f"\nresults copied back to {HERE / 'outputs'}: {', '.join(results) or 'none'}")
    if not {"grid.csv", "equity.png"} <= set(results):
        failed = True
    target = HERE / "backtest.executed.ipynb"
    nbformat.write(notebook, target)
    print(f"\nexecuted notebook written to {target}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
