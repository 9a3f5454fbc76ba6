"""A cell's steps on the host, once the validator has let it through: the sandbox made
ready, the request sent with what proves its end, the reply waited for (the timeout
and its interrupt, a forged reply, a death); and every message from inside routed to
the cell that caused it (IOPub output, ``input()`` on stdin).

Split from :mod:`.sandbox`, which keeps the public API and validates the cell;
:mod:`.lifecycle` keeps the kernel running and :mod:`.cellrun` collects one cell's
outputs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .bootstrap import END_MARKER_KEY
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
    stream_message,
    timeout_error,
    validation_message,
)
from .errors import SandboxDiedError, SandboxError
from .inner import InnerKernel, Message

if TYPE_CHECKING:
    from .folder_trips import FolderTrips
    from .lifecycle import Lifecycle
    from .sandbox import Sandbox
    from .usage import CellUsage
    from .validator import ValidationResult

log = logging.getLogger(__name__)

#: How many finished cells keep charging late output to their own budget.
_FINISHED_BUDGETS = 512

#: The comm target the end-of-cell probe asks about (no such target exists).
PROBE_TARGET = "sandbox-kernel.probe"


class CellFlow:
    """Runs one :class:`~.sandbox.Sandbox`'s cells and routes their messages."""

    def __init__(self, box: Sandbox, life: Lifecycle, trips: FolderTrips | None) -> None:
        self.box = box
        self.life = life
        self.trips = trips
        self._runs: dict[str, CellRun] = {}
        self._finished: OrderedDict[str, OutputBudget] = OrderedDict()
        self._background = OutputBudget(box.config.max_output_bytes)

    @property
    def busy(self) -> bool:
        """A cell is running."""
        return bool(self._runs)

    async def run(
        self,
        code: str,
        verdict: ValidationResult | None,
        *,
        on_output: OutputHandler | None,
        input_handler: InputHandler | None,
        silent: bool,
        store_history: bool,
        user_expressions: dict[str, str] | None,
        timeout: float | None,
        msg_id: str | None,
        on_usage: Callable[[CellUsage], None] | None,
        collect_outputs: bool,
        on_submit: Callable[[], None] | None,
        execution_count: int | None,
        on_notice: Callable[[str], None] | None,
    ) -> ExecutionResult:
        """A cell the validator let through (``verdict``), as
        :meth:`~.sandbox.Sandbox.execute_request` describes it."""
        box, trips = self.box, self.trips
        await box.outputs_copied()
        restarted_before = await self.life.ensure_running()
        if self.life.warming is not None:
            with contextlib.suppress(Exception):  # no meter: the cell runs unmeasured
                await self.life.warming
        inner = self.life.inner
        assert inner is not None
        run = CellRun(
            box.config.max_output_bytes,
            on_output,
            input_handler,
            collect_outputs,
            max_file_size=box.config.max_file_size,
        )
        if trips is not None and box.container_id is not None:
            notices = await trips.before_cell(inner, self.life.engine, box.container_id)
            box.notice = "\n".join(filter(None, [box.notice, *notices]))
        if box.notice:
            run.accept(stream_message("stderr", box.notice + "\n"))
            box.notice = ""
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
        limit = box.config.timeout if timeout is None else timeout
        # %sandbox usage lists the notebook's cells, not a tool's helper requests.
        listed = code if store_history and not silent else None
        meter = await box.metering.begin(execution_count)
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
            if trips is not None:
                trips.after_cell(inner, self.life.engine, box.container_id, on_notice)
            if meter is not None and (meter.is_local or on_usage is None):
                # The cell's code is done: measure now, while the inner kernel is
                # still sending its last outputs and idle status.
                result.usage = await box.metering.finish(meter, listed, result.execution_count)
                measured = True
            # Outputs travel on IOPub; the reply may overtake them. The idle status
            # for this request comes after its last output.
            if not idle_future.done():  # it usually came with the reply
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(idle_future, 10)
            if on_notice is None and trips is not None:
                # No one to tell later: the result waits for the copy, its notice in stderr.
                late = await trips.outputs_notice()
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
                result.usage = await box.metering.finish(meter, listed, None)
            await self.life.replace_after_death()
        finally:
            self._runs.pop(msg_id, None)
            if run.asking is not None:
                run.asking.cancel()  # an input() the cell no longer waits for
            # Output that comes after the reply (threads, widgets) still counts.
            self._finished[msg_id] = run.budget
            while len(self._finished) > _FINISHED_BUDGETS:
                self._finished.popitem(last=False)
        if meter is not None and on_usage is not None and not measured and not result.restarted:
            box.metering.finish_later(meter, listed, result.execution_count, on_usage)
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
        if self.box.inner_patches.get("end_marker") == "applied":
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
            remaining = max(remaining, self.box.config.interrupt_grace)
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
        self.box.interrupt()
        try:
            reply = await asyncio.wait_for(asyncio.shield(future), self.box.config.interrupt_grace)
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

    # -- routing of inner messages -------------------------------------------------------
    def route_iopub(self, msg: Message) -> None:
        parent_id = (msg.get("parent_header") or {}).get("msg_id")
        run = self._runs.get(parent_id) if parent_id else None
        if run is None and not parent_id and len(self._runs) == 1:
            # A notice from the channel itself belongs to the cell that is running.
            [run] = self._runs.values()
        if run is not None:
            run.accept(msg)
            return
        on_message = self.box.on_message
        if on_message is None:
            return
        budget = self._finished.get(parent_id or "") or self._background
        if budget.exhausted:
            return
        size = message_size(msg)
        if size > budget.room:
            budget.exhausted = True
            on_message(stream_message("stderr", budget.notice(), msg.get("parent_header")))
            return
        budget.spent += size
        on_message(msg)

    def route_stdin(self, msg: Message) -> None:
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
        inner = self.life.inner
        if inner is not None and inner.death is None:
            with contextlib.suppress(SandboxError):
                inner.send("stdin", "input_reply", {"value": value}, parent=request)


def _died_ename(died: SandboxDiedError) -> str:
    return {
        "oom": "SandboxOutOfMemory",
        "timeout": TIMEOUT_ENAME,
        "stopped": "KernelShutdown",
    }.get(died.reason, "SandboxRestarted")
