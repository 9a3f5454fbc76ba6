"""The notebook's folder and the sandbox: copied in (:mod:`.workspace`), results out (:mod:`.results`).

:class:`NotebookFolder` is what :class:`~sandbox_kernel.Sandbox` calls at three moments:
when a sandbox starts (copy the folder in), before a cell (copy host changes in) and
after a cell (copy the outputs folder back). Each returns a notice for the notebook,
or ``''``. All of it talks to the engine, so it runs on a worker thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import SandboxConfig
from .results import Results
from .spec import WORKDIR
from .workspace import Workspace, WorkspaceScan

if TYPE_CHECKING:
    import docker

    from .engine import Engine


class NotebookFolder:
    """One host folder linked to the sandboxes of one kernel.

    Args:
        root: the host folder (the kernel's working directory).
        config: the settings: ``workspace`` (copy it in or not), ``outputs_dir``
            (the results door, empty for none) and their caps.
    """

    def __init__(self, root: Path, config: SandboxConfig) -> None:
        self.root = root
        self.workspace = Workspace(root, config) if config.workspace == "copy" else None
        self.results = Results(root, config) if config.outputs_dir else None
        self.per_cell = config.workspace_sync == "cell"

    @property
    def subdir(self) -> str:
        """The notebook's folder relative to the copy's top ('' when it is the top)."""
        return self.workspace.subdir if self.workspace is not None else ""

    @property
    def inside(self) -> str:
        """The notebook's folder in the sandbox (a repository's copy puts it lower)."""
        return self.workspace.inside if self.workspace is not None else WORKDIR

    def move_request(self) -> dict[str, Any] | None:
        """After :meth:`start`: the silent execute_request that moves the kernel inside
        to the notebook's place in a repository's copy (it started in the copy's top),
        or None when it is there already. Silent: no history, no execution count."""
        if self.inside == WORKDIR:
            return None
        return {
            "code": f"__import__('os').chdir({self.inside!r})",
            "silent": True,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": False,
        }

    def start(self, client: Engine | docker.DockerClient, container_id: str) -> str:
        notice = ""
        if self.workspace is not None:
            notice = self.workspace.start(client, container_id)
        if self.results is not None:
            self.results.path = f"{self.inside}/{self.results.name}"
            self.results.start(self.workspace.here() if self.workspace is not None else {})
        return notice

    def changed_files(self) -> WorkspaceScan | None:
        """Before a cell: the host files to send (a quick scan), or None."""
        if self.workspace is None or not self.per_cell:
            return None
        return self.workspace.changes()

    def send_files(
        self, client: Engine | docker.DockerClient, container_id: str, changed: WorkspaceScan
    ) -> str:
        """Send what :meth:`changed_files` found; a notice, or ''."""
        assert self.workspace is not None
        notice = self.workspace.send(client, container_id, changed)
        if self.results is not None:
            self.results.note(self.workspace.here())
        return notice

    @property
    def outputs_path(self) -> str | None:
        """The outputs folder in the sandbox, whose fingerprint is asked after each cell."""
        return self.results.path if self.results is not None else None

    def outputs_changed(self, token: str | None) -> bool:
        """Whether the outputs folder's fingerprint changed (None: unknown, so yes)."""
        return self.results is not None and self.results.changed(token)

    def collect(self, client: Engine | docker.DockerClient, container_id: str) -> str:
        """After a cell: copy the outputs folder back; a notice, or ''."""
        if self.results is None:
            return ""
        notice = self.results.collect(client, container_id)
        if self.workspace is not None:
            # The sandbox has these files already: the next scan must not send them in.
            self.workspace.note_written(self.results.name, self.results.written)
        return notice
