"""The validator's corpus: cells that must be blocked and cells that must pass.

``dangerous/*.ipy`` are escape attempts and capability uses (one technique per file,
with obfuscated and innocent-looking variants); every one is refused in both
profiles, except the few in :data:`STRICT_ONLY`, whose only "danger" is a name the
``notebook`` profile deliberately lets pass (``import os``). ``benign/*.ipy`` are
ordinary quant-research cells that pass untouched in both profiles;
``benign_notebook/*.ipy`` are everyday notebook cells, written for this project after
patterns seen in public notebooks (``os.path.join``, ``%config``, Greek letters,
``%%writefile``), that pass in ``notebook``; ``answered_notebook/*.ipy`` are download
cells written the same way (``!wget URL``, ``!git clone URL``, ``urlretrieve``) that
the ``notebook`` profile answers (nothing runs) and ``strict`` refuses. Files are ``.ipy`` (IPython syntax) so
Python linters leave them alone. The tests and ``bench/bench_validator.py`` both load
them through :func:`load`.
"""

from __future__ import annotations

from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parent

#: Dangerous cells refused only by ``strict``, and why ``notebook`` lets them run:
#: each uses a module or magic by name, not a capability the container lacks a
#: defence for.
STRICT_ONLY: dict[str, str] = {
    "001-import-os": "import os alone gives no capability",
    "011-shutil-rmtree": "deletes a folder of the sandbox's own working area",
    "018-mmap-import": "anonymous memory map of the sandbox's own process",
    "031-from-pandas-common-import-os": "os reached through pandas: os itself passes",
    "088-path-unlink": "deletes a file of the sandbox's own working area",
    "105-line-env": "reads the sandbox's environment, built from an allowlist",
    "107-load-ext-evil": "loads an extension module, judged as an import",
    "120-noqa-comment": "import os alone (the comment changes nothing in either profile)",
    "121-ipython-prompt": "import os alone, behind a prompt IPython strips",
    "126-history-file": "writes the (already judged) history to the working area",
    "103-line-run": "runs a file of the working area, which an import of it would run too",
}


#: Dangerous cells the ``notebook`` profile answers as downloads rather than refusing
#: them with findings: a plain fetch, which the sandbox without a network cannot do.
#: Nothing runs either way; every other dangerous cell is refused, not answered.
ANSWERED_IN_NOTEBOOK: dict[str, str] = {
    "017-urllib-exfiltrate": "a GET of a URL: a fetch that cannot leave a sandbox without network",
    "163-urlretrieve-data": "downloads a CSV: the sandbox has no network",
}


def load(kind: str) -> list[tuple[str, str]]:
    """(file stem, cell source) of every cell of ``kind``: "dangerous", "benign",
    "benign_notebook" or "answered_notebook"."""
    return [
        (path.stem, path.read_text(encoding="utf-8"))
        for path in sorted((CORPUS_DIR / kind).glob("*.ipy"))
    ]
