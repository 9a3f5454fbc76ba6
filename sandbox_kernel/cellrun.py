"""One cell's outputs on their way out: the output budget, collection, renaming, and
what the host itself writes into a cell (its notices, a refusal, an error, the result).

:class:`CellRun` receives every message a running cell causes (already judged by
:mod:`.outputs.guard`), charges it to the cell's :class:`OutputBudget`, collects what
the ``Sandbox`` API returns (:class:`ExecutionResult`) and hands each message to the
kernel. Split from :mod:`.sandbox`; the order of a cell's steps is :mod:`.cellflow`'s,
the sandbox's lifecycle :mod:`.lifecycle`'s.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import format_size
from .inner import Message

if TYPE_CHECKING:
    from .usage import CellUsage
    from .validator import ValidationResult

#: Receives each output message of a running cell: (msg_type, content, metadata,
#: buffers). Stream content may be packed JSON bytes, ready to send on as it is.
OutputHandler = Callable[[str, "dict[str, Any] | bytes", dict[str, Any], list[bytes]], None]
#: Answers ``input()`` in the sandbox: (prompt, password) -> the line typed.
InputHandler = Callable[[str, bool], Awaitable[str]]

#: The error name of a cell cut by the per-cell timeout (interrupted or restarted),
#: distinct from the user's own KeyboardInterrupt.
TIMEOUT_ENAME = "SandboxTimeout"

_OUTPUT_TYPES = {
    "stream",
    "display_data",
    "update_display_data",
    "execute_result",
    "error",
    "clear_output",
}


class OutputBudget:
    """What one cell, or the sandbox's output with no cell to charge, may still send.

    Every message counts as it came over the wire: content, metadata and binary
    buffers, of every type (streams, displays, errors, comms), also after the cell's
    reply (a thread the cell started, a widget it drew).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0
        self.exhausted = False

    @property
    def room(self) -> int:
        return max(0, self.limit - self.spent)

    def notice(self) -> str:
        return (
            f"\n[sandbox-kernel: output truncated: this cell's output passed the "
            f"{format_size(self.limit)} limit; the rest was dropped]\n"
        )


class CellRun:
    """Collects one cell's outputs, charging each message to the cell's budget.

    Stream content may arrive packed (JSON bytes, see :mod:`.messages`); it is parsed
    only when something needs its text (``collect``, or a cut at the cap).
    """

    def __init__(
        self,
        limit: int,
        on_output: OutputHandler | None,
        input_handler: InputHandler | None,
        collect: bool = True,
        max_file_size: str = "",
    ):
        self.budget = OutputBudget(limit)
        self.max_file_size = max_file_size
        self.on_output = on_output
        self.input_handler = input_handler
        self.asking: asyncio.Future[None] | None = None  # the one input() being answered
        self.collect = collect
        self.error_shown = False
        # Set when the cell ran past its timeout and was interrupted: its
        # KeyboardInterrupt is then reported as SandboxTimeout with this message.
        self.timed_out: str | None = None
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.outputs: list[dict[str, Any]] = []

    @property
    def truncated(self) -> bool:
        return self.budget.exhausted

    def accept(self, msg: Message) -> None:
        msg_type = msg["header"]["msg_type"]
        if msg_type == "error" and self.timed_out is not None:
            msg = {**msg, "content": timeout_error(msg["content"], self.timed_out)}
        elif msg_type == "error" and self.max_file_size:
            msg = {**msg, "content": file_size_error(msg["content"], self.max_file_size)}
        budget = self.budget
        size = message_size(msg)
        if budget.exhausted or size > budget.room:
            if msg_type == "stream" and not budget.exhausted and budget.room > 0:
                # Streams are cut at the limit, so the output up to it is shown.
                text, room = _unpacked(msg["content"]), budget.room
                budget.spent = budget.limit
                cut = {**text, "text": str(text.get("text", ""))[:room]}
                self._deliver({**msg, "content": cut}, "stream")
            elif msg_type == "error" and not self.error_shown:
                # The error's name and message are what the user needs; never lost.
                self._deliver({**msg, "content": _short_error(msg["content"])}, "error")
            self._truncate()
            return
        budget.spent += size
        self._deliver(msg, msg_type)

    def _deliver(self, msg: Message, msg_type: str) -> None:
        content = msg["content"]
        if msg_type == "stream":
            if self.collect:
                stream = _unpacked(content)
                target = self.stdout if stream.get("name") == "stdout" else self.stderr
                target.append(str(stream.get("text", "")))
        elif msg_type in _OUTPUT_TYPES and msg_type != "clear_output" and isinstance(content, dict):
            self.outputs.append({"output_type": msg_type, **content})
        if msg_type == "error":
            self.error_shown = True
        if self.on_output is not None:
            buffers = [bytes(b) for b in msg.get("buffers") or []]
            self.on_output(msg_type, content, msg.get("metadata") or {}, buffers)

    def _truncate(self) -> None:
        if self.budget.exhausted:
            return
        self.budget.exhausted = True
        notice = self.budget.notice()
        self.stderr.append(notice)
        if self.on_output is not None:
            self.on_output("stream", {"name": "stderr", "text": notice}, {}, [])


