"""JSON specifications drawn by a frontend renderer: Plotly, Vega and Vega-Lite.

JupyterLab draws these without running any code of the cell, but the renderers fetch
what a specification names (a Vega data ``url``, a Plotly layout image ``source``, a
map style) and show strings with a little HTML (Plotly's titles and annotations, with
links). So every string that is a fetching URL is emptied, strings with markup are
sanitised like HTML output, and Vega's ``usermeta`` (options for vega-embed itself) is
removed. Everything else - the data, the encodings, the expressions of Vega's own
sandboxed expression language - is drawn as on a plain kernel.
"""

from __future__ import annotations

import re
from typing import Any

from . import urls
from .html import clean_html

#: Keys whose value is kept as it is (a schema URL names a version; nothing fetches it).
_KEPT_KEYS = frozenset({"$schema"})
#: Keys removed with their value.
_DROPPED_KEYS = frozenset({"usermeta"})

#: Plotly's own tag in hover templates: ``<extra>...</extra>`` is the text of the box
#: beside the hover label (every Plotly Express figure ends its templates with an empty
#: one, to hide the trace name). Not HTML: Plotly cuts it out of the template and draws
#: its text as SVG. Only these exact tags are kept; what is between them is cleaned.
PLOTLY_TAGS = ("<extra>", "</extra>")
_PLOTLY_TAG = re.compile(r"(</?extra>)")


def _clean_markup(value: str, kept: tuple[str, ...]) -> str:
    if not kept:
        return clean_html(value)
    return "".join(
        part if part in kept else clean_html(part) if part else ""
        for part in _PLOTLY_TAG.split(value)
    )


def clean_spec(value: Any, kept: tuple[str, ...] = ()) -> tuple[Any, bool]:
    """A specification with remote URLs emptied and markup sanitised; whether it changed.

    ``kept``: tags of the renderer's own that are not HTML (``PLOTLY_TAGS``).
    The value was parsed with bounded depth (see :mod:`sandbox_kernel.messages`), so
    the recursion here is bounded too.
    """
    if isinstance(value, str):
        if urls.is_remote(value):
            return "", True
        if "<" in value or "&" in value:
            cleaned = _clean_markup(value, kept)
            return cleaned, cleaned != value
        return value, False
    if isinstance(value, list):
        items = [clean_spec(item, kept) for item in value]
        if any(changed for _, changed in items):
            return [item for item, _ in items], True
        return value, False
    if isinstance(value, dict):
        changed = False
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in _DROPPED_KEYS:
                changed = True
                continue
            if key in _KEPT_KEYS:
                out[key] = item
                continue
            out[key], item_changed = clean_spec(item, kept)
            changed = changed or item_changed
        return (out, True) if changed else (value, False)
    return value, False
