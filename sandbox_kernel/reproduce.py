"""``sandbox-kernel reproduce NOTEBOOK``: does the notebook still produce what it shows?

The notebook is run again, top to bottom, in the image it records (its
``language_info`` metadata, see :mod:`.record`), under this machine's settings: the
record may tighten the limits, the validation and the runtime, never loosen them (see
:mod:`.replay`; what it would have loosened is listed in the report). Each code cell's new outputs are then
compared with the saved ones (see :mod:`.compare`); the usage lines are shown side by
side, never compared. Host folders (``mounts``) are not recorded, only where they
appeared in the container: pass the same ``--mount`` options as the original run.

Exit status, as ``validate``'s: 0 when every cell reproduced, 1 when a cell differs or
failed, 2 when the notebook cannot be read or run (no recorded environment, the image
missing from the engine, the kernel did not start).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .compare import Tolerance, comparable, differences, is_failure
from .errors import SandboxError
from .record import recorded_environment
from .replay import replay_settings
from .terminal import show

if TYPE_CHECKING:
    from .config import SandboxConfig

EXIT_IDENTICAL = 0
EXIT_DIFFERENT = 1
EXIT_ERROR = 2


class ReproduceError(SandboxError):
    """The notebook cannot be read or run again; the message says what to do."""


@dataclass
class CellReport:
    index: int
    execution_count: int | None
    status: str  # "identical", "different" or "failed"
    differences: list[str] = field(default_factory=list)
    usage_saved: list[str] = field(default_factory=list)
    usage_now: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "execution_count": self.execution_count,
            "status": self.status,
            "differences": self.differences,
            "usage": {"saved": self.usage_saved, "now": self.usage_now},
        }


def missing_image_message(ref: str, environment: dict[str, Any]) -> str:
    """One sentence: the image is not on this engine, and how to get it."""
    version = environment.get("sandbox_kernel_version") or "the recorded version"
    recipe = environment.get("recipe")
    build = (
        f"build it with sandbox-kernel {version} (`pip install sandbox-kernel=={version}` then "
        f"`sandbox-kernel image build`, recipe {str(recipe)[:12]})"
        if recipe
        else "load the image the notebook was run with (`docker load`)"
    )
    if "@sha256:" in ref:
        return f"the image {ref} is not on this Docker engine: `docker pull {ref}`, or {build}"
    return (
        f"the image {ref} is not on this Docker engine (it was never pushed to a registry, "
        f"so it has no digest to pull): {build}"
    )


def check_image(config: SandboxConfig, ref: str, environment: dict[str, Any]) -> None:
    """Raise ReproduceError when the image ``ref`` is not on the engine."""
    import docker

    from .engine_address import connect

    client = connect(config)
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound as exc:
        raise ReproduceError(missing_image_message(ref, environment)) from exc
    except docker.errors.DockerException as exc:
        raise ReproduceError(f"could not look up the image {ref}: {exc}") from exc


def execute(
    notebook: dict[str, Any],
    settings: dict[str, Any],
    extra: list[str],
    *,
    timeout: float,
    startup_timeout: float,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Run a copy of ``notebook`` in a sandbox kernel with ``settings``; the copy.

    ``workdir`` is the notebook's own folder: the kernel starts there, as Jupyter starts
    it, so the copy sees the same data files. The outputs door stays shut: a re-run
    never writes into that folder.
    """
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    from .install import write_kernel_spec

    copy_ = nbformat.from_dict(copy.deepcopy(notebook))  # type: ignore[no-untyped-call]
    for flag in extra:  # --SandboxConfig.NAME=VALUE (mounts, the engine address, ...)
        name, _, value = flag.removeprefix("--SandboxConfig.").partition("=")
        settings.setdefault(name, value)
    settings.setdefault("outputs_dir", "")
    with tempfile.TemporaryDirectory(prefix="sk-reproduce-") as folder:
        write_kernel_spec(Path(folder) / "kernels" / "sandbox-reproduce", settings=settings)
        specs = KernelSpecManager(kernel_dirs=[str(Path(folder) / "kernels")])
        km = KernelManager(kernel_name="sandbox-reproduce", kernel_spec_manager=specs)
        client = NotebookClient(
            copy_,
            km=km,
            timeout=timeout,
            startup_timeout=int(startup_timeout),
            allow_errors=True,
            record_timing=False,
            resources={"metadata": {"path": str(workdir)}} if workdir is not None else {},
        )
        log_path = Path(folder) / "kernel.log"
        # The kernel's own log (ipykernel's start-up warnings) is not the report's.
        with open(log_path, "wb") as log:
            try:
                client.execute(stdout=log, stderr=log)
            except Exception as exc:  # nbclient's: dead kernel, cell timeout, no start
                tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise ReproduceError(
                    f"the notebook could not be run again ({type(exc).__name__}: {exc}"
                    + (f"; the kernel said: {' / '.join(tail)}" if tail else "")
                    + "); `sandbox-kernel doctor --run` checks the engine and image"
                ) from exc
    return dict(copy_)


