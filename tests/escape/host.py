"""Host side of the escape suite: bait planted on the host, and a pool of sandbox kernels.

The bait is what an escaped cell would find: canary files (in a temporary folder and in
the test user's home), a canary environment variable in the test process (the kernel is
started with that environment), a TCP listener on the host's 127.0.0.1 and a unix socket
listener. Every attack looks for it from inside the sandbox.

Kernels are real sandbox kernels started through jupyter_client, as in tests/harness.py,
with two extras the suite needs: every kernel's connection file is written into the bait
folder (so that the negative control that mounts that folder can find the outer kernel's
key), and the connection key is chosen before the start (so that the negative control
that leaks it through the environment can carry it).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

from harness import Kernel, KernelSpecs

#: Name of the environment variable planted in the test process before any kernel starts.
ENV_NAME = "SK_ESCAPE_HOST_SECRET"


class HostBait:
    """Canaries and listeners on the host; ``values`` fills the attacks' placeholders."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex
        self.dir = Path(tempfile.mkdtemp(prefix="sk-escape-"))
        # World-readable, so that the negative control's uid 1000 can read it once
        # mounted: the hardened sandbox must not see it whatever its permissions.
        self.dir.chmod(0o755)
        self.canary = self.dir / f"canary-{self.token}.txt"
        self.canary.write_text(f"SK-CANARY-{self.token}\n")
        self.canary.chmod(0o644)
        home = Path("/root") if os.geteuid() == 0 else Path.home()
        self.home_canary = home / f"sk-escape-canary-{self.token}.txt"
        self.home_canary.write_text(f"SK-CANARY-{self.token}\n")
        self.env_value = f"host-env-canary-{self.token}"
        self._old_env = os.environ.get(ENV_NAME)
        os.environ[ENV_NAME] = self.env_value
        self._stop = threading.Event()
        self.tcp_connections = 0
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.bind(("127.0.0.1", 0))
        self._tcp.listen(16)
        self._tcp.settimeout(0.2)
        self.port = self._tcp.getsockname()[1]
        self.unix_path = self.dir / f"host-{self.token[:8]}.sock"
        self._unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._unix.bind(str(self.unix_path))
        self.unix_path.chmod(0o777)
        self._unix.listen(16)
        self._unix.settimeout(0.2)
        self._threads = [
            threading.Thread(target=self._serve, args=(self._tcp, "tcp"), daemon=True),
            threading.Thread(target=self._serve, args=(self._unix, "unix"), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _serve(self, listener: socket.socket, kind: str) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                if kind == "tcp":
                    self.tcp_connections += 1
                with contextlib.suppress(OSError):
                    conn.sendall(f"HOST-{kind.upper()}-LISTENER {self.token}\n".encode())

    @property
    def values(self) -> dict[str, str]:
        return {
            "TOKEN": self.token,
            "CANARY_DIR": str(self.dir),
            "CANARY_FILE": str(self.canary),
            "HOME_CANARY": str(self.home_canary),
            "ENV_NAME": ENV_NAME,
            "ENV_VALUE": self.env_value,
            "PORT": str(self.port),
            "HOST_CWD": os.getcwd(),
        }

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self._tcp.close()
        self._unix.close()
        self.home_canary.unlink(missing_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        if self._old_env is None:
            os.environ.pop(ENV_NAME, None)
        else:
            os.environ[ENV_NAME] = self._old_env


def fill(template: Any, values: dict[str, str]) -> Any:
    """Replace ``@NAME@`` placeholders in a string, or in the strings of a list or dict."""
    if isinstance(template, str):
        for name, value in values.items():
            template = template.replace(f"@{name}@", value)
        return template
    if isinstance(template, list):
        return [fill(item, values) for item in template]
    if isinstance(template, dict):
        return {fill(k, values): fill(v, values) for k, v in template.items()}
    return template


class PooledKernel(Kernel):
    """A started kernel that also knows its connection key and how to stop."""

    key: str

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.kc.stop_channels()
        with contextlib.suppress(Exception):
            self.km.shutdown_kernel(now=False)


class KernelPool:
    """Sandbox kernels by settings: kept ones (hardened) and one weakened at a time.

    Starting a kernel costs about 1.5 s, so the suite shares one hardened kernel per
    distinct hardened configuration for the whole module, and the negative controls,
    grouped by weakened configuration, share one kernel per group.
    """

    def __init__(self, bait: HostBait) -> None:
        self.bait = bait
        self.specs = KernelSpecs()
        self._kept: dict[str, PooledKernel] = {}
        self._current: tuple[str, PooledKernel] | None = None
        self.started = 0

    def start(self, settings: dict[str, Any]) -> PooledKernel:
        key = secrets.token_hex(32)
        values = {**self.bait.values, "KEY": key}
        filled = fill(settings, values)
        name = self.specs.make(**filled)
        connection_file = self.bait.dir / f"kernel-{uuid.uuid4().hex[:8]}.json"
        km = KernelManager(
            kernel_name=name,
            kernel_spec_manager=self.specs.manager,
            connection_file=str(connection_file),
        )
        km.session.key = key.encode()
        km.start_kernel(env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if filled.get("mounts"):
            # Stand-in for a connection file readable on a folder shared with the
            # sandbox: jupyter_client writes it 0600 for the host user.
            connection_file.chmod(0o644)
        kc = km.client()
        kc.start_channels()
        kernel = PooledKernel(km, kc)
        kernel.key = key
        try:
            kc.wait_for_ready(timeout=90)
        except Exception:
            kernel.stop()
            raise
        self.started += 1
        return kernel

    @staticmethod
    def _cache_key(settings: dict[str, Any]) -> str:
        return json.dumps(settings, sort_keys=True)

    def kept(self, settings: dict[str, Any]) -> PooledKernel:
        """A kernel kept until the pool closes (the hardened ones)."""
        key = self._cache_key(settings)
        if key not in self._kept:
            self._kept[key] = self.start(settings)
        return self._kept[key]

    def current(self, settings: dict[str, Any]) -> PooledKernel:
        """The kernel for these settings; the previous one of another config is stopped."""
        key = self._cache_key(settings)
        if self._current is not None and self._current[0] == key:
            return self._current[1]
        self.release()
        kernel = self.start(settings)
        self._current = (key, kernel)
        return kernel

    def release(self) -> None:
        if self._current is not None:
            self._current[1].stop()
            self._current = None

    def close(self) -> None:
        self.release()
        for kernel in self._kept.values():
            kernel.stop()
        self._kept.clear()
        self.specs.cleanup()
