"""The outer kernel: speaks Jupyter to the frontend, runs cells in the sandbox.

It runs on the host. For each request it validates (execute only), forwards to the
IPython kernel inside the container through :class:`~sandbox_kernel.Sandbox`, relays
every message back under the frontend's own parent header, and adds the per-cell
usage line. Busy/idle and execute_input are this kernel's own; the inner kernel's
copies are dropped so the frontend never sees them twice.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import socket
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import zmq
from ipykernel._version import kernel_protocol_version
from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel
from traitlets import Instance, default

from . import __version__
from .cellrun import ErrorInfo, ExecutionResult, validation_bundle
from .config import SandboxConfig
from .errors import SandboxError
from .inner import Message
from .record import ENVIRONMENT_MIME_TYPE, LANGUAGE_INFO_KEY, environment
from .sandbox import Sandbox
from .seams import KernelAppSeams, KernelSeams, stop_control_thread

if TYPE_CHECKING:
    from .usage import CellUsage
    from .validator import ValidationResult

_FALLBACK_LANGUAGE_INFO = {
    "name": "python",
    "version": sys.version.split()[0],
    "mimetype": "text/x-python",
    "codemirror_mode": {"name": "ipython", "version": 3},
    "pygments_lexer": "ipython3",
    "nbconvert_exporter": "python",
    "file_extension": ".py",
}

#: Requests whose parents we remember, so late output (widgets, threads) finds its cell.
_PARENT_MEMORY = 512

#: Seconds a shutdown waits for the last cell's outputs folder to be copied back.
OUTPUTS_SHUTDOWN_WAIT = 30.0

#: Seconds a shutdown waits for the reply of a cell it interrupted.
SHUTDOWN_REPLY_WAIT = 2.0


class SandboxKernel(KernelSeams):
    """A Python kernel whose code runs in a locked-down Docker container."""

    implementation = "sandbox-kernel"
    implementation_version = __version__
    help_links = [
        {"text": "sandbox-kernel", "url": "https://pypi.org/project/sandbox-kernel/"},
    ]

    settings = Instance(SandboxConfig)

    @default("settings")
    def _default_settings(self) -> SandboxConfig:
        return SandboxConfig(parent=self)

    msg_types = [*Kernel.msg_types, "comm_open", "comm_msg", "comm_close"]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The kernel's working directory is the notebook's folder (Jupyter Server,
        # papermill and nbclient set it): the sandbox gets a copy and its outputs door.
        self.sandbox = Sandbox(
            self.settings, on_message=self._relay_unsolicited, folder=os.getcwd()
        )
        self.sandbox.default_profile = "notebook"  # people's own notebooks
        self._parents: OrderedDict[str, Message] = OrderedDict()
        self._usage_shown: OrderedDict[str, dict[str, Any]] = OrderedDict()  # by request id
        self._start_task: asyncio.Future[None] | None = None
        self._after_idle: list[Callable[[], None]] = []
        self._no_cell_running = threading.Event()  # set once a cell's reply is sent
        self._no_cell_running.set()
        self._stdin_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-stdin")
        atexit.register(self.sandbox.stop_now)

    # -- startup ------------------------------------------------------------------------
    def start(self) -> None:
        super().start()
        # Interrupts normally come as interrupt_request (the kernelspec says
        # interrupt_mode=message); a SIGINT from an older frontend does the same.
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGINT, lambda *_: self.sandbox.interrupt())
        self.io_loop.add_callback(self._begin_sandbox)

    def _begin_sandbox(self) -> None:
        self._start_task = asyncio.ensure_future(self._start_sandbox())

    async def _start_sandbox(self) -> None:
        try:
            await self.sandbox.start()
        except SandboxError as err:
            self.log.error("sandbox-kernel: %s", err)

    @property
    def _shell_loop(self) -> asyncio.AbstractEventLoop:
        # Every tornado IOLoop runs on asyncio (since tornado 5); the stubs say IOLoop.
        loop: asyncio.AbstractEventLoop = self.io_loop.asyncio_loop  # type: ignore[attr-defined]
        return loop

    def _on_shell_loop(self) -> bool:
        """False on the control thread, which runs an event loop of its own."""
        return asyncio.get_running_loop() is self._shell_loop

    async def _sandbox_ready(self) -> SandboxError | None:
        """Wait for the first start; the startup error, if it failed.

        Callable from the control thread too (kernel_info_request comes on both
        channels): the start belongs to the shell loop, so the wait runs there.
        """
        if not self._on_shell_loop():
            waiting = asyncio.run_coroutine_threadsafe(self._sandbox_ready(), self._shell_loop)
            return await asyncio.wrap_future(waiting)
        if self._start_task is None:
            self._begin_sandbox()
        assert self._start_task is not None
        await asyncio.shield(self._start_task)
        return self.sandbox.startup_error

    @property
    def language_info(self) -> dict[str, Any]:  # type: ignore[override]
        info = self.sandbox.kernel_info.get("language_info")
        info = dict(info) if info else dict(_FALLBACK_LANGUAGE_INFO)
        # Frontends save language_info into the notebook (see .record): the
        # environment goes there, so every saved notebook says where it ran.
        info[LANGUAGE_INFO_KEY] = environment(self.settings, self.sandbox)
        return info

    @property
    def banner(self) -> str:  # type: ignore[override]
        cfg = self.settings
        if self.sandbox.startup_error is not None:
            return f"sandbox-kernel {__version__}: the sandbox failed to start: {self.sandbox.startup_error}"
        inner = self.sandbox.kernel_info.get("banner", "").strip().splitlines()
        python = inner[0] if inner else "Python"
        return (
            f"{python}\n"
            f"sandbox-kernel {__version__}: every cell runs in a locked-down container.\n"
            f"image: {cfg.image} = {self.sandbox.image_ref or 'not started'}\n"
            f"limits: memory {cfg.memory}, {cfg.cpus:g} CPUs, {cfg.pids} pids, "
            f"timeout {f'{cfg.timeout:g} s' if cfg.timeout else 'none'}, network {cfg.network_mode}\n"
            f"validation: {cfg.validation}, profile {self.sandbox.validation_profile}"
            + (f"\npackages: {' '.join(self.sandbox.packages)}" if self.sandbox.packages else "")
        )

    @property
    def kernel_info(self) -> dict[str, Any]:
        # Built here rather than by the base class, which imports the debugger to
        # advertise it: the sandbox has no debugger (debugpy needs TCP) and the
        # import alone costs a tenth of a second of every start.
        return {
            "protocol_version": kernel_protocol_version,
            "implementation": self.implementation,
            "implementation_version": self.implementation_version,
            "language_info": self.language_info,
            "banner": self.banner,
            "help_links": self.help_links,
            "supported_features": [],
            "sandbox": {
                **self.settings.summary(),
                "validation_profile": self.sandbox.validation_profile,
                "image_ref": self.sandbox.image_ref,
                "packages": self.sandbox.packages,
                "container": self.sandbox.container_id,
                "startup_error": str(self.sandbox.startup_error or "") or None,
                "engine_client": self.sandbox.engine_client,
                # Whether this process has loaded the Docker SDK (see engine.py).
                "docker_sdk_loaded": "docker" in sys.modules,
            },
        }

    async def kernel_info_request(self, stream: Any, ident: Any, parent: Message) -> None:
        # Frontends ask right after launch; answer with the real Python's
        # language_info, so wait for the sandbox (bounded by its startup timeout).
        await self._sandbox_ready()
        await super().kernel_info_request(stream, ident, parent)

    # -- execute ------------------------------------------------------------------------
    async def execute_request(self, stream: Any, ident: Any, parent: Message) -> None:
        self._no_cell_running.clear()
        try:
            await super().execute_request(stream, ident, parent)
        finally:
            self._no_cell_running.set()

    async def do_execute(
        self,
        code: str,
        silent: bool,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
        allow_stdin: bool = False,
        *,
        cell_meta: dict[str, Any] | None = None,
        cell_id: str | None = None,
    ) -> dict[str, Any]:
        reply = await self._execute(code, silent, store_history, user_expressions, allow_stdin)
        # The reply goes out on shell from this thread, the cell's outputs through
        # ipykernel's IOPub thread: let that thread send them first, so that the
        # reply follows them as with a plain kernel (which gets this from flushing
        # its sys.stdout before replying).
        self._flush_iopub()
        return reply

    async def _execute(
        self,
        code: str,
        silent: bool,
        store_history: bool,
        user_expressions: dict[str, str] | None,
        allow_stdin: bool,
    ) -> dict[str, Any]:
        parent = self.get_parent("shell")
        ident = self._shell_ident()
        self._uncount_unstored_cell(silent, store_history)
        command = code.strip()
        if command == "%sandbox" or command.startswith(("%sandbox ", "%sandbox\t")):
            return self._sandbox_magic(command, parent)
        if not self.sandbox.running:
            # Starting or replacing the sandbox takes a while: announce the cell now.
            self._release_held()
        error = await self._sandbox_ready()
        if error is not None and not self.sandbox.running:
            # Try again: the engine may be up now. If not, say why in the cell.
            try:
                await self.sandbox.start()
            except SandboxError as err:
                return self._error_reply(ErrorInfo(type(err).__name__, str(err)), parent)

        def publish(
            msg_type: str,
            content: dict[str, Any] | bytes,
            metadata: dict[str, Any],
            buffers: list[bytes],
        ) -> None:
            if msg_type == "execute_result" and isinstance(content, dict):
                content = {**content, "execution_count": self.execution_count}
            self._publish(msg_type, content, parent, metadata, buffers)

        async def ask(prompt: str, password: bool) -> str:
            return await self._ask_frontend(prompt, password, ident, parent)

        # A request kept out of the history is a tool's helper code (editors run
        # them to list variables, for example) and parses its outputs: no usage
        # line, and no number of its own in In/Out.
        notebook_cell = store_history and not silent
        self._remember(parent)
        try:
            result = await self.sandbox.execute_request(
                code,
                on_output=None if silent else publish,
                input_handler=ask if allow_stdin else None,
                silent=silent,
                store_history=store_history,
                user_expressions=user_expressions,
                msg_id=parent["header"]["msg_id"],
                on_usage=(lambda usage: self._show_usage(usage, parent)) if notebook_cell else None,
                collect_outputs=False,
                on_submit=self._release_held,
                execution_count=self.execution_count if notebook_cell else None,
                on_notice=lambda text: self._publish(
                    "stream", {"name": "stderr", "text": text}, parent
                ),
            )
        except SandboxError as err:
            return self._error_reply(ErrorInfo(type(err).__name__, str(err)), parent)
        if result.status == "blocked":
            return self._blocked_reply(result, parent)
        if notebook_cell and result.usage is not None:
            usage = result.usage
            if result.status == "error" and not result.restarted:
                # A cell that raised shows its error as its one output, as Jupyter
                # clients expect; its usage line follows right after the idle status.
                self._after_idle.append(lambda: self._show_usage(usage, parent))
            else:
                self._show_usage(usage, parent)
        reply = dict(result.reply)
        reply["execution_count"] = self.execution_count
        return reply

    def _blocked_reply(self, result: ExecutionResult, parent: Message) -> dict[str, Any]:
        # Imported here, not at start (the validator's tables are loaded after it).
        from .validator.results import ANSWERED_RULES

        verdict = result.validation
        assert verdict is not None
        assert result.error is not None
        if result.error.ename not in ANSWERED_RULES.values():  # installs, downloads
            self._publish_validation(verdict, parent)
        return self._error_reply(result.error, parent)

    def _publish_validation(self, verdict: ValidationResult, parent: Message) -> None:
        bundle = validation_bundle(verdict)
        self._publish("display_data", {"data": bundle, "metadata": {}, "transient": {}}, parent)

    def _error_reply(self, error: ErrorInfo, parent: Message) -> dict[str, Any]:
        traceback = error.traceback or [f"{error.ename}: {error.evalue}"]
        content = {"ename": error.ename, "evalue": error.evalue, "traceback": traceback}
        self._publish("error", content, parent)
        return {"status": "error", "execution_count": self.execution_count, **content}

    def _show_usage(self, usage: CellUsage, parent: Message) -> None:
        mode = self.settings.usage_display
        if mode == "off":
            return
        if mode == "slow" and usage.wall_time_s < self.settings.usage_min_seconds:
            return
        content = {"data": usage.bundle(), "metadata": {}, "transient": {}}
        self._publish("display_data", content, parent)
        self._usage_shown[parent["header"]["msg_id"]] = content
        while len(self._usage_shown) > _PARENT_MEMORY:
            self._usage_shown.popitem(last=False)

    def _sandbox_magic(self, command: str, parent: Message) -> dict[str, Any]:
        """``%sandbox usage`` / ``%sandbox info``: answered here, never forwarded."""
        if "\n" in command:
            return self._error_reply(
                ErrorInfo("UsageError", "%sandbox must be alone in its cell"), parent
            )
        words = command.split()
        sub = words[1] if len(words) > 1 else "info"
        if sub == "usage":
            bundle = self.sandbox.usage_history.report_bundle()
        elif sub == "info":
            info = {**self.kernel_info["sandbox"], "banner": self.banner}
            # The record under the kernel's own mimetype, which no cell can display
            # (application/json stays for JSON viewers, but anyone can print that).
            record = {**info, "environment": self.language_info[LANGUAGE_INFO_KEY]}
            bundle = {
                "text/plain": self.banner,
                "application/json": info,
                ENVIRONMENT_MIME_TYPE: record,
            }
        else:
            return self._error_reply(
                ErrorInfo("UsageError", f"unknown %sandbox command {sub!r}; use 'usage' or 'info'"),
                parent,
            )
        self._publish("display_data", {"data": bundle, "metadata": {}, "transient": {}}, parent)
        return {
            "status": "ok",
            "execution_count": self.execution_count,
            "payload": [],
            "user_expressions": {},
        }

    async def dispatch_shell(self, msg: Any, /, *args: Any, **kwargs: Any) -> None:
        await super().dispatch_shell(msg, *args, **kwargs)
        pending, self._after_idle = self._after_idle, []
        for publish in pending:
            publish()

    def _publish(
        self,
        msg_type: str,
        content: dict[str, Any] | bytes,
        parent: Message,
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
    ) -> None:
        """Publish on IOPub. What came from the sandbox was judged on arrival (see
        :mod:`.outputs.guard`); what this kernel built is its own."""
        assert self.session is not None
        self._release_held()
        # Packed (bytes) content is sent as it is: Session.serialize passes it through.
        self.session.send(
            self.iopub_socket,
            msg_type,
            content,  # type: ignore[arg-type]
            parent=parent,
            metadata=metadata,
            buffers=list(buffers) if buffers else None,
            ident=self._topic(msg_type),
        )

    def _remember(self, parent: Message) -> None:
        self._parents[parent["header"]["msg_id"]] = parent
        while len(self._parents) > _PARENT_MEMORY:
            self._parents.popitem(last=False)

    def _relay_unsolicited(self, msg: Message) -> None:
        """IOPub traffic outside a running cell (widgets, comms, background threads)."""
        parent_id = (msg.get("parent_header") or {}).get("msg_id")
        parent = self._parents.get(parent_id or "") or self.get_parent("shell")
        msg_type = msg["header"]["msg_type"]
        self._publish(
            msg_type,
            msg["content"],
            parent,
            msg.get("metadata") or {},
            [bytes(b) for b in msg.get("buffers") or []],
        )
        shown = self._usage_shown.get(parent_id or "")
        if msg_type == "clear_output" and shown is not None:
            # Code still running in the sandbox (a thread, or a message naming an earlier
            # cell) cleared a finished cell's output: its usage line is the host's and
            # comes back under it.
            self._publish("display_data", shown, parent)

    # -- stdin ----------------------------------------------------------------------------
    async def _ask_frontend(self, prompt: str, password: bool, ident: Any, parent: Message) -> str:
        """Ask the frontend for a line, on the one thread that owns the stdin socket.

        zmq sockets are not thread-safe: a second thread on the same socket can make
        libzmq abort the whole process. The sandbox asks one question at a time per
        cell and withdraws it when the cell ends (see ``CellFlow.route_stdin``).
        """
        cancelled = threading.Event()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._stdin_thread, self._input_roundtrip, prompt, password, ident, parent, cancelled
            )
        finally:
            cancelled.set()

    def _input_roundtrip(
        self, prompt: str, password: bool, ident: Any, parent: Message, cancelled: threading.Event
    ) -> str:
        assert self.session is not None
        sock = self.stdin_socket
        while True:  # drop stale replies
            try:
                sock.recv_multipart(zmq.NOBLOCK)
            except zmq.ZMQError:
                break
        self.session.send(
            sock, "input_request", {"prompt": prompt, "password": password}, parent, ident=ident
        )
        while not cancelled.is_set():
            if sock.poll(100, zmq.POLLIN):
                _, reply = self.session.recv(sock)
                if reply is not None:
                    return str(reply["content"].get("value", ""))
        raise EOFError

    # -- other shell requests -----------------------------------------------------------------
    async def _forward(
        self, msg_type: str, content: dict[str, Any], fallback: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            return await self.sandbox.request(msg_type, content)
        except (SandboxError, asyncio.TimeoutError) as err:
            self.log.warning("sandbox-kernel: %s failed: %s", msg_type, err)
            return fallback

    async def do_complete(self, code: str, cursor_pos: int) -> dict[str, Any]:
        return await self._forward(
            "complete_request",
            {"code": code, "cursor_pos": cursor_pos},
            {
                "status": "ok",
                "matches": [],
                "cursor_start": cursor_pos,
                "cursor_end": cursor_pos,
                "metadata": {},
            },
        )

    async def do_inspect(
        self, code: str, cursor_pos: int, detail_level: int = 0, omit_sections: Any = ()
    ) -> dict[str, Any]:
        return await self._forward(
            "inspect_request",
            {"code": code, "cursor_pos": cursor_pos, "detail_level": detail_level},
            {"status": "ok", "found": False, "data": {}, "metadata": {}},
        )

    async def do_is_complete(self, code: str) -> dict[str, Any]:
        return await self._forward("is_complete_request", {"code": code}, {"status": "unknown"})

    async def do_history(
        self,
        hist_access_type: str,
        output: bool,
        raw: bool,
        session: int | None = None,
        start: int | None = None,
        stop: int | None = None,
        n: int | None = None,
        pattern: str | None = None,
        unique: bool = False,
    ) -> dict[str, Any]:
        content = {
            "hist_access_type": hist_access_type,
            "output": output,
            "raw": raw,
            "session": session,
            "start": start,
            "stop": stop,
            "n": n,
            "pattern": pattern,
            "unique": unique,
        }
        return await self._forward("history_request", content, {"status": "ok", "history": []})

    async def comm_info_request(self, stream: Any, ident: Any, parent: Message) -> None:
        content = await self._forward(
            "comm_info_request", dict(parent["content"]), {"status": "ok", "comms": {}}
        )
        assert self.session is not None
        self.session.send(stream, "comm_info_reply", content, parent, ident)

    async def _forward_comm(self, stream: Any, ident: Any, parent: Message) -> None:
        self._remember(parent)
        self.sandbox.send(
            parent["header"]["msg_type"],
            dict(parent["content"]),
            metadata=dict(parent.get("metadata") or {}),
            buffers=[bytes(b) for b in parent.get("buffers") or []],
            msg_id=parent["header"]["msg_id"],
        )

    comm_open = comm_msg = comm_close = _forward_comm

    # -- control ------------------------------------------------------------------------------
    async def interrupt_request(self, stream: Any, ident: Any, parent: Message) -> None:
        self.sandbox.interrupt()
        assert self.session is not None
        self.session.send(stream, "interrupt_reply", {"status": "ok"}, parent, ident=ident)

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:
        # The last cell's outputs folder reaches the host first (papermill and
        # nbclient read it once the kernel is gone).
        copied = asyncio.run_coroutine_threadsafe(self.sandbox.outputs_copied(), self._shell_loop)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.wrap_future(copied), OUTPUTS_SHUTDOWN_WAIT)
        # The container goes away by itself once told (SHUTDOWN) and detached; not
        # waiting for the engine's confirmation makes shutdown and restart quick.
        await asyncio.to_thread(self.sandbox.stop_now, wait=False, successor=restart)
        if not self._on_shell_loop():
            # A cell still running now ends with KernelShutdown: let its reply out
            # before ipykernel stops the shell loop.
            await asyncio.to_thread(self._no_cell_running.wait, SHUTDOWN_REPLY_WAIT)
        return {"status": "ok", "restart": restart}

    async def usage_request(self, stream: Any, ident: Any, parent: Message) -> None:
        content: dict[str, Any] = {"hostname": socket.gethostname(), "pid": os.getpid()}
        with contextlib.suppress(Exception):
            content.update(await asyncio.to_thread(self.sandbox.usage_snapshot))
        assert self.session is not None
        self.session.send(stream, "usage_reply", content, parent, ident)


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
