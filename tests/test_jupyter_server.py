"""The kernel behind a real Jupyter server, driven over its REST API and websocket.

This is the path JupyterLab takes: the server starts the kernel from its kernelspec,
nudges it, and relays its messages to the browser over a websocket.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from tornado import websocket

from harness import USAGE_MIME, KernelSpecs

pytestmark = pytest.mark.docker

TOKEN = uuid.uuid4().hex


class Server(NamedTuple):
    base: str
    kernel_name: str
    log: Path  # the server's --debug log, quoted when a test fails


@pytest.fixture(scope="module")
def server(specs: KernelSpecs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    kernel_name = specs.make(validation="block")
    root = tmp_path_factory.mktemp("server")
    log = root / "server.log"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"JUPYTER_PATH": str(specs.root), "PATH": str(Path(sys.executable).parent)}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={port}",
            "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
            "--allow-root", "--debug",
        ],
        env={**env, "HOME": str(root)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            request("GET", base, "/api/status")
            break
        except OSError:
            time.sleep(0.3)
    try:
        yield Server(base, kernel_name, log)
    finally:
        proc.terminate()
        proc.wait(20)


def request(method: str, base: str, path: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=120) as response:
        text = response.read()
    return json.loads(text) if text else None


class Notebook:
    """One websocket kept open across interrupts and restarts, as JupyterLab keeps it."""

    def __init__(self, server: Server, kernel_id: str) -> None:
        self.server = server
        self.kernel_id = kernel_id
        self.session = uuid.uuid4().hex
        self.inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def open(self) -> None:
        url = (
            self.server.base.replace("http", "ws")
            + f"/api/kernels/{self.kernel_id}/channels?token={TOKEN}&session_id={self.session}"
        )
        self.conn = await websocket.websocket_connect(url)
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while (raw := await self.conn.read_message()) is not None:
            await self.inbox.put(json.loads(raw))
        await self.inbox.put(None)

    async def run(
        self, code: str, *, once_running: str | None = None, timeout: float = 60
    ) -> list[dict[str, Any]]:
        """Run a cell; with ``once_running``, POST that kernel action after its first output."""
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "test",
            "session": self.session,
            "version": "5.3",
            "date": "",
        }
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
        }
        self.conn.write_message(json.dumps({"header": header, "parent_header": {}, "metadata": {},
                                            "content": content, "channel": "shell"}))  # fmt: skip
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while not (
            any(m["msg_type"] == "execute_reply" for m in seen)
            and any(m["content"].get("execution_state") == "idle" for m in seen)
        ):
            try:
                msg = await asyncio.wait_for(self.inbox.get(), deadline - time.monotonic())
            except (asyncio.TimeoutError, ValueError):
                got = [m["msg_type"] for m in seen]
                tail = "\n".join(self.server.log.read_text(errors="replace").splitlines()[-60:])
                raise AssertionError(f"no idle and reply for {code!r}; got {got}\n{tail}") from None
            assert msg is not None, "the websocket closed"
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            seen.append(msg)
            if once_running and msg["msg_type"] == "stream":
                path = f"/api/kernels/{self.kernel_id}/{once_running}"
                await asyncio.to_thread(request, "POST", self.server.base, path)
                once_running = None
        return seen


def _text(messages: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")


def _error(messages: list[dict[str, Any]]) -> str:
    [reply] = [m for m in messages if m["msg_type"] == "execute_reply"]
    return str(reply["content"].get("ename"))


def run_over_websocket(server: Server, kernel_id: str, code: str) -> list[dict[str, Any]]:
    """Run one cell over a websocket of its own (a page load, a second tab)."""

    async def one_cell() -> list[dict[str, Any]]:
        notebook = Notebook(server, kernel_id)
        await notebook.open()
        try:
            return await notebook.run(code)
        finally:
            notebook.conn.close()

    return asyncio.run(one_cell())


def test_a_notebook_session_through_the_server(server: Server) -> None:
    base, kernel_name, _ = server
    kernel = request("POST", base, "/api/kernels", {"name": kernel_name})
    try:
        messages = run_over_websocket(
            server, kernel["id"], "import numpy as np\nprint(np.arange(4).sum())"
        )
        streams = [m["content"]["text"] for m in messages if m["msg_type"] == "stream"]
        assert "".join(streams) == "6\n"
        assert any(
            m["msg_type"] == "display_data" and USAGE_MIME in m["content"]["data"] for m in messages
        )
        blocked = run_over_websocket(server, kernel["id"], "import subprocess")
        [reply] = [m for m in blocked if m["msg_type"] == "execute_reply"]
        assert reply["content"]["ename"] == "SandboxValidationError"
        request("POST", base, f"/api/kernels/{kernel['id']}/interrupt")
        request("POST", base, f"/api/kernels/{kernel['id']}/restart")
        again = run_over_websocket(server, kernel["id"], "print('np' in dir())")
        assert (
            "".join(m["content"]["text"] for m in again if m["msg_type"] == "stream") == "False\n"
        )
    finally:
        request("DELETE", base, f"/api/kernels/{kernel['id']}")


def test_one_websocket_across_interrupting_and_restarting_running_cells(server: Server) -> None:
    kernel = request("POST", server.base, "/api/kernels", {"name": server.kernel_name})

    async def session() -> None:
        notebook = Notebook(server, kernel["id"])
        await notebook.open()
        assert _text(await notebook.run("kept = 41\nprint(kept + 1)")) == "42\n"
        sleeping = "print('running', flush=True)\nimport time\ntime.sleep(60)"
        interrupted = await notebook.run(sleeping, once_running="interrupt")
        assert _error(interrupted) == "KeyboardInterrupt"
        assert _text(await notebook.run("print(kept)")) == "41\n"
        restarted = await notebook.run(sleeping, once_running="restart")
        assert _error(restarted) == "KernelShutdown"
        assert _text(await notebook.run("print('kept' in dir())")) == "False\n"
        notebook.conn.close()

    try:
        asyncio.run(session())
    finally:
        request("DELETE", server.base, f"/api/kernels/{kernel['id']}")


def test_a_notebook_sees_its_folder_and_its_outputs_reach_it(server: Server) -> None:
    """Jupyter Server starts a notebook's kernel in the notebook's folder: that folder is
    what the sandbox sees, and its outputs/ is where results land."""
    folder = server.log.parent / "research" / "momentum"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "prices.csv").write_text("close\n1\n2\n3\n")
    (folder / "outputs").mkdir()
    session = request(
        "POST",
        server.base,
        "/api/sessions",
        {
            "path": "research/momentum/analysis.ipynb",
            "type": "notebook",
            "name": "analysis.ipynb",
            "kernel": {"name": server.kernel_name},
        },
    )
    try:
        messages = run_over_websocket(
            server,
            session["kernel"]["id"],
            "import csv\nrows = list(csv.DictReader(open('data/prices.csv')))\n"
            "total = sum(float(r['close']) for r in rows)\n"
            "open('outputs/total.txt', 'w').write(str(total))\nprint(total)",
        )
        assert _text(messages) == "6.0\n", _error(messages)
    finally:
        request("DELETE", server.base, f"/api/sessions/{session['id']}")
    assert (folder / "outputs" / "total.txt").read_text() == "6.0"
