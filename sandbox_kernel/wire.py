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
from collections import deque
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
    #: Host -> relay: (request id, folder path); the relay answers STATED with
    #: (request id, a fingerprint of the files under the path): the outputs door asks it
    #: after each cell without running anything in the kernel (see results.py).
    STAT = 14
    HELLO = 20
    EXITED = 21
    LOG = 22
    PONG = 23
    STATED = 24
    #: Made by the decoder, never sent: a frame over the size limit went by unread.
    #: Its one part is ``>BQ``: the dropped frame's kind and size.
    DROPPED = 100


HEADER = struct.Struct(">BI")
LENGTH = struct.Struct(">I")
DOCKER_HEADER = struct.Struct(">BxxxI")
#: How much of the container's stderr a decoder keeps (the end of it).
STDERR_TAIL_BYTES = 8192
DROPPED_INFO = struct.Struct(">BQ")
MAX_PARTS = 4096
#: The most of one frame the host holds in memory. Legitimate messages are far
#: smaller (a cell's output is capped at ``max_output_bytes``, 32 MiB by default).
MAX_FRAME_BYTES = 64 * 1024 * 1024

#: Parts up to this size that arrive over several reads are joined once complete (one
#: new buffer); larger ones are copied into a buffer of their size as they arrive, so
#: the host holds a big part once, not twice (the reads, then the join).
JOIN_MAX_BYTES = 4 * 1024 * 1024

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

    Feed it whatever the socket gives; it keeps its place between calls. Received
    bytes are kept as zero-copy slices of what was fed until a part is complete,
    then joined once: megabytes of output are copied one time on their way through.
    (Printed output comes in parts of half a megabyte, see bootstrap.SEND_EVERY: a
    part gathered in a zeroed buffer, then copied to bytes for the session, cost the
    host twice the fresh memory and page faults of one join.)

    Args:
        docker_multiplexed: the stream carries the engine's 8-byte chunk headers.
        max_frame_bytes: frames larger than this are skipped, not buffered.
    """

    def __init__(self, docker_multiplexed: bool = True, max_frame_bytes: int = MAX_FRAME_BYTES):
        self._multiplexed = docker_multiplexed
        self._max_frame = max_frame_bytes
        # The engine's layer: a chunk header split across reads, and what is left of
        # the current chunk.
        self._engine_header = bytearray()
        self._chunk_left = 0
        self._chunk_is_stdout = True
        #: The last bytes the container wrote on stderr (when stderr is attached): what
        #: explains a relay or runtime that died before it could speak the protocol.
        self.stderr_tail = bytearray()
        # Our layer: received frame bytes not yet consumed.
        self._pending: deque[memoryview] = deque()
        self._pending_bytes = 0
        self._kind = 0
        self._parts_left = -1  # -1: expecting a frame header
        self._parts: list[bytes] = []
        self._part_len = -1  # -1: expecting a part length
        self._part_buffer: bytearray | None = None
        self._segments: list[memoryview] = []
        self._part_have = 0
        self._frame_size = 0
        self._skipping = False

    @property
    def buffered(self) -> int:
        """Bytes held for frames not yet complete."""
        return self._pending_bytes + self._part_have + sum(len(p) for p in self._parts)

    def feed(self, data: bytes) -> Iterator[tuple[Kind, list[bytes]]]:
        """Add received bytes and yield every frame now complete.

        Raises:
            ProtocolError: the stream is not made of valid frames.
        """
        view = memoryview(data if isinstance(data, bytes) else bytes(data))
        for segment in self._demultiplex(view) if self._multiplexed else (view,):
            if segment:
                self._pending.append(segment)
                self._pending_bytes += len(segment)
        yield from self._frames()

    def _demultiplex(self, view: memoryview) -> list[memoryview]:
        """The stdout payload in ``view``, without the engine's chunk headers."""
        out: list[memoryview] = []
        pos, end = 0, len(view)
        while pos < end:
            if self._chunk_left:
                take = min(self._chunk_left, end - pos)
                if self._chunk_is_stdout:
                    out.append(view[pos : pos + take])
                else:
                    self.stderr_tail += view[pos : pos + take]
                    del self.stderr_tail[: max(0, len(self.stderr_tail) - STDERR_TAIL_BYTES)]
                pos += take
                self._chunk_left -= take
                continue
            if not self._engine_header and end - pos >= DOCKER_HEADER.size:
                stream, length = DOCKER_HEADER.unpack_from(view, pos)
                pos += DOCKER_HEADER.size
            else:
                piece = view[pos : pos + DOCKER_HEADER.size - len(self._engine_header)]
                self._engine_header += piece
                pos += len(piece)
                if len(self._engine_header) < DOCKER_HEADER.size:
                    break
                stream, length = DOCKER_HEADER.unpack(self._engine_header)
                self._engine_header.clear()
            if stream not in (1, 2):
                raise ProtocolError(f"unexpected stream type {stream} from the engine")
            self._chunk_left, self._chunk_is_stdout = length, stream == 1
        return out

    def _pop(self, limit: int) -> memoryview:
        """The next pending segment, cut to at most ``limit`` bytes (zero-copy)."""
        segment = self._pending[0]
        if len(segment) > limit:
            self._pending[0] = segment[limit:]
            segment = segment[:limit]
        else:
            self._pending.popleft()
        self._pending_bytes -= len(segment)
        return segment

    def _take(self, size: int) -> bytes:
        """The next ``size`` pending bytes (there must be that many)."""
        first = self._pending[0]
        if len(first) >= size:  # the usual case, inline: every header and length
            if len(first) == size:
                self._pending.popleft()
            else:
                self._pending[0] = first[size:]
            self._pending_bytes -= size
            return first[:size].tobytes()
        out = bytearray()
        while len(out) < size:
            out += self._pop(size - len(out))
        return bytes(out)

    def _frames(self) -> Iterator[tuple[Kind, list[bytes]]]:
        while True:
            if self._parts_left < 0:
                if self._pending_bytes < HEADER.size:
                    return
                kind, count = HEADER.unpack(self._take(HEADER.size))
                if kind not in _RELAY_KINDS or count > MAX_PARTS:
                    raise ProtocolError(f"malformed frame header (kind {kind}, {count} parts)")
                self._kind, self._parts_left, self._parts = kind, count, []
                self._frame_size, self._skipping = 0, False
            elif self._parts_left == 0:
                self._parts_left = -1
                if self._skipping:
                    yield Kind.DROPPED, [DROPPED_INFO.pack(self._kind, self._frame_size)]
                else:
                    parts, self._parts = self._parts, []
                    yield _RELAY_KINDS[self._kind], parts
            elif self._part_len < 0:
                if self._pending_bytes < LENGTH.size:
                    return
                (self._part_len,) = LENGTH.unpack(self._take(LENGTH.size))
                self._frame_size += self._part_len
                if self._frame_size > self._max_frame and not self._skipping:
                    self._skipping, self._parts = True, []
            elif not self._collect_part():
                return

    def _collect_part(self) -> bool:
        """Gather the current part from pending bytes; True once it is complete."""
        if (
            not self._part_have
            and not self._skipping
            and self._pending
            and len(self._pending[0]) >= self._part_len
        ):
            # The usual case: the whole part came in one read.
            self._parts.append(self._take(self._part_len) if self._part_len else b"")
            self._part_len = -1
            self._parts_left -= 1
            return True
        while self._part_have < self._part_len and self._pending:
            segment = self._pop(self._part_len - self._part_have)
            if self._skipping:
                pass
            elif self._part_len <= JOIN_MAX_BYTES:
                self._segments.append(segment)
            else:
                # Copied into the part as it arrives, so each received chunk is freed
                # at once: a large part costs its size once, not twice.
                if self._part_buffer is None:
                    self._part_buffer = bytearray(self._part_len)
                self._part_buffer[self._part_have : self._part_have + len(segment)] = segment
            self._part_have += len(segment)
        if self._part_have < self._part_len:
            return False
        if not self._skipping:
            # A bytearray is bytes-like and is not copied again; an empty part is b"".
            part = self._part_buffer if self._part_buffer is not None else b"".join(self._segments)
            self._parts.append(part)  # type: ignore[arg-type]
        self._segments.clear()
        self._part_buffer, self._part_have, self._part_len = None, 0, -1
        self._parts_left -= 1
        return True
