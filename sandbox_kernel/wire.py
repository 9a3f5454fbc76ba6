"""Host side of the frame format spoken with the relay over the container's stdio.

The container's stdout reaches us through ``docker attach`` without a TTY, so the
engine wraps it in its own multiplexing (an 8-byte header per chunk: stream type and
length). Inside that byte stream the relay writes frames: ``>BI`` (kind, number of
parts), then ``>I`` length and bytes for each part. Frames to the relay go on the
container's stdin, same format, no engine header.

Everything that comes from the container is untrusted. The decoder is incremental
(a part is copied once, however it is split across reads), never holds more than
:data:`MAX_FRAME_BYTES` of one frame (a larger frame is skipped as it streams past and
reported as :attr:`Kind.DROPPED`), and raises
:class:`~sandbox_kernel.errors.ProtocolError` on anything that is not a frame.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator, Sequence

from .errors import ProtocolError


class Kind(enum.IntEnum):
    """Frame kinds; the numbers below 100 are the same in relay.py."""

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
    PONG = 23
    #: Made by the decoder, never sent: a frame over the size limit went by unread.
    #: Its one part is ``>BQ``: the dropped frame's kind and size.
    DROPPED = 100


HEADER = struct.Struct(">BI")
LENGTH = struct.Struct(">I")
DOCKER_HEADER = struct.Struct(">BxxxI")
DROPPED_INFO = struct.Struct(">BQ")
MAX_PARTS = 4096
#: The most of one frame the host holds in memory. Legitimate messages are far
#: smaller (a cell's output is capped at ``max_output_bytes``, 32 MiB by default).
MAX_FRAME_BYTES = 64 * 1024 * 1024

#: Frame numbers the relay may send, to their Kind (a dict lookup: Kind(n) is slow).
_RELAY_KINDS = {int(kind): kind for kind in Kind if kind < 100}


def encode(kind: Kind, parts: Sequence[bytes | memoryview] = ()) -> bytes:
    """One frame as bytes, ready for the container's stdin."""
    chunks: list[bytes | memoryview] = [HEADER.pack(kind, len(parts))]
    for part in parts:
        chunks.append(LENGTH.pack(len(part)))
        chunks.append(part)
    return b"".join(chunks)


class FrameDecoder:
    """Turns the attached stdout byte stream back into ``(kind, parts)`` frames.

    Feed it whatever the socket gives; it keeps its place between calls.

    Args:
        docker_multiplexed: the stream carries the engine's 8-byte chunk headers.
        max_frame_bytes: frames larger than this are skipped, not buffered.
    """

    def __init__(self, docker_multiplexed: bool = True, max_frame_bytes: int = MAX_FRAME_BYTES):
        self._multiplexed = docker_multiplexed
        self._max_frame = max_frame_bytes
        self._raw = bytearray()  # engine-multiplexed bytes not yet demultiplexed
        self._buf = bytearray()  # frame bytes not yet consumed
        self._kind = 0
        self._parts_left = -1  # -1: expecting a frame header
        self._parts: list[bytes] = []
        self._part_len = -1  # -1: expecting a part length
        self._frame_size = 0
        self._skipping = False

    def feed(self, data: bytes) -> Iterator[tuple[Kind, list[bytes]]]:
        """Add received bytes and yield every frame now complete.

        Raises:
            ProtocolError: the stream is not made of valid frames.
        """
        if self._multiplexed:
            self._raw += data
            self._demultiplex()
        else:
            self._buf += data
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
                self._buf += memoryview(raw)[pos + DOCKER_HEADER.size : end]
            pos = end
        del raw[:pos]

    def _frames(self) -> Iterator[tuple[Kind, list[bytes]]]:
        buf = self._buf
        pos = 0
        try:
            while True:
                if self._parts_left < 0:
                    if len(buf) - pos < HEADER.size:
                        return
                    kind, count = HEADER.unpack_from(buf, pos)
                    pos += HEADER.size
                    if kind not in _RELAY_KINDS or count > MAX_PARTS:
                        raise ProtocolError(f"malformed frame header (kind {kind}, {count} parts)")
                    self._kind, self._parts_left, self._parts = kind, count, []
                    self._frame_size, self._skipping = 0, False
                elif self._parts_left == 0:
                    self._parts_left = -1
                    if self._skipping:
                        info = DROPPED_INFO.pack(self._kind, self._frame_size)
                        yield Kind.DROPPED, [info]
                    else:
                        yield _RELAY_KINDS[self._kind], self._parts
                elif self._part_len < 0:
                    if len(buf) - pos < LENGTH.size:
                        return
                    (self._part_len,) = LENGTH.unpack_from(buf, pos)
                    pos += LENGTH.size
                    self._frame_size += self._part_len
                    if self._frame_size > self._max_frame and not self._skipping:
                        self._skipping, self._parts = True, []
                else:
                    available = len(buf) - pos
                    if self._skipping:
                        taken = min(available, self._part_len)
                        pos += taken
                        self._part_len -= taken
                        if self._part_len:
                            return
                    else:
                        if available < self._part_len:
                            return
                        self._parts.append(bytes(buf[pos : pos + self._part_len]))
                        pos += self._part_len
                    self._part_len = -1
                    self._parts_left -= 1
        finally:
            del buf[:pos]
