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
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import spec
from .config import SandboxConfig
from .dockersdk import ensure_ssh_transport, import_sdk
from .engine import Engine, EngineError, Image, as_engine
from .engine_sdk import reason as _reason
from .errors import (
    ContainerStartError,
    DockerUnavailableError,
    ImageNotFoundError,
    ProtocolError,
    SandboxError,
)
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
#: Seconds a new warm spare waits before starting its kernel (unless claimed first),
#: so that booting it does not slow the session that just made it.
SPARE_WARM_DELAY = 3.0

#: Seconds of silence (no frame, not even a PONG) after which the relay counts as
#: stopped or frozen and the sandbox as dead.
UNRESPONSIVE_AFTER = 10.0
#: Bytes asked of each read of the attach stream. Below glibc's mmap threshold (128
#: KiB, see kernel.py) the buffer comes from the heap; a megabyte was a fresh mapping,
#: page-faulted in, on every read, even for a 300-byte reply (per 20 MB printed: 15%
#: of the outer kernel's CPU and 60% of its page faults).
_RECV_BYTES = 1 << 16


#: The engine API version we speak: Docker 20.10 and newer. Pinned, so that the
#: client never asks the engine before ``trust_env`` is off (see :func:`connect`).
API_VERSION = "1.41"


def engine_address(config: SandboxConfig) -> dict[str, Any]:
    """Where the engine is, as Docker client arguments, found the way the docker CLI does.

    The ``docker_host`` setting; else ``DOCKER_HOST`` (with ``DOCKER_TLS_VERIFY`` and
    ``DOCKER_CERT_PATH``); else the CLI's current context (``DOCKER_CONTEXT`` or
    ``currentContext`` in ``~/.docker/config.json``), which is how Docker Desktop on
    Linux, Colima, Rancher Desktop and remote contexts are reached; else the local
    socket.

    Raises:
        docker.errors.DockerException: the environment or the context is invalid.
    """
    if config.docker_host:
        return {"base_url": config.docker_host}
    import_sdk()
    import docker.context

    kwargs: dict[str, Any] = docker.utils.kwargs_from_env()
    if "base_url" in kwargs:
        return kwargs
    context = docker.context.ContextAPI.get_context(os.environ.get("DOCKER_CONTEXT") or None)
    if context is not None and context.Host:
        kwargs["base_url"] = context.Host
        if context.TLSConfig is not None:
            kwargs["tls"] = context.TLSConfig
    return kwargs


def local_socket(config: SandboxConfig) -> str | None:
    """The path of the engine's unix socket when the engine is local, else None
    (TCP, TLS, SSH: only the SDK speaks to those).

    Raises:
        docker.errors.DockerException: the environment or the context is invalid.
    """
    import_sdk()
    import docker.constants

    address = engine_address(config)
    base_url = str(address.get("base_url") or docker.constants.DEFAULT_UNIX_SOCKET)
    for scheme in ("unix://", "http+unix://"):
        if base_url.startswith(scheme) and "tls" not in address:
            return base_url.removeprefix(scheme)
    return None


def connect(config: SandboxConfig, timeout: float = 10.0) -> docker.DockerClient:
    """A client for the configured engine, checked with a ping.

    Raises:
        DockerUnavailableError: the engine is not running or not reachable.
    """
    import_sdk()
    import docker.errors
    import requests.exceptions

    where = config.docker_host or os.environ.get("DOCKER_HOST") or "the local socket"
    try:
        kwargs = engine_address(config)
        where = str(kwargs.get("base_url") or where)
        if where.startswith("ssh://"):
            ensure_ssh_transport()
        client = docker.DockerClient(version=API_VERSION, timeout=timeout, **kwargs)
        # The engine API is not the web: no HTTP proxy from the environment, and no
        # REQUESTS_CA_BUNDLE overriding the engine's own CA (DOCKER_CERT_PATH).
        client.api.trust_env = False
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as err:
        reason = _reason(err)
        hint = (
            " Check DOCKER_CERT_PATH and DOCKER_TLS_VERIFY."
            if "SSL" in reason or "TLS" in reason
            else " Start it (e.g. `sudo systemctl start docker` or `dockerd &`) or set DOCKER_HOST."
        )
        raise DockerUnavailableError(
            f"The Docker engine is not reachable at {where}: {reason}.{hint}"
        ) from err
    return client


def resolve_image(client: Engine | docker.DockerClient, image: str) -> Image:
    """The image (its id, attrs and labels), or a clear error naming the build command.

    Raises:
        ImageNotFoundError: the engine does not have the image.
        DockerUnavailableError: the engine failed while looking.
    """
    try:
        return as_engine(client).image(image)
    except EngineError as err:
        if err.status == 404:
            raise ImageNotFoundError(
                f"The sandbox image {image!r} is not on the Docker engine; "
                "build it with `sandbox-kernel image build`."
            ) from err
        raise DockerUnavailableError(f"The Docker engine failed: {err.reason}.") from err


def image_reference(image: Any) -> str:
    """``name@sha256:...`` when the image has a registry digest, else its content id."""
    digests = image.attrs.get("RepoDigests") or []
    return str(digests[0]) if digests else str(image.id)


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