def timeout_error(content: Any, evalue: str) -> Any:
    """An interrupted cell's error, named for what interrupted it: the timeout.

    The user's own interrupt stays KeyboardInterrupt; the traceback keeps its frames
    (where the cell was when time ran out) and ends with the new name.
    """
    if not isinstance(content, dict) or content.get("ename") != "KeyboardInterrupt":
        return content
    frames = [str(line) for line in content.get("traceback") or []][:-1]
    return {
        **content,
        "ename": TIMEOUT_ENAME,
        "evalue": evalue,
        "traceback": [*frames, f"{TIMEOUT_ENAME}: {evalue}"],
    }


#: How Python words a write past RLIMIT_FSIZE (EFBIG; Python ignores SIGXFSZ).
_FILE_TOO_LARGE = "[Errno 27]"


def file_size_error(content: Any, max_file_size: str) -> Any:
    """An error from a write past the sandbox's file-size limit, naming the setting.

    On a plain kernel the same write succeeds, so "File too large" alone reads like a
    fault of the disk or the library; the sandbox's own limit is what said no.
    """
    if not isinstance(content, dict) or _FILE_TOO_LARGE not in str(content.get("evalue", "")):
        return content
    hint = (
        f"the sandbox lets no file grow past max_file_size ({max_file_size}); raise it "
        "with --SandboxConfig.max_file_size=2g (files in the working area also share "
        "the tmp_size space)"
    )
    lines = [str(line) for line in content.get("traceback") or []]
    return {
        **content,
        "evalue": f"{content.get('evalue')}: {hint}",
        "traceback": [*lines, f"sandbox-kernel: {hint}"],
    }


def message_size(msg: Message) -> int:
    """What a message costs the output budget: its bytes as they came over the wire."""
    size = msg.get("wire_bytes")
    if isinstance(size, int):
        return size
    content = msg["content"]
    if isinstance(content, bytes):
        return len(content)
    text = content.get("text")
    if isinstance(text, str) and len(content) <= 2:
        return len(text)
    return len(json.dumps(content, default=str))


def _short_error(content: dict[str, Any] | bytes) -> dict[str, Any]:
    fields = _unpacked(content)
    ename = str(fields.get("ename", "Error"))[:200]
    evalue = str(fields.get("evalue", ""))[:1000]
    return {"ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}


def _unpacked(content: dict[str, Any] | bytes) -> dict[str, Any]:
    if isinstance(content, dict):
        return content
    try:
        value = json.loads(content)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# -- the cell's result, and what the host writes into a cell ------------------------


@dataclass
class ErrorInfo:
    """The exception a cell raised (or the sandbox's own failure)."""

    ename: str
    evalue: str
    traceback: list[str] = field(default_factory=list)


@dataclass
class ExecutionResult:
    """Everything one :meth:`Sandbox.execute` produced.

    ``status`` is ``"ok"``, ``"error"`` (the code raised, or the sandbox failed) or
    ``"blocked"`` (the validator refused the cell; nothing ran).
    """

    status: str
    stdout: str = ""
    stderr: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    error: ErrorInfo | None = None
    validation: ValidationResult | None = None
    usage: CellUsage | None = None
    execution_count: int | None = None
    restarted: bool = False
    truncated: bool = False
    reply: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.status == "ok"


def stream_message(name: str, text: str, parent: dict[str, Any] | None = None) -> Message:
    return {
        "header": {"msg_type": "stream"},
        "parent_header": parent or {},
        "content": {"name": name, "text": text},
        "metadata": {},
        "buffers": [],
    }


def error_message(error: ErrorInfo) -> Message:
    return {
        "header": {"msg_type": "error"},
        "content": {
            "ename": error.ename,
            "evalue": error.evalue,
            "traceback": [f"{error.ename}: {error.evalue}"],
        },
        "metadata": {},
        "buffers": [],
    }


VALIDATION_MIME_TYPE = "application/vnd.sandbox-kernel.validation+json"


def refusal(verdict: ValidationResult) -> ErrorInfo:
    """The error of a refused cell: the answer for ``%pip install x`` or ``!wget URL``
    (so Run All stops where the package or file is missing, saying how to add it),
    else the findings' summary."""
    answer = verdict.answer()
    if answer is not None:  # an install or a download: what to do instead
        name, sentence = answer
        return ErrorInfo(name, sentence, [f"{name}: {sentence}"])
    report = verdict.format_report().splitlines()
    return ErrorInfo("SandboxValidationError", report[-1] if report else "blocked", report)


def validation_bundle(verdict: ValidationResult) -> dict[str, Any]:
    """The validator's verdict as a display bundle (text + structured JSON)."""
    return {"text/plain": verdict.format_report(), VALIDATION_MIME_TYPE: verdict.to_json()}


def validation_message(verdict: ValidationResult) -> Message:
    return {
        "header": {"msg_type": "display_data"},
        "content": {"data": validation_bundle(verdict), "metadata": {}, "transient": {}},
        "metadata": {},
        "buffers": [],
    }
