"""How a cell's usage is shown: the compact line as text, HTML, LaTeX and a mime bundle.

Rendering only: the numbers come from :mod:`.model`. A number that is None (not true
for the sandbox's runtime, see :func:`.model.under_gvisor`) is left out of the line.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from ..config import format_size

if TYPE_CHECKING:
    from .model import CellUsage

MIME_TYPE = "application/vnd.sandbox-kernel.usage+json"

#: Background CPU worth a mention in the line. An idle kernel uses about 0.4 ms a
#: second, and thread pools spin after their work (OpenBLAS for about a tenth of a
#: second per thread): below this, background is in the JSON only.
BACKGROUND_MIN_S = 0.25


def format_seconds(seconds: float) -> str:
    """Format a duration for people: ``12 ms``, ``1.24 s``, ``12.3 s``, ``2 min 05 s``."""
    if seconds < 0.9995:
        return f"{max(seconds, 0.0) * 1000:.0f} ms"
    if seconds < 9.995:
        return f"{seconds:.2f} s"
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def parts(usage: CellUsage) -> list[tuple[str, str]]:
    """The line's pieces, each with a level: ``""``, ``"warn"`` or ``"error"``."""
    warnings = usage.warnings
    peak = f"peak {'' if usage.peak_exact else '~'}{format_size(usage.peak_memory_bytes)}"
    if usage.memory_limit_bytes:
        peak += f" of {format_size(usage.memory_limit_bytes)}"
        if "memory" in warnings:
            peak += f" ({100 * usage.peak_memory_bytes / usage.memory_limit_bytes:.0f}%)"
    pids = ""
    if usage.pids is not None:
        pids = f"{usage.pids} pid{'' if usage.pids == 1 else 's'}"
        if usage.pids_peak is not None and usage.pids_peak > usage.pids:
            pids += f" (peak {usage.pids_peak})"
        if "pids" in warnings:
            pids += f" of {usage.pids_limit}"
    if usage.net_rx_bytes or usage.net_tx_bytes:
        net = f"net ↓{format_size(usage.net_rx_bytes)} ↑{format_size(usage.net_tx_bytes)}"
    else:
        net = "net 0 B"
    parts = [
        (f"{format_seconds(usage.wall_time_s)} wall", ""),
        (f"{format_seconds(usage.cpu_time_s)} CPU", ""),
        (peak, "warn" if "memory" in warnings else ""),
        (pids, "warn" if "pids" in warnings else ""),
        (net, ""),
    ]
    parts = [(text, level) for text, level in parts if text]
    if usage.tmp_bytes:
        sign = "+" if usage.tmp_bytes > 0 else "-"
        parts.append((f"tmp {sign}{format_size(abs(usage.tmp_bytes))}", ""))
    if usage.background_cpu_s >= BACKGROUND_MIN_S:
        background = f"+{format_seconds(usage.background_cpu_s)} CPU in the background"
        if usage.background_cells:
            background += f" (threads of {', '.join(f'[{n}]' for n in usage.background_cells)})"
        parts.append((background, "warn"))
    if usage.cpu_throttled:
        parts.append(("CPU throttled", "warn"))
    if usage.oom_killed:
        parts.append(("out of memory: a process was killed", "error"))
    return parts


def text(usage: CellUsage) -> str:
    """The compact line: ``1.24 s wall · 1.10 s CPU · peak 312 MiB of 2 GiB · ...``."""
    return " · ".join(text for text, _ in parts(usage))


def html(usage: CellUsage) -> str:
    """The line as small, theme-aware HTML; parts near a limit in the warning colour."""
    colours = {
        "warn": "var(--jp-warn-color0, #f57c00)",
        "error": "var(--jp-error-color0, #d32f2f)",
    }
    pieces = []
    for text, level in parts(usage):
        if level:
            pieces.append(
                f'<span style="color: {colours[level]}; font-weight: 600">{escape(text)}</span>'
            )
        else:
            pieces.append(escape(text))
    how = "exact" if usage.peak_exact else "sampled"
    where = f"{usage.source}, around gVisor" if usage.gvisor else usage.source
    title = f"Measured outside the sandbox ({where}); memory peak {how}"
    return (
        f'<div class="sandbox-kernel-usage" title="{escape(title)}" '
        'style="font-family: var(--jp-ui-font-family, sans-serif); '
        "font-size: var(--jp-ui-font-size0, 11px); "
        "color: var(--jp-ui-font-color2, #757575); "
        'margin: 2px 0 0 0; line-height: 1.4">' + " · ".join(pieces) + "</div>"
    )


def latex(usage: CellUsage) -> str:
    """The line for LaTeX and PDF exports of the notebook (nbconvert)."""
    return "\\texttt{\\small " + _latex_escape(text(usage)) + "}"


def bundle(usage: CellUsage) -> dict[str, Any]:
    """A display_data mime bundle: text/plain, text/html, text/latex and the JSON."""
    return {
        "text/plain": text(usage),
        "text/html": html(usage),
        "text/latex": latex(usage),
        MIME_TYPE: usage.to_json(),
    }


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "·": r"$\cdot$",
    "↓": r"$\downarrow$",
    "↑": r"$\uparrow$",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(char, char) for char in text)
