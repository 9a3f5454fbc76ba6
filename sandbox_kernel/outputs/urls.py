"""Which URLs an output may carry.

Two kinds of URL reach a browser from an output:

* **resources** (``<img src>``, ``<audio src>``, an SVG ``<image href>``, a CSS
  ``url()``) are fetched as soon as the output is shown, with no click: a request to
  another origin would carry out whatever the cell read inside the sandbox, which has
  no network of its own. Only ``data:`` URLs of images and media are kept, and
  in-document references (``#id``);
* **links** (``<a href>``) are followed only when the user clicks. They keep working
  for ``http``, ``https`` and ``mailto``, and for relative paths and fragments; no
  scheme that runs script (``javascript:``, ``vbscript:``, ``data:text/html``, ...)
  in any spelling.

A URL is judged the way a browser reads it: HTML character references decoded, ASCII
tab and newline removed anywhere, leading and trailing controls and spaces dropped,
the scheme compared case-insensitively.
"""

from __future__ import annotations

import html
import re

_TAB_NEWLINE = re.compile(r"[\t\n\r]")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
_DATA_MEDIA = re.compile(
    r"^data:(image/(png|jpeg|jpg|gif|webp|bmp|svg\+xml)|audio/[a-z0-9.+\-]+|video/[a-z0-9.+\-]+)[;,]",
    re.IGNORECASE,
)
_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp|bmp|svg\+xml)[;,]", re.IGNORECASE)

#: Schemes a link may have.
LINK_SCHEMES = frozenset({"http", "https", "mailto"})


def normalise(url: str) -> str:
    """The URL as a browser's parser sees it (before it resolves it)."""
    text = html.unescape(url) if "&" in url else url
    text = _TAB_NEWLINE.sub("", text)
    return text.strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13"
                      "\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f \x7f")


def scheme(url: str) -> str | None:
    """The URL's scheme in lower case, or None for a relative URL."""
    match = _SCHEME.match(normalise(url))
    return match.group(1).lower() if match else None


def is_safe_link(url: str) -> bool:
    """A link target that cannot run script when clicked."""
    found = scheme(url)
    return found is None or found in LINK_SCHEMES


def is_fragment(url: str) -> bool:
    """An in-document reference (``#id``)."""
    return normalise(url).startswith("#")


def is_safe_media(url: str) -> bool:
    """A resource the browser may load without leaving the page: a ``data:`` image,
    sound or video."""
    return bool(_DATA_MEDIA.match(normalise(url)))


def is_safe_image(url: str) -> bool:
    """A ``data:`` image."""
    return bool(_DATA_IMAGE.match(normalise(url)))


def is_remote(text: str) -> bool:
    """A string a renderer could fetch from or navigate to outside the page.

    For JSON specifications (Plotly, Vega): any string that is a URL with a scheme
    other than a data image, or a scheme-relative ``//host`` URL.
    """
    value = normalise(text)
    if value.startswith("//"):
        return True
    found = _SCHEME.match(value)
    if found is None:
        return False
    return not _DATA_IMAGE.match(value) and found.group(1).lower() in _FETCHING_SCHEMES


_FETCHING_SCHEMES = frozenset(
    {"http", "https", "ftp", "ws", "wss", "file", "blob", "data", "javascript", "vbscript",
     "filesystem", "jar", "view-source"}
)
