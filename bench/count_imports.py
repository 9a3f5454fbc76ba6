"""Count which top-level modules public notebooks import, per notebook and per kind.

    python bench/count_imports.py /work/corpus/notebooks [--top 40]

The corpus folder holds one subfolder per kind (quant, teaching, research) of
notebooks; they stay outside the repository (see COMMON rules: read and measure
only). A module counts once per notebook that imports it (``import x.y``,
``from x import y``; relative imports and the standard library are left out).
Cells are parsed after dropping IPython magics and shell lines; a cell that still
does not parse is skipped.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import Counter
from pathlib import Path


def notebook_imports(path: Path) -> set[str] | None:
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    found: set[str] = set()
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        lines = [
            line for line in text.splitlines() if not line.lstrip().startswith(("%", "!", "?"))
        ]
        try:
            tree = ast.parse("\n".join(lines))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"__future__"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    kinds = sorted(p for p in args.corpus.iterdir() if p.is_dir())
    per_kind: dict[str, Counter[str]] = {}
    sizes: dict[str, int] = {}
    total: Counter[str] = Counter()
    repos: dict[str, set[str]] = {}
    for kind in kinds:
        counts: Counter[str] = Counter()
        n = 0
        for path in sorted(kind.rglob("*.ipynb")):
            modules = notebook_imports(path)
            if modules is None:
                continue
            n += 1
            counts.update(modules)
            repo = path.relative_to(kind).parts[0]
            for module in modules:
                repos.setdefault(module, set()).add(repo)
        per_kind[kind.name] = counts
        sizes[kind.name] = n
        total.update(counts)
    n_all = sum(sizes.values())
    header = " | ".join(f"{k} ({sizes[k]})" for k in per_kind)
    n_repos = len({r for found in repos.values() for r in found})
    print(f"| module | notebooks ({n_all}) | repositories ({n_repos}) | {header} |")
    print("|---|---|---|" + "---|" * len(per_kind))
    for module, count in total.most_common(args.top):
        cells = " | ".join(
            f"{100 * per_kind[k][module] / max(sizes[k], 1):.0f} %" for k in per_kind
        )
        share = f"{count} ({100 * count / n_all:.0f} %)"
        print(f"| {module} | {share} | {len(repos[module])} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
