"""The remote source: the Docker stats API, plus OOM kills from the engine's events.

Used when the cgroup files are out of reach (a remote engine, Docker Desktop's VM, a
user who cannot read them). The engine makes at most one stats collection per second.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import SandboxError
from .model import Reading, limit_value

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)


def reading_from_stats(
    doc: Mapping[str, Any], oom_kills: int | None = None, requested_at: float = 0.0
) -> Reading:
    """A :class:`Reading` from one Docker stats document (cgroup v1 or v2 engine).

    Args:
        doc: the JSON of ``GET /containers/<id>/stats?stream=false&one-shot=true``.
        oom_kills: OOM kills counted from the engine's events (stats do not have them).
        requested_at: when the request for it was sent (``time.monotonic()``).

    Raises:
        SandboxError: the document is empty, which the engine sends for a stopped container.
    """
    if str(doc.get("read", "")).startswith("0001-") or not doc.get("memory_stats"):
        raise SandboxError("The sandbox container is not running; it has no usage to read.")
    memory = doc.get("memory_stats") or {}
    mstats = memory.get("stats") or {}
    cpu = doc.get("cpu_stats") or {}
    usage = int(memory.get("usage", 0))
    # v1 engines name the hierarchical counters total_*; v2 engines have only the plain ones.
    inactive = mstats.get("total_inactive_file", mstats.get("inactive_file", 0))
    if "anon" in mstats:  # cgroup v2 engine
        shmem: int | None = int(mstats.get("shmem", 0))
    else:
        shmem = int(mstats["total_shmem"]) if "total_shmem" in mstats else None
    hwm = memory.get("max_usage")
    networks = doc.get("networks") or {}
    pids_stats = doc.get("pids_stats") or {}
    return Reading(
        at=time.monotonic(),
        cpu_ns=int((cpu.get("cpu_usage") or {}).get("total_usage", 0)),
        memory_usage=usage,
        memory_working=max(usage - int(inactive), 0),
        memory_limit=limit_value(memory.get("limit")),
        memory_hwm=int(hwm) if hwm else None,
        pids=int(pids_stats.get("current", 0)),
        pids_hwm=None,
        pids_limit=limit_value(pids_stats.get("limit")),
        net_rx=sum(int(n.get("rx_bytes", 0)) for name, n in networks.items() if name != "lo"),
        net_tx=sum(int(n.get("tx_bytes", 0)) for name, n in networks.items() if name != "lo"),
        shmem=shmem,
        nr_throttled=int((cpu.get("throttling_data") or {}).get("throttled_periods", 0)),
        oom_kills=oom_kills,
        online_cpus=int(cpu.get("online_cpus") or 0),
        requested_at=requested_at,
        engine_time=str(doc.get("read", "")),
    )


class StatsReader:
    """Readings from the Docker stats API, plus OOM kills from the engine's events.

    Args:
        client: the Docker client.
        container_id: the full container id.
    """

    source = "docker-stats"
    peak_resettable = False

    def __init__(self, client: docker.DockerClient, container_id: str) -> None:
        self._api = client.api
        self._id = container_id
        # one-shot needs API 1.41 (Docker 20.10); older engines take two samples (~2 s).
        self._one_shot: bool | None = True
        import docker.utils  # imported with the client (not at the kernel's start)

        with contextlib.suppress(Exception):
            if docker.utils.version_lt(self._api.api_version, "1.41"):
                self._one_shot = None
        self.oom_kills = 0
        self._events: Any = None
        self._closed = False
        self._events_thread = threading.Thread(
            target=self._count_ooms, name=f"usage-oom-{container_id[:12]}", daemon=True
        )
        self._events_ready = threading.Event()
        self._events_thread.start()
        # Stats have no OOM counter; the engine's "oom" events are the only remote source.
        # Connecting takes milliseconds; bounded so that a slow engine cannot hold us.
        self._events_ready.wait(0.5)

    def _count_ooms(self) -> None:
        try:
            self._events = self._api.events(
                decode=True, filters={"container": self._id, "event": "oom"}
            )
        except Exception:
            log.debug("cannot follow the engine's oom events", exc_info=True)
            return
        finally:
            self._events_ready.set()
        if self._closed:  # closed while connecting
            with contextlib.suppress(Exception):
                self._events.close()
            return
        try:
            for event in self._events:
                if event.get("status") == "oom" or event.get("Action") == "oom":
                    self.oom_kills += 1
        except Exception:
            if not self._closed:
                log.debug("the engine's event stream ended", exc_info=True)

    def read(self) -> Reading:
        """One stats document as a reading (about 10 ms; up to 1 s if one was just taken).

        Raises:
            SandboxError: the engine failed or the container is not running.
        """
        import docker.errors
        import requests.exceptions

        requested = time.monotonic()
        try:
            doc = self._api.stats(self._id, stream=False, one_shot=self._one_shot)
        except (
            docker.errors.DockerException,
            requests.exceptions.RequestException,
            OSError,
        ) as err:
            raise SandboxError(
                f"The Docker engine did not report the sandbox's usage: {err}"
            ) from err
        try:
            return reading_from_stats(doc, self.oom_kills, requested)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise SandboxError(f"The Docker engine sent unreadable stats: {err!r}") from err

    def close(self) -> None:
        self._closed = True
        events, self._events = self._events, None
        if events is not None:
            with contextlib.suppress(Exception):
                events.close()
