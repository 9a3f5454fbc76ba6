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
import os
import socket
from collections.abc import Iterator
from typing import IO, Any

#: The largest answer read by default (the create answer is a few hundred bytes; an
#: inspect, with the relay's text in its command, about 250 kB).
MAX_ANSWER = 1 << 20
#: The largest head of an attach's upgrade answer.
MAX_HEAD = 16 << 10


class EngineHTTPError(Exception):
    """The engine could not be asked, or answered something unexpected."""


class Pending:
    """A request sent whose answer is read later (:meth:`answer`), so that the
    engine's work overlaps the caller's."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def answer(self, timeout: float, limit: int = MAX_ANSWER) -> tuple[int, bytes]:
        """The status and body (at most ``limit`` bytes); the connection is closed.

        Raises:
            EngineHTTPError: no answer in ``timeout`` seconds, or a malformed one.
        """
        try:
            self._sock.settimeout(timeout)
            data = bytearray()
            while len(data) <= limit:
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


def _open(path: str, head: str, payload: bytes | IO[bytes], timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        if isinstance(payload, bytes):
            sock.sendall(head.encode("ascii") + payload)
        else:
            sock.sendall(head.encode("ascii"))
            while chunk := payload.read(1 << 20):
                sock.sendall(chunk)
    except (OSError, UnicodeError) as err:
        sock.close()
        raise EngineHTTPError(f"cannot ask the engine at {path}: {err}") from err
    return sock


def send(
    path: str,
    method: str,
    target: str,
    body: Any = None,
    *,
    timeout: float = 10.0,
    content_type: str = "application/json",
) -> Pending:
    """Send one request to the engine at ``path``: ``body`` as JSON, or bytes or a
    seekable binary file (sent from where it is to its end) as they are.

    Raises:
        EngineHTTPError: the socket cannot be reached.
    """
    payload: bytes | IO[bytes]
    if isinstance(body, bytes) or hasattr(body, "read"):
        payload = body
    else:
        payload = b"" if body is None else json.dumps(body).encode()
    if isinstance(payload, bytes):
        length = len(payload)
    else:
        start = payload.tell()
        length = payload.seek(0, os.SEEK_END) - start
        payload.seek(start)
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    )
    return Pending(_open(path, head, payload, timeout))


def request(
    path: str,
    method: str,
    target: str,
    body: Any = None,
    *,
    timeout: float = 10.0,
    limit: int = MAX_ANSWER,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    """Send one request and wait for its answer: the status and the decoded JSON body
    (None when empty).

    Raises:
        EngineHTTPError: the socket cannot be reached, or the answer is malformed.
    """
    pending = send(path, method, target, body, timeout=timeout, content_type=content_type)
    status, data = pending.answer(timeout, limit)
    if not data.strip():
        return status, None
    try:
        return status, json.loads(data)
    except ValueError as err:
        raise EngineHTTPError(f"the engine's answer is not JSON: {err}") from err


def upgrade(path: str, target: str, *, timeout: float = 10.0) -> tuple[socket.socket, bytes]:
    """Send a request that upgrades the connection (an attach): the socket, which then
    carries the stream (its timeout cleared), and the stream's first bytes if they
    came with the answer's head.

    Raises:
        EngineHTTPError: the socket cannot be reached, or the engine did not switch
            protocols (its answer's first line is in the message).
    """
    head = (
        f"POST {target} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n"
        "Upgrade: tcp\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n"
    )
    sock = _open(path, head, b"", timeout)
    try:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(MAX_HEAD)
            if not chunk or len(data) > MAX_HEAD:
                raise EngineHTTPError("the engine's answer to the attach is not HTTP")
            data += chunk
        answer, _, rest = data.partition(b"\r\n\r\n")
        status_line = answer.split(b"\r\n", 1)[0]
        if not status_line.startswith(b"HTTP/1.") or status_line.split(b" ")[1:2] != [b"101"]:
            raise EngineHTTPError(
                f"the engine did not attach: {status_line[:200].decode('ascii', 'replace')}"
            )
        sock.settimeout(None)
    except OSError as err:
        sock.close()
        raise EngineHTTPError(f"no answer from the engine: {err}") from err
    except EngineHTTPError:
        sock.close()
        raise
    return sock, rest


def stream(path: str, target: str, *, timeout: float = 10.0) -> tuple[int, Iterator[bytes]]:
    """GET ``target`` and return the status and the body as it comes (a tar of any
    size), decoded from chunks when the engine sends it so; the connection closes at
    the body's end, or when the iterator is closed.

    Raises:
        EngineHTTPError: the socket cannot be reached, or the head is malformed (the
            iterator raises it too, for a body that breaks off).
    """
    sock = _open(
        path, f"GET {target} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n", b"", timeout
    )
    reader = _Reader(sock)
    try:
        head = reader.until(b"\r\n\r\n", MAX_HEAD)
        # The head alone (the body is read as it comes, below).
        status, _ = _parse(head.split(b"\r\n", 1)[0] + b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
    except (OSError, EngineHTTPError) as err:
        sock.close()
        raise EngineHTTPError(f"no answer from the engine: {err}") from err
    return status, _body(reader, headers)


class _Reader:
    """Buffered reads of an answer: up to a separator, or a count of bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def fill(self) -> bool:
        chunk = self.sock.recv(1 << 20)
        self.buffer += chunk
        return bool(chunk)

    def until(self, separator: bytes, limit: int) -> bytes:
        while separator not in self.buffer:
            if len(self.buffer) > limit or not self.fill():
                raise EngineHTTPError("the engine's answer is malformed or cut short")
        data, _, self.buffer = self.buffer.partition(separator)
        return data

    def take(self, size: int) -> Iterator[bytes]:
        while size > 0:
            if not self.buffer and not self.fill():
                raise EngineHTTPError("the engine's answer was cut short")
            data, self.buffer = self.buffer[:size], self.buffer[size:]
            size -= len(data)
            yield data


def _body(reader: _Reader, headers: dict[bytes, bytes]) -> Iterator[bytes]:
    try:
        if headers.get(b"transfer-encoding") == b"chunked":
            while True:
                line = reader.until(b"\r\n", 1024)
                try:
                    size = int(line.split(b";")[0], 16)
                except ValueError as err:
                    raise EngineHTTPError("the engine's chunked answer is malformed") from err
                if size <= 0:
                    return
                yield from reader.take(size)
                reader.until(b"\r\n", 2)
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                raise EngineHTTPError("the engine's answer has a bad length")
            yield from reader.take(int(length))
            return
        if reader.buffer:
            yield reader.buffer
        while reader.fill():
            yield reader.buffer
            reader.buffer = b""
    except OSError as err:
        raise EngineHTTPError(f"the engine's answer broke off: {err}") from err
    finally:
        reader.sock.close()


def quote(text: str, safe: str = "") -> str:
    """``text`` percent-encoded for a URL, keeping letters, digits, ``-._~`` and ``safe``."""
    keep = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
    keep |= set(safe.encode())
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in text.encode())


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
