"""Unit tests of the host-side frame decoder (pure functions, hostile input)."""

from __future__ import annotations

import struct
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox_kernel.errors import ProtocolError
from sandbox_kernel.wire import (
    DOCKER_HEADER,
    DROPPED_INFO,
    JOIN_MAX_BYTES,
    FrameDecoder,
    Kind,
    encode,
)


def docker_chunks(payload: bytes, size: int) -> list[bytes]:
    """The payload as the engine sends it: stdout chunks with 8-byte headers."""
    out = []
    for start in range(0, len(payload), size):
        piece = payload[start : start + size]
        out.append(DOCKER_HEADER.pack(1, len(piece)) + piece)
    return out


def decode_all(stream: bytes, read_size: int, **kwargs: int) -> list[tuple[Kind, list[bytes]]]:
    decoder = FrameDecoder(**kwargs)
    frames = []
    for start in range(0, len(stream), read_size):
        frames.extend(decoder.feed(stream[start : start + read_size]))
    return frames


FRAMES = [
    (Kind.HELLO, [b'{"key": "k"}']),
    (Kind.IOPUB, [b"topic", b"<IDS|MSG>", b"sig", b"h", b"p", b"m", b"c", b"\x00" * 1000]),
    (Kind.PONG, []),
    (Kind.SHELL, [b"", b"x" * 70000]),
]


@pytest.mark.parametrize("read_size", [1, 3, 7, 64, 4096, 1 << 20])
@pytest.mark.parametrize("chunk_size", [1, 5, 32768])
def test_frames_survive_any_split(read_size: int, chunk_size: int) -> None:
    payload = b"".join(encode(kind, parts) for kind, parts in FRAMES)
    stream = b"".join(docker_chunks(payload, chunk_size))
    assert decode_all(stream, read_size) == FRAMES


def test_an_oversized_frame_is_skipped_not_held() -> None:
    big = encode(Kind.IOPUB, [b"a" * 5000, b"b" * 5000])
    after = encode(Kind.PONG)
    stream = b"".join(docker_chunks(big + after, 1000))
    decoder = FrameDecoder(max_frame_bytes=4096)
    frames = []
    for start in range(0, len(stream), 512):
        frames.extend(decoder.feed(stream[start : start + 512]))
        assert decoder.buffered < 4096 + 1024  # never more than the limit in memory
    assert frames[0][0] == Kind.DROPPED
    assert DROPPED_INFO.unpack(frames[0][1][0]) == (Kind.IOPUB, 10000)
    assert frames[1] == (Kind.PONG, [])


def test_garbage_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        list(FrameDecoder(docker_multiplexed=False).feed(struct.pack(">BI", 200, 1)))
    with pytest.raises(ProtocolError):
        list(FrameDecoder(docker_multiplexed=False).feed(struct.pack(">BI", 4, 10**6)))
    with pytest.raises(ProtocolError):
        list(FrameDecoder().feed(b"\x07\x00\x00\x00\x00\x00\x00\x01x"))


def test_decoder_made_kinds_cannot_be_sent() -> None:
    with pytest.raises(ProtocolError):
        list(FrameDecoder(docker_multiplexed=False).feed(struct.pack(">BI", Kind.DROPPED, 0)))


_SENDABLE = [kind for kind in Kind if kind < 100]


@settings(max_examples=200, deadline=None)
@given(
    frames=st.lists(
        st.tuples(
            st.sampled_from(_SENDABLE),
            st.lists(st.binary(max_size=3000), max_size=6),
        ),
        max_size=8,
    ),
    chunk_size=st.integers(1, 5000),
    reads=st.lists(st.integers(1, 9000), min_size=1, max_size=20),
    stderr_noise=st.booleans(),
)
def test_any_frames_any_chunking_any_reads(
    frames: list[tuple[Kind, list[bytes]]],
    chunk_size: int,
    reads: list[int],
    stderr_noise: bool,
) -> None:
    payload = b"".join(encode(kind, parts) for kind, parts in frames)
    chunks = docker_chunks(payload, chunk_size)
    if stderr_noise:  # an engine that sends stderr chunks too: they are ignored
        chunks = [c for chunk in chunks for c in (chunk, DOCKER_HEADER.pack(2, 3) + b"err")]
    stream = b"".join(chunks)
    decoder = FrameDecoder()
    decoded: list[tuple[Kind, list[bytes]]] = []
    pos, i = 0, 0
    while pos < len(stream):
        size = reads[i % len(reads)]
        decoded.extend(decoder.feed(stream[pos : pos + size]))
        pos, i = pos + size, i + 1
    assert decoded == [(kind, list(parts)) for kind, parts in frames]
    # Parts are bytes, or a bytearray when one was gathered from several reads (never a
    # memoryview holding the reads it came from).
    assert all(type(part) in (bytes, bytearray) for _, parts in decoded for part in parts)
    assert decoder.buffered == 0


def test_a_part_from_several_reads_is_joined_into_bytes_once_complete() -> None:
    # Printed output's half-megabyte parts: bytes, ready for the session (a bytearray
    # would be copied once more), held as the reads until complete.
    part = bytes(range(256)) * 2048
    stream = b"".join(docker_chunks(encode(Kind.IOPUB, [part]), 32768))
    decoder = FrameDecoder()
    frames = []
    for start in range(0, len(stream), 65536):
        frames.extend(decoder.feed(stream[start : start + 65536]))
    assert frames == [(Kind.IOPUB, [part])]
    assert type(frames[0][1][0]) is bytes
    assert decoder.buffered == 0


def test_a_large_part_is_gathered_in_one_buffer_not_held_as_reads() -> None:
    part = b"x" * (JOIN_MAX_BYTES + 1)
    stream = b"".join(docker_chunks(encode(Kind.IOPUB, [part]), 32768))
    decoder = FrameDecoder()
    frames = []
    for start in range(0, len(stream), 1 << 20):
        read = stream[start : start + (1 << 20)]
        frames.extend(decoder.feed(read))
        # Each read is copied in and let go: the part's buffer, not the reads, is held.
        assert sys.getrefcount(read) == 2
    assert frames == [(Kind.IOPUB, [part])]
    assert type(frames[0][1][0]) is bytearray


def test_the_relay_widens_its_pipe_to_the_host() -> None:
    import fcntl
    import os

    from sandbox_kernel import relay

    read_end, write_end = os.pipe()
    try:
        assert fcntl.fcntl(write_end, 1032) == 65536  # F_GETPIPE_SZ: Linux's default
        relay.widen_stdout_pipe(write_end)
        assert fcntl.fcntl(write_end, 1032) == relay.STDOUT_PIPE_BYTES
    finally:
        os.close(read_end)
        os.close(write_end)
    not_a_pipe = os.open(os.devnull, os.O_WRONLY)
    try:
        relay.widen_stdout_pipe(not_a_pipe)  # kept as it is, without an error
    finally:
        os.close(not_a_pipe)
