"""The session's view of usage: totals and the top cells, for ``%sandbox usage``."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import format_size
from .model import CellUsage
from .render import BACKGROUND_MIN_S, format_seconds

#: The machine-readable part of :meth:`SessionUsage.report_bundle`.
REPORT_MIME_TYPE = "application/vnd.sandbox-kernel.usage-report+json"


@dataclass
class _CellRecord:
    execution_count: int | None
    code: str
    usage: CellUsage


def _code_label(code: str, width: int = 48) -> str:
    """The first non-blank line of a cell, shortened."""
    line = next((ln.strip() for ln in code.splitlines() if ln.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


@dataclass
class SessionUsage:
    """Every measured cell of a kernel session, for ``%sandbox usage``."""

    records: list[_CellRecord] = field(default_factory=list)

    def add(self, execution_count: int | None, code: str, usage: CellUsage) -> None:
        """Record one cell's usage (the code is kept as a one-line label only)."""
        self.records.append(_CellRecord(execution_count, _code_label(code), usage))

    def totals(self) -> dict[str, Any]:
        """Sums and maxima over the session's cells."""
        usages = [r.usage for r in self.records]
        return {
            "cells": len(usages),
            "wall_time_s": round(sum(u.wall_time_s for u in usages), 6),
            "cpu_time_s": round(sum(u.cpu_time_s for u in usages), 6),
            "background_cpu_s": round(sum(u.background_cpu_s for u in usages), 6),
            "peak_memory_bytes": max((u.peak_memory_bytes for u in usages), default=0),
            "memory_limit_bytes": usages[-1].memory_limit_bytes if usages else 0,
            "pids_peak": max((u.pids_peak or 0 for u in usages), default=0),
            "net_rx_bytes": sum(u.net_rx_bytes for u in usages),
            "net_tx_bytes": sum(u.net_tx_bytes for u in usages),
            "throttled_cells": sum(u.cpu_throttled for u in usages),
            "oom_cells": sum(u.oom_killed for u in usages),
        }

    def _top(self, key: Callable[[_CellRecord], float], top: int) -> list[_CellRecord]:
        return sorted(self.records, key=key, reverse=True)[: max(top, 0)]

    def report_bundle(self, top: int = 5) -> dict[str, Any]:
        """Totals and the ``top`` cells by wall time and by memory peak, as a mime bundle.

        Returns:
            ``{"text/plain": table, "text/html": table, REPORT_MIME_TYPE: json}``.
        """
        totals = self.totals()
        by_time = self._top(lambda r: r.usage.wall_time_s, top)
        by_memory = self._top(lambda r: r.usage.peak_memory_bytes, top)

        def entry(record: _CellRecord) -> dict[str, Any]:
            return {
                "execution_count": record.execution_count,
                "code": record.code,
                "usage": record.usage.to_json(),
            }

        data = {
            "totals": totals,
            "top_by_time": [entry(r) for r in by_time],
            "top_by_memory": [entry(r) for r in by_memory],
        }
        return {
            "text/plain": self._text(totals, by_time, by_memory),
            "text/html": self._html(totals, by_time, by_memory),
            REPORT_MIME_TYPE: data,
        }

    @staticmethod
    def _summary(totals: Mapping[str, Any]) -> str:
        if not totals["cells"]:
            return "Sandbox usage: no cells measured yet."
        peak = format_size(totals["peak_memory_bytes"])
        if totals["memory_limit_bytes"]:
            peak += f" of {format_size(totals['memory_limit_bytes'])}"
        parts = [
            f"{totals['cells']} cell{'' if totals['cells'] == 1 else 's'}",
            f"{format_seconds(totals['wall_time_s'])} wall",
            f"{format_seconds(totals['cpu_time_s'])} CPU",
            f"peak {peak}",
            f"net ↓{format_size(totals['net_rx_bytes'])} ↑{format_size(totals['net_tx_bytes'])}",
        ]
        if totals.get("background_cpu_s", 0) >= BACKGROUND_MIN_S:
            parts.append(f"{format_seconds(totals['background_cpu_s'])} CPU in the background")
        if totals["throttled_cells"]:
            parts.append(f"{totals['throttled_cells']} throttled")
        if totals["oom_cells"]:
            parts.append(f"{totals['oom_cells']} out of memory")
        return "Sandbox usage: " + " · ".join(parts)

    @staticmethod
    def _row(record: _CellRecord) -> list[str]:
        usage = record.usage
        count = "[ ]" if record.execution_count is None else f"[{record.execution_count}]"
        return [
            count,
            format_seconds(usage.wall_time_s),
            format_seconds(usage.cpu_time_s),
            ("" if usage.peak_exact else "~") + format_size(usage.peak_memory_bytes),
            record.code,
        ]

    _HEADERS = ("cell", "wall", "CPU", "peak", "code")

    def _text(
        self, totals: Mapping[str, Any], by_time: list[_CellRecord], by_memory: list[_CellRecord]
    ) -> str:
        lines = [self._summary(totals)]
        for title, records in (("Slowest cells", by_time), ("Largest memory peaks", by_memory)):
            if not records:
                continue
            rows = [list(self._HEADERS)] + [self._row(r) for r in records]
            widths = [max(len(row[i]) for row in rows) for i in range(len(self._HEADERS) - 1)]
            lines += ["", f"{title}:"]
            for row in rows:
                cells = [
                    row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(4)
                ]
                lines.append("  " + "  ".join(cells) + "  " + row[4])
        return "\n".join(lines)

    def _html(
        self, totals: Mapping[str, Any], by_time: list[_CellRecord], by_memory: list[_CellRecord]
    ) -> str:
        cell_style = "padding: 1px 8px; text-align: right; border: none"
        parts = [
            '<div class="sandbox-kernel-usage-report" style="font-family: '
            "var(--jp-ui-font-family, sans-serif); font-size: var(--jp-ui-font-size1, 13px); "
            'color: var(--jp-ui-font-color1, inherit)">',
            f"<div><b>{html.escape(self._summary(totals))}</b></div>",
        ]
        for title, records in (("Slowest cells", by_time), ("Largest memory peaks", by_memory)):
            if not records:
                continue
            parts.append(
                f'<div style="margin-top: 6px; color: var(--jp-ui-font-color2, #757575)">{title}</div>'
                '<table style="border-collapse: collapse; margin: 0">'
                "<tr>"
                + "".join(f'<th style="{cell_style}">{h}</th>' for h in self._HEADERS)
                + "</tr>"
            )
            for record in records:
                row = self._row(record)
                colour = (
                    ' style="color: var(--jp-warn-color0, #f57c00)"'
                    if record.usage.warnings
                    else ""
                )
                parts.append(
                    f"<tr{colour}>"
                    + "".join(f'<td style="{cell_style}">{html.escape(v)}</td>' for v in row[:4])
                    + f'<td style="{cell_style}; text-align: left"><code>{html.escape(row[4])}</code></td>'
                    + "</tr>"
                )
            parts.append("</table>")
        parts.append("</div>")
        return "".join(parts)
