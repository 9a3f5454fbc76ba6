"""Asking the frontend for a line (``input()`` in a cell) on its stdin channel."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import zmq
from ipykernel.kernelbase import Kernel

from .inner import Message


class FrontendStdin:
    """The one thread that owns a kernel's stdin socket, and the questions asked on it.

    zmq sockets are not thread-safe: a second thread on the same socket can make
    libzmq abort the whole process. The sandbox asks one question at a time per
    cell and withdraws it when the cell ends (see ``CellFlow.route_stdin``).
    """

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-stdin")

    async def ask(self, prompt: str, password: bool, ident: Any, parent: Message) -> str:
        """The frontend's answer to ``prompt``; EOFError once the question is withdrawn."""
        cancelled = threading.Event()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._thread, self._roundtrip, prompt, password, ident, parent, cancelled
            )
        finally:
            cancelled.set()

    def _roundtrip(
        self, prompt: str, password: bool, ident: Any, parent: Message, cancelled: threading.Event
    ) -> str:
        session = self._kernel.session
        assert session is not None
        sock = self._kernel.stdin_socket
        while True:  # drop stale replies
            try:
                sock.recv_multipart(zmq.NOBLOCK)
            except zmq.ZMQError:
                break
        session.send(
            sock, "input_request", {"prompt": prompt, "password": password}, parent, ident=ident
        )
        while not cancelled.is_set():
            if sock.poll(100, zmq.POLLIN):
                _, reply = session.recv(sock)
                if reply is not None:
                    return str(reply["content"].get("value", ""))
        raise EOFError
