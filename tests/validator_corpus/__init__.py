"""The validator's corpus: cells that must be blocked and cells that must pass.

``dangerous/*.ipy`` are escape attempts (one technique per file, with obfuscated
variants); ``benign/*.ipy`` are ordinary quant-research cells. Files are ``.ipy``
(IPython syntax) so Python linters leave them alone. The tests and
``bench/bench_validator.py`` both load them through :func:`load`.
"""

from __future__ import annotations

from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parent


def load(kind: str) -> list[tuple[str, str]]:
    """(file stem, cell source) of every cell of ``kind`` ("dangerous" or "benign")."""
    return [
        (path.stem, path.read_text(encoding="utf-8"))
        for path in sorted((CORPUS_DIR / kind).glob("*.ipy"))
    ]
