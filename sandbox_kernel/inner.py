"""The Jupyter-protocol client of the IPython kernel inside the container.

:class:`InnerKernel` runs one :class:`~sandbox_kernel.session.ContainerSession`, speaks to
the inner kernel with the key the relay announces in its HELLO frame (none: see
relay.py; the outer kernel's key never enters the container), and turns replies into
awaitables. Frames arrive on the session's reader thread and are handed to the asyncio
loop the client was started on. Its parts: :mod:`.handshake` (the kernel's first
answers), :mod:`.replies` (what it waits for), :mod:`.inbox` (messages from inside,
read and routed) and :mod:`.deaths` (why the sandbox died).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jupyter_client.session import Session

from . import prelaunch
from .config import SandboxConfig
from .deaths import explain_death
from .engine import Engine, as_engine
from .errors import SandboxDiedError, SandboxError
from .handshake import Handshake, client_session, not_ready_error
from .inbox import Inbox, dropped_notice
from .messages import decode_json
from .outputs.guard import OutputGuard
from .replies import Replies
from .session import ContainerSession
from .wire import Kind

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

Message = dict[str, Any]
MessageHandler = Callable[[Message], None]

#: Seconds a claimed warm spare's relay may take to say HELLO before a new container is
#: used (see InnerKernel._open_and_wait).
SPARE_ANSWER_TIMEOUT = 5.0

_CHANNEL_KINDS = {"shell": Kind.SHELL, "control": Kind.CONTROL, "stdin": Kind.STDIN}


class InnerKernel:
    """A started container and the kernel in it, spoken to over the relay.

    Args:
        config: the sandbox settings.
        client: the engine (engine.connect_engine), or a connected Docker client.
        on_iopub: called on the loop with every IOPub message (deserialized).
        on_stdin: called on the loop with every ``input_request``.
        on_death: called on the loop once when the kernel or container ends, with
            the :class:`SandboxDiedError` that explains it.
    """

    def __init__(
        self,
        config: SandboxConfig,
        client: Engine | docker.DockerClient,
        on_iopub: MessageHandler,
        on_stdin: MessageHandler,
        on_death: Callable[[SandboxDiedError], None],
    ) -> None:
        self.config = config
        self.client = as_engine(client)
        self.on_iopub = on_iopub
        self.on_stdin = on_stdin
        self.on_death = on_death
        self.session: Session | None = None
        self.hello: dict[str, Any] = {}
        self.kernel_info: dict[str, Any] = {}
        self.log_tail = bytearray()
        self.death: SandboxDiedError | None = None
        self._exit_status: dict[str, Any] | None = None
        self._dying = False
        self._stopping = False  # our own teardown began: a death now is no accident
        self._loop: asyncio.AbstractEventLoop | None = None
        self._replies = Replies()
        self._handshake: Handshake | None = None  # the current container's
        self.container: ContainerSession | None = None
        self._generation = 0
        self.guard = OutputGuard(
            trust_scripts=config.allow_scripts_in_output,
            comm_targets=tuple(config.allowed_comm_targets),
            widget_modules=tuple(config.allowed_widget_modules),
        )
        self._inbox = Inbox(config, self.guard, self._replies, on_iopub, on_stdin)

    # -- start --------------------------------------------------------------------------
    async def start(self) -> None:
        """Launch the container, then wait until the kernel inside answers.

        A claimed warm spare that does not answer quickly is dropped for a new
        container: spares are an optimisation, never a reason to fail.

        Raises:
            SandboxError: the engine, the image or the container failed, or the kernel
                did not become ready within ``startup_timeout`` (KernelNotReadyError).
        """
        self._loop = self._replies.loop = asyncio.get_running_loop()
        # The kernel process may have launched it already, while it imported (prelaunch).
        early = await asyncio.to_thread(prelaunch.take, self.config, self.client)
        self.container = await asyncio.to_thread(self._make_container, early)
        if early is None:
            await asyncio.to_thread(self.container.launch)
            prelaunch.remember(self.container)  # for the next start's first request
        if self.container.claimed_spare:
            try:
                await self._open_and_wait(
                    self.config.startup_timeout,
                    hello_timeout=min(SPARE_ANSWER_TIMEOUT, self.config.startup_timeout),
                )
                return
            except SandboxError as err:
                log.info("warm spare did not answer (%s); starting a new container", err)
                old, self.container = self.container, await asyncio.to_thread(self._make_container)
                await asyncio.to_thread(old.cleanup)
                await asyncio.to_thread(self.container.launch, use_spare=False)
        await self._open_and_wait(self.config.startup_timeout)

    async def _open_and_wait(self, timeout: float, *, hello_timeout: float | None = None) -> None:
        """Open the channel and wait for the kernel's first answer.

        ``hello_timeout``: seconds the relay may take to say HELLO (a claimed spare's
        relay is up already: silence means it is broken); once it has, the kernel gets
        the whole ``timeout``, as a busy host (a class starting) may be slow to read
        what a healthy spare says, and a new container would only be slower.
        """
        assert self._loop is not None and self.container is not None
        handshake = self._handshake = Handshake(self._loop)
        self.container.open()
        waited = timeout
        try:
            if hello_timeout is not None:
                waited = hello_timeout
                await asyncio.wait_for(asyncio.shield(handshake.hello), hello_timeout)
                waited = timeout
            await asyncio.wait_for(self._ready(handshake), timeout)
            return
        except asyncio.TimeoutError:
            what, death = f"did not become ready within {waited:.0f} s", None
        except SandboxDiedError as err:
            what, death = "ended while starting", err
        await asyncio.to_thread(self.container.cleanup)
        raise not_ready_error(what, death, self.last_words(), self.config.image)

    def last_words(self, lines: int = 3) -> list[str]:
        """The last lines the kernel and its container wrote on stderr, oldest first.

        The kernel's own output (LOG frames from the relay) comes first, then the
        container's stderr: the relay's traceback, or the runtime's, comes last.
        """
        kernel = self.log_tail.decode("utf-8", "replace").strip().splitlines()
        container = self.container.stderr_tail() if self.container is not None else []
        # The text comes from the sandbox: cut each line, it goes into one sentence.
        return [line.strip()[:300] for line in [*kernel, *container] if line.strip()][-lines:]

    def _make_container(self, early: ContainerSession | None = None) -> ContainerSession:
        # A replaced container (a spare that did not answer) must not report its
        # teardown as this kernel's death: only the current generation's frames count.
        self._generation += 1
        generation = self._generation
        self.death = None
        self._exit_status = None
        self._dying = False

        def on_frame(kind: Kind, parts: list[bytes]) -> None:
            if generation == self._generation:
                self._on_frame(kind, parts)

        def on_closed(reason: str) -> None:
            if generation == self._generation:
                self._on_closed(reason)

        if early is not None:
            early.on_frame, early.on_closed = on_frame, on_closed  # it reads from open() on
            return early
        return ContainerSession(self.config, self.client, on_frame, on_closed)

    async def _ready(self, handshake: Handshake) -> None:
        self.hello = await handshake.hello
        self.session = client_session(self.hello)
        self.kernel_info = await handshake.ready(
            lambda: self.send("shell", "kernel_info_request", {}), self._replies, lambda: self.death
        )

    # -- messages -----------------------------------------------------------------------
    def send(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any],
        *,
        parent: Message | None = None,
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
        msg_id: str | None = None,
    ) -> str:
        """Sign and send one message to the inner kernel; returns its msg_id.

        ``msg_id`` lets the outer kernel reuse its frontend request's id, so that the
        inner kernel's replies and outputs name a parent the outer kernel knows.

        Raises:
            SandboxDiedError: the sandbox is gone.
        """
        sent, frames = self._pack(channel, msg_type, content, parent, metadata, buffers, msg_id)
        assert self.container is not None
        self.container.send(_CHANNEL_KINDS[channel], frames)
        return sent

    def send_together(
        self, requests: list[tuple[str, str, dict[str, Any], str | None]]
    ) -> list[str]:
        """Send several ``(channel, msg_type, content, msg_id)`` messages in one write
        (one wake-up of the engine and the relay instead of one each); their ids.

        Raises:
            SandboxDiedError: the sandbox is gone.
        """
        frames = []
        ids = []
        for channel, msg_type, content, msg_id in requests:
            sent, parts = self._pack(channel, msg_type, content, None, None, None, msg_id)
            frames.append((_CHANNEL_KINDS[channel], parts))
            ids.append(sent)
        assert self.container is not None
        self.container.send_frames(frames)
        return ids

    def _pack(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any],
        parent: Message | None,
        metadata: dict[str, Any] | None,
        buffers: list[bytes] | None,
        msg_id: str | None,
    ) -> tuple[str, list[bytes]]:
        if self.death is not None:
            raise self.death
        if self.session is None or self.container is None:
            raise SandboxError("The sandbox is not started yet.")
        header = self.session.msg_header(msg_type)
        if msg_id:
            header["msg_id"] = msg_id
        msg = self.session.msg(msg_type, content, parent=parent, metadata=metadata, header=header)
        frames = self.session.serialize(msg)
        frames.extend(bytes(b) for b in buffers or [])
        sent = str(msg["header"]["msg_id"])
        if msg_type.endswith("_request"):
            # Only requests are answered: a storm of input_replies (a cell's flood of
            # input_requests, each refused) must not push out a request still waiting.
            self._replies.expect(sent)
        return sent, frames

    def new_request_id(self) -> str:
        """An id whose replies are kept until claimed, as those of sent requests are
        (for a reply the inner kernel sends under an id the host chose: see
        bootstrap.end_marker)."""
        assert self.session is not None
        msg_id = str(self.session.msg_id)
        self._replies.expect(msg_id)
        return msg_id

    async def request(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any],
        *,
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
    ) -> Message:
        """Send a request and wait for its reply message.

        Raises:
            SandboxDiedError: the sandbox ended before the reply came.
        """
        msg_id = self.send(channel, msg_type, content, metadata=metadata, buffers=buffers)
        return await self._replies.reply_future(msg_id)

    def reply_future(self, msg_id: str) -> asyncio.Future[Message]:
        """The future of the reply to ``msg_id`` (created on first use)."""
        return self._replies.reply_future(msg_id)

    def forget_reply(self, msg_id: str) -> None:
        """Stop waiting for a reply to ``msg_id`` (a reply that may never come); drop
        any reply to it kept unclaimed, and take no more."""
        self._replies.forget(msg_id)

    def unclaimed_reply(self, msg_id: str) -> Message | None:
        """A reply to ``msg_id`` that came after its future was resolved (or before one
        was made), if any: the latest."""
        return self._replies.unclaimed(msg_id)

    def idle_future(self, msg_id: str) -> asyncio.Future[None]:
        """Resolves when the kernel reports idle for request ``msg_id`` on IOPub."""
        return self._replies.idle_future(msg_id)

    async def stat(self, path: str, timeout: float = 10.0) -> str | None:
        """The relay's fingerprint of the files under ``path`` (see relay.py), or None
        when it does not answer in time or the sandbox is gone."""
        if self.container is None or self.death is not None:
            return None
        request = uuid.uuid4().hex.encode()
        future = self._replies.stat_future(request)
        try:
            self.container.send(Kind.STAT, [request, path.encode()])
            return await asyncio.wait_for(future, timeout) or None
        except asyncio.TimeoutError:
            return None
        finally:
            self._replies.drop_stat(request)

    def interrupt(self) -> None:
        """Interrupt the running cell (SIGINT to the kernel inside); thread-safe."""
        if self.container is not None:
            self.container.send(Kind.INTERRUPT)

    async def shutdown(self) -> None:
        """Remove the container. Safe to call twice; never raises."""
        self._stopping = True
        if self.container is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.container.cleanup)

    def shutdown_now(self, *, wait: bool = True) -> None:
        """Synchronous :meth:`shutdown`, for atexit and other threads."""
        self._stopping = True
        if self.container is not None:
            self.container.cleanup(wait=wait)

    # -- frames from the reader thread ---------------------------------------------------
    def _on_frame(self, kind: Kind, parts: list[bytes]) -> None:
        loop = self._loop
        if loop is None:
            return
        if kind == Kind.HELLO:
            if self._handshake is not None:
                self._handshake.heard_hello(parts)
        elif kind == Kind.LOG:
            for part in parts:
                self.log_tail += part
            del self.log_tail[: max(0, len(self.log_tail) - 8192)]
            log.debug("inner kernel: %s", b"".join(parts).decode("utf-8", "replace").rstrip())
        elif kind == Kind.STATED and len(parts) == 2:
            loop.call_soon_threadsafe(self._replies.stated, parts[0], parts[1])
        elif kind == Kind.DROPPED:
            loop.call_soon_threadsafe(self.on_iopub, dropped_notice(parts))
        elif kind == Kind.EXITED:
            self._exit_status = decode_json(parts[0]) if parts else {}
            self._on_closed("kernel exited")
        elif kind in (Kind.SHELL, Kind.CONTROL, Kind.STDIN, Kind.IOPUB):
            if kind == Kind.IOPUB and self._handshake is not None:
                self._handshake.heard_iopub()
            self._inbox.put(kind, parts, loop)

    def _on_closed(self, reason: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or self._dying:
            return
        self._dying = True  # the channel closing after EXITED says nothing new
        container = self.container
        error = explain_death(
            reason,
            self._exit_status,
            stopping=self._stopping,
            memory_bytes=self.config.memory_bytes,
            oom_killed=lambda: container is not None and container.oom_killed(),
        )
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._die, error)

    def _die(self, error: SandboxDiedError) -> None:
        if self.death is not None:
            return
        self.death = error
        self._replies.fail(error)
        if self._handshake is not None:
            self._handshake.fail(error)
        self.on_death(error)
