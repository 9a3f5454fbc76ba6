"""Keeping the sandbox's output from running code in the user's browser.

The container stops code from reaching the host, but a cell's *output* is rendered by
JupyterLab, in the user's browser, with the user's Jupyter session: outputs made in
the current session are trusted, so JavaScript in them runs there and can call the
Jupyter server's own API (open a terminal, write files) — outside the sandbox. So by
default the outer kernel drops script output (``application/javascript``) and any
HTML, SVG or Markdown that can run script (``<script>``, ``on...=`` handlers,
``javascript:`` links, frames, objects), and neutralises such HTML in widget state.
Tables, plots, images, LaTeX and widgets keep working. An administrator who trusts
the code can set ``allow_scripts_in_output``.
"""

from __future__ import annotations

import html
import re
from typing import Any

SCRIPT_MIME_TYPES = frozenset(
    {
        "application/javascript",
        "text/javascript",
        "application/x-javascript",
        "application/ecmascript",
    }
)
MARKUP_MIME_TYPES = frozenset({"text/html", "image/svg+xml", "text/markdown"})

_ACTIVE_MARKUP = re.compile(
    r"<\s*(script|iframe|frame|object|embed|applet|meta|base|link|form|math|svg\s[^>]*onload)\b"
    r"|<[^>]*\bon[a-z]+\s*=|javascript\s*:|vbscript\s*:|<[^>]*\bsrcdoc\s*=|data\s*:\s*text/html",
    re.IGNORECASE,
)


def is_active_markup(text: str) -> bool:
    """True when HTML/SVG/Markdown text could run script in a browser."""
    return bool(_ACTIVE_MARKUP.search(text))


def strip_active_data(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A mime bundle without the representations that could run script.

    Returns:
        The filtered bundle and the mime types removed. When nothing else is left,
        a ``text/plain`` note stands in.
    """
    kept: dict[str, Any] = {}
    removed: list[str] = []
    for mime, value in data.items():
        if mime in SCRIPT_MIME_TYPES or (
            mime in MARKUP_MIME_TYPES and isinstance(value, str) and is_active_markup(value)
        ):
            removed.append(mime)
        else:
            kept[mime] = value
    if removed and not kept:
        kept["text/plain"] = (
            f"[sandbox-kernel: {', '.join(removed)} output removed: it could run script in the browser]"
        )
    return kept, removed


def neutralise_strings(value: Any) -> tuple[Any, bool]:
    """Escape every string in a JSON value that holds active markup (widget state).

    Returns:
        The cleaned value and whether anything changed.
    """
    if isinstance(value, str):
        if is_active_markup(value):
            return html.escape(value), True
        return value, False
    if isinstance(value, dict):
        changed = False
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[key], item_changed = neutralise_strings(item)
            changed = changed or item_changed
        return (out, True) if changed else (value, False)
    if isinstance(value, list):
        items = [neutralise_strings(item) for item in value]
        if any(changed for _, changed in items):
            return [item for item, _ in items], True
        return value, False
    return value, False


def make_safe(msg_type: str, content: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The content of an IOPub message with browser-active parts removed.

    Returns:
        The (possibly new) content and a list naming what was removed.
    """
    if msg_type in ("display_data", "execute_result", "update_display_data"):
        data = content.get("data")
        if isinstance(data, dict):
            kept, removed = strip_active_data(data)
            if removed:
                return {**content, "data": kept}, removed
    elif msg_type in ("comm_open", "comm_msg"):
        cleaned, changed = neutralise_strings(content.get("data"))
        if changed:
            return {**content, "data": cleaned}, ["active markup in widget state"]
    return content, []
