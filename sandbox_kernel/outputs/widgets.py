"""Comms from the sandbox: allowed targets, allowed widget models, cleaned state.

A comm opened from inside reaches JupyterLab's widget manager, which builds a model
and views from the module the comm names. Some widget libraries run code the model
carries (anywidget's ``_esm``), and several core fields are rendered as HTML. So:

* only comm targets in ``allowed_comm_targets`` are opened (ipywidgets' by default);
* a widget is opened only when its model and view modules are in
  ``allowed_widget_modules`` (the three core ipywidgets modules by default), and a
  later update cannot switch a live model to another module;
* fields rendered as HTML (``HTML``/``HTMLMath``/``Label`` values, every
  ``description``) go through the HTML sanitiser, typeset fields lose their
  page-reaching TeX macros, an ``Output`` widget's ``outputs`` go through the same
  bundle cleaning as any output, layout and style traits must be inert CSS values,
  and an ``Image``/``Video``/``Audio`` given as a URL is refused (it would be fetched).

The registry of live comms is bounded, like everything a sandbox can make grow.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .bundles import Context, Verdict, clean_bundle
from .css import is_inert_value
from .html import clean_html, is_ui_class
from .latex import disarm

#: ipywidgets' comm targets (``jupyter.widget.version`` is ipywidgets 7's handshake).
DEFAULT_COMM_TARGETS = ("jupyter.widget", "jupyter.widget.version")

#: The core ipywidgets modules: controls (tqdm's bars among them), layout and style,
#: and the Output widget. Nothing in them runs code from the model.
DEFAULT_WIDGET_MODULES = (
    "@jupyter-widgets/controls",
    "@jupyter-widgets/base",
    "@jupyter-widgets/output",
)

#: How many comms the host keeps track of at once.
MAX_LIVE_COMMS = 100_000

_MODULE_KEYS = ("_model_module", "_view_module")
_ICON = re.compile(r"^[a-z0-9-]*$")
_HTML_VALUE_MODELS = frozenset({"HTMLModel", "HTMLMathModel", "LabelModel"})
_URL_MEDIA_MODELS = frozenset({"ImageModel", "VideoModel", "AudioModel"})


@dataclass
class _Comm:
    target: str
    model: str  # the widget's _model_name ("" for non-widget comms)
    by_frontend: bool = False


class CommGuard:
    """Judges comm_open, comm_msg and comm_close from inside; remembers live comms."""

    def __init__(self, targets: tuple[str, ...], modules: tuple[str, ...]) -> None:
        self.targets = frozenset(targets)
        self.modules = frozenset(modules)
        self._live: OrderedDict[str, _Comm] = OrderedDict()

    def known(self, comm_id: str) -> bool:
        """A live comm this guard let through (a widget view may show it)."""
        return comm_id in self._live

    def context(self) -> Context:
        return Context(widget_known=self.known)

    def comm_open(self, content: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """The content to relay, or None and why it was refused."""
        comm_id, target = content.get("comm_id"), content.get("target_name")
        if not isinstance(comm_id, str) or not isinstance(target, str):
            return None, "a comm without an id or target"
        if target not in self.targets:
            return None, f"comm target {target[:80]!r} is not allowed"
        data = content.get("data")
        state = data.get("state") if isinstance(data, dict) else None
        model = ""
        if target == "jupyter.widget":
            if not isinstance(state, dict):
                return None, "a widget without state"
            for key in _MODULE_KEYS:
                module = state.get(key)
                # A view module may be empty (layout and style models have none).
                if (key == "_model_module" or module) and module not in self.modules:
                    return None, f"widget module {str(module)[:80]!r} is not allowed"
            model = str(state.get("_model_name", ""))
            if model in _URL_MEDIA_MODELS and state.get("format") == "url":
                return None, f"a {model} loaded from a URL"
        if len(self._live) >= MAX_LIVE_COMMS:
            return None, f"more than {MAX_LIVE_COMMS:,} comms open"
        cleaned = {**content, "data": self._clean_data(data, model)}
        self._live[comm_id] = _Comm(target, model)
        return cleaned, ""

    def opened_by_frontend(self, comm_id: str, target: str) -> None:
        """A comm the frontend opened (its target is the frontend's choice)."""
        if len(self._live) < MAX_LIVE_COMMS:
            self._live[comm_id] = _Comm(target, "", by_frontend=True)

    def closed_by_frontend(self, comm_id: str) -> None:
        self._live.pop(comm_id, None)

    def comm_msg(self, content: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        comm = self._live.get(str(content.get("comm_id")))
        if comm is None:
            return None, ""  # for a comm that was refused or closed: silently dropped
        data = content.get("data")
        if comm.target == "jupyter.widget.control" and isinstance(data, dict):
            # ipywidgets 8 answers the frontend's request_states here, and the frontend
            # builds models from the answer: the same checks as a comm_open.
            return {**content, "data": self._clean_states(data)}, ""
        if comm.model and isinstance(data, dict) and isinstance(data.get("state"), dict):
            state = data["state"]
            if comm.model in _URL_MEDIA_MODELS and state.get("format") == "url":
                return None, f"a {comm.model} loaded from a URL"
            for key in _MODULE_KEYS:
                if key in state and state[key] and state[key] not in self.modules:
                    return None, f"widget module {str(state[key])[:80]!r} is not allowed"
        return {**content, "data": self._clean_data(data, comm.model)}, ""

    def comm_close(self, content: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        comm = self._live.pop(str(content.get("comm_id")), None)
        return (content, "") if comm is not None else (None, "")

    def _clean_states(self, data: dict[str, Any]) -> dict[str, Any]:
        states = data.get("states")
        if not isinstance(states, dict):
            return data
        kept = {}
        for model_id, entry in states.items():
            live = self._live.get(model_id)
            if live is None or not live.model or not isinstance(entry, dict):
                continue  # only models this guard let open
            state = entry.get("state")
            if not isinstance(state, dict) or entry.get("model_module") not in self.modules:
                continue
            if any(state.get(k) and state.get(k) not in self.modules for k in _MODULE_KEYS):
                continue
            cleaned = self._clean_data({"state": state}, live.model)
            kept[model_id] = {**entry, "state": cleaned["state"]}
        return {**data, "states": kept}

    def _clean_data(self, data: Any, model: str) -> Any:
        if not model or not isinstance(data, dict) or not isinstance(data.get("state"), dict):
            return data
        state = dict(data["state"])
        for key, value in state.items():
            state[key] = self._clean_trait(model, key, value)
        return {**data, "state": state}

    def _clean_trait(self, model: str, key: str, value: Any) -> Any:
        if key == "_dom_classes" and isinstance(value, list):
            # add_class(): class names of the page's own interface would dress the
            # widget up as it (a dialog drawn over the notebook).
            return [c for c in value if isinstance(c, str) and not is_ui_class(c)]
        if key == "icon" and isinstance(value, str):
            return value if _ICON.match(value) else ""  # becomes a class name "fa-<icon>"
        if isinstance(value, str):
            if key == "description" or (key == "value" and model in _HTML_VALUE_MODELS):
                return clean_html(value)
            if model == "LayoutModel" or model.endswith("StyleModel"):
                return value if is_inert_value(value) else ""
            if key in ("placeholder", "tooltip") or model == "HTMLMathModel":
                return disarm(value)[0]
            return value
        if key == "outputs" and model == "OutputModel" and isinstance(value, list):
            return [o for o in (self.clean_output(item)[0] for item in value) if o is not None]
        return value

    def clean_output(self, output: Any) -> tuple[dict[str, Any] | None, Verdict]:
        """One nbformat output (an Output widget's state) cleaned like a message."""
        verdict = Verdict()
        if not isinstance(output, dict):
            return None, verdict
        kind = output.get("output_type")
        if kind == "stream":
            text = output.get("text")
            if output.get("name") in ("stdout", "stderr") and isinstance(text, str):
                return {"output_type": "stream", "name": output["name"], "text": text}, verdict
            return None, verdict
        if kind == "error":
            return clean_error(output) | {"output_type": "error"}, verdict
        if kind in ("display_data", "execute_result"):
            data, meta, verdict = clean_bundle(output.get("data"), output.get("metadata"), self.context())
            out: dict[str, Any] = {"output_type": kind, "data": data, "metadata": meta}
            if kind == "execute_result":
                count = output.get("execution_count")
                out["execution_count"] = count if isinstance(count, int) else None
            return out, verdict
        return None, verdict


def clean_error(content: dict[str, Any]) -> dict[str, Any]:
    """An error's fields as strings (tracebacks are shown as text with ANSI colours).

    Their size is the output budget's business (see ``Sandbox``), like any output's.
    """
    traceback = content.get("traceback")
    lines = [line for line in traceback if isinstance(line, str)] if isinstance(traceback, list) else []
    return {
        "ename": str(content.get("ename", "Error")),
        "evalue": str(content.get("evalue", "")),
        "traceback": lines,
    }
