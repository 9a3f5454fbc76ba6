"""Mime bundles from the sandbox: an allowlist of types, each with its own cleaner.

A bundle (``display_data``, ``execute_result``, ``update_display_data``, a ``page``
payload, ``user_expressions``, an inspection, an Output widget's outputs) keeps only
the representations in :data:`MIME_TYPES`; anything else - JavaScript, a widget
library's own renderer, PDF, a type nobody here has judged - is dropped and named in a
notice. So are this kernel's own types (``application/vnd.sandbox-kernel.*``): only
the host writes usage and validation records.

Text-like values given as a list of strings (nbformat's multi-line form, which
JupyterLab joins) are joined before they are judged. Metadata keeps only the display
hints frontends read (size, background, expansion), with plain values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .html import judge_html, judge_svg
from .latex import disarm
from .markdown import clean_markdown
from .specs import clean_spec

#: This kernel's own mimetypes: never accepted from inside the sandbox.
KERNEL_MIME_PREFIX = "application/vnd.sandbox-kernel."

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"

_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")


@dataclass
class Verdict:
    """What cleaning one bundle removed, for the notice under the output."""

    removed: list[str] = field(default_factory=list)  # mimetypes dropped
    sanitised: list[str] = field(default_factory=list)  # mimetypes whose active parts went
    forged: list[str] = field(default_factory=list)  # the kernel's own mimetypes

    def __bool__(self) -> bool:
        return bool(self.removed or self.sanitised or self.forged)

    def extend(self, other: Verdict) -> None:
        self.removed += other.removed
        self.sanitised += other.sanitised
        self.forged += other.forged


def _text(value: Any) -> str | None:
    """A text representation as one string (lists of strings joined), else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return "".join(value)
    return None


Cleaner = Callable[[Any, "Context"], "tuple[dict[str, Any], bool] | None"]


@dataclass
class Context:
    """What a cleaner may need to know beyond the value (live widget models)."""

    widget_known: Callable[[str], bool] = lambda model_id: False


def _plain(mime: str) -> Cleaner:
    def clean(value: Any, ctx: Context) -> tuple[dict[str, Any], bool] | None:
        text = _text(value)
        return None if text is None else ({mime: text}, False)

    return clean


def _typeset(mime: str) -> Cleaner:
    def clean(value: Any, ctx: Context) -> tuple[dict[str, Any], bool] | None:
        text = _text(value)
        if text is None:
            return None
        cleaned, changed = disarm(text)
        return {mime: cleaned}, changed

    return clean


def _html(value: Any, ctx: Context) -> tuple[dict[str, Any], bool] | None:
    text = _text(value)
    if text is None:
        return None
    cleaned, removed = judge_html(text)
    return {"text/html": cleaned}, removed


def _markdown(value: Any, ctx: Context) -> tuple[dict[str, Any], bool] | None:
    text = _text(value)
    if text is None:
        return None
    mime, cleaned, removed = clean_markdown(text)
    return {mime: cleaned}, removed


def _svg(value: Any, ctx: Context) -> tuple[dict[str, Any], bool] | None:
    text = _text(value)
    if text is None:
        return None
    cleaned, removed = judge_svg(text)
    return ({"image/svg+xml": cleaned}, removed) if cleaned else None


def _image(mime: str) -> Cleaner:
    def clean(value: Any, ctx: Context) -> tuple[dict[str, Any], bool] | None:
        # Shown as a data: URL built from the value: base64 and nothing else.
        text = _text(value)
        if text is None or not _BASE64.match(text):
            return None
        return {mime: text}, False

    return clean


def _json(mime: str) -> Cleaner:
    def clean(value: Any, ctx: Context) -> tuple[dict[str, Any], bool] | None:
        return {mime: value}, False

    return clean


def _spec(mime: str) -> Cleaner:
    def clean(value: Any, ctx: Context) -> tuple[dict[str, Any], bool] | None:
        if not isinstance(value, dict):
            return None
        cleaned, changed = clean_spec(value)
        return {mime: cleaned}, changed

    return clean