def _explicit_settings(extra: list[str]) -> set[str]:
    """The settings the user named on the command line (``--SandboxConfig.NAME=...``)."""
    return {
        flag.removeprefix("--SandboxConfig.").partition("=")[0]
        for flag in extra
        if flag.startswith("--SandboxConfig.")
    }


def compare_notebooks(
    saved: dict[str, Any], now: dict[str, Any], tolerance: Tolerance
) -> list[CellReport]:
    """One report per code cell, in order."""
    reports = []
    for index, (old, new) in enumerate(zip(saved["cells"], now["cells"], strict=True)):
        if old.get("cell_type") != "code":
            continue
        before = comparable(list(old.get("outputs") or []), tolerance)
        after = comparable(list(new.get("outputs") or []), tolerance)
        found = differences(before, after)
        status = "identical"
        if found:
            status = "failed" if is_failure(before, after) else "different"
        count = old.get("execution_count")
        reports.append(
            CellReport(
                index,
                count if isinstance(count, int) else None,
                status,
                found,
                before.usage,
                after.usage,
            )
        )
    return reports


def report_text(
    path: Path,
    environment: dict[str, Any],
    image: str,
    cells: list[CellReport],
    not_used: Sequence[str] = (),
) -> str:
    lines = [
        f"{path}: re-run in {image} "
        f"(sandbox-kernel {environment.get('sandbox_kernel_version')}, "
        f"profile {environment.get('validation_profile')})"
    ]
    if not_used:
        lines.append("recorded but not used (this machine's settings are kept):")
        lines += [f"    {item}" for item in not_used]
    for cell in cells:
        count = "[ ]" if cell.execution_count is None else f"[{cell.execution_count}]"
        lines.append(f"cell {cell.index} {count}: {cell.status}")
        lines += [f"    {difference}" for difference in cell.differences]
        if cell.usage_saved or cell.usage_now:
            lines.append(f"    usage saved: {' | '.join(cell.usage_saved) or '-'}")
            lines.append(f"    usage now:   {' | '.join(cell.usage_now) or '-'}")
    counts = {s: sum(c.status == s for c in cells) for s in ("identical", "different", "failed")}
    lines.append(
        f"{len(cells)} code cells: {counts['identical']} identical, "
        f"{counts['different']} different, {counts['failed']} failed"
    )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``reproduce`` options to ``parser`` (the main CLI's subparser)."""
    parser.add_argument("notebook", metavar="NOTEBOOK", help="a saved .ipynb notebook")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--float-digits",
        type=int,
        metavar="N",
        help="compare decimal numbers in text to N significant digits",
    )
    parser.add_argument(
        "--ignore-timings",
        action="store_true",
        help="durations and rates in text (1.2 s, 35 ms, 12it/s, 00:01) match any other",
    )
    parser.add_argument(
        "--ignore-addresses",
        action="store_true",
        help="memory addresses (0x7f3a...) match any other",
    )
    parser.add_argument("--image", help="run in this image instead of the recorded one")
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds each cell may take (default 600)"
    )
    parser.add_argument(
        "--mount",
        dest="mounts",
        action="append",
        metavar="HOST_DIR[:CONTAINER_DIR]",
        help="mount a host folder read-only, as the original run did (repeatable; the "
        "record names only where folders appeared in the container)",
    )
    parser.add_argument("--write", metavar="PATH", help="save the re-run notebook there")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from .cli import load_settings
    from .usage_cli import read_notebook

    path = Path(args.notebook)
    try:
        saved = read_notebook(path)
        environment = recorded_environment(saved)
        if environment is None and not args.image:
            raise ReproduceError(
                f"{path} records no sandbox environment (no 'sandbox' key in its "
                "language_info metadata): run and save it once with this sandbox-kernel, "
                "or pass --image to re-run it in an image of your choice"
            )
        environment = environment or {}
        config = load_settings(extra)
        replay = replay_settings(
            environment, config, image=args.image, explicit=_explicit_settings(extra)
        )
        settings = replay.settings
        if args.mounts:
            settings["mounts"] = list(args.mounts)
        check_image(config, str(settings["image"]), environment)
        now = execute(
            saved,
            settings,
            extra,
            timeout=args.timeout,
            startup_timeout=120,
            workdir=path.resolve().parent,
        )
    except (ValueError, SandboxError) as exc:
        show(f"sandbox-kernel reproduce: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.write:
        import nbformat

        nbformat.write(nbformat.from_dict(now), args.write)  # type: ignore[no-untyped-call]
    tolerance = Tolerance(args.float_digits, args.ignore_timings, args.ignore_addresses)
    cells = compare_notebooks(saved, now, tolerance)
    if args.json:
        show(
            json.dumps(
                {
                    "path": str(path),
                    "environment": environment,
                    "image": settings["image"],
                    "not_used": replay.not_used,
                    "cells": [c.to_json() for c in cells],
                    "identical": all(c.status == "identical" for c in cells),
                },
                indent=2,
            )
        )
    else:
        show(report_text(path, environment, str(settings["image"]), cells, replay.not_used))
    return EXIT_IDENTICAL if all(c.status == "identical" for c in cells) else EXIT_DIFFERENT
