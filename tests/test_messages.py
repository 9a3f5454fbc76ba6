"""Bounded parsing of messages from inside the sandbox (pure functions, no engine)."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox_kernel.messages import (
    DELIMITER,
    JsonLimits,
    MessageError,
    check_cost,
    loads_bounded,
    parse_message,
)

LIMITS = JsonLimits(max_nodes=250_000, max_depth=100)


def _parts(header: object, content: object, parent: object = None, metadata: object = None) -> list[bytes]:
    def enc(value: object) -> bytes:
        return value if isinstance(value, bytes) else json.dumps(value).encode()

    return [b"ident", DELIMITER, b"", enc(header), enc(parent or {}), enc(metadata or {}), enc(content)]


def test_a_node_bomb_is_refused_before_it_costs_memory() -> None:
    bomb = b"[" + b"{}," * 3_000_000 + b"{}]"  # 9 MB: about 700 MB as Python objects
    tracemalloc.start()
    with pytest.raises(MessageError, match="over the 250,000 limit"):
        loads_bounded(bomb, LIMITS)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 3 * len(bomb), f"checking cost {peak >> 20} MiB"


def test_a_depth_bomb_is_refused_without_recursion() -> None:
    with pytest.raises(MessageError, match="deeper than 100"):
        loads_bounded(b"[" * 5000 + b"]" * 5000, LIMITS)
    assert loads_bounded(b"[" * 100 + b"]" * 100, LIMITS) is not None


def test_brackets_and_commas_inside_strings_cost_nothing() -> None:
    text = json.dumps({"name": "stdout", "text": "[{,:}]" * 2_000_000 + '\\"[[' * 1000}).encode()
    assert loads_bounded(text, LIMITS)["name"] == "stdout"


@pytest.mark.parametrize(
    "text",
    [b'"\\\\"', b'"\\\\\\""', b'["a\\\\", "[[[["]', b'{"k": "\\"}{"}', b'"\\u005c"'],
)
def test_escapes_do_not_confuse_the_string_scan(text: bytes) -> None:
    assert loads_bounded(text, JsonLimits(max_nodes=10, max_depth=2)) == json.loads(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{},:"\\ ab'),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=3), inner, max_size=5),
    max_leaves=40,
)


def _nodes(value: object) -> int:
    if isinstance(value, list):
        return 1 + sum(_nodes(v) for v in value)
    if isinstance(value, dict):
        return 1 + sum(1 + _nodes(v) for v in value.values())
    return 1


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_the_estimate_never_undercounts(value: object) -> None:
    text = json.dumps(value).encode()
    nodes, depth = _nodes(value), _depth(value)
    if nodes > 1:
        with pytest.raises(MessageError):
            check_cost(text, JsonLimits(max_nodes=nodes - 1 if nodes > 2 else 1, max_depth=1000))
    if depth > 1:
        with pytest.raises(MessageError):
            check_cost(text, JsonLimits(max_nodes=10**9, max_depth=depth - 1))
    check_cost(text, JsonLimits(max_nodes=2 * nodes + 2, max_depth=depth))


def test_a_list_valued_parent_id_drops_that_message_only() -> None:
    with pytest.raises(MessageError, match="msg_id"):
        parse_message(
            _parts({"msg_type": "stream"}, {"name": "stdout", "text": "x"}, parent={"msg_id": [1, 2]}),
            iopub=True, limits=LIMITS,
        )


@pytest.mark.parametrize(
    "content",
    [
        {"name": "stdout", "text": ["a"]},
        {"name": "<script>", "text": "x"},
        {"name": "stdout", "text": "x", "data": {"text/html": "<script>"}},
        b'{"name": "stdout", "text": "\xff\xfe"}',
        b"[1, 2]",
    ],
)
def test_stream_content_must_be_name_and_text(content: object) -> None:
    with pytest.raises(MessageError):
        parse_message(_parts({"msg_type": "stream"}, content), iopub=True, limits=LIMITS)


def test_a_valid_stream_passes_as_the_bytes_it_came_in() -> None:
    msg = parse_message(
        _parts({"msg_type": "stream", "msg_id": "m"}, {"name": "stderr", "text": "\udc80 é"}),
        iopub=True, limits=LIMITS,
    )
    assert isinstance(msg["content"], bytes) and msg["wire_bytes"] == len(msg["content"]) + 2


@pytest.mark.parametrize(
    "header", [{}, {"msg_type": 3}, {"msg_type": "x" * 100}, {"msg_type": "s", "msg_id": {"a": 1}}]
)
def test_headers_of_the_wrong_shape_are_refused(header: object) -> None:
    with pytest.raises(MessageError):
        parse_message(_parts(header, {}), iopub=False, limits=LIMITS)


_STREAM_START = (b'{"name": "stdout", "text": "', b'{"name":"stderr","text":"', b'{"text": "')


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from(_STREAM_START),
    st.lists(
        st.sampled_from(
            [b"a", b"\\", b"n", b"u", b"0", b"f", b"\x00", b"\x1f", b"\xc3\xa9", b"\xff", b"}", b"{", b"[", b":", b",", b'"',
             b"/", b"t", b"b", b"r", b"A", b"x", b"\x7f", b"\xed\xa0\x80", b"\xc3"]
        ),
        max_size=12,
    ),
    st.sampled_from([b'"}', b'"', b'"}}', b'", "name": "stdout"}']),
)
def test_the_stream_shortcut_accepts_what_the_general_parse_accepts(
    start: bytes, body: list[bytes], end: bytes
) -> None:
    # Streams without a quote in their text skip the cost bound (see messages._one_string)
    # and most skip the parse (messages._plain_string_body): every such content must be
    # judged exactly as the bounded parse judges it.
    content = start + b"".join(body) + end
    parts = _parts({"msg_type": "stream"}, content)
    try:
        general = json.loads(content)
        expected = (
            isinstance(general, dict)
            and set(general) == {"name", "text"}
            and general["name"] in ("stdout", "stderr")
            and isinstance(general["text"], str)
        )
    except ValueError:
        expected = False
    if expected:
        assert parse_message(parts, iopub=True, limits=LIMITS)["content"] == content
    else:
        with pytest.raises(MessageError):
            parse_message(parts, iopub=True, limits=LIMITS)


def test_printed_text_skips_the_parse() -> None:
    """The shortcut is taken for what cells print (lines, tabs, non-ASCII, escapes),
    and not where only the full parse can tell (an escaped backslash before a letter)."""
    from sandbox_kernel.messages import _plain_string_body

    for text in ["x" * 999 + "\n", "a\tb\r\n", "é ü 中 \U0001f600", "\x1b[31mred\x1b[0m"]:
        content = json.dumps({"name": "stdout", "text": text}).encode()
        assert _plain_string_body(content), text
        content = json.dumps({"name": "stdout", "text": text}, ensure_ascii=False).encode()
        assert _plain_string_body(content), text
    assert not _plain_string_body(json.dumps({"name": "stdout", "text": "C:\\x"}).encode())
