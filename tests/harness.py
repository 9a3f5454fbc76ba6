"""Drive the real sandbox kernel through jupyter_client, as JupyterLab does.

No mocks: every helper here starts the installed kernel module as a subprocess
against the real Docker engine. Tests choose settings per kernel (for example the
escape suite's weakened configurations) by writing a throwaway kernelspec.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from sandbox_kernel.install import LAUNCH, write_kernel_spec

USAGE_MIME = "application/vnd.sandbox-kernel.usage+json"
IMAGE = os.environ.get("SANDBOX_KERNEL_TEST_IMAGE", "sandbox-kernel:latest")

#: The container runtime of every test kernel: "" (the engine's default, runc) or
#: "runsc" (gVisor). CI runs the security, usage and core protocol suites once per
#: runtime (scripts/test.sh: SANDBOX_KERNEL_TEST_RUNTIME=runsc for the second lane).
RUNTIME = os.environ.get("SANDBOX_KERNEL_TEST_RUNTIME", "")
GVISOR = RUNTIME.startswith("runsc")

#: Settings every test kernel uses unless a test overrides them.
#: Validation is off: these tests are about the container and the protocol; the
#: validator has its own tests (and the escape suite must hold without it).
#: How many patches bootstrap.apply_patches applies to the inner ipykernel (a patch
#: lost or added without its tests shows here; see test_seams and test_doctor).
BOOTSTRAP_PATCHES = 13

BASE_SETTINGS: dict[str, Any] = {
    "image": IMAGE,
    "warm_spare": False,
    "validation": "off",
    "runtime": RUNTIME,
}


@dataclass
class CellResult:
    """What one executed cell produced, as the frontend saw it."""

    reply: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.reply["content"]["status"])

    @property
    def outputs(self) -> list[dict[str, Any]]:
        """The cell's own outputs (without status, execute_input and the usage line)."""
        return [
            m
            for m in self.messages
            if m["msg_type"] not in ("status", "execute_input") and m is not self.usage_message
        ]

    @property
    def usage_message(self) -> dict[str, Any] | None:
        for m in self.messages:
            if m["msg_type"] == "display_data" and USAGE_MIME in m["content"]["data"]:
                return m
        return None

    @property
    def usage(self) -> dict[str, Any] | None:
        """The usage JSON shown under the cell, if any."""
        m = self.usage_message
        return None if m is None else dict(m["content"]["data"][USAGE_MIME])

    def stream(self, name: str) -> str:
        """Everything the cell printed on one stream."""
        return "".join(
            m["content"]["text"]
            for m in self.messages
            if m["msg_type"] == "stream" and m["content"]["name"] == name
        )

    @property
    def stdout(self) -> str:
        return self.stream("stdout")

    @property
    def stderr(self) -> str:
        return self.stream("stderr")

    @property
    def text(self) -> str:
        """Every piece of text the cell showed: streams, results, errors."""
        parts = []
        for m in self.outputs:
            content = m["content"]
            if m["msg_type"] == "stream":
                parts.append(content["text"])
            elif m["msg_type"] == "error":
                parts.append(f"{content['ename']}: {content['evalue']}")
            elif "data" in content:
                parts.append(str(content["data"].get("text/plain", "")))
        return "".join(parts)

    @property
    def error(self) -> dict[str, Any] | None:
        errors = [m["content"] for m in self.messages if m["msg_type"] == "error"]
        return errors[-1] if errors else None

    def of_type(self, msg_type: str) -> list[dict[str, Any]]:
        return [m for m in self.outputs if m["msg_type"] == msg_type]


