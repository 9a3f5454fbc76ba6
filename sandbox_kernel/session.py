"""Container lifecycle and the byte channel to the relay inside it.

A :class:`ContainerSession` owns one container: it creates (or claims a warm spare),
attaches to its stdin/stdout, starts it, reads frames on a thread, pings the relay,
and tears it all down (``launch``, ``open``, ``send``, ``cleanup``); teardown is safe
to call twice and never raises. Interrupts are INTERRUPT frames (``send``), never
signals to the container.

Why stdio: the container has no network (``network_mode=none``), no host directory
is writable from inside, and the engine may be remote (DOCKER_HOST over TCP+TLS or
SSH) or behind Docker Desktop's VM, where unix sockets in bind mounts do not cross.
The attach stream is the one channel every engine gives us.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import spec
from .config import SandboxConfig
from .containers import create_container, list_containers, resolve_image
from .engine import Engine, EngineError, as_engine
from .engine_address import API_VERSION
from .errors import ContainerStartError, DockerUnavailableError, ProtocolError, SandboxError
from .runtime import check_runtime
from .wire import FrameDecoder, Kind, encode

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

FrameHandler = Callable[[Kind, list[bytes]], None]
ClosedHandler = Callable[[str], None]

#: Seconds between PINGs: three per lease (``controller_timeout``, 6 s) is enough, and
#: each is a wake-up on both sides of every idle kernel (a class has twenty).
PING_INTERVAL = 2.0

#: Seconds of silence (no frame, not even a PONG) after which the relay counts as
#: stopped or frozen and the sandbox as dead.
UNRESPONSIVE_AFTER = 10.0
#: Bytes asked of each read of the attach stream. Below glibc's mmap threshold (128
#: KiB, see kernelapp.py) the buffer comes from the heap; a megabyte was a fresh mapping,
#: page-faulted in, on every read, even for a 300-byte reply (per 20 MB printed: 15%
#: of the outer kernel's CPU and 60% of its page faults).
_RECV_BYTES = 1 << 16


class ContainerSession:
    """One sandbox container and the frame channel to its relay.

    Args:
        config: the sandbox settings.
        client: the engine (see engine.connect_engine), or a connected Docker client.
        on_frame: called on the reader thread with every frame from the relay.
        on_closed: called once, on the reader thread, when the channel ends, with a
            reason (``"eof"`` or a description of the failure).
    """

    def __init__(
        self,
        config: SandboxConfig,
        client: Engine | docker.DockerClient,
        on_frame: FrameHandler,
        on_closed: ClosedHandler,
    ) -> None:
        self.config = config
        self.engine = as_engine(client)
        self.on_frame = on_frame
        self.on_closed = on_closed
        self.container_id: str | None = None
        self.claimed_spare = False
        #: The create request :meth:`launch` sent (``name``, ``body``), if it made one.
        self.sent: dict[str, Any] = {}
        self._socket: Any = None
        self._raw: Any = None
        self._first = b""  # the stream's bytes that came with the attach's answer
        self._send_lock = threading.Lock()
        self._closed = threading.Event()
        self._torn_down = False
        self._last_heard = time.monotonic()
        self._unresponsive = False
        self._launched_at = time.time()
        # stderr is attached too: the decoder keeps its end, which explains a relay
        # (or a runtime) that died before it could send a frame.
        self._decoder = FrameDecoder()
        self.image = resolve_image(self.engine, config.image)
        try:
            check_runtime(self.engine, config)
        except EngineError as err:
            raise DockerUnavailableError(f"The Docker engine failed: {err.reason}.") from err
        self.fingerprint = spec.fingerprint(config, self.image.id)

    @property
    def client(self) -> docker.DockerClient:
        """The Docker SDK's client for this engine (imports the SDK; not on the start's path)."""
        return self.engine.sdk

    # -- lifecycle ----------------------------------------------------------------------
    def launch(self, *, use_spare: bool = True, asking: threading.Event | None = None) -> None:
        """Get a running container (a claimed spare, else a new one), attached.

        The relay says nothing until :meth:`open`, so the caller can launch early (on
        any thread) and open once it is ready to receive. ``asking`` is set once only
        requests to the engine are left (a claim's few, or the create and start).

        Raises:
            ContainerStartError: the engine refused to create or start it.
            DockerUnavailableError: the engine failed meanwhile.
        """
        if asking is not None:
            # A claim is a few small requests: the caller's imports need not wait.
            asking.set()
        if use_spare and self.config.warm_spare and self._claim_spare():
            return
        container_id = create_container(
            self.engine,
            self.config,
            self.image.id,
            role="kernel",
            fingerprint=self.fingerprint,
            claim_timeout=self.config.startup_timeout,
            sent=self.sent,
        )
        self.container_id = container_id
        self._attach()
        self._launched_at = time.time()
        try:
            self.engine.start(container_id)
        except EngineError as err:
            self.cleanup()
            raise ContainerStartError(
                f"The sandbox container failed to start: {err.reason}."
            ) from err

    def kernel_request(self) -> dict[str, Any]:
        """The create request's body :meth:`launch` sends for a new container now."""
        return spec.create_body(
            self.config,
            self.image.id,
            version=API_VERSION,
            role="kernel",
            fingerprint_=self.fingerprint,
            claim_timeout=self.config.startup_timeout,
        )

    def adopt(self, container_id: str) -> None:
        """Be the session of a kernel container made and started without this client
        (the raw first request, see coldcache.py): attach to it, as :meth:`launch` does.

        Raises:
            ContainerStartError: it cannot be attached (it is removed).
        """
        self.container_id = container_id
        self._attach()
        self._launched_at = time.time()

    def _claim_spare(self) -> bool:
        spares = list_containers(
            self.engine, role="spare", fingerprint=self.fingerprint, status="running"
        )
        # Kernels of a class see the same pre-started spares: each tries them in its own
        # order, so that most first tries are not the same rename.
        random.shuffle(spares)
        for container in spares:
            name = container["Names"][0].lstrip("/") if container.get("Names") else ""
            if not name.startswith("sandbox-kernel-spare-"):
                continue
            claimed = spec.claimed_name(container["Id"])
            try:
                # The claim (see spec.claimed_name): exactly one kernel of a rush gets
                # it. By name, not id: a kernel that lists it later finds no such
                # container rather than a rename to make.
                self.engine.rename(name, claimed)
                # The name may meanwhile belong to a newer spare: claim what was renamed.
                self.container_id = str(self.engine.inspect(claimed)["Id"])
            except (EngineError, KeyError):
                continue
            try:
                self._attach()
            except SandboxError:
                self._torn_down = False
                self._closed.clear()
                continue
            # A spare still in its warm delay starts its kernel at the first frame: now,
            # while this process imports, not at OPEN (the relay ignores a PING before).
            self.send(Kind.PING)
            self.claimed_spare = True
            return True
        return False

    def _attach(self) -> None:
        assert self.container_id is not None
        try:
            self._socket, self._raw, self._first = self.engine.attach(self.container_id)
        except EngineError as err:
            self.cleanup()
            raise ContainerStartError(
                f"Could not attach to the sandbox container: {err.reason}."
            ) from err
        with contextlib.suppress(OSError, AttributeError):
            self._raw.settimeout(None)

    def open(self) -> None:
        """Start reading, tell the relay to begin (OPEN), and keep pinging it."""
        self._last_heard = time.monotonic()
        threading.Thread(target=self._read_loop, name="sandbox-reader", daemon=True).start()
        self.send(Kind.OPEN)
        threading.Thread(target=self._ping_loop, name="sandbox-ping", daemon=True).start()

    def send(self, kind: Kind, parts: list[bytes] | tuple[bytes, ...] = ()) -> None:
        """Send one frame to the relay; thread-safe. A closed channel drops it."""
        self._write(encode(kind, parts))

    def send_frames(self, frames: list[tuple[Kind, list[bytes]]]) -> None:
        """Send several frames in one write (see :meth:`send`)."""
        self._write(b"".join(encode(kind, parts) for kind, parts in frames))

    def _write(self, data: bytes) -> None:
        with self._send_lock:
            if self._closed.is_set() or self._raw is None:
                return
            try:
                self._raw.sendall(data)
            except OSError as err:
                log.debug("send to sandbox failed: %s", err)

    def cleanup(self, *, wait: bool = True) -> None:
        """Close the channel and remove the container. Safe to call twice; never raises.

        Args:
            wait: wait for the engine to remove the container. Without waiting the
                removal runs on a thread; if this process ends first, the relay's
                exit on SHUTDOWN/EOF and the container's AutoRemove finish the job.
        """
        if self._torn_down:
            return
        self.send(Kind.SHUTDOWN)
        self._torn_down = True
        self._closed.set()
        with contextlib.suppress(Exception):
            if self._raw is not None:
                self._raw.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            if self._socket is not None:
                self._socket.close()
        if self.container_id is not None:
            if wait:
                self._remove()
            else:
                threading.Thread(target=self._remove, name="sandbox-remove", daemon=True).start()

    def _remove(self) -> None:
        # v=True: the working directory is an anonymous volume (spec.workdir_mount);
        # AutoRemove deletes it, a forced removal only when asked.
        with contextlib.suppress(Exception):
            assert self.container_id is not None
            self.engine.remove(self.container_id)

    # -- threads ------------------------------------------------------------------------
    def stderr_tail(self) -> list[str]:
        """The last lines the container wrote on its stderr (none when it wrote none)."""
        text = bytes(self._decoder.stderr_tail).decode("utf-8", "replace")
        return [line.strip() for line in text.strip().splitlines() if line.strip()]

    def _read_loop(self) -> None:
        decoder = self._decoder
        reason = "eof"
        raw = self._raw
        try:
            if self._first:
                for kind, parts in decoder.feed(self._first):
                    self.on_frame(kind, parts)
            while True:
                data = raw.recv(_RECV_BYTES)
                if not data:
                    break
                self._last_heard = time.monotonic()
                for kind, parts in decoder.feed(data):
                    self.on_frame(kind, parts)
        except ProtocolError as err:
            reason = f"protocol error: {err}"
        except OSError as err:
            reason = "eof" if self._torn_down else f"connection lost: {err}"
        except Exception as err:  # a handler bug must not leave a zombie channel
            log.exception("sandbox frame handler failed")
            reason = f"internal error: {err}"
        if self._unresponsive:
            reason = "unresponsive"
        self._closed.set()
        self.on_closed(reason)

    def _ping_loop(self) -> None:
        while not self._closed.wait(PING_INTERVAL):
            self.send(Kind.PING)
            if time.monotonic() - self._last_heard > UNRESPONSIVE_AFTER:
                # The relay answers every PING at once, whatever the kernel does; a
                # silent relay was stopped or frozen. Closing the channel ends it.
                self._unresponsive = True
                with contextlib.suppress(Exception):
                    self._raw.shutdown(socket.SHUT_RDWR)
                return

    # -- measurements -------------------------------------------------------------------
    def inspect_state(self) -> dict[str, Any]:
        """The container's State from the engine ({} when it is gone)."""
        try:
            assert self.container_id is not None
            return dict(self.engine.inspect(self.container_id)["State"])
        except Exception:
            return {}

    def oom_killed(self) -> bool:
        """Whether the memory limit ended the container (not only a process in it).

        The container removes itself when it stops, so its State may be gone already:
        then the engine's event log, which outlives it, answers. Under gVisor this is how
        an out-of-memory cell ends: the host's OOM killer ends gVisor's kernel, the whole
        container. Never raises.
        """
        if self.inspect_state().get("OOMKilled"):
            return True
        try:
            events = self.client.api.events(
                since=int(self._launched_at) - 1,
                until=int(time.time()) + 1,
                filters={"container": self.container_id, "event": "oom"},
                decode=True,
            )
            return any(True for _ in events)
        except Exception:
            return False
