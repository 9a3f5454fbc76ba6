"""The kernel process: ipykernel's app around :class:`~.kernel.SandboxKernel`, and its main.

What the kernelspec starts (``install.LAUNCH`` → ``cli`` → :func:`main`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys

from ipykernel.kernelapp import IPKernelApp
from traitlets import default

from .config import SandboxConfig
from .kernel import SandboxKernel
from .seams import KernelAppSeams, stop_control_thread


class SandboxKernelApp(KernelAppSeams):
    """The kernel process: ipykernel's app, with our kernel and config file name."""

    name = "sandbox-kernel"
    kernel_class = SandboxKernel
    # Our own stdout/stderr are logs for the Jupyter server, not cell output.
    outstream_class = None  # type: ignore[assignment]
    classes = [*IPKernelApp.classes, SandboxKernel, SandboxConfig]  # type: ignore[assignment]

    @default("config_file_name")
    def _config_file_name_default(self) -> str:
        return "sandbox_kernel_config"

    @default("config_file_paths")
    def _config_file_paths_default(self) -> list[str]:
        # sandbox_kernel_config.py lives where Jupyter's config does (~/.jupyter,
        # {sys.prefix}/etc/jupyter, /etc/jupyter), like jupyter_server_config.py.
        from jupyter_core.paths import jupyter_config_path

        return list(jupyter_config_path())


#: glibc's mallopt parameter for the size above which blocks are mmap'd.
_M_MMAP_THRESHOLD = -3


def _return_large_blocks_to_the_os() -> None:
    """Keep memory spent on one large message from staying with the process.

    glibc raises its mmap threshold each time a large block is freed, so after a few
    megabyte-sized messages their memory is taken from the heap and kept: a hostile
    10 MB message then cost the host 40 MB of resident memory for good. A fixed
    threshold (glibc's initial 128 KiB) makes every large block an mmap returned on
    free. Elsewhere (musl, macOS) there is no such call and nothing to do.
    """
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, 128 * 1024)


def main(argv: list[str] | None = None) -> None:
    """Run the kernel process (what the kernelspec's argv starts)."""
    from .install import UNSAFE_LAUNCH_WARNING, unsafe_launch

    if unsafe_launch(getattr(sys, "orig_argv", [])):
        print(f"sandbox-kernel: {UNSAFE_LAUNCH_WARNING}", file=sys.stderr, flush=True)
    _return_large_blocks_to_the_os()
    SandboxKernelApp.launch_instance(argv=argv)
    stop_control_thread(SandboxKernelApp.instance())
    # What must happen at exit is in atexit handlers: the container's teardown, the
    # zmq context's termination (which delivers the last messages) and the connection
    # file's removal. Run them, then end without the interpreter tearing down its
    # heap, which takes about 0.15 s here and is part of every restart.
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)
