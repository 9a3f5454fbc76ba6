"""The Jupyter-protocol client of the IPython kernel inside the container.

:class:`InnerKernel` runs one :class:`~sandbox_kernel.session.ContainerSession`, speaks to
the inner kernel with the key the relay announces in its HELLO frame (none: see
relay.py; the outer kernel's key never enters the container), and turns replies into
awaitables. Frames arrive on the session's reader thread and are handed to the asyncio
loop the client was started on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from jupyter_client.session import Session

from . import prelaunch
from .config import SandboxConfig
from .engine import Engine, as_engine
from .errors import KernelNotReadyError, ProtocolError, SandboxDiedError, SandboxError
from .messages import (
    DELIMITER,
    JsonLimits,
    MessageError,
    RateLimitedLog,
    decode_json,
    parse_message,
)
from .outputs.guard import OutputGuard
from .seams import unsigned_session
from .session import UNRESPONSIVE_AFTER, ContainerSession
from .wire import DROPPED_INFO, MAX_FRAME_BYTES, Kind

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

Message = dict[str, Any]
T = TypeVar("T")
MessageHandler = Callable[[Message], None]

#: Seconds a claimed warm spare's relay may take to say HELLO before a new container is
#: used (see InnerKernel._open_and_wait).
SPARE_ANSWER_TIMEOUT = 5.0

#: Requests remembered as ours (so a reply to one is kept when nobody waits for it yet),
#: and replies kept unclaimed. Bounded: code inside can send replies at will.
_ASKED_KEPT = 256
_UNCLAIMED_KEPT = 32

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
        self._replies: dict[str, asyncio.Future[Message]] = {}
        # Requests sent and not forgotten, and replies to them that came when no future
        # waited (a probe's reply ahead of its reader, a second reply to a cell).
        self._asked: OrderedDict[str, None] = OrderedDict()
        self._unclaimed: OrderedDict[str, Message] = OrderedDict()
        self._idle: dict[str, asyncio.Future[None]] = {}
        self._hello: asyncio.Future[dict[str, Any]] | None = None
        # Resolved by the first IOPub frame from the current container (see _ready).
        self._iopub_live: asyncio.Future[None] | None = None
        self._iopub_heard = False
        self.container: ContainerSession | None = None
        self._generation = 0
        self._inbox: list[tuple[Kind, Message]] = []
        self._inbox_lock = threading.Lock()
        self._limits = JsonLimits(config.max_message_nodes, config.max_message_depth)
        self._bad_messages = RateLimitedLog(log)
        self.guard = OutputGuard(
            trust_scripts=config.allow_scripts_in_output,
            comm_targets=tuple(config.allowed_comm_targets),
            widget_modules=tuple(config.allowed_widget_modules),
        )
        self._stats: dict[bytes, asyncio.Future[str]] = {}

    # -- start --------------------------------------------------------------------------
    async def start(self) -> None:
        """Launch the container, then wait until the kernel inside answers.

        A claimed warm spare that does not answer quickly is dropped for a new
        container: spares are an optimisation, never a reason to fail.

        Raises:
            SandboxError: the engine, the image or the container failed, or the kernel
                did not become ready within ``startup_timeout`` (KernelNotReadyError).
        """
        self._loop = asyncio.get_running_loop()
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
        self._hello = self._loop.create_future()
        self._iopub_live = self._loop.create_future()
        self._iopub_heard = False
        self.container.open()
        waited = timeout
        try:
            if hello_timeout is not None:
                waited = hello_timeout
                await asyncio.wait_for(asyncio.shield(self._hello), hello_timeout)
                waited = timeout
            await asyncio.wait_for(self._ready(), timeout)
            return
        except asyncio.TimeoutError:
            what, death = f"did not become ready within {waited:.0f} s", None
        except SandboxDiedError as err:
            what, death = "ended while starting", err
        await asyncio.to_thread(self.container.cleanup)
        words = self.last_words()
        if words:
            # What it said beats any guess of ours: quote it.
            raise KernelNotReadyError(
                f"The kernel inside the sandbox {what}; its last words: {' | '.join(words)}"
            )
        if death is not None:
            what += f" without a word ({str(death).rstrip('.')})"
        raise KernelNotReadyError(
            f"The kernel inside the sandbox {what}. "
            f"Does the image {self.config.image!r} have python3 with ipykernel?"
        )

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

    async def _ready(self) -> None:
        assert self._hello is not None
        self.hello = await self._hello
        key = self.hello["key"].encode()
        scheme = self.hello.get("signature_scheme", "hmac-sha256")
        self.session = (
            Session(key=key, signature_scheme=scheme, username="sandbox-kernel")
            if key
            else unsigned_session(scheme, "sandbox-kernel")
        )
        # The relay announces the inner kernel's key (today none: a signature on
        # either side would only prove a message was made inside the container, that
        # is by the sandboxed code itself). What comes back is never checked against
        # a key; every message is parsed as hostile input instead (see _deserialize).
        # The first kernel_info reply proves the shell socket works; an IOPub status
        # for one of our requests proves the subscription is live (the slow joiner).
        # Any IOPub message proves it too, and often comes first: ipykernel welcomes a
        # new subscriber, and the idle of a request sent before the subscription was
        # through is lost (waiting for it cost a whole round of this loop).
        while True:
            msg_id = self.send("shell", "kernel_info_request", {})
            idle = self._idle_future(msg_id)
            try:
                reply = await asyncio.wait_for(asyncio.shield(self._reply_future(msg_id)), 0.5)
                self.kernel_info = reply["content"]
                live = self._iopub_live
                assert live is not None
                done, _ = await asyncio.wait(
                    {idle, live}, timeout=0.3, return_when=asyncio.FIRST_COMPLETED
                )
                if done:
                    self._idle.pop(msg_id, None)
                    return
                raise asyncio.TimeoutError
            except asyncio.TimeoutError:
                self._replies.pop(msg_id, None)
                self._idle.pop(msg_id, None)
                if self.death is not None:
                    raise self.death from None

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
            self._expect(sent)
        return sent, frames

    def _expect(self, msg_id: str) -> None:
        self._asked[msg_id] = None
        if len(self._asked) > _ASKED_KEPT:
            self._asked.popitem(last=False)

    def new_request_id(self) -> str:
        """An id whose replies are kept until claimed, as those of sent requests are
        (for a reply the inner kernel sends under an id the host chose: see
        bootstrap.end_marker)."""
        assert self.session is not None
        msg_id = str(self.session.msg_id)
        self._expect(msg_id)
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
        return await self._reply_future(msg_id)

    def _reply_future(self, msg_id: str) -> asyncio.Future[Message]:
        kept = self._unclaimed.pop(msg_id, None)
        if kept is not None and msg_id not in self._replies:
            assert self._loop is not None
            done: asyncio.Future[Message] = self._loop.create_future()
            done.set_result(kept)
            return done
        return _future_for(self._replies, msg_id, self._loop)

    def _idle_future(self, msg_id: str) -> asyncio.Future[None]:
        return _future_for(self._idle, msg_id, self._loop)

    def reply_future(self, msg_id: str) -> asyncio.Future[Message]:
        """The future of the reply to ``msg_id`` (created on first use)."""
        return self._reply_future(msg_id)

    def forget_reply(self, msg_id: str) -> None:
        """Stop waiting for a reply to ``msg_id`` (a reply that may never come); drop
        any reply to it kept unclaimed, and take no more."""
        future = self._replies.pop(msg_id, None)
        if future is not None and not future.done():
            future.cancel()
        self._unclaimed.pop(msg_id, None)
        self._asked.pop(msg_id, None)

    def unclaimed_reply(self, msg_id: str) -> Message | None:
        """A reply to ``msg_id`` that came after its future was resolved (or before one
        was made), if any: the latest."""
        return self._unclaimed.pop(msg_id, None)

    def idle_future(self, msg_id: str) -> asyncio.Future[None]:
        """Resolves when the kernel reports idle for request ``msg_id`` on IOPub."""
        return self._idle_future(msg_id)

    async def stat(self, path: str, timeout: float = 10.0) -> str | None:
        """The relay's fingerprint of the files under ``path`` (see relay.py), or None
        when it does not answer in time or the sandbox is gone."""
        if self.container is None or self.death is not None:
            return None
        request = uuid.uuid4().hex.encode()
        future = asyncio.get_running_loop().create_future()
        self._stats[request] = future
        try:
            self.container.send(Kind.STAT, [request, path.encode()])
            return await asyncio.wait_for(future, timeout) or None
        except asyncio.TimeoutError:
            return None
        finally:
            self._stats.pop(request, None)

    def _resolve_stat(self, request: bytes, answer: bytes) -> None:
        future = self._stats.get(request)
        if future is not None and not future.done():
            future.set_result(answer.decode("ascii", "replace")[:128])

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
            hello = decode_json(parts[0]) if parts else {}
            if not isinstance(hello.get("key"), str):
                raise ProtocolError("HELLO without a key")
            loop.call_soon_threadsafe(self._resolve_hello, hello)
        elif kind == Kind.LOG:
            for part in parts:
                self.log_tail += part
            del self.log_tail[: max(0, len(self.log_tail) - 8192)]
            log.debug("inner kernel: %s", b"".join(parts).decode("utf-8", "replace").rstrip())
        elif kind == Kind.STATED and len(parts) == 2:
            loop.call_soon_threadsafe(self._resolve_stat, parts[0], parts[1])
        elif kind == Kind.DROPPED:
            _, size = DROPPED_INFO.unpack(parts[0])
            log.warning("dropped a %d-byte frame from the sandbox (over the limit)", size)
            notice = (
                f"\n[sandbox-kernel: a message of {size / 2**20:.0f} MiB from the sandbox was "
                f"dropped: larger than the {MAX_FRAME_BYTES / 2**20:.0f} MiB limit]\n"
            )
            loop.call_soon_threadsafe(self.on_iopub, _stream({}, notice))
        elif kind == Kind.EXITED:
            self._exit_status = decode_json(parts[0]) if parts else {}
            self._on_closed("kernel exited")
        elif kind in (Kind.SHELL, Kind.CONTROL, Kind.STDIN, Kind.IOPUB):
            if kind == Kind.IOPUB and not self._iopub_heard and self._iopub_live is not None:
                self._iopub_heard = True
                loop.call_soon_threadsafe(_resolve, self._iopub_live)
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
        """The message to dispatch (with a notice after it), or none.

        Parsed here within the bounds of :mod:`.messages` rather than by
        ``Session.deserialize``: that checks a signature that proves nothing here (see
        :meth:`_ready`), turns every date-like string into a datetime and has no
        bounds. Then :class:`~.outputs.guard.OutputGuard` judges it. Anything wrong
        with one message drops that message only.
        """
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
            out.append(_stream(msg.get("parent_header") or {}, note))
        return out

    def _drain_inbox(self) -> None:
        with self._inbox_lock:
            batch, self._inbox = self._inbox, []
        for kind, msg in batch:
            try:
                self._dispatch(kind, msg)
            except Exception:  # one message's handler failing must not lose the rest
                log.exception("sandbox-kernel: a message from the sandbox was not handled")

    def _resolve_hello(self, hello: dict[str, Any]) -> None:
        if self._hello is not None and not self._hello.done():
            self._hello.set_result(hello)

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
                    idle = self._idle.pop(parent_id, None)
                    if idle is not None and not idle.done():
                        idle.set_result(None)
                return
            self.on_iopub(msg)
        elif kind == Kind.STDIN:
            self.on_stdin(msg)
        else:
            future = self._replies.pop(parent_id, None)
            if future is not None and not future.done():
                future.set_result(msg)
            elif parent_id in self._asked:
                # Ours, but nobody waits (yet): kept, the latest one, for a while.
                self._unclaimed.pop(parent_id, None)
                self._unclaimed[parent_id] = msg
                if len(self._unclaimed) > _UNCLAIMED_KEPT:
                    self._unclaimed.popitem(last=False)

    def _on_closed(self, reason: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or self._dying:
            return
        self._dying = True  # the channel closing after EXITED says nothing new
        error = self._explain_death(reason)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._die, error)

    def _explain_death(self, reason: str) -> SandboxDiedError:
        if self._stopping:
            # Our own teardown: the kernel is shutting down or restarting.
            return SandboxDiedError(
                "The kernel was shut down or restarted while this cell ran.", "stopped"
            )
        limit_mib = self.config.memory_bytes // (1024 * 1024)
        lost = "the sandbox was restarted and its state is lost"
        status = self._exit_status
        if status is None:
            if self.container is not None and self.container.oom_killed():
                return SandboxDiedError(
                    f"This cell exceeded the sandbox memory limit ({limit_mib} MiB); {lost}.",
                    "oom",
                )
            if reason == "unresponsive":
                return SandboxDiedError(
                    f"The sandbox stopped responding for {UNRESPONSIVE_AFTER:g} s (its container "
                    f"was paused or frozen); {lost}.",
                    "lost",
                )
            if reason.startswith(("connection lost", "protocol error", "internal error")):
                return SandboxDiedError(
                    f"The connection to the sandbox broke ({reason}); {lost}.", "lost"
                )
            return SandboxDiedError(
                f"The sandbox container was stopped from outside; {lost}.", "killed"
            )
        returncode = int(status.get("returncode", 0))
        if int(status.get("oom_kills", 0)) > 0:
            return SandboxDiedError(
                f"This cell exceeded the sandbox memory limit ({limit_mib} MiB); {lost}.", "oom"
            )
        if returncode < 0:
            import signal

            try:
                name = signal.Signals(-returncode).name
            except ValueError:
                name = f"signal {-returncode}"
            return SandboxDiedError(
                f"The kernel in the sandbox was killed by {name}; {lost}.", "killed"
            )
        return SandboxDiedError(
            f"The kernel in the sandbox exited on its own (exit code {returncode}); {lost}.",
            "exited",
        )

    def _die(self, error: SandboxDiedError) -> None:
        if self.death is not None:
            return
        self.death = error
        pending: list[asyncio.Future[Any]] = [*self._replies.values(), *self._idle.values()]
        for future in pending:
            if not future.done():
                future.set_exception(error)
                # Nobody may be waiting on an idle future; do not log it as unhandled.
                future.add_done_callback(_consume_exception)
        self._replies.clear()
        self._idle.clear()
        for stat in self._stats.values():
            if not stat.done():
                stat.set_result("")  # no answer: the sandbox is gone
        if self._hello is not None and not self._hello.done():
            self._hello.set_exception(error)
            self._hello.add_done_callback(_consume_exception)
        self.on_death(error)


def _stream(parent: dict[str, Any], text: str) -> Message:
    """A notice from the host, shown on stderr under the cell ``parent`` names."""
    return {
        "header": {"msg_type": "stream"},
        "parent_header": parent,
        "metadata": {},
        "content": {"name": "stderr", "text": text},
        "buffers": [],
        "wire_bytes": len(text),
    }


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
    return _stream(parent, text)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _future_for(
    table: dict[str, asyncio.Future[T]], msg_id: str, loop: asyncio.AbstractEventLoop | None
) -> asyncio.Future[T]:
    """The future waiting for ``msg_id`` in ``table``, created on first use."""
    assert loop is not None
    future = table.get(msg_id)
    if future is None:
        future = table[msg_id] = loop.create_future()
    return future


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
