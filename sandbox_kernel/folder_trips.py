"""When the notebook's folder travels, for one :class:`~sandbox_kernel.Sandbox`.

:class:`~sandbox_kernel.folder.NotebookFolder` does each copy (on a worker thread: it
talks to the engine); :class:`FolderTrips` decides when, around the sandbox's cells:

* the copy in, started with each new container and not waited for there (the kernel
  answers kernel_info sooner); the first cell, or the first file written, waits;
* host changes, copied in before each cell;
* the outputs folder, looked at after each cell's code is done and copied back if it
  changed, while the cell's last outputs come in; the next cell and the shutdown
  wait for that copy, the cell's reply does not.

Each trip may bring a notice for the notebook (files refused, caps reached).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import SandboxError
from .folder import NotebookFolder
from .inner import InnerKernel

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)


class FolderTrips:
    """The notebook folder's copies in and out of one sandbox's containers."""

    def __init__(self, folder: NotebookFolder) -> None:
        self.folder = folder
        self._copying: asyncio.Future[str] | None = None
        self._pending_outputs: asyncio.Future[None] | None = None
        self._late_notice = ""

    def container_started(self, engine: Engine, container_id: str) -> None:
        """A new container: start copying the folder in (see :meth:`copied_in`)."""
        self._copying = asyncio.ensure_future(
            asyncio.to_thread(self.folder.start, engine, container_id)
        )

    async def copied_in(self, inner: InnerKernel | None) -> str:
        """Wait for the start's copy of the folder; its notice (once), or ''."""
        copying, self._copying = self._copying, None
        if copying is None:
            return ""
        notice = await copying
        move = self.folder.move_request()
        if move is not None and inner is not None:
            with contextlib.suppress(SandboxError):  # a dead sandbox says so at the cell
                await inner.request("shell", "execute_request", move)
        return notice

    async def before_cell(
        self, inner: InnerKernel | None, engine: Engine | None, container_id: str
    ) -> list[str]:
        """The start's copy done and the host's changes copied in; their notices."""
        notices = [await self.copied_in(inner)]
        # The scan is a few lstat calls (3 ms for 1,000 files): a thread hop would cost
        # more than it saves; the copy of changed files goes to a thread.
        changed = self.folder.changed_files()
        if changed:
            notices.append(
                await asyncio.to_thread(self.folder.send_files, engine, container_id, changed)
            )
        return notices

    def after_cell(
        self,
        inner: InnerKernel,
        engine: Engine | None,
        container_id: str | None,
        on_notice: Callable[[str], None] | None,
    ) -> None:
        """The cell's code is done, so are its files: look at the outputs folder now
        (copied back if it changed), while the last outputs and the idle status come
        in. The notice goes to ``on_notice``, or waits for :meth:`outputs_notice`."""
        if self.folder.results is None:
            return
        self._late_notice = ""
        self._pending_outputs = asyncio.ensure_future(
            self._late_outputs(inner, engine, container_id, on_notice)
        )

    async def outputs_copied(self) -> None:
        """Wait until the outputs folder of the last cell is copied back (if pending)."""
        pending, self._pending_outputs = self._pending_outputs, None
        if pending is not None:
            await pending

    async def outputs_notice(self) -> str:
        """:meth:`outputs_copied`, and the notice of a copy that had no one to tell."""
        await self.outputs_copied()
        notice, self._late_notice = self._late_notice, ""
        return notice

    async def _late_outputs(
        self,
        inner: InnerKernel,
        engine: Engine | None,
        container_id: str | None,
        on_notice: Callable[[str], None] | None,
    ) -> None:
        try:
            notice = await self._copy_outputs(inner, engine, container_id)
        except Exception:  # a copy that failed must not break the next cell
            log.exception("copying the outputs folder failed")
            return
        if notice and on_notice is not None:
            on_notice(notice + "\n")
        elif notice:
            self._late_notice = notice

    async def _copy_outputs(
        self, inner: InnerKernel, engine: Engine | None, container_id: str | None
    ) -> str:
        """Copy the outputs folder back if it changed; a notice, or ''.

        Whether it changed is asked of the relay (a fingerprint, see relay.py), which
        answers at once while the kernel is free for the next cell.
        """
        if container_id is None or engine is None or self.folder.outputs_path is None:
            return ""
        token = await inner.stat(self.folder.outputs_path)
        if inner.death is not None or not self.folder.outputs_changed(token):
            return ""  # a dead sandbox's files went with it
        return await asyncio.to_thread(self.folder.collect, engine, container_id)
