"""Reading the code cells of a notebook file, in any format Jupyter opens.

nbformat reads the JSON and upgrades old formats (v3 and older, with their
``worksheets``) to the current one in memory, as Jupyter does when it opens them. A
notebook whose kernel language is not Python (R, Julia, ...) is not judged: its cells
are not Python and the sandbox kernel would not run it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any


class NotebookSkipped(Exception):
    """The notebook is not a Python notebook; the message says which language it is."""


def notebook_language(metadata: Any) -> str:
    """The notebook's kernel language, lowercased; ``python`` when it does not say."""
    if not isinstance(metadata, dict):
        return "python"
    for holder, key in (("kernelspec", "language"), ("language_info", "name")):
        section = metadata.get(holder)
        if isinstance(section, dict) and isinstance(section.get(key), str):
            return section[key].strip().lower() or "python"
    language = metadata.get("language")  # v3 notebooks keep it at the top
    return language.strip().lower() if isinstance(language, str) and language.strip() else "python"


def read_notebook(path: Path) -> Any:
    """The notebook at ``path`` as nbformat 4 (older formats upgraded in memory).

    Raises:
        OSError: when the file cannot be read.
        ValueError: when it is not a notebook nbformat can read.
    """
    import nbformat

    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    except RecursionError:
        # a file anyone may have written: nesting deeper than the parser's stack
        raise ValueError("not a notebook: its JSON is nested too deep to read") from None
    if not isinstance(data, dict):
        raise ValueError("not a Jupyter notebook (the file is not a JSON object)")
    try:
        # nbformat warns about what Jupyter fixes silently (cells without ids): the
        # notebook is only read here, never written back
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            notebook = nbformat.reads(text, as_version=4)  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise ValueError(f"not a notebook nbformat can read ({type(exc).__name__}: {exc})") from exc
    return notebook


def read_code_cells(path: Path) -> list[tuple[int, str]]:
    """(index among the notebook's cells, source) of each code cell of ``path``.

    Raises:
        NotebookSkipped: when the notebook's kernel language is not Python.
        OSError: when the file cannot be read.
        ValueError: when it is not a notebook nbformat can read.
    """
    notebook = read_notebook(path)
    language = notebook_language(notebook.get("metadata"))
    if language not in ("python", "python3", "python2", "ipython"):
        raise NotebookSkipped(f"kernel language is {language}, not Python")
    cells = notebook.get("cells")
    if not isinstance(cells, list):
        raise ValueError("not a Jupyter notebook (no 'cells' list)")
    found = []
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise ValueError(f"cell {index} has no text source")
        found.append((index, source))
    return found