def _widget_view(value: Any, ctx: Context) -> tuple[dict[str, Any], bool] | None:
    if not isinstance(value, dict) or not isinstance(value.get("model_id"), str):
        return None
    if not ctx.widget_known(value["model_id"]):
        return None  # a model that was refused (or never opened) is not shown
    view = {k: v for k, v in value.items() if k in ("model_id", "version_major", "version_minor")}
    return {WIDGET_VIEW_MIME: view}, False


#: Every representation an output may carry, and how it is made safe.
MIME_TYPES: dict[str, Cleaner] = {
    "text/plain": _plain("text/plain"),
    "text/html": _html,
    "text/markdown": _markdown,
    "text/latex": _typeset("text/latex"),
    "image/svg+xml": _svg,
    "image/png": _image("image/png"),
    "image/jpeg": _image("image/jpeg"),
    "image/gif": _image("image/gif"),
    "image/webp": _image("image/webp"),
    "image/bmp": _image("image/bmp"),
    "application/json": _json("application/json"),
    "application/vnd.dataresource+json": _json("application/vnd.dataresource+json"),
    "application/vnd.plotly.v1+json": _spec("application/vnd.plotly.v1+json"),
    WIDGET_VIEW_MIME: _widget_view,
}
for _version in range(1, 7):
    MIME_TYPES[f"application/vnd.vegalite.v{_version}+json"] = _spec(
        f"application/vnd.vegalite.v{_version}+json"
    )
    MIME_TYPES[f"application/vnd.vega.v{_version}+json"] = _spec(
        f"application/vnd.vega.v{_version}+json"
    )

#: Display hints a frontend reads from a representation's metadata.
_HINTS = frozenset({"width", "height", "unconfined", "needs_background", "expanded", "root"})


def _hints(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    return {
        k: v
        for k, v in value.items()
        if k in _HINTS and (isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) < 64))
    }


def clean_bundle(
    data: Any, metadata: Any, ctx: Context
) -> tuple[dict[str, Any], dict[str, Any], Verdict]:
    """A bundle and its metadata with only allowed, cleaned representations."""
    verdict = Verdict()
    kept: dict[str, Any] = {}
    if not isinstance(data, dict):
        return kept, {}, verdict
    for mime, value in data.items():
        if not isinstance(mime, str):
            continue
        if mime.startswith(KERNEL_MIME_PREFIX):
            verdict.forged.append(mime)
            continue
        cleaner = MIME_TYPES.get(mime)
        cleaned = cleaner(value, ctx) if cleaner is not None else None
        if cleaned is None:
            verdict.removed.append(mime)
            continue
        values, changed = cleaned
        if changed:
            verdict.sanitised.append(mime)
        for new_mime, new_value in values.items():
            # Rendered Markdown joins an HTML representation the cell may have too:
            # the cell's own HTML wins, as it would in the frontend.
            kept.setdefault(new_mime, new_value)
    meta: dict[str, Any] = {}
    if isinstance(metadata, dict):
        for key, value in metadata.items():
            if key in kept:
                hints = _hints(value)
                if hints:
                    meta[key] = hints
    return kept, meta, verdict


def notice(verdict: Verdict) -> str:
    """One line saying what was removed from an output and why."""
    parts = []
    if verdict.removed:
        parts.append(
            f"{', '.join(sorted(set(verdict.removed)))} removed (not a type the sandbox lets "
            "through: it could run script in the browser or is unknown)"
        )
    if verdict.sanitised:
        parts.append(
            f"script, event handlers or remote resources removed from "
            f"{', '.join(sorted(set(verdict.sanitised)))}"
        )
    if verdict.forged:
        parts.append(
            f"{', '.join(sorted(set(verdict.forged)))} removed (only the host writes the "
            "kernel's own records)"
        )
    return "[sandbox-kernel: " + "; ".join(parts) + "]\n"
