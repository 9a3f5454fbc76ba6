"""Writing the kernelspec that makes "Python 3 (sandbox)" appear in the launcher.

``pip install sandbox-kernel`` already registers a default kernelspec (shipped as
wheel shared-data under ``share/jupyter/kernels/sandbox``). ``sandbox-kernel install``
writes one with settings baked into its argv, like ipykernel's ``install``: pure
functions :func:`get_kernel_dict` and :func:`write_kernel_spec`, then :func:`install`.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager

from .datafiles import data_path

KERNEL_NAME = "sandbox"
DISPLAY_NAME = "Python 3 (sandbox)"

#: How the kernelspec starts the kernel: ``python -c LAUNCH kernel -f ...``.
#: Jupyter starts a kernel in the notebook's folder, and ``python -m`` puts that folder
#: first on ``sys.path``: a folder holding ``json.py``, ``zmq.py`` or a
#: ``sandbox_kernel/`` package would run its code in the host process, outside the
#: sandbox, before a line of ours. With ``-c`` this line runs first and takes the folder
#: (``''``) off the path before anything is imported; ``-P`` would do the same but
#: needs Python 3.11. kernelspec/kernel.json (the wheel's) carries the same command.
LAUNCH = (
    "import sys; getattr(sys.flags, 'safe_path', False) or sys.path.pop(0); "
    "import runpy; runpy.run_module('sandbox_kernel', run_name='__main__', alter_sys=True)"
)


#: What the kernel and doctor say of a kernelspec that starts it with ``python -m``.
UNSAFE_LAUNCH_WARNING = (
    "this kernelspec starts the kernel with `python -m`, which lets files in a notebook's "
    "folder run on the host; run `sandbox-kernel install` again with its settings (or "
    "reinstall the package) to rewrite it"
)


def unsafe_launch(argv: Sequence[str]) -> bool:
    """Whether a kernelspec's argv starts this kernel with ``python -m`` (see LAUNCH).

    Kernelspecs written before LAUNCH (by ``sandbox-kernel install`` or the wheel) did.
    """
    return any(pair == ("-m", "sandbox_kernel") for pair in itertools.pairwise(argv))


def display_name_for(image: str | None) -> str:
    """The launcher's label: the default one, or naming the image when it is another.

    One kernelspec per image (``sandbox-kernel install --image IMG --name NAME``), so the
    launcher tells them apart: "Python 3 (sandbox: sandbox-kernel:3f2a9c81d0e4)".
    """
    from .config import DEFAULT_IMAGE

    if not image or image == DEFAULT_IMAGE:
        return DISPLAY_NAME
    return f"Python 3 (sandbox: {image})"


def settings_argv(settings: Mapping[str, Any]) -> list[str]:
    """``--SandboxConfig.NAME=VALUE`` arguments for the given settings.

    Lists (mounts) become a traitlets list literal; ``None`` values are skipped.
    """
    argv = []
    for name, value in settings.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            if not value:
                continue
            text = json.dumps(list(value))
        elif isinstance(value, bool):
            text = "True" if value else "False"
        else:
            text = str(value)
        argv.append(f"--SandboxConfig.{name}={text}")
    return argv


def get_kernel_dict(
    settings: Mapping[str, Any] | None = None,
    display_name: str = DISPLAY_NAME,
    python: str | None = None,
) -> dict[str, Any]:
    """The kernel.json contents.

    Args:
        settings: SandboxConfig trait values to bake into the argv.
        display_name: the launcher's label.
        python: the interpreter that runs the kernel; default this one.
    """
    return {
        "argv": [
            python or sys.executable,
            "-c",
            LAUNCH,
            "kernel",
            "-f",
            "{connection_file}",
            *settings_argv(settings or {}),
        ],
        "display_name": display_name,
        "language": "python",
        # Interrupts arrive as messages, which the outer kernel forwards into the
        # container; a signal would only reach the host process.
        "interrupt_mode": "message",
        "metadata": {"debugger": False, "sandbox_kernel": dict(settings or {})},
    }


def write_kernel_spec(
    path: str | Path | None = None,
    settings: Mapping[str, Any] | None = None,
    display_name: str = DISPLAY_NAME,
) -> Path:
    """Write a kernelspec folder (kernel.json and logos) and return its path.

    Without ``path`` a temporary folder is made, ready for :func:`install`.
    """
    target = (
        Path(path) if path is not None else Path(tempfile.mkdtemp(suffix="_kernels")) / KERNEL_NAME
    )
    target.mkdir(parents=True, exist_ok=True)
    for logo in ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg"):
        source = data_path("kernelspec", logo)
        if source.exists():
            shutil.copy(source, target / logo)
    with open(target / "kernel.json", "w", encoding="utf-8") as f:
        json.dump(get_kernel_dict(settings, display_name), f, indent=2)
    return target


def install(
    *,
    user: bool = False,
    prefix: str | None = None,
    kernel_name: str = KERNEL_NAME,
    display_name: str = DISPLAY_NAME,
    settings: Mapping[str, Any] | None = None,
    kernel_spec_manager: KernelSpecManager | None = None,
) -> str:
    """Install the kernelspec for Jupyter; returns where it went.

    Args:
        user: into the user's Jupyter data folder instead of the system one.
        prefix: into ``PREFIX/share/jupyter/kernels`` (``sys.prefix`` for --sys-prefix).
        kernel_name: the kernelspec's folder name.
        display_name: the launcher's label.
        settings: SandboxConfig values baked into the kernel's argv.
    """
    manager = kernel_spec_manager or KernelSpecManager()
    source = write_kernel_spec(settings=settings, display_name=display_name)
    try:
        return str(
            manager.install_kernel_spec(
                str(source), kernel_name, user=user, prefix=prefix, replace=True
            )
        )
    finally:
        shutil.rmtree(source.parent, ignore_errors=True)
