"""Messages from the sandbox's channels, on their way from the reader thread to their
waiters and handlers on the loop.

Each message is parsed on the session's reader thread within the bounds of
:mod:`.messages` rather than by ``Session.deserialize``: that checks a signature that
proves nothing here (see handshake.py), turns every date-like string into a datetime
and has no bounds. Then :class:`~.outputs.guard.OutputGuard` judges it. Anything wrong
with one message drops that message only. What passes reaches the loop in bursts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

from .config import SandboxConfig
from .errors import ProtocolError
from .messages import (
    DELIMITER,
    JsonLimits,
    MessageError,
    RateLimitedLog,
    decode_json,
    parse_message,
)
from .outputs.guard import OutputGuard
from .replies import Replies
from .wire import DROPPED_INFO, MAX_FRAME_BYTES, Kind

if TYPE_CHECKING:
    from .inner import Message, MessageHandler

log = logging.getLogger(__name__)


class Inbox:
    """Messages read and judged on the reader thread, dispatched on the loop.

    Args:
        config: the sandbox settings (the bounds of a message).
        guard: what judges every message.
        replies: what waits for replies and idle statuses.
        on_iopub: called on the loop with every IOPub message passed on.
        on_stdin: called on the loop with every ``input_request``.
    """

    def __init__(
        self,
        config: SandboxConfig,
        guard: OutputGuard,
        replies: Replies,
        on_iopub: MessageHandler,
        on_stdin: MessageHandler,
    ) -> None:
        self.guard = guard
        self._replies = replies
        self._on_iopub = on_iopub
        self._on_stdin = on_stdin
        self._limits = JsonLimits(config.max_message_nodes, config.max_message_depth)
        self._bad_messages = RateLimitedLog(log)
        self._inbox: list[tuple[Kind, Message]] = []
        self._inbox_lock = threading.Lock()

    def put(self, kind: Kind, parts: list[bytes], loop: asyncio.AbstractEventLoop) -> None:
        """Read one channel frame's message (on the reader thread) for the loop."""
        messages = self._deserialize(kind, parts)
        if messages:
            # Messages come in bursts (reply, result, idle): one loop wake-up each
            # burst, not one each message.
            with self._inbox_lock:
                wake = not self._inbox
                self._inbox.extend((kind, msg) for msg in messages)
            if wake:
                loop.call_soon_threadsafe(self._drain_inbox)

    def _deserialize(self, kind: Kind, parts: list[bytes]) -> list[Message]:
        """The message to dispatch (with a notice after it), or none."""
        try:
            msg = parse_message(parts, iopub=kind == Kind.IOPUB, limits=self._limits)
            if kind == Kind.IOPUB:
                judged, note = self.guard.iopub(msg)
            elif kind == Kind.STDIN:
                judged, note = self.guard.stdin(msg), ""
            else:
                judged, note = self.guard.reply(msg), ""
        except MessageError as err:
            self._bad_messages.warning("dropped a message from the sandbox: %s", err)
            if kind != Kind.IOPUB:
                return []
            return [
                _notice_message(
                    parts, f"[sandbox-kernel: a message from the sandbox was dropped: {err}]\n"
                )
            ]
        except Exception as err:  # never let a message end the reader thread
            self._bad_messages.warning("dropped a message the host could not judge: %r", err)
            return []
        out = [judged] if judged is not None else []
        if note:
            out.append(notice(msg.get("parent_header") or {}, note))
        return out

    def _drain_inbox(self) -> None:
        with self._inbox_lock:
            batch, self._inbox = self._inbox, []
        for kind, msg in batch:
            try:
                self._dispatch(kind, msg)
            except Exception:  # one message's handler failing must not lose the rest
                log.exception("sandbox-kernel: a message from the sandbox was not handled")

    def _dispatch(self, kind: Kind, msg: Message) -> None:
        parent_id = str((msg.get("parent_header") or {}).get("msg_id", ""))
        if kind == Kind.IOPUB:
            msg_type = msg["header"]["msg_type"]
            if msg_type in ("status", "execute_input"):
                # Read here, never passed on: the outer kernel publishes its own busy
                # and idle status and execute_input. The inner kernel's busy and
                # execute_input are not even sent (bootstrap.py; relay.py drops them
                # when that patch did not apply); its idle marks a request's end.
                if msg["content"].get("execution_state") == "idle":
                    self._replies.idled(parent_id)
                return
            self._on_iopub(msg)
        elif kind == Kind.STDIN:
            self._on_stdin(msg)
        else:
            self._replies.replied(parent_id, msg)


def notice(parent: dict[str, Any], text: str) -> Message:
    """A notice from the host, shown on stderr under the cell ``parent`` names."""
    return {
        "header": {"msg_type": "stream"},
        "parent_header": parent,
        "metadata": {},
        "content": {"name": "stderr", "text": text},
        "buffers": [],
        "wire_bytes": len(text),
    }


def dropped_notice(parts: list[bytes]) -> Message:
    """The notice for a frame the relay dropped (a DROPPED frame's ``parts``)."""
    _, size = DROPPED_INFO.unpack(parts[0])
    log.warning("dropped a %d-byte frame from the sandbox (over the limit)", size)
    text = (
        f"\n[sandbox-kernel: a message of {size / 2**20:.0f} MiB from the sandbox was "
        f"dropped: larger than the {MAX_FRAME_BYTES / 2**20:.0f} MiB limit]\n"
    )
    return notice({}, text)


def _notice_message(parts: list[bytes], text: str) -> Message:
    """A notice for a dropped message, under its cell when its parent can be read."""
    parent: dict[str, Any] = {}
    try:
        frames = parts[parts.index(DELIMITER) + 1 :]
        candidate = decode_json(frames[2]) if len(frames) > 2 and len(frames[2]) < 65536 else {}
        if isinstance(candidate.get("msg_id"), str):
            parent = {"msg_id": candidate["msg_id"]}
    except (ValueError, ProtocolError):
        pass
    return notice(parent, text)
