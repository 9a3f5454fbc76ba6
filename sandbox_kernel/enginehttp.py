"""Requests to a local Docker engine over its unix socket, with the standard library.

The kernel's first engine request (see coldcache.py) leaves before the Docker SDK is
imported: requests, urllib3 and docker-py take 0.1-0.2 s to import, and even
``http.client`` takes 30 ms (its email parser). The engine API is HTTP/1.1; one
request per connection (``Connection: close``) keeps the reading simple: the answer
is what comes until the engine closes, bounded in size, with chunked bodies decoded.
Anything unexpected raises :class:`EngineHTTPError`; callers fall back to the SDK.
"""

from __future__ import annotations

import contextlib
import json
import socket
from typing import Any

#: The largest answer read (the create and list answers are a few kilobytes).
MAX_ANSWER = 1 << 20


class EngineHTTPError(Exception):
    """The engine could not be asked, or answered something unexpected."""


class Pending:
    """A request sent whose answer is read later (:meth:`answer`), so that the
    engine's work overlaps the caller's."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def answer(self, timeout: float) -> tuple[int, bytes]:
        """The status and body; the connection is closed.

        Raises:
            EngineHTTPError: no answer in ``timeout`` seconds, or a malformed one.
        """
        try:
            self._sock.settimeout(timeout)
            data = bytearray()
            while len(data) <= MAX_ANSWER:
                chunk = self._sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            else:
                raise EngineHTTPError("the engine's answer is too long")
        except OSError as err:
            raise EngineHTTPError(f"no answer from the engine: {err}") from err
        finally:
            self.close()
        return _parse(bytes(data))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def send(
    path: str, method: str, target: str, body: Any = None, *, timeout: float = 10.0
) -> Pending:
    """Send one request (``body`` as JSON, when given) to the engine at ``path``.

    Raises:
        EngineHTTPError: the socket cannot be reached.
    """
    payload = b"" if body is None else json.dumps(body).encode()
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(head.encode("ascii") + payload)
    except (OSError, UnicodeError) as err:
        sock.close()
        raise EngineHTTPError(f"cannot ask the engine at {path}: {err}") from err
    return Pending(sock)


def request(
    path: str, method: str, target: str, body: Any = None, *, timeout: float = 10.0
) -> tuple[int, Any]:
    """Send one request and wait for its answer: the status and the decoded JSON body
    (None when empty).

    Raises:
        EngineHTTPError: the socket cannot be reached, or the answer is malformed.
    """
    status, data = send(path, method, target, body, timeout=timeout).answer(timeout)
    if not data.strip():
        return status, None
    try:
        return status, json.loads(data)
    except ValueError as err:
        raise EngineHTTPError(f"the engine's answer is not JSON: {err}") from err


def _parse(data: bytes) -> tuple[int, bytes]:
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if not sep or len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
        raise EngineHTTPError("the engine's answer is not HTTP")
    try:
        status = int(status_line[1])
    except ValueError as err:
        raise EngineHTTPError("the engine's answer has no status") from err
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    if headers.get(b"transfer-encoding") == b"chunked":
        return status, _dechunk(body)
    length = headers.get(b"content-length")
    if length is not None:
        if not length.isdigit() or int(length) > len(body):
            raise EngineHTTPError("the engine's answer was cut short")
        body = body[: int(length)]
    return status, body


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while True:
        size_line, sep, rest = body.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError as err:
            raise EngineHTTPError("the engine's chunked answer is malformed") from err
        if not sep or size < 0 or len(rest) < size:
            raise EngineHTTPError("the engine's chunked answer was cut short")
        if size == 0:
            return bytes(out)
        out += rest[:size]
        body = rest[size + 2 :]
