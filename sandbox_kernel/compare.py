"""Comparing a cell's outputs with the outputs it saved, for ``sandbox-kernel reproduce``.

Outputs are brought to a comparable form first: streams of one name joined (how a
frontend splits them is not the cell's doing), execution counts and metadata left out,
images compared by their decoded bytes, widget views by what they show (a model id is
new in every session), the kernel's usage records set aside to be shown side by side
(a cell's cost is measured, not reproduced). Tolerances, each asked for, cover what
legitimately varies between runs: float formatting, timings, memory addresses.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .usage import MIME_TYPE as USAGE_MIME_TYPE
from .usage import REPORT_MIME_TYPE

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{4,}\b")
_FLOAT = re.compile(r"(?<![\w.])-?\d+\.\d+(?:[eE][+-]?\d+)?(?![\w.])")
_TIMING = re.compile(
    r"(?:\d+(?:\.\d+)?\s?(?:ns|µs|us|ms|s|sec|secs|seconds|min|it/s|s/it)\b)"
    r"|(?:\b\d{1,2}:\d{2}(?::\d{2})?\b)"
)


@dataclass(frozen=True)
class Tolerance:
    """What may differ between the saved outputs and the new ones.

    Attributes:
        float_digits: compare decimal numbers in text to this many significant digits
            (None: exactly as printed).
        timings: durations and rates in text (``1.2 s``, ``35 ms``, ``12.3it/s``,
            ``00:01``) match any other.
        addresses: memory addresses (``0x7f3a...``) match any other.
    """

    float_digits: int | None = None
    timings: bool = False
    addresses: bool = False

    def text(self, value: str) -> str:
        value = _ANSI.sub("", value)
        if self.addresses:
            value = _ADDRESS.sub("0x…", value)
        if self.timings:
            value = _TIMING.sub("<time>", value)
        if self.float_digits is not None:
            digits = self.float_digits
            value = _FLOAT.sub(lambda m: f"{float(m.group()):.{digits}g}", value)
        return value


@dataclass
class Outputs:
    """A cell's outputs in comparable form, and its usage lines apart."""

    items: list[tuple[str, Any]] = field(default_factory=list)
    usage: list[str] = field(default_factory=list)


def _image(value: Any) -> str:
    text = "".join(value) if isinstance(value, list) else str(value)
    try:
        raw = base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        raw = text.encode()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _data(data: Mapping[str, Any], tolerance: Tolerance) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for mime, value in data.items():
        if mime == WIDGET_VIEW_MIME and isinstance(value, Mapping):
            kept[mime] = {k: v for k, v in value.items() if k != "model_id"}
        elif mime.startswith("image/") and not mime.startswith("image/svg"):
            kept[mime] = _image(value)
        elif isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            kept[mime] = tolerance.text("".join(value) if isinstance(value, list) else value)
        else:
            kept[mime] = tolerance.text(json.dumps(value, sort_keys=True))
    return kept


def comparable(outputs: list[Any], tolerance: Tolerance) -> Outputs:
    """A cell's saved (nbformat) outputs in the form :func:`differences` compares."""
    result = Outputs()
    for output in outputs:
        if not isinstance(output, Mapping):
            continue
        kind = output.get("output_type")
        if kind == "stream":
            name = str(output.get("name", "stdout"))
            text = output.get("text", "")
            text = "".join(text) if isinstance(text, list) else str(text)
            last = result.items[-1] if result.items else None
            if last is not None and last[0] == f"stream {name}":
                result.items[-1] = (last[0], last[1] + text)
            else:
                result.items.append((f"stream {name}", text))
        elif kind in ("display_data", "execute_result"):
            data = output.get("data")
            if not isinstance(data, Mapping):
                continue
            if USAGE_MIME_TYPE in data or REPORT_MIME_TYPE in data:
                line = data.get("text/plain") or ""
                line = "".join(line) if isinstance(line, list) else str(line)
                result.usage.append(line.splitlines()[0] if line else "")
                continue
            result.items.append((str(kind), _data(data, tolerance)))
        elif kind == "error":
            traceback = output.get("traceback") or []
            result.items.append(
                (
                    "error",
                    {
                        "ename": output.get("ename"),
                        "evalue": tolerance.text(str(output.get("evalue", ""))),
                        "traceback": tolerance.text("\n".join(str(t) for t in traceback)),
                    },
                )
            )
    # Stream text is compared after the tolerance too (joined first: a number may span
    # two chunks of a stream).
    result.items = [
        (kind, tolerance.text(value) if kind.startswith("stream ") else value)
        for kind, value in result.items
    ]
    return result


def _first_difference(saved: str, now: str) -> str:
    saved_lines, now_lines = saved.splitlines(), now.splitlines()
    for number, (a, b) in enumerate(zip(saved_lines, now_lines, strict=False), start=1):
        if a != b:
            return f"line {number}: saved {a[:120]!r}, now {b[:120]!r}"
    if len(saved_lines) != len(now_lines):
        return f"saved {len(saved_lines)} lines, now {len(now_lines)}"
    return f"saved {saved[:120]!r}, now {now[:120]!r}"


def _describe(position: int, kind: str, saved: Any, now: Any) -> list[str]:
    where = f"output {position} ({kind})"
    if isinstance(saved, str) and isinstance(now, str):
        return [f"{where}: text differs at {_first_difference(saved, now)}"]
    if isinstance(saved, dict) and isinstance(now, dict):
        found = []
        for key in sorted(set(saved) | set(now)):
            if key not in now:
                found.append(f"{where}: {key} missing now")
            elif key not in saved:
                found.append(f"{where}: {key} new")
            elif saved[key] != now[key]:
                a, b = saved[key], now[key]
                if isinstance(a, str) and isinstance(b, str):
                    if a.startswith("sha256:") and b.startswith("sha256:"):
                        found.append(f"{where}: {key} differs (content {a[7:19]} now {b[7:19]})")
                    else:
                        found.append(f"{where}: {key} differs at {_first_difference(a, b)}")
                else:
                    found.append(f"{where}: {key} differs")
        return found
    return [f"{where}: differs"]


def differences(saved: Outputs, now: Outputs) -> list[str]:
    """How the new outputs differ from the saved ones; empty when they match."""
    found: list[str] = []
    for position, (old, new) in enumerate(zip(saved.items, now.items, strict=False), start=1):
        if old[0] != new[0]:
            found.append(f"output {position}: saved a {old[0]}, now a {new[0]}")
        elif old[1] != new[1]:
            found += _describe(position, old[0], old[1], new[1])
    if len(saved.items) != len(now.items):
        extra = now.items[len(saved.items) :] or saved.items[len(now.items) :]
        kinds = ", ".join(kind for kind, _ in extra)
        found.append(f"saved {len(saved.items)} outputs, now {len(now.items)} ({kinds})")
    return found


def is_failure(saved: Outputs, now: Outputs) -> bool:
    """The cell raised now and did not when saved (or raised something else)."""
    errors_now = [v for k, v in now.items if k == "error"]
    errors_saved = [v for k, v in saved.items if k == "error"]
    return bool(errors_now) and [e.get("ename") for e in errors_now] != [
        e.get("ename") for e in errors_saved
    ]
