"""The first answers of the kernel in a newly opened container, and what their absence says.

The relay says HELLO first, with the key of the kernel inside; then the kernel is ready
once a ``kernel_info_request`` has its reply and IOPub is proven live. A start that
fails says why in one sentence, quoting what the kernel and its container last said.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from jupyter_client.session import Session

from .errors import KernelNotReadyError, ProtocolError, SandboxDiedError
from .messages import decode_json
from .replies import Replies, consume_exception
from .seams import unsigned_session


class Handshake:
    """One opened container's first answers, awaited on ``loop``.

    ``hello`` resolves with the relay's HELLO, ``iopub_live`` at the first IOPub frame;
    the reader thread reports both (:meth:`heard_hello`, :meth:`heard_iopub`).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.hello: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.iopub_live: asyncio.Future[None] = loop.create_future()
        self._iopub_heard = False

    def heard_hello(self, parts: list[bytes]) -> None:
        """The relay's HELLO frame (on the reader thread).

        Raises:
            ProtocolError: it names no key.
        """
        hello = decode_json(parts[0]) if parts else {}
        if not isinstance(hello.get("key"), str):
            raise ProtocolError("HELLO without a key")
        self._loop.call_soon_threadsafe(self._resolve_hello, hello)

    def heard_iopub(self) -> None:
        """An IOPub frame came (on the reader thread)."""
        if not self._iopub_heard:
            self._iopub_heard = True
            self._loop.call_soon_threadsafe(_resolve, self.iopub_live)

    def _resolve_hello(self, hello: dict[str, Any]) -> None:
        if not self.hello.done():
            self.hello.set_result(hello)

    def fail(self, error: SandboxDiedError) -> None:
        """The sandbox died: a HELLO still awaited raises ``error``."""
        if not self.hello.done():
            self.hello.set_exception(error)
            self.hello.add_done_callback(consume_exception)

    async def ready(
        self,
        ask: Callable[[], str],
        replies: Replies,
        death: Callable[[], SandboxDiedError | None],
    ) -> dict[str, Any]:
        """Ask (``ask`` sends a ``kernel_info_request``, its id) until the kernel is
        ready; the content of its ``kernel_info_reply``.

        Raises:
            SandboxDiedError: the sandbox died meanwhile (``death``).
        """
        # The first kernel_info reply proves the shell socket works; an IOPub status
        # for one of our requests proves the subscription is live (the slow joiner).
        # Any IOPub message proves it too, and often comes first: ipykernel welcomes a
        # new subscriber, and the idle of a request sent before the subscription was
        # through is lost (waiting for it cost a whole round of this loop).
        while True:
            msg_id = ask()
            idle = replies.idle_future(msg_id)
            try:
                reply = await asyncio.wait_for(asyncio.shield(replies.reply_future(msg_id)), 0.5)
                done, _ = await asyncio.wait(
                    {idle, self.iopub_live}, timeout=0.3, return_when=asyncio.FIRST_COMPLETED
                )
                if done:
                    replies.drop_idle(msg_id)
                    content: dict[str, Any] = reply["content"]
                    return content
                raise asyncio.TimeoutError
            except asyncio.TimeoutError:
                replies.drop(msg_id)
                died = death()
                if died is not None:
                    raise died from None


def client_session(hello: dict[str, Any]) -> Session:
    """The session that speaks to the kernel HELLO announced."""
    key = hello["key"].encode()
    scheme = hello.get("signature_scheme", "hmac-sha256")
    # The relay announces the inner kernel's key (today none: a signature on either
    # side would only prove a message was made inside the container, that is by the
    # sandboxed code itself). What comes back is never checked against a key; every
    # message is parsed as hostile input instead (see inbox.py).
    return (
        Session(key=key, signature_scheme=scheme, username="sandbox-kernel")
        if key
        else unsigned_session(scheme, "sandbox-kernel")
    )


def not_ready_error(
    what: str, death: SandboxDiedError | None, words: list[str], image: str
) -> KernelNotReadyError:
    """Why the kernel in ``image`` did not start: ``what`` it did (and the ``death`` that
    ended it), quoting its last ``words`` when it said any."""
    if words:
        # What it said beats any guess of ours: quote it.
        return KernelNotReadyError(
            f"The kernel inside the sandbox {what}; its last words: {' | '.join(words)}"
        )
    if death is not None:
        what += f" without a word ({str(death).rstrip('.')})"
    return KernelNotReadyError(
        f"The kernel inside the sandbox {what}. "
        f"Does the image {image!r} have python3 with ipykernel?"
    )


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
