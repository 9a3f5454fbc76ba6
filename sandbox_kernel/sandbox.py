"""The public API: one persistent sandbox, executing code cell by cell.

::

    async with Sandbox(memory="1g", timeout=30) as sb:
        result = await sb.execute("import numpy as np; print(np.arange(3).sum())")
        print(result.success, result.stdout, result.usage)

:class:`Sandbox` is the whole pipeline after the frontend: validator -> container
session -> inner kernel -> outputs + usage. The Jupyter kernel (:mod:`.kernel`) is a
thin protocol layer over it; programs (an LLM agent running the strategy it just
wrote) use it directly. State persists between :meth:`Sandbox.execute` calls, as in
a notebook.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bootstrap import END_MARKER_KEY
from .config import SandboxConfig
from .containers import image_reference, launch_spare, wake_spare
from .engine import Engine, connect_engine
from .errors import SandboxDiedError, SandboxError
from .folder import NotebookFolder
from .folder_trips import FolderTrips
from .inner import InnerKernel, Message

if TYPE_CHECKING:
    # Imported when first needed (see Sandbox._warm_up): the kernel's process is
    # ready sooner without the validator's tables and the meter at start.
    from .usage import CellUsage, SessionUsage
    from .validator import Policy

from .cellrun import (
    TIMEOUT_ENAME,
    CellRun,
    ErrorInfo,
    ExecutionResult,
    InputHandler,
    OutputBudget,
    OutputHandler,
    error_message,
    message_size,
    refusal,
    stream_message,
    timeout_error,
    validation_message,
)
from .metering import CellMetering

log = logging.getLogger(__name__)

#: How many finished cells keep charging late output to their own budget.
_FINISHED_BUDGETS = 512

#: Seconds a stopping sandbox waits for its warm spare to finish starting.
SPARE_JOIN_TIMEOUT = 15.0

#: The comm target the end-of-cell probe asks about (no such target exists).
PROBE_TARGET = "sandbox-kernel.probe"


class Sandbox:
    """A persistent, locked-down Python kernel in a Docker container.

    Args:
        config: the settings; or pass them as keyword arguments
            (``Sandbox(image=..., memory="1g", timeout=30)``).
        on_message: called with every IOPub message that belongs to no running
            :meth:`execute` (widget and comm traffic, output of background threads).
        folder: a host folder to link, as the kernel links the notebook's: copied
            into the working directory (``workspace="copy"``) and receiving what the
            sandbox writes to its ``outputs_dir`` after each cell. None (the
            default): the sandbox sees no host file; use :meth:`write_file` and
            :meth:`read_file`.
    """

    #: The validator profile when the settings name none: programs running code an
    #: LLM just wrote get the original executor's ``strict`` judge; the kernel sets
    #: ``notebook`` for people's own notebooks.
    default_profile = "strict"

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        on_message: Callable[[Message], None] | None = None,
        folder: str | os.PathLike[str] | None = None,
        **settings: Any,
    ) -> None:
        self.config = config if config is not None else SandboxConfig(**settings)
        if config is not None and settings:
            self.config = SandboxConfig(config=config.config, **settings)
        self.on_message = on_message
        self.folder = (
            NotebookFolder(Path(folder).absolute(), self.config) if folder is not None else None
        )
        self._trips = FolderTrips(self.folder) if self.folder is not None else None
        self.metering = CellMetering()
        self.kernel_info: dict[str, Any] = {}
        # Which of the inner kernel's patches applied (see bootstrap.py), from HELLO.
        self.inner_patches: dict[str, str] = {}
        self.image_ref = ""
        self.packages: list[str] = []  # the image's name==version list, if it records one
        self.image_id = ""
        self.image_labels: dict[str, str] = {}
        self.startup_error: SandboxError | None = None
        #: How the start reached the engine: "stdlib" or "docker-sdk" (see engine.py).
        self.engine_client = ""
        self.notice = ""  # said before the next cell's output (e.g. why state was lost)
        self._engine: Engine | None = None
        self._inner: InnerKernel | None = None
        self._starting: asyncio.Task[None] | None = None
        self._runs: dict[str, CellRun] = {}
        self._finished: OrderedDict[str, OutputBudget] = OrderedDict()
        self._background = OutputBudget(self.config.max_output_bytes)
        self._closed = False
        self._policy: Policy | None = None
        self._spare_thread: threading.Thread | None = None
        self._warming: asyncio.Future[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------
    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the container and wait for its kernel.

        Raises:
            SandboxError: the engine is unreachable, the image missing, the container
                failed to start or its kernel did not become ready.
        """
        if self._starting is None or (self._starting.done() and self._inner is None):
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        self._closed = False
        try:
            if self._engine is None:
                self._engine = await asyncio.to_thread(connect_engine, self.config)
            inner = InnerKernel(
                self.config, self._engine, self._route_iopub, self._route_stdin, self._on_death
            )
            await inner.start()
        except SandboxError as err:
            self.startup_error = err
            raise
        self.startup_error = None
        self.engine_client = "stdlib" if self._engine and self._engine.socket else "docker-sdk"
        self._inner = inner
        self.kernel_info = inner.kernel_info
        self.inner_patches = dict(inner.hello.get("patches") or {})
        assert inner.container is not None and inner.container.container_id is not None
        if self._trips is not None:
            self._trips.container_started(self._engine, inner.container.container_id)
        self.image_ref = image_reference(inner.container.image)
        from .imagerecipe import image_packages  # here: the kernel's start does not need it

        self.packages = image_packages(inner.container.image.labels)
        self.image_id = str(inner.container.image.id)
        self.image_labels = dict(
            (inner.container.image.attrs.get("Config") or {}).get("Labels") or {}
        )
        self._warming = asyncio.ensure_future(
            asyncio.to_thread(self._warm_up, self._engine, inner.container.container_id)
        )
        if self.config.warm_spare:
            # On a thread, so the first cells need not wait; joined at stop, so that
            # no half-made container outlives this process.
            self._spare_thread = threading.Thread(
                target=launch_spare,
                args=(self._engine, self.config, inner.container.image.id),
                name="sandbox-spare",
                daemon=True,
            )
            self._spare_thread.start()

    def _warm_up(self, engine: Engine, container_id: str) -> None:
        """After the sandbox is ready: the policy and the usage meter, off the loop."""
        self.policy()
        self.metering.attach(engine, container_id, self.config)

    @property
    def usage_history(self) -> SessionUsage:
        """Every measured cell of this sandbox's lifetime (for ``%sandbox usage``)."""
        return self.metering.history

    async def stop(self) -> None:
        """Remove the container. Safe to call twice; never raises."""
        with contextlib.suppress(Exception):
            await self.outputs_copied()
        self._closed = True
        await self._drop_inner()
        await asyncio.to_thread(self._join_spare)

    def _join_spare(self) -> None:
        if self._spare_thread is not None:
            self._spare_thread.join(SPARE_JOIN_TIMEOUT)

    async def _drop_inner(self) -> None:
        inner, self._inner = self._inner, None
        self.metering.detach()
        if inner is not None:
            await inner.shutdown()

    def stop_now(self, *, wait: bool = True, successor: bool = False) -> None:
        """Synchronous :meth:`stop` for atexit handlers and other threads.

        Args:
            wait: wait until the engine has removed the container (see
                :meth:`ContainerSession.cleanup`).
            successor: a new kernel process follows at once (a restart): the warm spare
                it will claim starts its kernel now rather than after its warm delay.
        """
        self._closed = True
        if self._inner is not None:
            self._inner.shutdown_now(wait=wait)
        self._join_spare()
        container = self._inner.container if self._inner is not None else None
        if successor and self.config.warm_spare and container is not None and self._engine:
            wake_spare(self._engine, container.fingerprint)

    async def restart(self) -> None:
        """A fresh container: every variable and file of the old one is gone."""
        await self.stop()
        self._starting = None
        await self.start()

    @property
    def running(self) -> bool:
        return self._inner is not None and self._inner.death is None

    @property
    def container_id(self) -> str | None:
        if self._inner is None or self._inner.container is None:
            return None
        return self._inner.container.container_id

    def interrupt(self) -> None:
        """Interrupt the running cell (KeyboardInterrupt inside); thread-safe."""
        if self._inner is not None:
            self._inner.interrupt()

    # -- execution ----------------------------------------------------------------------
    def policy(self) -> Policy:
        """The validator policy, from the administrator's settings only.

        Nothing in a cell can change it: it is built from the configuration once.
        """
        if self._policy is None:
            from .validator import Policy

            self._policy = Policy.from_config(self.config, profile=self.validation_profile)
        return self._policy

    @property
    def validation_profile(self) -> str:
        """The validator profile in force: the setting, else :attr:`default_profile`."""
        return self.config.validation_profile or self.default_profile

    async def execute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        on_output: OutputHandler | None = None,
        input_handler: InputHandler | None = None,
    ) -> ExecutionResult:
        """Validate and run one cell; state persists to the next call.

        Args:
            code: the cell's source.
            timeout: wall-clock limit in seconds (default: the ``timeout`` setting;
                0 means none). A cell past it ends with ``SandboxTimeout``.
            on_output: receives each output message while the cell runs.
            input_handler: answers ``input()``; without one ``input()`` raises
                StdinNotImplementedError in the sandbox.

        Returns:
            The result; sandbox failures (died, timed out) are reported in it, never
            raised, and leave a fresh sandbox for the next call.

        Raises:
            SandboxError: the sandbox cannot be started at all.
        """
        return await self.execute_request(
            code, timeout=timeout, on_output=on_output, input_handler=input_handler
        )

    async def execute_request(
        self,
        code: str,
        *,
        on_output: OutputHandler | None = None,
        input_handler: InputHandler | None = None,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
        timeout: float | None = None,
        msg_id: str | None = None,
        on_usage: Callable[[CellUsage], None] | None = None,
        collect_outputs: bool = True,
        on_submit: Callable[[], None] | None = None,
        execution_count: int | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> ExecutionResult:
        """:meth:`execute` with the kernel's plumbing: a Jupyter execute_request.

        Internal: the Jupyter kernel's call, whose arguments follow the protocol's
        and may change; programs use :meth:`execute`.

        Args:
            code, on_output, input_handler: as in :meth:`execute`.
            silent, store_history, user_expressions: as in ``execute_request``.
            timeout: wall-clock limit in seconds (default: the ``timeout`` setting;
                0 means none).
            msg_id: the id for the request to the inner kernel (the kernel passes its
                frontend request's id, so late outputs can be matched to the cell).
            on_usage: with a remote engine, receives the cell's usage when it arrives
                instead of the result waiting for it (``result.usage`` is then None).
            collect_outputs: gather stdout, stderr and outputs into the result (the
                kernel, which only relays them, turns this off).
            on_submit: called once the cell is on its way to the sandbox (the kernel
                announces the cell to its frontends while the sandbox runs it).
            execution_count: the number this cell has in ``In``/``Out`` (the kernel
                passes the number its frontends show: cells it answered itself, such
                as blocked ones, never reached the sandbox).
            on_notice: with a linked folder, the result does not wait for the copy of
                the outputs folder; a notice about it (files refused, caps) comes here.
                Without it the copy is done before the result, its notice in stderr.

        Returns:
            The result; sandbox failures (died, timed out) are reported in it, never
            raised, and leave a fresh sandbox for the next call.

        Raises:
            SandboxError: the sandbox cannot be started at all.
        """
        from .validator import validate

        verdict = validate(code, self.policy()) if self.config.validation != "off" else None
        if verdict is not None and verdict.blocked:
            return ExecutionResult(
                status="blocked",
                validation=verdict,
                error=refusal(verdict),
            )
        await self.outputs_copied()
        restarted_before = await self._ensure_running()
        if self._warming is not None:
            with contextlib.suppress(Exception):  # no meter: the cell runs unmeasured
                await self._warming
        inner = self._inner
        assert inner is not None
        run = CellRun(
            self.config.max_output_bytes,
            on_output,
            input_handler,
            collect_outputs,
            max_file_size=self.config.max_file_size,
        )
        if self._trips is not None and self.container_id is not None:
            notices = await self._trips.before_cell(inner, self._engine, self.container_id)
            self.notice = "\n".join(filter(None, [self.notice, *notices]))
        if self.notice:
            run.accept(stream_message("stderr", self.notice + "\n"))
            self.notice = ""
        if verdict is not None and verdict.violations:
            # warn mode: the findings show above the cell's own output.
            run.accept(validation_message(verdict))
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": user_expressions or {},
            "allow_stdin": input_handler is not None,
            # Requests come one at a time: aborting the queue after an error ("Run
            # All") is the outer kernel's job, and the inner one must not abort the
            # next cell because its own abort flag is still up.
            "stop_on_error": False,
        }
        if execution_count is not None:
            content["sandbox_execution_count"] = execution_count
        limit = self.config.timeout if timeout is None else timeout
        # %sandbox usage lists the notebook's cells, not a tool's helper requests.
        listed = code if store_history and not silent else None
        meter = await self.metering.begin(execution_count)
        started = time.perf_counter()
        msg_id, probe = self._send_cell(inner, content, msg_id)
        self._runs[msg_id] = run
        # The proof often comes in the same burst as the reply: waited for from now.
        proof = inner.reply_future(probe)
        if on_submit is not None:
            on_submit()
        reply_future = inner.reply_future(msg_id)
        idle_future = inner.idle_future(msg_id)
        result = ExecutionResult(status="ok", validation=verdict, restarted=restarted_before)
        measured = False
        try:
            reply = await self._await_reply(reply_future, limit, run)
            reply = await self._settled_reply(
                inner, msg_id, probe, proof, reply, limit, started, run
            )
            result.reply = reply["content"]
            result.execution_count = reply["content"].get("execution_count")
            if self._trips is not None:
                self._trips.after_cell(inner, self._engine, self.container_id, on_notice)
            if meter is not None and (meter.is_local or on_usage is None):
                # The cell's code is done: measure now, while the inner kernel is
                # still sending its last outputs and idle status.
                result.usage = await self.metering.finish(meter, listed, result.execution_count)
                measured = True
            # Outputs travel on IOPub; the reply may overtake them. The idle status
            # for this request comes after its last output.
            if not idle_future.done():  # it usually came with the reply
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(idle_future, 10)
            if on_notice is None and self._trips is not None:
                # No one to tell later: the result waits for the copy, its notice in stderr.
                late = await self._trips.outputs_notice()
                if late:
                    run.accept(stream_message("stderr", late + "\n"))
            if reply["content"].get("status") != "ok":
                result.status = "error"
                result.error = ErrorInfo(
                    str(reply["content"].get("ename", "Error")),
                    str(reply["content"].get("evalue", "")),
                    list(reply["content"].get("traceback", [])),
                )
        except SandboxDiedError as died:
            result.status = "error"
            result.restarted = True
            result.error = ErrorInfo(_died_ename(died), str(died), [])
            result.reply = {
                "status": "error",
                "ename": result.error.ename,
                "evalue": str(died),
                "traceback": [],
            }
            run.accept(error_message(result.error))
            # What the fatal cell cost (its peak, the OOM kill) is read before the
            # dead container goes away.
            if not measured:
                result.usage = await self.metering.finish(meter, listed, None)
            await self._replace_after_death()
        finally:
            self._runs.pop(msg_id, None)
            if run.asking is not None:
                run.asking.cancel()  # an input() the cell no longer waits for
            # Output that comes after the reply (threads, widgets) still counts.
            self._finished[msg_id] = run.budget
            while len(self._finished) > _FINISHED_BUDGETS:
                self._finished.popitem(last=False)
        if meter is not None and on_usage is not None and not measured and not result.restarted:
            self.metering.finish_later(meter, listed, result.execution_count, on_usage)
        log.debug("cell took %.3f s", time.perf_counter() - started)
        result.stdout = "".join(run.stdout)
        result.stderr = "".join(run.stderr)
        result.outputs = run.outputs
        result.truncated = run.truncated
        return result

    def _send_cell(
        self, inner: InnerKernel, content: dict[str, Any], msg_id: str | None
    ) -> tuple[str, str]:
        """Send the cell's execute_request with what proves its end (see
        :meth:`_settled_reply`); the request's id and the proof's."""
        if self.inner_patches.get("end_marker") == "applied":
            # The inner kernel answers the marker once the cell's handler returned.
            probe = inner.new_request_id()
            (sent,) = inner.send_together(
                [("shell", "execute_request", {**content, END_MARKER_KEY: probe}, msg_id)]
            )
            return sent, probe
        # Else a probe right behind the cell, in the same write, so that it costs no
        # round trip of its own.
        sent, probe = inner.send_together(
            [
                ("shell", "execute_request", content, msg_id),
                ("shell", "comm_info_request", {"target_name": PROBE_TARGET}, None),
            ]
        )
        return sent, probe

    async def _settled_reply(
        self,
        inner: InnerKernel,
        msg_id: str,
        probe: str,
        proof: asyncio.Future[Message],
        reply: Message,
        limit: float,
        started: float,
        run: CellRun,
    ) -> Message:
        """The cell's own reply, once the inner kernel has really finished the cell.

        Any code in the kernel process can send an execute_reply, so the first one is
        not proof that the cell ended (a cell that forged one would end its usage span
        early and burn on unmeasured). The inner kernel handles shell requests one at a
        time, in order: the ``probe``, a trivial request sent right behind the cell, is
        answered only after the cell's handler has returned. So the host waits for its
        answer (``proof``, the future made when it was sent); a later reply to the cell before it is the kernel's own, the first was
        forged. (Replies that come while nobody waits are kept by the InnerKernel.)
        Where the inner kernel has the ``end_marker`` patch, the handler itself sends
        that answer when it returns, to an id the cell never sees; the proof is the
        same and costs the kernel no second request.
        """
        # What is left of the cell's time limit; a cell already interrupted at its limit
        # has the interrupt's grace to let its handler return, not a second interrupt.
        remaining = limit - (time.perf_counter() - started) if limit else 0.0
        if limit:
            remaining = max(remaining, self.config.interrupt_grace)
        try:
            await self._await_reply(proof, remaining, run)
            later = inner.unclaimed_reply(msg_id)
        finally:
            inner.forget_reply(msg_id)
            inner.forget_reply(probe)
        if later is None:
            return reply
        run.accept(
            stream_message(
                "stderr",
                "[sandbox-kernel: code in this cell sent an execute_reply of its own; the "
                "kernel's real reply and the cell's whole run are what count]\n",
            )
        )
        real = later
        if run.timed_out is not None:  # the probe waited past the limit and interrupted
            real = {**real, "content": timeout_error(real["content"], run.timed_out)}
        return real

    async def _await_reply(
        self, future: asyncio.Future[Message], limit: float, run: CellRun
    ) -> Message:
        if not limit:
            return await future
        try:
            return await asyncio.wait_for(asyncio.shield(future), limit)
        except asyncio.TimeoutError:
            pass
        run.timed_out = f"this cell ran past the {limit:g} s timeout and was interrupted"
        self.interrupt()
        try:
            reply = await asyncio.wait_for(asyncio.shield(future), self.config.interrupt_grace)
        except asyncio.TimeoutError:
            raise SandboxDiedError(
                f"This cell ran past the {limit:g} s timeout and did not stop when "
                f"interrupted; the sandbox was restarted and its state is lost.",
                "timeout",
            ) from None
        notice = (
            f"\n[sandbox-kernel: this cell ran past the {limit:g} s timeout and was interrupted]\n"
        )
        run.accept(stream_message("stderr", notice))
        return {**reply, "content": timeout_error(reply["content"], run.timed_out)}

    async def _ensure_running(self) -> bool:
        """Start (or restart after a death) before a cell; True if state was lost."""
        if self._inner is not None and self._inner.death is None:
            return False
        if self._inner is not None and self._inner.death is not None:
            await self._replace_after_death()
            return True
        await self.start()
        return False

    async def _replace_after_death(self) -> None:
        await self._drop_inner()
        self._starting = None
        if not self._closed:
            await self.start()

    # -- other requests -----------------------------------------------------------------
    async def request(
        self,
        msg_type: str,
        content: dict[str, Any],
        *,
        channel: str = "shell",
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """A request/reply exchange with the inner kernel (complete, inspect, ...).

        Raises:
            SandboxError: the sandbox is not running or died meanwhile.
            asyncio.TimeoutError: no reply within ``timeout``.
        """
        await self._ensure_running()
        assert self._inner is not None
        reply = await asyncio.wait_for(self._inner.request(channel, msg_type, content), timeout)
        return dict(reply["content"])

    def send(
        self,
        msg_type: str,
        content: dict[str, Any],
        *,
        channel: str = "shell",
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
        msg_id: str | None = None,
    ) -> str | None:
        """Send a message that expects no awaited reply (comm traffic); returns its id."""
        if self._inner is None or self._inner.death is not None:
            return None
        comm_id = content.get("comm_id")
        if msg_type == "comm_open" and isinstance(comm_id, str):
            self._inner.guard.comms.opened_by_frontend(comm_id, str(content.get("target_name")))
        elif msg_type == "comm_close" and isinstance(comm_id, str):
            self._inner.guard.comms.closed_by_frontend(comm_id)
        return self._inner.send(
            channel, msg_type, content, metadata=metadata, buffers=buffers, msg_id=msg_id
        )

    async def outputs_copied(self) -> None:
        """Wait until the outputs folder of the last cell is copied back (if it is pending)."""
        if self._trips is not None:
            await self._trips.outputs_copied()

    async def write_file(self, path: str, data: bytes) -> None:
        """Write a file into the sandbox's working directory (``path`` relative to it).

        Raises:
            ValueError: ``path`` is absolute or leaves the working directory.
            SandboxError: the sandbox is not running and cannot start.
            OSError: the engine refused the copy.
        """
        from .workspace import write_bytes

        await self._ensure_running()
        if self._trips is not None:
            copied = await self._trips.copied_in(self._inner)
            self.notice = "\n".join(filter(None, [self.notice, copied]))
        assert self.container_id is not None and self._engine is not None
        base = self.folder.subdir if self.folder is not None else ""
        await asyncio.to_thread(
            write_bytes, self._engine, self.container_id, self.config, path, bytes(data), base
        )

    async def read_file(self, path: str, *, limit: int | None = None) -> bytes:
        """A regular file of the sandbox's working directory (``path`` relative to it).

        Args:
            limit: most bytes to accept (default: the ``outputs_max_cell_size`` setting).

        Raises:
            ValueError: ``path`` is absolute or leaves the working directory.
            FileNotFoundError: no regular file of that name (symlinks are not followed).
            OSError: larger than ``limit``, or the engine failed.
        """
        from .config import parse_size
        from .results import read_bytes

        await self._ensure_running()
        assert self.container_id is not None and self._engine is not None
        cap = parse_size(self.config.outputs_max_cell_size) if limit is None else limit
        base = self.folder.subdir if self.folder is not None else ""
        return await asyncio.to_thread(read_bytes, self._engine, self.container_id, path, cap, base)

    def usage_snapshot(self) -> dict[str, Any]:
        """Current container usage, for ``usage_request`` (thread-safe, may block briefly)."""
        return self.metering.snapshot()

    # -- routing of inner messages -------------------------------------------------------
    def _route_iopub(self, msg: Message) -> None:
        parent_id = (msg.get("parent_header") or {}).get("msg_id")
        run = self._runs.get(parent_id) if parent_id else None
        if run is None and not parent_id and len(self._runs) == 1:
            # A notice from the channel itself belongs to the cell that is running.
            [run] = self._runs.values()
        if run is not None:
            run.accept(msg)
            return
        if self.on_message is None:
            return
        budget = self._finished.get(parent_id or "") or self._background
        if budget.exhausted:
            return
        size = message_size(msg)
        if size > budget.room:
            budget.exhausted = True
            self.on_message(stream_message("stderr", budget.notice(), msg.get("parent_header")))
            return
        budget.spent += size
        self.on_message(msg)

    def _route_stdin(self, msg: Message) -> None:
        """One ``input()`` at a time, for the running cell that allowed it.

        Any other request (a second prompt while one is open, one from a thread after
        its cell ended, one from a cell without stdin) is answered at once with EOF
        inside the sandbox and never reaches the frontend; the open prompt is
        withdrawn when its cell ends.
        """
        parent_id = (msg.get("parent_header") or {}).get("msg_id")
        run = self._runs.get(parent_id) if parent_id else None
        if run is None or run.input_handler is None or run.asking is not None:
            self._reply_input(msg, "\x04")
            return
        run.asking = asyncio.ensure_future(self._answer_input(msg, run))

    async def _answer_input(self, request: Message, run: CellRun) -> None:
        content = request["content"]
        assert run.input_handler is not None
        try:
            value = await run.input_handler(
                str(content.get("prompt", "")), bool(content.get("password"))
            )
        except asyncio.CancelledError:
            # The cell ended (interrupted): its input() is gone. An answer now would be
            # taken by the next cell's input() as its own.
            run.asking = None
            return
        except EOFError:
            value = "\x04"
        except Exception:
            log.exception("input handler failed")
            value = "\x04"
        run.asking = None  # before the reply: the cell's next input() may come at once
        self._reply_input(request, value)

    def _reply_input(self, request: Message, value: str) -> None:
        inner = self._inner
        if inner is not None and inner.death is None:
            with contextlib.suppress(SandboxError):
                inner.send("stdin", "input_reply", {"value": value}, parent=request)

    def _on_death(self, died: SandboxDiedError) -> None:
        # A death between cells: the next cell starts a fresh sandbox and says why.
        # (Deaths while starting are start failures, reported as such.)
        if self._inner is not None and not self._runs and not self._closed:
            self.notice = f"[sandbox-kernel] {died}"


def _died_ename(died: SandboxDiedError) -> str:
    return {
        "oom": "SandboxOutOfMemory",
        "timeout": TIMEOUT_ENAME,
        "stopped": "KernelShutdown",
    }.get(died.reason, "SandboxRestarted")
