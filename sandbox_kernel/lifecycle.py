"""The sandbox's kernel from start to stop: the engine connection, the inner kernel in
its container (one start, however many callers wait for it), its replacement after a
death, the warm-up once it is ready, and the warm spare started beside it.

Split from :mod:`.sandbox`, which keeps the public API; each start publishes what it
learned there (``kernel_info``, the image, how the engine was reached). The cells run
on the kernel kept here through :mod:`.cellflow`, which receives every message it sends.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from .containers import image_reference, launch_spare, wake_spare
from .engine import Engine, connect_engine
from .errors import SandboxDiedError, SandboxError
from .inner import InnerKernel

if TYPE_CHECKING:
    from .folder_trips import FolderTrips
    from .sandbox import Sandbox

#: Seconds a stopping sandbox waits for its warm spare to finish starting.
SPARE_JOIN_TIMEOUT = 15.0


class Lifecycle:
    """One :class:`~.sandbox.Sandbox`'s inner kernel: started, replaced, stopped."""

    def __init__(self, box: Sandbox, trips: FolderTrips | None) -> None:
        self.box = box
        self.trips = trips
        self.engine: Engine | None = None
        self.inner: InnerKernel | None = None
        #: The policy and the meter being made after the last start (see _warm_up).
        self.warming: asyncio.Future[None] | None = None
        self.closed = False
        self._starting: asyncio.Task[None] | None = None
        self._spare_thread: threading.Thread | None = None

    async def start(self, *, anew: bool = False) -> None:
        """Start, or wait for the start under way (``anew``: a new one regardless)."""
        if anew:
            self._starting = None
        if self._starting is None or (self._starting.done() and self.inner is None):
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        box = self.box
        self.closed = False
        try:
            if self.engine is None:
                self.engine = await asyncio.to_thread(connect_engine, box.config)
            cells = box._cells
            inner = InnerKernel(
                box.config, self.engine, cells.route_iopub, cells.route_stdin, self._on_death
            )
            await inner.start()
        except SandboxError as err:
            box.startup_error = err
            raise
        box.startup_error = None
        box.engine_client = "stdlib" if self.engine and self.engine.socket else "docker-sdk"
        self.inner = inner
        box.kernel_info = inner.kernel_info
        box.inner_patches = dict(inner.hello.get("patches") or {})
        assert inner.container is not None and inner.container.container_id is not None
        if self.trips is not None:
            self.trips.container_started(self.engine, inner.container.container_id)
        box.image_ref = image_reference(inner.container.image)
        from .imagerecipe import image_packages  # here: the kernel's start does not need it

        box.packages = image_packages(inner.container.image.labels)
        box.image_id = str(inner.container.image.id)
        box.image_labels = dict(
            (inner.container.image.attrs.get("Config") or {}).get("Labels") or {}
        )
        self.warming = asyncio.ensure_future(
            asyncio.to_thread(self._warm_up, self.engine, inner.container.container_id)
        )
        if box.config.warm_spare:
            # On a thread, so the first cells need not wait; joined at stop, so that
            # no half-made container outlives this process.
            self._spare_thread = threading.Thread(
                target=launch_spare,
                args=(self.engine, box.config, inner.container.image.id),
                name="sandbox-spare",
                daemon=True,
            )
            self._spare_thread.start()

    def _warm_up(self, engine: Engine, container_id: str) -> None:
        """After the sandbox is ready: the policy and the usage meter, off the loop."""
        self.box.policy()
        self.box.metering.attach(engine, container_id, self.box.config)

    async def stop(self) -> None:
        self.closed = True
        await self.drop_inner()
        await asyncio.to_thread(self._join_spare)

    def _join_spare(self) -> None:
        if self._spare_thread is not None:
            self._spare_thread.join(SPARE_JOIN_TIMEOUT)

    async def drop_inner(self) -> None:
        inner, self.inner = self.inner, None
        self.box.metering.detach()
        if inner is not None:
            await inner.shutdown()

    def stop_now(self, *, wait: bool, successor: bool) -> None:
        self.closed = True
        if self.inner is not None:
            self.inner.shutdown_now(wait=wait)
        self._join_spare()
        container = self.inner.container if self.inner is not None else None
        if successor and self.box.config.warm_spare and container is not None and self.engine:
            wake_spare(self.engine, container.fingerprint)

    async def ensure_running(self) -> bool:
        """Start (or restart after a death) before a cell; True if state was lost."""
        if self.inner is not None and self.inner.death is None:
            return False
        if self.inner is not None and self.inner.death is not None:
            await self.replace_after_death()
            return True
        await self.start()
        return False

    async def replace_after_death(self) -> None:
        await self.drop_inner()
        self._starting = None
        if not self.closed:
            await self.start()

    def _on_death(self, died: SandboxDiedError) -> None:
        # A death between cells: the next cell starts a fresh sandbox and says why.
        # (Deaths while starting are start failures, reported as such.)
        if self.inner is not None and not self.box._cells.busy and not self.closed:
            self.box.notice = f"[sandbox-kernel] {died}"
