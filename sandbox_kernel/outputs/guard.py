"""Every message from inside the sandbox, judged before anything on the host uses it.

:class:`OutputGuard` is the one place where a message made in the sandbox becomes one
the host relays. It runs on the reader thread, right after :mod:`..messages` has
parsed the message within its bounds, and returns the message to relay (often the
same object), or None to drop it, plus a notice to show under the cell when
something was taken out.

What it lets through, per channel:

* IOPub: ``stream`` (already validated as ``{name, text}``), ``display_data``,
  ``execute_result``, ``update_display_data`` (bundles cleaned, see :mod:`.bundles`),
  ``error`` (fields as strings), ``clear_output``, comms (see :mod:`.widgets`), and
  ``status``/``execute_input``, which the host replaces with its own. Nothing else.
* replies: ``execute_reply`` payloads (a ``page`` bundle is cleaned like any output,
  ``set_next_input`` and ``ask_exit`` are kept as the data they are, anything else
  dropped) and ``user_expressions``; ``inspect_reply`` bundles; the reply types the
  outer kernel forwards, with their fields checked by it.
* stdin: ``input_request`` with a bounded text prompt.

With ``allow_scripts_in_output`` the bundles and comms are passed as they are; the
parsing bounds and the shape checks stay.
"""

from __future__ import annotations

from typing import Any

from .bundles import clean_bundle, notice
from .widgets import CommGuard, clean_error

Message = dict[str, Any]

_BUNDLE_TYPES = frozenset({"display_data", "execute_result", "update_display_data"})
_COMM_TYPES = frozenset({"comm_open", "comm_msg", "comm_close"})
_IOPUB_TYPES = frozenset(
    {"stream", "error", "clear_output", "status", "execute_input", *_BUNDLE_TYPES, *_COMM_TYPES}
)
#: Replies the outer kernel waits for; any other message on shell or control is dropped.
_REPLY_TYPES = frozenset(
    {
        "execute_reply", "complete_reply", "inspect_reply", "is_complete_reply",
        "history_reply", "comm_info_reply", "kernel_info_reply", "shutdown_reply",
        "interrupt_reply",
    }
)
_PAYLOAD_SOURCES = frozenset({"page", "set_next_input", "ask_exit"})

#: Longest prompt of an ``input()`` from inside (shown as text above the input box).
MAX_PROMPT_CHARS = 4096
#: Longest ``set_next_input`` text (code put into a new cell, never run by itself).
MAX_NEXT_INPUT_CHARS = 1024 * 1024
_MAX_DISPLAY_ID = 256
#: Distinct notices remembered per sandbox (past that, each is shown every time).
_MAX_NOTICES = 256


