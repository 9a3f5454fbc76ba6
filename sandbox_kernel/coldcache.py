"""The cold start's first engine request, sent before the Docker SDK is imported.

A kernel with no warm spare to claim waits for its container, and the container
waited for the kernel process to import the Docker SDK and load its settings (about
0.2 s) before the engine was asked for it. So after each start that made a container,
the kernel process caches the create request the SDK sent (spec.create_body) in the
user's cache folder, keyed by what decides it; at the next start it sends that request
at once over the engine's unix socket (enginehttp.py), with a fresh name and the
labels that carry this process and the time, and starts the container. The kernel
then imports and starts as before, and keeps that container (prelaunch.take) only
when the request sent equals the one spec.py builds for its settings now, to the
same engine; anything else removes it and the normal start runs.

So the cache decides nothing about what the container is: spec.py does. A stale,
corrupt or edited entry costs one container made and removed, never a kernel in it.
It is read as untrusted data (bounded, validated, the user's own file, not writable
by others) and only for a local engine: DOCKER_HOST unset or ``unix://``. TCP, TLS,
SSH and contexts pointing elsewhere never get an entry, as the SDK alone talks to
them. Only the standard library is imported here, and little of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from . import __version__
from .engine import docker_config_file
from .enginehttp import EngineHTTPError, Pending, request, send

#: The engine API version the SDK is pinned to (engine_address.API_VERSION).
API = "/v1.41"
SCHEMA = 1
#: The largest entry read (a body is about 85 kB: the relay's and bootstrap's text).
MAX_ENTRY = 1 << 20
#: The most entries kept (one per configuration the user starts kernels with).
MAX_ENTRIES = 16
#: spec.LABEL_*: the labels read or made fresh here (tests/test_coldcache.py checks).
LABEL = "sandbox-kernel"
LABEL_ROLE = "sandbox-kernel.role"
LABEL_FINGERPRINT = "sandbox-kernel.fingerprint"
LABEL_CONTROLLER = "sandbox-kernel.controller"
LABEL_CREATED = "sandbox-kernel.created"
#: What the key holds of the environment: where the engine and the config files are.
_ENV_PREFIXES = ("DOCKER_", "JUPYTER", "XDG_CONFIG")
_ENV_NAMES = ("HOME", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONUSERBASE", "PYTHONNOUSERSITE")
_HEX = frozenset("0123456789abcdef")


def folder() -> str:
    """The cache folder: ``$XDG_CACHE_HOME/sandbox-kernel`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sandbox-kernel")


def key(overrides: Sequence[str]) -> str:
    """What decides the request, but for the config files' contents (an entry lists
    those it was made from, with their digests): this package's version and files,
    the interpreter, the kernel's ``--SandboxConfig`` flags and the environment that
    places the engine and the config files."""
    package = os.path.dirname(os.path.abspath(__file__))
    files = sorted(
        (e.name, e.stat().st_size, e.stat().st_mtime_ns)
        for e in os.scandir(package)
        if e.name.endswith((".py", ".json"))
    )
    env = sorted(
        (name, value)
        for name, value in os.environ.items()
        if name.startswith(_ENV_PREFIXES) or name in _ENV_NAMES
    )
    material = [SCHEMA, __version__, files, sys.executable, sys.prefix, list(overrides), env]
    return hashlib.sha256(json.dumps(material).encode()).hexdigest()


def _path(key_: str) -> str:
    return os.path.join(folder(), f"cold-{key_[:32]}.json")


def _digest(path: str) -> str | None:
    """The file's sha256, or None when there is no file there.

    Raises:
        OSError: it is not a regular file (an entry naming a FIFO must not hang the
            start), it is too large, or it cannot be read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        data = file.read(MAX_ENTRY + 1)
    if len(data) > MAX_ENTRY:
        raise OSError(f"{path} is too large to compare")
    return hashlib.sha256(data).hexdigest()


def store(
    overrides: Sequence[str],
    *,
    socket: str,
    host: str,
    config_files: Iterable[str],
    fingerprint: str,
    warm_spare: bool,
    body: dict[str, Any],
) -> None:
    """Keep the request the SDK just sent for the next start (atomically, mode 0600).

    Raises:
        OSError: the folder or the file cannot be written.
    """
    key_ = key(overrides)
    files = {path: _digest(path) for path in [*config_files, docker_config_file()]}
    entry = {
        "schema": SCHEMA,
        "key": key_,
        "socket": socket,
        "host": host,
        "files": files,
        "fingerprint": fingerprint,
        "warm_spare": warm_spare,
        "body": body,
    }
    os.makedirs(folder(), mode=0o700, exist_ok=True)
    target = _path(key_)
    temporary = f"{target}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(entry, file)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _prune()


def _prune() -> None:
    # Settings changed often leave entries no start will read again: keep the newest.
    with contextlib.suppress(OSError):
        entries = [e for e in os.scandir(folder()) if e.name.startswith("cold-")]
        entries.sort(key=lambda e: e.stat().st_mtime_ns, reverse=True)
        for old in entries[MAX_ENTRIES:]:
            os.unlink(old.path)


def load(overrides: Sequence[str]) -> dict[str, Any] | None:
    """The entry for this start, or None: none yet, another engine than the local
    socket, a config file changed since, or anything malformed."""
    engine = os.environ.get("DOCKER_HOST")
    if engine and not engine.startswith("unix://"):
        return None
    key_ = key(overrides)
    try:
        fd = os.open(_path(key_), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        # The user's own file, which no one else can have written.
        if (
            not stat.S_ISREG(info.st_mode)
            or info.st_uid != os.getuid()
            or info.st_mode & 0o022
            or info.st_size > MAX_ENTRY
        ):
            return None
        with os.fdopen(fd, "rb") as file:
            fd = -1
            entry = json.loads(file.read(MAX_ENTRY + 1))
        if not _valid(entry, key_):
            return None
        for path, digest in entry["files"].items():
            if _digest(path) != digest:
                return None
    except (OSError, ValueError):
        return None
    finally:
        if fd >= 0:
            os.close(fd)
    return dict(entry)


def _is_hex(text: object, length: int) -> bool:
    return isinstance(text, str) and len(text) == length and set(text) <= _HEX


def _valid(entry: Any, key_: str) -> bool:
    if not isinstance(entry, dict) or entry.get("schema") != SCHEMA or entry.get("key") != key_:
        return False
    socket, host, files, body = (entry.get(k) for k in ("socket", "host", "files", "body"))
    name_chars = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
    if not (
        isinstance(socket, str)
        and socket.startswith("/")
        and "\0" not in socket
        and len(socket) < 108  # sun_path
        and isinstance(host, str)
        and 0 < len(host) < 256
        and set(host) <= name_chars
        and _is_hex(entry.get("fingerprint"), 32)
        and isinstance(entry.get("warm_spare"), bool)
        and isinstance(files, dict)
        and len(files) <= 64
        and all(isinstance(p, str) and p.startswith("/") for p in files)
        and all(d is None or _is_hex(d, 64) for d in files.values())
        and isinstance(body, dict)
        and isinstance(body.get("Image"), str)
    ):
        return False
    labels = body.get("Labels")
    return (
        isinstance(labels, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
        and labels.get(LABEL) == "1"
        and labels.get(LABEL_ROLE) == "kernel"
        and labels.get(LABEL_FINGERPRINT) == entry["fingerprint"]
        and LABEL_CONTROLLER in labels
        and LABEL_CREATED in labels
    )


class RawLaunch:
    """A kernel container made and started from a cached request, not yet adopted."""

    def __init__(self, socket: str, container_id: str, body: dict[str, Any], start: Pending):
        self.socket = socket
        self.container_id = container_id
        #: The request's body, exactly as sent.
        self.body = body
        self._start = start

    def started(self, timeout: float = 30.0) -> None:
        """Wait for the engine's answer to the start.

        Raises:
            EngineHTTPError: it did not start.
        """
        status, data = self._start.answer(timeout)
        if status not in (204, 304):
            raise EngineHTTPError(f"the engine did not start it ({status}): {data[:200]!r}")

    def remove(self) -> None:
        """Remove the container (and its volumes). Never raises."""
        self._start.close()
        _remove(self.socket, self.container_id)


def launch(
    entry: dict[str, Any], *, asking: Callable[[], object], timeout: float = 10.0
) -> RawLaunch | None:
    """Create and start a kernel container from the entry; None when a warm spare of
    its configuration is waiting (claiming it is quicker, and it must not be wasted).

    ``asking`` is called before the create request leaves: the rest is waiting for
    the engine, which the kernel process's imports can overlap. (Not when a spare is
    claimed instead: that start goes on as without the cache.)

    Raises:
        EngineHTTPError: the engine could not be asked or refused (nothing is left).
    """
    socket = entry["socket"]
    body = dict(entry["body"])
    body["Labels"] = {
        **body["Labels"],
        LABEL_CONTROLLER: f"{entry['host']}:{os.getpid()}",
        LABEL_CREATED: str(int(time.time())),
    }
    name = f"sandbox-kernel-kernel-{os.urandom(6).hex()}"
    if entry["warm_spare"] and _spare_waiting(socket, entry["fingerprint"], timeout):
        return None
    asking()
    try:
        status, created = request(
            socket, "POST", f"{API}/containers/create?name={name}", body, timeout=timeout
        )
        if status != 201 or not isinstance(created, dict) or not _is_hex(created.get("Id"), 64):
            raise EngineHTTPError(f"the engine did not create it ({status}): {str(created)[:200]}")
        container_id = created["Id"]
        start = send(socket, "POST", f"{API}/containers/{container_id}/start")
    except EngineHTTPError:
        _remove(socket, name)  # made, if the answer was lost or odd: by its name
        raise
    return RawLaunch(socket, container_id, body, start)


def _remove(socket: str, container: str) -> None:
    # Should this fail: started, its relay's claim timeout ends it; never started,
    # `sandbox-kernel cleanup` removes it.
    with contextlib.suppress(EngineHTTPError):
        request(socket, "DELETE", f"{API}/containers/{container}?force=1&v=1")


def _spare_waiting(socket: str, fingerprint: str, timeout: float) -> bool:
    """Whether a claimable spare of this configuration runs (as session._claim_spare
    sees them: named sandbox-kernel-spare-...)."""
    filters = {
        "label": [f"{LABEL_ROLE}=spare", f"{LABEL_FINGERPRINT}={fingerprint}"],
        "status": ["running"],
    }
    target = f"{API}/containers/json?filters={_quote(json.dumps(filters))}"
    status, found = request(socket, "GET", target, timeout=timeout)
    if status != 200 or not isinstance(found, list):
        raise EngineHTTPError(f"the engine did not list containers ({status})")
    return any(
        isinstance(c, dict)
        and any(str(n).startswith("/sandbox-kernel-spare-") for n in c.get("Names") or [])
        for c in found
    )


def _quote(text: str) -> str:
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
    return "".join(chr(b) if b in safe else f"%{b:02X}" for b in text.encode())
