"""The public API: one persistent sandbox, executing code cell by cell.

::

    async with Sandbox(memory="1g", timeout=30) as sb:
        result = await sb.execute("import numpy as np; print(np.arange(3).sum())")
        print(result.success, result.stdout, result.usage)

:class:`Sandbox` is the whole pipeline after the frontend: validator -> container
session -> inner kernel -> outputs + usage. The Jupyter kernel (:mod:`.kernel`) is a
thin protocol layer over it; programs (an LLM agent running the strategy it just
wrote) use it directly. State persists between :meth:`Sandbox.execute` calls, as in
a notebook.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import SandboxConfig
from .errors import SandboxError
from .folder import NotebookFolder
from .folder_trips import FolderTrips
from .inner import Message

if TYPE_CHECKING:
    # Imported when first needed (see Lifecycle._warm_up): the kernel's process is
    # ready sooner without the validator's tables and the meter at start.
    from .usage import CellUsage, SessionUsage
    from .validator import Policy

from .cellflow import CellFlow
from .cellrun import ExecutionResult, InputHandler, OutputHandler, refusal
from .lifecycle import Lifecycle
from .metering import CellMetering


class Sandbox:
    """A persistent, locked-down Python kernel in a Docker container.

    Args:
        config: the settings; or pass them as keyword arguments
            (``Sandbox(image=..., memory="1g", timeout=30)``).
        on_message: called with every IOPub message that belongs to no running
            :meth:`execute` (widget and comm traffic, output of background threads).
        folder: a host folder to link, as the kernel links the notebook's: copied
            into the working directory (``workspace="copy"``) and receiving what the
            sandbox writes to its ``outputs_dir`` after each cell. None (the
            default): the sandbox sees no host file; use :meth:`write_file` and
            :meth:`read_file`.
    """

    #: The validator profile when the settings name none: programs running code an
    #: LLM just wrote get the original executor's ``strict`` judge; the kernel sets
    #: ``notebook`` for people's own notebooks.
    default_profile = "strict"

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        on_message: Callable[[Message], None] | None = None,
        folder: str | os.PathLike[str] | None = None,
        **settings: Any,
    ) -> None:
        self.config = config if config is not None else SandboxConfig(**settings)
        if config is not None and settings:
            self.config = SandboxConfig(config=config.config, **settings)
        self.on_message = on_message
        self.folder = (
            NotebookFolder(Path(folder).absolute(), self.config) if folder is not None else None
        )
        self._trips = FolderTrips(self.folder) if self.folder is not None else None
        self.metering = CellMetering()
        self.kernel_info: dict[str, Any] = {}
        # Which of the inner kernel's patches applied (see bootstrap.py), from HELLO.
        self.inner_patches: dict[str, str] = {}
        self.image_ref = ""
        self.packages: list[str] = []  # the image's name==version list, if it records one
        self.image_id = ""
        self.image_labels: dict[str, str] = {}
        self.startup_error: SandboxError | None = None
        #: How the start reached the engine: "stdlib" or "docker-sdk" (see engine.py).
        self.engine_client = ""
        self.notice = ""  # said before the next cell's output (e.g. why state was lost)
        self._policy: Policy | None = None
        # The kernel's life (start, death, stop), and the cells run on it.
        self._life = Lifecycle(self, self._trips)
        self._cells = CellFlow(self, self._life, self._trips)

    # -- lifecycle ----------------------------------------------------------------------
    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the container and wait for its kernel.

        Raises:
            SandboxError: the engine is unreachable, the image missing, the container
                failed to start or its kernel did not become ready.
        """
        await self._life.start()

    @property
    def usage_history(self) -> SessionUsage:
        """Every measured cell of this sandbox's lifetime (for ``%sandbox usage``)."""
        return self.metering.history

    async def stop(self) -> None:
        """Remove the container. Safe to call twice; never raises."""
        with contextlib.suppress(Exception):
            await self.outputs_copied()
        await self._life.stop()

    def stop_now(self, *, wait: bool = True, successor: bool = False) -> None:
        """Synchronous :meth:`stop` for atexit handlers and other threads.

        Args:
            wait: wait until the engine has removed the container (see
                :meth:`ContainerSession.cleanup`).
            successor: a new kernel process follows at once (a restart): the warm spare
                it will claim starts its kernel now rather than after its warm delay.
        """
        self._life.stop_now(wait=wait, successor=successor)

    async def restart(self) -> None:
        """A fresh container: every variable and file of the old one is gone."""
        await self.stop()
        await self._life.start(anew=True)

    @property
    def running(self) -> bool:
        inner = self._life.inner
        return inner is not None and inner.death is None

    @property
    def container_id(self) -> str | None:
        inner = self._life.inner
        if inner is None or inner.container is None:
            return None
        return inner.container.container_id

    def interrupt(self) -> None:
        """Interrupt the running cell (KeyboardInterrupt inside); thread-safe."""
        inner = self._life.inner
        if inner is not None:
            inner.interrupt()

    # -- execution ----------------------------------------------------------------------
    def policy(self) -> Policy:
        """The validator policy, from the administrator's settings only.

        Nothing in a cell can change it: it is built from the configuration once.
        """
        if self._policy is None:
            from .validator import Policy

            self._policy = Policy.from_config(self.config, profile=self.validation_profile)
        return self._policy

    @property
    def validation_profile(self) -> str:
        """The validator profile in force: the setting, else :attr:`default_profile`."""
        return self.config.validation_profile or self.default_profile

    async def execute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        on_output: OutputHandler | None = None,
        input_handler: InputHandler | None = None,
    ) -> ExecutionResult:
        """Validate and run one cell; state persists to the next call.

        Args:
            code: the cell's source.
            timeout: wall-clock limit in seconds (default: the ``timeout`` setting;
                0 means none). A cell past it ends with ``SandboxTimeout``.
            on_output: receives each output message while the cell runs.
            input_handler: answers ``input()``; without one ``input()`` raises
                StdinNotImplementedError in the sandbox.

        Returns:
            The result; sandbox failures (died, timed out) are reported in it, never
            raised, and leave a fresh sandbox for the next call.

        Raises:
            SandboxError: the sandbox cannot be started at all.
        """
        return await self.execute_request(
            code, timeout=timeout, on_output=on_output, input_handler=input_handler
        )

    async def execute_request(
        self,
        code: str,
        *,
        on_output: OutputHandler | None = None,
        input_handler: InputHandler | None = None,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
        timeout: float | None = None,
        msg_id: str | None = None,
        on_usage: Callable[[CellUsage], None] | None = None,
        collect_outputs: bool = True,
        on_submit: Callable[[], None] | None = None,
        execution_count: int | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> ExecutionResult:
        """:meth:`execute` with the kernel's plumbing: a Jupyter execute_request.

        Internal: the Jupyter kernel's call, whose arguments follow the protocol's
        and may change; programs use :meth:`execute`.

        Args:
            code, on_output, input_handler: as in :meth:`execute`.
            silent, store_history, user_expressions: as in ``execute_request``.
            timeout: wall-clock limit in seconds (default: the ``timeout`` setting;
                0 means none).
            msg_id: the id for the request to the inner kernel (the kernel passes its
                frontend request's id, so late outputs can be matched to the cell).
            on_usage: with a remote engine, receives the cell's usage when it arrives
                instead of the result waiting for it (``result.usage`` is then None).
            collect_outputs: gather stdout, stderr and outputs into the result (the
                kernel, which only relays them, turns this off).
            on_submit: called once the cell is on its way to the sandbox (the kernel
                announces the cell to its frontends while the sandbox runs it).
            execution_count: the number this cell has in ``In``/``Out`` (the kernel
                passes the number its frontends show: cells it answered itself, such
                as blocked ones, never reached the sandbox).
            on_notice: with a linked folder, the result does not wait for the copy of
                the outputs folder; a notice about it (files refused, caps) comes here.
                Without it the copy is done before the result, its notice in stderr.

        Returns:
            The result; sandbox failures (died, timed out) are reported in it, never
            raised, and leave a fresh sandbox for the next call.

        Raises:
            SandboxError: the sandbox cannot be started at all.
        """
        from .validator import validate

        verdict = validate(code, self.policy()) if self.config.validation != "off" else None
        if verdict is not None and verdict.blocked:
            return ExecutionResult(
                status="blocked",
                validation=verdict,
                error=refusal(verdict),
            )
        return await self._cells.run(
            code,
            verdict,
            on_output=on_output,
            input_handler=input_handler,
            silent=silent,
            store_history=store_history,
            user_expressions=user_expressions,
            timeout=timeout,
            msg_id=msg_id,
            on_usage=on_usage,
            collect_outputs=collect_outputs,
            on_submit=on_submit,
            execution_count=execution_count,
            on_notice=on_notice,
        )

    # -- other requests -----------------------------------------------------------------
    async def request(
        self,
        msg_type: str,
        content: dict[str, Any],
        *,
        channel: str = "shell",
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """A request/reply exchange with the inner kernel (complete, inspect, ...).

        Raises:
            SandboxError: the sandbox is not running or died meanwhile.
            asyncio.TimeoutError: no reply within ``timeout``.
        """
        await self._life.ensure_running()
        assert self._life.inner is not None
        reply = await asyncio.wait_for(
            self._life.inner.request(channel, msg_type, content), timeout
        )
        return dict(reply["content"])

    def send(
        self,
        msg_type: str,
        content: dict[str, Any],
        *,
        channel: str = "shell",
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
        msg_id: str | None = None,
    ) -> str | None:
        """Send a message that expects no awaited reply (comm traffic); returns its id."""
        inner = self._life.inner
        if inner is None or inner.death is not None:
            return None
        comm_id = content.get("comm_id")
        if msg_type == "comm_open" and isinstance(comm_id, str):
            inner.guard.comms.opened_by_frontend(comm_id, str(content.get("target_name")))
        elif msg_type == "comm_close" and isinstance(comm_id, str):
            inner.guard.comms.closed_by_frontend(comm_id)
        return inner.send(
            channel, msg_type, content, metadata=metadata, buffers=buffers, msg_id=msg_id
        )

    async def outputs_copied(self) -> None:
        """Wait until the outputs folder of the last cell is copied back (if it is pending)."""
        if self._trips is not None:
            await self._trips.outputs_copied()

    async def write_file(self, path: str, data: bytes) -> None:
        """Write a file into the sandbox's working directory (``path`` relative to it).

        Raises:
            ValueError: ``path`` is absolute or leaves the working directory.
            SandboxError: the sandbox is not running and cannot start.
            OSError: the engine refused the copy.
        """
        from .workspace import write_bytes

        await self._life.ensure_running()
        if self._trips is not None:
            copied = await self._trips.copied_in(self._life.inner)
            self.notice = "\n".join(filter(None, [self.notice, copied]))
        engine = self._life.engine
        assert self.container_id is not None and engine is not None
        base = self.folder.subdir if self.folder is not None else ""
        await asyncio.to_thread(
            write_bytes, engine, self.container_id, self.config, path, bytes(data), base
        )

    async def read_file(self, path: str, *, limit: int | None = None) -> bytes:
        """A regular file of the sandbox's working directory (``path`` relative to it).

        Args:
            limit: most bytes to accept (default: the ``outputs_max_cell_size`` setting).

        Raises:
            ValueError: ``path`` is absolute or leaves the working directory.
            FileNotFoundError: no regular file of that name (symlinks are not followed).
            OSError: larger than ``limit``, or the engine failed.
        """
        from .config import parse_size
        from .results import read_bytes

        await self._life.ensure_running()
        engine = self._life.engine
        assert self.container_id is not None and engine is not None
        cap = parse_size(self.config.outputs_max_cell_size) if limit is None else limit
        base = self.folder.subdir if self.folder is not None else ""
        return await asyncio.to_thread(read_bytes, engine, self.container_id, path, cap, base)

    def usage_snapshot(self) -> dict[str, Any]:
        """Current container usage, for ``usage_request`` (thread-safe, may block briefly)."""
        return self.metering.snapshot()