class Kernel:
    """A started sandbox kernel and its blocking client."""

    def __init__(self, km: KernelManager, kc: BlockingKernelClient) -> None:
        self.km = km
        self.kc = kc

    def execute(
        self,
        code: str,
        timeout: float = 60,
        *,
        stdin: list[str] | None = None,
        silent: bool = False,
        store_history: bool = True,
    ) -> CellResult:
        """Run a cell; answer input() prompts from ``stdin``; collect all IOPub until idle."""
        kc = self.kc
        msg_id = kc.execute(
            code, allow_stdin=stdin is not None, silent=silent, store_history=store_history
        )
        answers = list(stdin or [])
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        idle = False
        reply: dict[str, Any] | None = None
        while not (idle and reply is not None):
            if time.monotonic() > deadline:
                raise TimeoutError(f"cell did not finish in {timeout} s: {code[:80]!r}")
            if stdin is not None:
                with contextlib.suppress(queue.Empty):
                    request = kc.get_stdin_msg(timeout=0.01)
                    if request["parent_header"].get("msg_id") == msg_id:
                        kc.input(answers.pop(0) if answers else "")
            if reply is None:
                with contextlib.suppress(queue.Empty):
                    msg = kc.get_shell_msg(timeout=0.01)
                    if msg["parent_header"].get("msg_id") == msg_id:
                        reply = msg
            with contextlib.suppress(queue.Empty):
                msg = kc.get_iopub_msg(timeout=0.05)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                messages.append(msg)
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    idle = True
        assert reply is not None
        return CellResult(reply=reply, messages=messages)

    def request(
        self, method: str, *args: Any, timeout: float = 30, **kwargs: Any
    ) -> dict[str, Any]:
        """Send a shell request (complete, inspect, ...) and return its reply."""
        msg_id = getattr(self.kc, method)(*args, **kwargs)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.kc.get_shell_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg
        raise TimeoutError(method)

    def interrupt_running_cell(self, code: str, after: float = 1.0) -> dict[str, Any]:
        """Start ``code``, interrupt it after ``after`` seconds, return its reply."""
        msg_id = self.kc.execute(code)
        time.sleep(after)
        self.km.interrupt_kernel()
        while True:
            reply = self.kc.get_shell_msg(timeout=20)
            if reply["parent_header"]["msg_id"] == msg_id:
                return dict(reply)

    def run_all(self, cells: list[str], *, stop_on_error: bool = True) -> list[str]:
        """Send every cell at once, as JupyterLab's "Run All" does; their reply statuses."""
        sent = [self.kc.execute(code, stop_on_error=stop_on_error) for code in cells]
        statuses: dict[str, str] = {}
        while len(statuses) < len(sent):
            reply = self.kc.get_shell_msg(timeout=60)
            if reply["parent_header"]["msg_id"] in sent:
                statuses[reply["parent_header"]["msg_id"]] = reply["content"]["status"]
        self.drain_iopub()
        return [statuses[msg_id] for msg_id in sent]

    def drain_iopub(self) -> list[dict[str, Any]]:
        out = []
        with contextlib.suppress(queue.Empty):
            while True:
                out.append(self.kc.get_iopub_msg(timeout=0.2))
        return out

    @property
    def container_id(self) -> str:
        info = self.request("kernel_info")
        return str(info["content"]["sandbox"]["container"])


def python_m_argv(argv: list[str]) -> list[str]:
    """A kernelspec's argv as written before install.LAUNCH: ``python -m sandbox_kernel``."""
    index = argv.index(LAUNCH)
    assert argv[index - 1] == "-c"
    return [*argv[: index - 1], "-m", "sandbox_kernel", *argv[index + 1 :]]


