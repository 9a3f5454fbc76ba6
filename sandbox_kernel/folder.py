"""The notebook's folder and the sandbox: copied in (:mod:`.workspace`), results out (:mod:`.results`).

:class:`NotebookFolder` is what :class:`~sandbox_kernel.Sandbox` calls at three moments:
when a sandbox starts (copy the folder in), before a cell (copy host changes in) and
after a cell (copy the outputs folder back). Each returns a notice for the notebook,
or ``''``. All of it talks to the engine, so it runs on a worker thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker

from .config import SandboxConfig
from .results import TOKEN_KEY, Results
from .workspace import Workspace, WorkspaceScan


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

    def start(self, client: docker.DockerClient, container_id: str) -> str:
        notice = ""
        if self.workspace is not None:
            notice = self.workspace.start(client, container_id)
        if self.results is not None:
            self.results.start(self.workspace.sent if self.workspace is not None else {})
        return notice

    def changed_files(self) -> WorkspaceScan | None:
        """Before a cell: the host files to send (a quick scan), or None."""
        if self.workspace is None or not self.per_cell:
            return None
        return self.workspace.changes()

    def send_files(
        self, client: docker.DockerClient, container_id: str, changed: WorkspaceScan
    ) -> str:
        """Send what :meth:`changed_files` found; a notice, or ''."""
        assert self.workspace is not None
        notice = self.workspace.send(client, container_id, changed)
        if self.results is not None:
            self.results.note(self.workspace.sent)
        return notice

    def request(self) -> dict[str, Any]:
        """The silent execute_request that fingerprints the outputs folder after a cell."""
        expressions = {TOKEN_KEY: self.results.expression} if self.results is not None else {}
        return {
            "code": "",
            "silent": True,
            "store_history": False,
            "user_expressions": expressions,
            "allow_stdin": False,
            "stop_on_error": False,
        }

    def outputs_changed(self, reply: dict[str, Any]) -> bool:
        """Whether the reply to :meth:`request` shows a new outputs folder (or says nothing)."""
        if self.results is None:
            return False
        answers = reply.get("user_expressions")
        answer = answers.get(TOKEN_KEY) if isinstance(answers, dict) else None
        token = None
        if isinstance(answer, dict) and answer.get("status") == "ok":
            token = str((answer.get("data") or {}).get("text/plain", "")) or None
        return self.results.changed(token)

    def collect(self, client: docker.DockerClient, container_id: str) -> str:
        """After a cell: copy the outputs folder back; a notice, or ''."""
        return self.results.collect(client, container_id) if self.results is not None else ""
