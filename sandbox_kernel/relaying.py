"""What the outer kernel passes through: requests the inner kernel answers as they are,
and IOPub messages published under the frontend's own parents.

:class:`RelayingKernel` is the base of :class:`~.kernel.SandboxKernel`, which adds what
is the outer kernel's own (the sandbox's life, execute requests, control). Completion,
inspection, history and comms go to the inner kernel unchanged; what comes back, and
what the sandbox sends outside a running cell (widgets, comms, background threads),
goes out under the request it belongs to.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from ipykernel.kernelbase import Kernel

from .errors import SandboxError
from .inner import Message
from .sandbox import Sandbox
from .seams import KernelSeams

#: Requests whose parents we remember, so late output (widgets, threads) finds its cell.
_PARENT_MEMORY = 512


class RelayingKernel(KernelSeams):
    """The requests and messages the outer kernel relays between frontend and sandbox."""

    #: Made by the subclass, which also sends its unsolicited messages to
    #: :meth:`_relay_unsolicited`.
    sandbox: Sandbox

    msg_types = [*Kernel.msg_types, "comm_open", "comm_msg", "comm_close"]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._parents: OrderedDict[str, Message] = OrderedDict()
        self._usage_shown: OrderedDict[str, dict[str, Any]] = OrderedDict()  # by request id

    # -- IOPub ------------------------------------------------------------------------------
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

    def _publish_usage(self, content: dict[str, Any], parent: Message) -> None:
        """Publish a cell's usage line and remember it (see :meth:`_relay_unsolicited`)."""
        self._publish("display_data", content, parent)
        self._usage_shown[parent["header"]["msg_id"]] = content
        while len(self._usage_shown) > _PARENT_MEMORY:
            self._usage_shown.popitem(last=False)

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

    # -- requests the inner kernel answers ---------------------------------------------------
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