class KernelSpecs:
    """A private Jupyter data folder holding kernelspecs with chosen settings."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sk-specs-"))
        self.manager = KernelSpecManager(kernel_dirs=[str(self.root / "kernels")])

    def make(self, **settings: Any) -> str:
        name = f"sk-{uuid.uuid4().hex[:8]}"
        write_kernel_spec(
            self.root / "kernels" / name, settings={**BASE_SETTINGS, **settings}, display_name=name
        )
        return name

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def start_kernel(
    specs: KernelSpecs | None = None,
    *,
    kernel_name: str | None = None,
    startup_timeout: float = 90,
    env: dict[str, str] | None = None,
    log: Any = None,
    wait_ready: bool = True,
    cwd: str | os.PathLike[str] | None = None,
    **settings: Any,
) -> Iterator[Kernel]:
    """Start a sandbox kernel (a fresh kernelspec with ``settings``, or ``kernel_name``).

    ``cwd``: the kernel's working directory, as Jupyter Server sets it to the
    notebook's folder (copied into the sandbox). Default: a fresh empty folder, so
    that no test depends on the folder pytest runs in.

    ``log``: a file that receives the kernel process's stdout and stderr.
    ``wait_ready``: false yields as soon as the process is launched, as a frontend
    sees a kernel it has just started.
    """
    own_specs = specs is None
    specs = specs or KernelSpecs()
    own_cwd = None if cwd is not None else tempfile.mkdtemp(prefix="sk-cwd-")
    try:
        if kernel_name is None:
            kernel_name = specs.make(**settings)
        # A name from these specs, else an installed kernelspec (such as "sandbox").
        in_specs = (specs.root / "kernels" / kernel_name).is_dir()
        manager = {"kernel_spec_manager": specs.manager} if in_specs else {}
        km = KernelManager(kernel_name=kernel_name, **manager)
        output = {"stdout": log, "stderr": log} if log is not None else {}
        km.start_kernel(
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            cwd=str(cwd or own_cwd),
            **output,
        )
        kc = km.client()
        kc.start_channels()
        try:
            if wait_ready:
                kc.wait_for_ready(timeout=startup_timeout)
            yield Kernel(km, kc)
        finally:
            kc.stop_channels()
            with contextlib.suppress(Exception):
                km.shutdown_kernel(now=False)
    finally:
        if own_specs:
            specs.cleanup()
        if own_cwd is not None:
            shutil.rmtree(own_cwd, ignore_errors=True)


def accepted(listener: socket.socket) -> Iterator[socket.socket]:
    """Each connection a listening socket accepts, until the socket is closed."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        yield conn


def write_context(docker_config: Path, name: str, host: str, *, current: bool = True) -> None:
    """A Docker CLI context, stored as `docker context create` stores it."""
    meta = docker_config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    endpoint = {"Host": host, "SkipTLSVerify": False}
    (meta / "meta.json").write_text(
        json.dumps({"Name": name, "Metadata": {}, "Endpoints": {"docker": endpoint}})
    )
    if current:
        (docker_config / "config.json").write_text(json.dumps({"currentContext": name}))


def execute_notebook(
    notebook: Any, specs: KernelSpecs, *, folder: Path | None = None, **settings: Any
) -> Any:
    """Run an nbformat notebook through a fresh sandbox kernelspec with nbclient, as
    papermill and ``jupyter execute`` do, in ``folder`` (the notebook's folder, where
    the kernel starts); the notebook, executed in place."""
    from nbclient import NotebookClient

    name = specs.make(**settings)
    km = KernelManager(kernel_name=name, kernel_spec_manager=specs.manager)
    resources = {"metadata": {"path": str(folder)}} if folder is not None else {}
    NotebookClient(notebook, km=km, timeout=300, startup_timeout=120, resources=resources).execute()
    return notebook


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "backtest.ipynb"


def execute_example(specs: KernelSpecs, folder: Path, **settings: Any) -> Path:
    """The example notebook executed by nbclient in ``folder`` (beside a copy of its
    data, where Jupyter starts its kernel) and saved there; its path."""
    import nbformat

    notebook = nbformat.read(EXAMPLE, as_version=4)
    for part in ("data", "outputs"):
        shutil.copytree(EXAMPLE.parent / part, folder / part)
    execute_notebook(notebook, specs, folder=folder, **settings)
    path = folder / EXAMPLE.name
    nbformat.write(notebook, path)
    return path
