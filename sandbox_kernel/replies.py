"""What the client of the inner kernel waits for: the replies to its requests, the
IOPub idle status that ends each one, and the relay's answers to STAT frames.

A future is made on first use, by its waiter or by its message, whichever comes
first. A reply to one of our requests that comes when no future waits (a probe's reply
ahead of its reader, a second reply to a cell) is kept until claimed; replies to
requests we never sent are not. Both are bounded: code inside can send replies at will.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import SandboxDiedError

if TYPE_CHECKING:
    from .inner import Message

T = TypeVar("T")

#: Requests remembered as ours (so a reply to one is kept when nobody waits for it yet),
#: and replies kept unclaimed. Bounded: code inside can send replies at will.
_ASKED_KEPT = 256
_UNCLAIMED_KEPT = 32


class Replies:
    """The futures of the replies, idle statuses and STAT answers awaited, on the
    client's ``loop``."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._replies: dict[str, asyncio.Future[Message]] = {}
        # Requests sent and not forgotten, and replies to them that came when no future
        # waited (a probe's reply ahead of its reader, a second reply to a cell).
        self._asked: OrderedDict[str, None] = OrderedDict()
        self._unclaimed: OrderedDict[str, Message] = OrderedDict()
        self._idle: dict[str, asyncio.Future[None]] = {}
        self._stats: dict[bytes, asyncio.Future[str]] = {}

    def expect(self, msg_id: str) -> None:
        """Remember ``msg_id`` as a request of ours: a reply to it is kept until claimed."""
        self._asked[msg_id] = None
        if len(self._asked) > _ASKED_KEPT:
            self._asked.popitem(last=False)

    def reply_future(self, msg_id: str) -> asyncio.Future[Message]:
        """The future of the reply to ``msg_id`` (created on first use; done when a reply
        came first)."""
        kept = self._unclaimed.pop(msg_id, None)
        if kept is not None and msg_id not in self._replies:
            assert self.loop is not None
            done: asyncio.Future[Message] = self.loop.create_future()
            done.set_result(kept)
            return done
        return _future_for(self._replies, msg_id, self.loop)

    def idle_future(self, msg_id: str) -> asyncio.Future[None]:
        """Resolves when the kernel reports idle for request ``msg_id`` on IOPub."""
        return _future_for(self._idle, msg_id, self.loop)

    def forget(self, msg_id: str) -> None:
        """Stop waiting for a reply to ``msg_id`` (a reply that may never come); drop
        any reply to it kept unclaimed, and take no more."""
        future = self._replies.pop(msg_id, None)
        if future is not None and not future.done():
            future.cancel()
        self._unclaimed.pop(msg_id, None)
        self._asked.pop(msg_id, None)

    def unclaimed(self, msg_id: str) -> Message | None:
        """A reply to ``msg_id`` that came after its future was resolved (or before one
        was made), if any: the latest."""
        return self._unclaimed.pop(msg_id, None)

    def drop(self, msg_id: str) -> None:
        """Drop the futures of ``msg_id``'s reply and idle, as they are."""
        self._replies.pop(msg_id, None)
        self._idle.pop(msg_id, None)

    def drop_idle(self, msg_id: str) -> None:
        """Drop the future of ``msg_id``'s idle, as it is."""
        self._idle.pop(msg_id, None)

    def replied(self, parent_id: str, msg: Message) -> None:
        """A reply came to ``parent_id``: to its future, else kept when the request was ours."""
        future = self._replies.pop(parent_id, None)
        if future is not None and not future.done():
            future.set_result(msg)
        elif parent_id in self._asked:
            # Ours, but nobody waits (yet): kept, the latest one, for a while.
            self._unclaimed.pop(parent_id, None)
            self._unclaimed[parent_id] = msg
            if len(self._unclaimed) > _UNCLAIMED_KEPT:
                self._unclaimed.popitem(last=False)

    def idled(self, parent_id: str) -> None:
        """The kernel reported idle for ``parent_id``."""
        idle = self._idle.pop(parent_id, None)
        if idle is not None and not idle.done():
            idle.set_result(None)

    def stat_future(self, request: bytes) -> asyncio.Future[str]:
        """The future of the relay's answer to the STAT frame ``request`` (see relay.py)."""
        future = asyncio.get_running_loop().create_future()
        self._stats[request] = future
        return future

    def drop_stat(self, request: bytes) -> None:
        """Stop waiting for an answer to ``request``."""
        self._stats.pop(request, None)

    def stated(self, request: bytes, answer: bytes) -> None:
        """The relay answered the STAT frame ``request``."""
        future = self._stats.get(request)
        if future is not None and not future.done():
            future.set_result(answer.decode("ascii", "replace")[:128])

    def fail(self, error: SandboxDiedError) -> None:
        """The sandbox died: every future still waiting raises ``error`` (a STAT
        answer is empty)."""
        pending: list[asyncio.Future[Any]] = [*self._replies.values(), *self._idle.values()]
        for future in pending:
            if not future.done():
                future.set_exception(error)
                # Nobody may be waiting on an idle future; do not log it as unhandled.
                future.add_done_callback(consume_exception)
        self._replies.clear()
        self._idle.clear()
        for stat in self._stats.values():
            if not stat.done():
                stat.set_result("")  # no answer: the sandbox is gone


def _future_for(
    table: dict[str, asyncio.Future[T]], msg_id: str, loop: asyncio.AbstractEventLoop | None
) -> asyncio.Future[T]:
    """The future waiting for ``msg_id`` in ``table``, created on first use."""
    assert loop is not None
    future = table.get(msg_id)
    if future is None:
        future = table[msg_id] = loop.create_future()
    return future


def consume_exception(future: asyncio.Future[Any]) -> None:
    """Read a failed future's exception, so that asyncio does not log it as unhandled."""
    if not future.cancelled():
        future.exception()
