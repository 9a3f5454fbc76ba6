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
from .workspace import Workspace


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

    def before_cell(self, client: docker.DockerClient, container_id: str) -> str:
        if self.workspace is None or not self.per_cell:
            return ""
        notice = self.workspace.sync(client, container_id)
        if self.results is not None:
            self.results.note(self.workspace.sent)
        return notice

    def user_expressions(self) -> dict[str, str]:
        """Asked of the sandbox with each cell: the outputs folder's fingerprint."""
        return {TOKEN_KEY: self.results.expression} if self.results is not None else {}

    def after_cell(
        self, client: docker.DockerClient, container_id: str, reply: dict[str, Any]
    ) -> str:
        """Copy the outputs back unless the cell's reply shows they did not change.

        Takes this module's user expression out of ``reply`` (the frontend never asked
        for it).
        """
        answers = reply.get("user_expressions")
        answer = answers.pop(TOKEN_KEY, None) if isinstance(answers, dict) else None
        if self.results is None:
            return ""
        token = None
        if isinstance(answer, dict) and answer.get("status") == "ok":
            token = str((answer.get("data") or {}).get("text/plain", "")) or None
        return self.results.collect(client, container_id, token)
