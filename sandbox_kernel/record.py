"""What a saved notebook records about where and at what cost it ran.

Two kinds of record, both written only by the host:

* the **environment**: the image (by digest), its packages, the limits, the runtime,
  the validation profile and this package's version. It travels inside the
  ``language_info`` of the kernel_info reply, under :data:`LANGUAGE_INFO_KEY`, because
  that is what frontends copy into the notebook's metadata without a cell: nbclient
  (and papermill, which runs on it) sets ``nb.metadata.language_info`` from the reply,
  JupyterLab's notebook panel sets the ``language_info`` metadata from the kernel's
  info. nbformat's schema lets ``language_info`` hold more keys than it names, and
  frontends read only the ones they know (name, mimetype, codemirror_mode, ...).
* the **usage** of each cell: the ``application/vnd.sandbox-kernel.usage+json``
  representation of the line under the cell.

The sandbox cannot write either: its outputs never carry ``application/vnd.sandbox-kernel.*``
representations (see :mod:`.outputs.bundles`), and the kernel_info reply is the host's.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from . import __version__
from .usage import MIME_TYPE as USAGE_MIME_TYPE
from .usage import CellUsage

if TYPE_CHECKING:
    from .config import SandboxConfig
    from .sandbox import Sandbox

#: Key of the environment record inside ``language_info``.
LANGUAGE_INFO_KEY = "sandbox"

#: Mimetype of the environment record in ``%sandbox info``'s output.
ENVIRONMENT_MIME_TYPE = "application/vnd.sandbox-kernel.environment+json"

#: Version of the record's layout, so a later reader knows what it reads.
RECORD_VERSION = 1


@functools.lru_cache(maxsize=4)
def _recipe_packages(recipe_label: str | None) -> tuple[str, ...] | None:
    """The pinned packages of the image, when it was built from this version's recipe.

    The recipe label is a digest of the recipe (its pinned requirements included); only
    when it equals this installation's recipe is the list here the image's list.
    Cached: every kernel_info reply carries it, and the digest reads the recipe.
    """
    if not recipe_label:
        return None
    from .errors import SandboxError
    from .imagerecipe import RECIPE_DIR, recipe_digest

    try:
        if recipe_label != recipe_digest():
            return None
        text = (RECIPE_DIR / "requirements.txt").read_text(encoding="utf-8")
    except (OSError, SandboxError):
        return None
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return tuple(sorted(line for line in lines if line))


def _mount_targets(mounts: list[str]) -> list[str]:
    """Where host folders appear in the container; the host paths stay private."""
    from .config import parse_mount

    return [parse_mount(entry)[1] for entry in mounts]


def environment(config: SandboxConfig, sandbox: Sandbox) -> dict[str, Any]:
    """The environment record of a running sandbox (empty values before it started)."""
    from .imagerecipe import RECIPE_LABEL

    recipe = sandbox.image_labels.get(RECIPE_LABEL)
    python = (sandbox.kernel_info.get("language_info") or {}).get("version")
    return {
        "record_version": RECORD_VERSION,
        "sandbox_kernel_version": __version__,
        "image": config.image,
        "image_ref": sandbox.image_ref or None,
        "image_id": sandbox.image_id or None,
        "recipe": recipe,
        "packages": list(packages) if (packages := _recipe_packages(recipe)) else None,
        "python": python,
        "limits": {
            "memory": config.memory,
            "cpus": config.cpus,
            "pids": config.pids,
            "timeout": config.timeout,
            "network": config.network_mode,
        },
        "runtime": config.runtime or "default",
        "validation": config.validation,
        "validation_profile": sandbox.validation_profile,
        "mounts": _mount_targets(list(config.mounts)),
    }


def recorded_environment(notebook: Mapping[str, Any]) -> dict[str, Any] | None:
    """The environment a saved notebook records, or None when it records none."""
    metadata = notebook.get("metadata")
    info = metadata.get("language_info") if isinstance(metadata, Mapping) else None
    record = info.get(LANGUAGE_INFO_KEY) if isinstance(info, Mapping) else None
    return dict(record) if isinstance(record, Mapping) else None


@dataclass
class UsageRecord:
    """One cell's usage line, as saved in a notebook."""

    cell_index: int
    execution_count: int | None
    code: str
    usage: CellUsage


#: Bounds on a saved record's values: it is read from a file anyone may have written.
_MAX_COUNT = 2**63 - 1
_MAX_TEXT = 100
_MAX_LIST = 10_000


def _valid(value: Any, kind: str) -> bool:
    """Whether ``value`` is a plausible saved value of a field annotated ``kind``."""
    if value is None:
        return kind.endswith("| None")
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str) and len(value) <= _MAX_TEXT
    if kind == "list[int]":
        return (
            isinstance(value, list)
            and len(value) <= _MAX_LIST
            and all(_valid(item, "int") for item in value)
        )
    if isinstance(value, bool):  # a bool is an int to Python, not to the record
        return False
    if kind.startswith("int"):
        return isinstance(value, int) and 0 <= value <= _MAX_COUNT
    if kind == "float":
        return isinstance(value, int | float) and 0 <= value <= _MAX_COUNT  # NaN fails too
    return True


def usage_from_json(data: Mapping[str, Any]) -> CellUsage:
    """A :class:`CellUsage` from its saved JSON form (unknown keys ignored).

    Raises:
        ValueError: when a field the line needs is missing, of the wrong type or out of
            range (negative, not finite, absurdly large).
    """
    values: dict[str, Any] = {}
    for f in fields(CellUsage):
        if f.name not in data:
            continue
        value = data[f.name]
        # The annotations are strings here ("float", "int | None", ...).
        if not _valid(value, str(f.type)):
            raise ValueError(f"not a usage record: {f.name} is {repr(value)[:60]}")
        values[f.name] = value
    try:
        return CellUsage(**values)
    except TypeError as exc:
        missing = sorted({f.name for f in fields(CellUsage)} - set(values))
        raise ValueError(
            f"not a usage record: {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''} "
            "missing"
        ) from exc


def _source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        return "".join(str(part) for part in source)
    return str(source)


def cell_usage_records(notebook: Mapping[str, Any]) -> list[UsageRecord]:
    """Every usage line of a saved notebook, in cell order.

    Raises:
        ValueError: when a usage record is malformed.
    """
    records = []
    cells = notebook.get("cells")
    for index, cell in enumerate(cells if isinstance(cells, list) else []):
        if not isinstance(cell, Mapping) or cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs") or []:
            data = output.get("data") if isinstance(output, Mapping) else None
            if not isinstance(data, Mapping) or USAGE_MIME_TYPE not in data:
                continue
            record = data[USAGE_MIME_TYPE]
            if not isinstance(record, Mapping):
                raise ValueError(f"cell {index}: the usage record is not a JSON object")
            try:
                usage = usage_from_json(record)
            except ValueError as exc:
                raise ValueError(f"cell {index}: {exc}") from exc
            count = cell.get("execution_count")
            records.append(
                UsageRecord(index, count if isinstance(count, int) else None, _source(cell), usage)
            )
    return records