def create_container(
    client: Engine | docker.DockerClient,
    config: SandboxConfig,
    image_id: str,
    *,
    role: str,
    fingerprint: str,
    claim_timeout: float,
    warm_delay: float = 0.0,
    name: str | None = None,
    extra_labels: dict[str, str] | None = None,
    sent: dict[str, Any] | None = None,
) -> str:
    """Create (not start) a sandbox container and return its id.

    ``sent``, when given, receives the request: ``name`` and ``body`` (see
    spec.create_body), which the kernel process caches for its next cold start.

    Raises:
        ContainerStartError: the engine refused the container.
    """
    if name is None:
        name = (
            spec.spare_name(fingerprint)
            if role == "spare"
            else f"sandbox-kernel-{role}-{uuid.uuid4().hex[:12]}"
        )
    body = spec.create_body(
        config,
        image_id,
        version=API_VERSION,
        role=role,
        fingerprint_=fingerprint,
        claim_timeout=claim_timeout,
        warm_delay=warm_delay,
        extra_labels=extra_labels,
    )
    try:
        created = as_engine(client).create(body, name)
    except EngineError as err:
        raise ContainerStartError(
            f"The engine refused to create the sandbox container: {err.reason}."
        ) from err
    if sent is not None:
        sent.update(name=name, body=body)
    return created


def launch_spare(
    client: Engine | docker.DockerClient, config: SandboxConfig, image_id: str
) -> None:
    """Start a warm spare for this configuration unless one is already waiting.

    The spare starts its kernel and waits, unattached, for a claim; it exits by
    itself after ``spare_idle_timeout`` seconds. Errors are logged, never raised:
    a spare is an optimisation.
    """
    try:
        engine = as_engine(client)
        fp = spec.fingerprint(config, image_id)
        if list_containers(engine, role="spare", fingerprint=fp, status="running", unclaimed=True):
            return
        container_id = create_container(
            engine,
            config,
            image_id,
            role="spare",
            fingerprint=fp,
            claim_timeout=config.spare_idle_timeout,
            warm_delay=SPARE_WARM_DELAY,
        )
        engine.start(container_id)
    except ContainerStartError as err:
        cause = err.__cause__
        if isinstance(cause, EngineError) and cause.status == 409:
            log.debug("a spare of this configuration is already there (made meanwhile)")
        else:
            log.info("no warm spare: %s", err)
    except Exception as err:
        log.info("no warm spare: %s", err)


def wake_spare(client: Engine | docker.DockerClient, fingerprint: str) -> None:
    """Have this configuration's unclaimed spare start its kernel now, not after its
    warm delay: a kernel restarting calls it on its way out, for its successor (see
    the relay's ``wait_warm``). Never raises: a spare is an optimisation."""
    with contextlib.suppress(Exception):
        as_engine(client).kill(spec.spare_name(fingerprint), "SIGUSR1")


def list_containers(
    client: Engine | docker.DockerClient,
    *,
    role: str | None = None,
    fingerprint: str | None = None,
    status: str | None = None,
    unclaimed: bool = False,
) -> list[dict[str, Any]]:
    """Sandbox containers on the engine, filtered by our labels."""
    label_filters = [spec.LABEL]
    if role:
        label_filters.append(f"{spec.LABEL_ROLE}={role}")
    if fingerprint:
        label_filters.append(f"{spec.LABEL_FINGERPRINT}={fingerprint}")
    filters: dict[str, Any] = {"label": label_filters}
    if status:
        filters["status"] = status
    found = as_engine(client).containers(filters)
    if unclaimed:
        found = [c for c in found if any("-spare-" in n for n in c.get("Names", []))]
    return list(found)


def remove_dangling_volumes(client: docker.DockerClient) -> int:
    """Remove the sandbox's tmpfs volumes that no container uses; how many went.

    ``AutoRemove`` and every removal here take a container's volumes with it, but a
    container removed by hand (``docker rm -f`` without ``-v``) or lost with a crashed
    engine leaves its anonymous volumes behind. They hold nothing (tmpfs, whose memory
    went with the mount), only their names.
    """
    from .gvisor import VOLUME_LABEL

    removed = 0
    try:
        volumes = client.api.volumes(filters={"label": VOLUME_LABEL, "dangling": True})
    except Exception:
        return 0
    for volume in (volumes or {}).get("Volumes") or []:
        with contextlib.suppress(Exception):  # taken by a container since: it stays
            client.api.remove_volume(volume["Name"])
            removed += 1
    return removed


def remove_orphans(
    client: Engine | docker.DockerClient,
    *,
    include_spares: bool = True,
    grace: float = 60.0,
    fingerprint: str | None = None,
) -> list[str]:
    """Remove sandbox containers whose controller is gone. Returns their names.

    A container is an orphan when its controller was a process on this host that no
    longer exists, or when it has not been running for ``grace`` seconds since it
    was made (a controller on another host, or one killed between create and start).
    Unclaimed warm spares go too, unless ``include_spares`` is false (they expire by
    themselves anyway). Pre-started ones (see prestart.py) are unclaimed spares too.
    ``fingerprint`` limits it to one configuration.
    """
    host = spec.controller_host()
    now = time.time()
    removed = []
    engine = as_engine(client)
    for container in list_containers(engine, fingerprint=fingerprint):
        labels = container.get("Labels") or {}
        names = container.get("Names") or [container["Id"][:12]]
        ctl_host, _, ctl_pid = spec.controller_of(names[0], labels).rpartition(":")
        unclaimed_spare = labels.get(spec.LABEL_ROLE) == "spare" and not any(
            "-claimed-" in n for n in names
        )
        controller_dead = ctl_host == host and ctl_pid.isdigit() and not _pid_alive(int(ctl_pid))
        stale = container.get("State") != "running" and now - container.get("Created", now) > grace
        orphan = include_spares if unclaimed_spare else controller_dead or stale
        if not orphan:
            continue
        with contextlib.suppress(Exception):
            engine.remove(container["Id"])
            removed.append(names[0].lstrip("/"))
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
