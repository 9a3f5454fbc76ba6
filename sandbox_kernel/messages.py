"""Reading messages from inside the sandbox: bounded, strict, one message at a time.

Every frame the container sends is hostile input. Before a JSON part is parsed, its
cost is bounded at C speed, so that the host never spends memory or time on a message
that could not be legitimate:

* **nodes** - every value the parse would create (containers, strings, numbers) costs
  the host a Python object of 24 to 100 bytes, whatever its size on the wire: 20 MB of
  ``[{},{},...]`` is 7 million dictionaries, about 1 GB. The count is taken on the
  text outside string literals (commas, colons and openings), so a long printed CSV
  or a big HTML table costs nothing extra to check;
* **depth** - nesting past ``max_depth`` is refused before the parser recurses
  (a RecursionError on the reader thread would end the whole sandbox).

A message that breaks a limit or the protocol's shape is dropped, alone: the rest of
its burst goes on, and a rate-limited log line says what happened.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from .errors import ProtocolError

__all__ = [
    "DELIMITER",
    "JsonLimits",
    "MessageError",
    "RateLimitedLog",
    "loads_bounded",
    "parse_message",
]

Message = dict[str, Any]

DELIMITER = b"<IDS|MSG>"

_BRACKETS_ONLY = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST = re.compile(rb"\[\]|\{\}")


class MessageError(ValueError):
    """A part or message from the sandbox that is not accepted (why, in one phrase)."""


@dataclass(frozen=True)
class JsonLimits:
    """How much one JSON part from the sandbox may cost the host to parse."""

    max_nodes: int = 250_000
    max_depth: int = 100


def check_cost(data: bytes, limits: JsonLimits) -> None:
    """Refuse JSON whose parse would exceed ``limits``, without parsing it.

    Raises:
        MessageError: the part has too many values or is nested too deep.
    """
    opens = data.count(b"{") + data.count(b"[")
    rough_nodes = opens + data.count(b",") + data.count(b":")
    if rough_nodes < limits.max_nodes and opens <= limits.max_depth:
        return  # cannot break either limit: the common case, four C-speed passes
    text = _without_escapes(data)
    # Every string literal is a value: more literals than values allowed is enough to
    # refuse, before the literals are walked.
    literals = text.count(b'"') // 2
    if literals > limits.max_nodes:
        raise MessageError(f"about {literals:,} JSON strings, over the {limits.max_nodes:,} limit")
    gaps = _outside_strings(text)
    opens = sum(text.count(b"{", s, e) + text.count(b"[", s, e) for s, e in gaps)
    nodes = opens + 1 + sum(text.count(b",", s, e) + text.count(b":", s, e) for s, e in gaps)
    if nodes > limits.max_nodes:
        raise MessageError(f"about {nodes:,} JSON values, over the {limits.max_nodes:,} limit")
    if opens > limits.max_depth and _deeper_than(text, gaps, limits.max_depth):
        raise MessageError(f"JSON nested deeper than {limits.max_depth} levels")


def _without_escapes(data: bytes) -> bytes:
    """The text with escaped backslashes, then escaped quotes, removed (C-speed passes).

    What is left of each string literal is its content between two plain quotes.
    (Backslashes outside strings are invalid JSON, which the parser refuses anyway;
    here they can only make the estimate larger.) Nothing is copied when there is no
    backslash.
    """
    if b"\\" not in data:
        return data
    if b"\\\\" in data:
        data = data.replace(b"\\\\", b"")
    return data.replace(b'\\"', b"")


def _outside_strings(text: bytes) -> list[tuple[int, int]]:
    """The spans of an escape-free JSON text outside its string literals (no copy).

    One more span than there are literals, which the caller has bounded.
    """
    gaps = []
    start = 0
    while True:
        opening = text.find(b'"', start)
        if opening < 0:
            break
        gaps.append((start, opening))
        closing = text.find(b'"', opening + 1)
        if closing < 0:
            return gaps  # unterminated: invalid JSON, and no structure after it
        start = closing + 1
    gaps.append((start, len(text)))
    return gaps


def _deeper_than(text: bytes, gaps: list[tuple[int, int]], depth: int) -> bool:
    """Whether brackets nest more than ``depth`` levels (``depth`` C-speed passes).

    Called once the values are known to be within the node limit, so the brackets
    gathered here are few.
    """
    brackets = b"".join(bytes(text[s:e]).translate(None, _BRACKETS_ONLY) for s, e in gaps)
    for _ in range(depth):
        if not brackets:
            return False
        shorter = _INNERMOST.sub(b"", brackets)  # one level: innermost pairs of this pass
        if len(shorter) == len(brackets):
            return True  # mismatched brackets: invalid JSON, refused as such
        brackets = shorter
    return bool(brackets)


def loads_bounded(data: bytes, limits: JsonLimits) -> Any:
    """``json.loads`` with its cost bounded first.

    Raises:
        MessageError: over a limit, or not valid JSON in UTF-8.
    """
    check_cost(data, limits)
    return _parse(data)


def _parse(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise MessageError(f"invalid JSON ({err})") from None


def loads_object(data: bytes, limits: JsonLimits) -> dict[str, Any]:
    """:func:`loads_bounded` for a part that must be a JSON object."""
    value = loads_bounded(data, limits)
    if not isinstance(value, dict):
        raise MessageError("not a JSON object")
    return value


def decode_json(part: bytes) -> dict[str, Any]:
    """Parse a small JSON object frame from the relay (HELLO, EXITED), bounded.

    Raises:
        ProtocolError: the part is not a small JSON object.
    """
    try:
        return loads_object(part, _RELAY_LIMITS)
    except MessageError as err:
        raise ProtocolError(f"invalid JSON from the sandbox: {err}") from None


_RELAY_LIMITS = JsonLimits(max_nodes=1000, max_depth=8)

#: Header and parent header: a handful of short strings in a flat object.
_HEADER_LIMITS = JsonLimits(max_nodes=200, max_depth=4)
_HEADER_MAX_BYTES = 64 * 1024
_ID_MAX_CHARS = 1024

#: Stream content is passed on as the bytes it came in when it has exactly this shape.
_STREAM_NAMES = ("stdout", "stderr")


def parse_message(parts: list[bytes], *, iopub: bool, limits: JsonLimits) -> Message:
    """One Jupyter message from its wire parts, checked against the protocol's shape.

    The signature is not checked: it would only prove the message was made inside the
    sandbox (see inner.py). Stream content on IOPub stays the bytes it came in
    (validated here, so what the frontend gets is well-formed JSON): printed output is
    the bulk of what a kernel sends, and the outer kernel only passes it on.

    The returned message carries ``wire_bytes``: its content, metadata and buffers as
    sent, which is what the output budget charges.

    Raises:
        MessageError: not a message, over a limit, or a field of the wrong type.
    """
    try:
        frames = parts[parts.index(DELIMITER) + 1 :]
    except ValueError:
        raise MessageError("no delimiter") from None
    if len(frames) < 5:
        raise MessageError(f"{len(frames)} frames, not a message")
    _signature, header_part, parent_part, metadata_part, content, *buffers = frames
    if len(header_part) > _HEADER_MAX_BYTES or len(parent_part) > _HEADER_MAX_BYTES:
        raise MessageError("header over 64 KiB")
    header = loads_object(header_part, _HEADER_LIMITS)
    parent = loads_object(parent_part, _HEADER_LIMITS)
    msg_type = header.get("msg_type")
    if not isinstance(msg_type, str) or not msg_type or len(msg_type) > 64:
        raise MessageError("no valid msg_type")
    for name, fields in (("header", header), ("parent header", parent)):
        msg_id = fields.get("msg_id", "")
        if not isinstance(msg_id, str) or len(msg_id) > _ID_MAX_CHARS:
            raise MessageError(f"{name} msg_id is not a short string")
    metadata = loads_object(metadata_part, limits)
    msg: Message = {
        "header": header,
        "parent_header": parent,
        "metadata": metadata,
        "buffers": buffers,
        "wire_bytes": len(content) + len(metadata_part) + sum(len(b) for b in buffers),
    }
    if iopub and msg_type == "stream":
        # A large part arrives as a bytearray; the frontend's session wants bytes (and
        # the checks below are quicker on them).
        content = content if isinstance(content, bytes) else bytes(content)
        one_string = _one_string(content)
        if not (one_string and _plain_string_body(content)):
            stream = _parse(content) if one_string else loads_object(content, limits)
            if (
                not isinstance(stream, dict)
                or set(stream) != {"name", "text"}
                or stream["name"] not in _STREAM_NAMES
            ):
                raise MessageError("stream content is not {name, text}")
            if not isinstance(stream["text"], str):
                raise MessageError("stream text is not a string")
        msg["content"] = content  # relayed as it came
    else:
        msg["content"] = loads_object(content, limits)
    return msg


_STREAM_PREFIXES = tuple(
    f'{{"name":{space}"{name}",{space}"text":{space}"'.encode()
    for name in sorted(_STREAM_NAMES)
    for space in (" ", "")
)


def _one_string(content: bytes) -> bool:
    """Whether ``content`` is a stream's ``{"name": ..., "text": "..."}`` as ipykernel
    writes it, with no quote in the text: then its parse makes three values at depth
    one, whatever it holds, and needs no bound (one pass over the bytes instead of
    :func:`check_cost`'s four; printed megabytes are the bulk of what comes out)."""
    if not content.endswith(b'"}'):
        return False
    for prefix in _STREAM_PREFIXES:
        if content.startswith(prefix):
            # The prefix's seven quotes, then only the one closing the text.
            return content.find(b'"', len(prefix)) == len(content) - 2
    return False


#: A backslash that does not start one of JSON's escapes. The text has no quote, so
#: one before the closing quote is a false alarm or that quote escaped; so is the
#: second backslash of an escaped one (``\\\\x``): never a miss, and the full parse
#: then decides.
_BAD_ESCAPE = re.compile(rb"\\(?![\\/bfnrt]|u[0-9a-fA-F]{4})")
_NOT_CONTROL = bytes(range(0x20, 0x100))


def _plain_string_body(content: bytes) -> bool:
    """For a :func:`_one_string` content: whether its text is a valid JSON string body,
    checked without building the string (its parse is most of what printed megabytes
    cost the host, which only passes them on). Exactly what ``json.loads`` accepts:
    no raw control character, only JSON's escapes, UTF-8 (with surrogates, as
    ``json.loads`` decodes bytes). False sends the content to the full parse."""
    if content.translate(None, _NOT_CONTROL):
        return False
    if b"\\" in content and _BAD_ESCAPE.search(content) is not None:
        return False
    if not content.isascii():
        try:
            content.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return False
    return True


class RateLimitedLog:
    """Logs at most ``burst`` lines per ``period`` seconds, then how many it held back.

    A sandbox can send a million bad messages; the host's log must not grow with them.
    """

    def __init__(self, logger: logging.Logger, burst: int = 5, period: float = 60.0) -> None:
        self.logger = logger
        self.burst = burst
        self.period = period
        self._window = 0.0
        self._count = 0
        self._held = 0

    def warning(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._window >= self.period:
            if self._held:
                self.logger.warning(
                    "%d more like this from the sandbox were not logged", self._held
                )
            self._window, self._count, self._held = now, 0, 0
        if self._count < self.burst:
            self._count += 1
            self.logger.warning(message, *args)
        else:
            self._held += 1