class OutputGuard:
    """Judges the messages of one sandbox (its comm registry lives as long as it)."""

    def __init__(
        self,
        *,
        trust_scripts: bool,
        comm_targets: tuple[str, ...],
        widget_modules: tuple[str, ...],
    ) -> None:
        self.trust_scripts = trust_scripts
        self.comms = CommGuard(comm_targets, widget_modules)
        # Notices already shown: an everyday library output that loses a script (the
        # copy buttons of scikit-learn's estimator diagram) would otherwise put the
        # same line under every cell that shows one. Said once; cleaned every time.
        self._said: set[str] = set()

    def iopub(self, msg: Message) -> tuple[Message | None, str]:
        """An IOPub message to relay (or None), and a notice for its cell ('' if none)."""
        msg_type = msg["header"]["msg_type"]
        if msg_type not in _IOPUB_TYPES:
            return None, ""
        if msg_type == "stream":
            return msg, ""  # validated while parsing; content stays packed
        content = msg["content"]
        if msg_type in ("status", "execute_input"):
            return msg, ""  # read by the host, never relayed
        msg["metadata"] = {}  # message-level metadata of outputs: no frontend reads it
        if msg_type == "error":
            msg["content"] = clean_error(content)
            return msg, ""
        if msg_type == "clear_output":
            msg["content"] = {"wait": bool(content.get("wait", False))}
            return msg, ""
        if msg_type in _COMM_TYPES:
            return self._comm(msg)
        return self._bundle(msg)

    def _bundle(self, msg: Message) -> tuple[Message | None, str]:
        content = msg["content"]
        if self.trust_scripts:
            return msg, ""
        data, metadata, verdict = clean_bundle(
            content.get("data"), content.get("metadata"), self.comms.context()
        )
        cleaned: dict[str, Any] = {"data": data, "metadata": metadata}
        transient = content.get("transient")
        display_id = transient.get("display_id") if isinstance(transient, dict) else None
        cleaned["transient"] = (
            {"display_id": display_id}
            if isinstance(display_id, str) and len(display_id) <= _MAX_DISPLAY_ID
            else {}
        )
        if msg["header"]["msg_type"] == "execute_result":
            cleaned["execution_count"] = content.get("execution_count")
        if msg["header"]["msg_type"] == "update_display_data" and not cleaned["transient"]:
            return None, ""  # an update names the display it updates, or it is nothing
        msg["content"] = cleaned
        if not data:
            msg = _note_only(msg)
        return msg, self._once(notice(verdict)) if verdict else ""

    def _once(self, text: str) -> str:
        if text in self._said:
            return ""
        if len(self._said) < _MAX_NOTICES:
            self._said.add(text)
        return text.replace("]\n", "; said once per session]\n")

    def _comm(self, msg: Message) -> tuple[Message | None, str]:
        msg_type = msg["header"]["msg_type"]
        if self.trust_scripts:
            return msg, ""
        judge = {
            "comm_open": self.comms.comm_open,
            "comm_msg": self.comms.comm_msg,
            "comm_close": self.comms.comm_close,
        }[msg_type]
        content, why = judge(msg["content"])
        if content is None:
            text = f"[sandbox-kernel: a widget or comm was not opened: {why}]\n" if why else ""
            return None, text
        msg["content"] = content
        return msg, ""

    def reply(self, msg: Message) -> Message | None:
        """A shell or control reply to pass to whoever waits for it, or None."""
        msg_type = msg["header"]["msg_type"]
        if msg_type not in _REPLY_TYPES:
            return None
        content = msg["content"]
        if msg_type == "execute_reply":
            if content.get("status") == "error":
                content.update(clean_error(content))
            payload = content.get("payload")
            content["payload"] = [
                p for p in (self._payload(item) for item in payload) if p is not None
            ] if isinstance(payload, list) else []
            expressions = content.get("user_expressions")
            content["user_expressions"] = (
                {
                    str(name): self._expression(value)
                    for name, value in expressions.items()
                }
                if isinstance(expressions, dict)
                else {}
            )
        elif msg_type == "kernel_info_reply":
            # The host answers kernel_info itself; of the inner reply it uses the
            # language (which frontends save into the notebook) and the banner's text.
            content["language_info"] = _language_info(content.get("language_info"))
            content["banner"] = str(content.get("banner", ""))[:_MAX_BANNER]
        elif msg_type == "inspect_reply" and not self.trust_scripts:
            data, metadata, _ = clean_bundle(content.get("data"), content.get("metadata"), self.comms.context())
            content["data"], content["metadata"] = data, metadata
        return msg

    def _payload(self, item: Any) -> dict[str, Any] | None:
        if not isinstance(item, dict) or item.get("source") not in _PAYLOAD_SOURCES:
            return None
        source = item["source"]
        if source == "page":
            if self.trust_scripts:
                return item
            data, _, _ = clean_bundle(item.get("data"), {}, self.comms.context())
            start = item.get("start")
            return {"source": "page", "data": data, "start": start if isinstance(start, int) else 0}
        if source == "set_next_input":
            text = item.get("text")
            if not isinstance(text, str) or len(text) > MAX_NEXT_INPUT_CHARS:
                return None
            return {"source": source, "text": text, "replace": bool(item.get("replace", False))}
        return {"source": "ask_exit", "keepkernel": bool(item.get("keepkernel", False))}

    def _expression(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            return {"status": "error", "ename": "Error", "evalue": "invalid", "traceback": []}
        if value.get("status") != "ok":
            return {"status": "error", **clean_error(value)}
        if self.trust_scripts:
            return value
        data, metadata, _ = clean_bundle(value.get("data"), value.get("metadata"), self.comms.context())
        return {"status": "ok", "data": data, "metadata": metadata}

    def stdin(self, msg: Message) -> Message | None:
        """An ``input_request`` with a bounded prompt; anything else on stdin is dropped."""
        if msg["header"]["msg_type"] != "input_request":
            return None
        content = msg["content"]
        msg["content"] = {
            "prompt": str(content.get("prompt", ""))[:MAX_PROMPT_CHARS],
            "password": bool(content.get("password", False)),
        }
        return msg


_MAX_BANNER = 4096
_LANGUAGE_KEYS = ("name", "version", "mimetype", "file_extension", "pygments_lexer",
                  "nbconvert_exporter")


def _language_info(value: Any) -> dict[str, Any]:
    """The inner kernel's language_info, as short strings of the keys the protocol names."""
    info = value if isinstance(value, dict) else {}
    kept: dict[str, Any] = {
        key: info[key][:100] for key in _LANGUAGE_KEYS if isinstance(info.get(key), str)
    }
    mode = info.get("codemirror_mode")
    if isinstance(mode, str):
        kept["codemirror_mode"] = mode[:100]
    elif isinstance(mode, dict):
        kept["codemirror_mode"] = {
            k: v for k, v in mode.items()
            if k in ("name", "version") and isinstance(v, (str, int)) and len(str(v)) <= 100
        }
    return kept


def _note_only(msg: Message) -> Message:
    """A display whose every representation was removed: an empty text stands in, so
    the frontend shows the notice rather than an empty output (update_display_data
    keeps its display id)."""
    msg["content"]["data"] = {"text/plain": ""}
    return msg
