"""An independent judge of what a frontend would do with an output.

It shares no code with the sanitiser: it parses markup with the standard library's
HTML parser and reports anything that would run script, fetch from elsewhere or style
the page. Tests use it both ways: every hostile output must be flagged as it was made
(the attack is real: the negative control) and nothing may be flagged after the
sandbox relayed it.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

ACTIVE_TAGS = {
    "script", "iframe", "frame", "object", "embed", "applet", "style", "link", "meta",
    "base", "form", "input", "button", "textarea", "select", "foreignobject", "animate",
    "set", "handler", "listener", "template", "portal", "frameset",
}
URL_ATTRIBUTES = {"href", "src", "xlink:href", "action", "formaction", "poster", "data",
                  "background", "srcset", "ping", "cite", "longdesc", "dynsrc", "lowsrc"}
_SCHEME = re.compile(r"^\s*([a-z][a-z0-9+.\-]*):", re.I)
_CSS_URL = re.compile(r"url\(\s*['\"]?\s*([^)'\"\s]*)", re.I)
_TEX = re.compile(r"\\(href|url|style|class|cssId|bbox|data|require)(?![A-Za-z])")
_MD_LINK = re.compile(r"\]\(\s*<?([^)\s>]*)")


def _clean_url(value: str) -> str:
    return re.sub(r"[\t\n\r]", "", html.unescape(value)).strip("\x00 \x1f")


def _bad_url(attribute: str, value: str) -> str | None:
    url = _clean_url(value)
    scheme = _SCHEME.match(url)
    name = scheme.group(1).lower() if scheme else None
    if attribute == "href" or attribute == "cite":
        if name in (None, "http", "https", "mailto"):
            return None
        return f"{attribute}={url[:40]}"
    if url.startswith("#") or re.match(r"data:(image|audio|video)/", url, re.I):
        return None  # in the document, or in the URL itself: nothing is fetched
    return f"{attribute} loads {url[:40]}"


class _Judge(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.findings: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ACTIVE_TAGS:
            self.findings.append(f"<{tag}>")
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.findings.append(f"{name}=")
            elif name in URL_ATTRIBUTES:
                link = tag == "a" and name in ("href", "xlink:href")
                bad = _bad_url("href" if link else ("cite" if name == "cite" else "src"), value)
                if bad:
                    self.findings.append(bad)
            elif name == "srcdoc":
                self.findings.append("srcdoc")
            if name == "style" or "url(" in value:
                for url in _CSS_URL.findall(value):
                    if not url.startswith("#"):
                        self.findings.append(f"css url {url[:40]}")
                if name == "style" and re.search(r"position\s*:\s*(fixed|absolute)|expression\(", value, re.I):
                    self.findings.append("style escapes its box")
            if name == "class" and re.search(r"\bjp-", value):
                self.findings.append("class of the page's UI")

    handle_startendtag = handle_starttag


def judge_markup(text: str) -> list[str]:
    """What in HTML/SVG would run, fetch or restyle the page."""
    judge = _Judge()
    judge.feed(text)
    judge.close()
    findings = judge.findings
    findings += [f"TeX \\{m}" for m in _TEX.findall(html.unescape(text))]
    return findings


def judge_markdown(text: str) -> list[str]:
    findings = judge_markup(text)
    for url in _MD_LINK.findall(text):
        scheme = _SCHEME.match(_clean_url(url))
        if scheme and scheme.group(1).lower() not in ("http", "https", "mailto"):
            findings.append(f"markdown link {url[:40]}")
    if re.search(r"!\[[^\]]*\]\(\s*<?\s*(https?:)?//", text):
        findings.append("markdown image from elsewhere")
    return findings


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


def judge_bundle(data: dict[str, Any]) -> list[str]:
    """What in a mime bundle a frontend would run or fetch."""
    findings: list[str] = []
    for mime, value in data.items():
        if mime in ("application/javascript", "text/javascript", "application/ecmascript"):
            findings.append(mime)
        elif mime.startswith("application/vnd.sandbox-kernel."):
            findings.append(f"forged {mime}")
        elif mime in ("text/html", "image/svg+xml"):
            findings += judge_markup(_text(value))
        elif mime == "text/markdown":
            findings += judge_markdown(_text(value))
        elif mime == "text/latex":
            findings += [f"TeX \\{m}" for m in _TEX.findall(_text(value))]
        elif mime.startswith(("application/vnd.vega", "application/vnd.plotly")):
            findings += [f"spec fetches {u[:40]}" for u in _remote_strings(value)]
        elif mime not in ("text/plain", "application/json", "image/png", "image/jpeg", "image/gif",
                          "application/vnd.jupyter.widget-view+json"):
            findings.append(f"unjudged {mime}")
    return findings


def _remote_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if re.match(r"^\s*(https?:|//|javascript:)", value, re.I) else []
    if isinstance(value, list):
        return [s for item in value for s in _remote_strings(item)]
    if isinstance(value, dict):
        return [s for k, item in value.items() if k != "$schema" for s in _remote_strings(item)]
    return []


def judge_message(msg_type: str, content: dict[str, Any]) -> list[str]:
    """What in one IOPub message (as the frontend got it) would run or fetch."""
    if msg_type in ("display_data", "execute_result", "update_display_data"):
        return judge_bundle(content.get("data", {}))
    if msg_type in ("comm_open", "comm_msg"):
        return judge_widget_state(content.get("data", {}))
    return []


def judge_widget_state(data: dict[str, Any]) -> list[str]:
    state = data.get("state", {}) if isinstance(data, dict) else {}
    findings = []
    if not isinstance(state, dict):
        return findings
    for key in ("_model_module", "_view_module"):
        module = state.get(key)
        if module and module not in ("@jupyter-widgets/controls", "@jupyter-widgets/base",
                                     "@jupyter-widgets/output"):
            findings.append(f"widget module {module}")
    if "_esm" in state:
        findings.append("widget carries JavaScript (_esm)")
    for key in ("value", "description"):
        if isinstance(state.get(key), str):
            findings += judge_markup(state[key])
    for output in state.get("outputs", []) if isinstance(state.get("outputs"), list) else []:
        if isinstance(output, dict):
            findings += judge_bundle(output.get("data", {}))
    return findings
