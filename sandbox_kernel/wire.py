"""Host side of the frame format spoken with the relay over the container's stdio.

The container's stdout reaches us through ``docker attach`` without a TTY, so the
engine wraps it in its own multiplexing (an 8-byte header per chunk: stream type and
length). Inside that byte stream the relay writes frames: ``>BI`` (kind, number of
parts), then ``>I`` length and bytes for each part. Frames to the relay go on the
container's stdin, same format, no engine header.

Everything that comes from the container is untrusted: sizes are bounded and a
malformed stream raises :class:`~sandbox_kernel.errors.ProtocolError`.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator, Sequence

from .errors import ProtocolError


class Kind(enum.IntEnum):
    """Frame kinds; the same numbers are in relay.py."""

    SHELL = 1
    CONTROL = 2
    STDIN = 3
    IOPUB = 4
    OPEN = 10
    PING = 11
    INTERRUPT = 12
    SHUTDOWN = 13
    HELLO = 20
    EXITED = 21
    LOG = 22


HEADER = struct.Struct(">BI")
LENGTH = struct.Struct(">I")
DOCKER_HEADER = struct.Struct(">BxxxI")
MAX_PARTS = 4096
MAX_PART_BYTES = 256 * 1024 * 1024

_KNOWN_KINDS = {int(kind) for kind in Kind}


def encode(kind: Kind, parts: Sequence[bytes | memoryview] = ()) -> bytes:
    """One frame as bytes, ready for the container's stdin."""
    chunks: list[bytes | memoryview] = [HEADER.pack(kind, len(parts))]
    for part in parts:
        chunks.append(LENGTH.pack(len(part)))
        chunks.append(part)
    return b"".join(chunks)


class FrameDecoder:
    """Turns the attached stdout byte stream back into ``(kind, parts)`` frames.

    Feed it whatever the socket gives; it keeps partial frames between calls.
    """

    def __init__(self, docker_multiplexed: bool = True) -> None:
        self._raw = bytearray()
        self._payload = bytearray()
        self._multiplexed = docker_multiplexed

    def feed(self, data: bytes) -> Iterator[tuple[Kind, list[bytes]]]:
        """Add received bytes and yield every frame now complete.

        Raises:
            ProtocolError: the stream is not made of valid frames.
        """
        if self._multiplexed:
            self._raw += data
            self._demultiplex()
        else:
            self._payload += data
        yield from self._frames()

    def _demultiplex(self) -> None:
        raw = self._raw
        pos = 0
        while len(raw) - pos >= DOCKER_HEADER.size:
            stream, length = DOCKER_HEADER.unpack_from(raw, pos)
            if stream not in (1, 2):
                raise ProtocolError(f"unexpected stream type {stream} from the engine")
            end = pos + DOCKER_HEADER.size + length
            if len(raw) < end:
                break
            if stream == 1:  # stderr is not attached; ignore it if an engine sends it
                self._payload += raw[pos + DOCKER_HEADER.size : end]
            pos = end
        del raw[:pos]

    def _frames(self) -> Iterator[tuple[Kind, list[bytes]]]:
        buf = self._payload
        pos = 0
        try:
            while len(buf) - pos >= HEADER.size:
                kind, count = HEADER.unpack_from(buf, pos)
                if kind not in _KNOWN_KINDS or count > MAX_PARTS:
                    raise ProtocolError(f"malformed frame header (kind {kind}, {count} parts)")
                cursor = pos + HEADER.size
                parts: list[bytes] = []
                complete = True
                for _ in range(count):
                    if len(buf) - cursor < LENGTH.size:
                        complete = False
                        break
                    (length,) = LENGTH.unpack_from(buf, cursor)
                    if length > MAX_PART_BYTES:
                        raise ProtocolError(f"frame part of {length} bytes is over the limit")
                    cursor += LENGTH.size
                    if len(buf) - cursor < length:
                        complete = False
                        break
                    parts.append(bytes(buf[cursor : cursor + length]))
                    cursor += length
                if not complete:
                    break
                pos = cursor
                yield Kind(kind), parts
        finally:
            del buf[:pos]
