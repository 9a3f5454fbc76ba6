"""The output sanitiser on hostile and everyday bundles (pure functions, no engine).

Every hostile bundle is first shown to be active by the independent judge in
``output_oracle`` (the negative control), then shown inert after cleaning.
"""

from __future__ import annotations

import json
import xml.dom.minidom

import pytest
from hostile_outputs import BENIGN, BUNDLES
from output_oracle import judge_bundle

from sandbox_kernel.outputs.bundles import Context, clean_bundle
from sandbox_kernel.outputs.css import clean_declarations
from sandbox_kernel.outputs.guard import OutputGuard
from sandbox_kernel.outputs.html import clean_html
from sandbox_kernel.outputs.urls import is_safe_link, is_safe_media


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_hostile_bundle_is_active_before_and_inert_after(name: str) -> None:
    bundle = BUNDLES[name]
    assert judge_bundle(bundle), f"negative control: the judge does not see the attack {name!r}"
    cleaned, _, verdict = clean_bundle(bundle, {}, Context())
    assert judge_bundle(cleaned) == [], (name, cleaned)
    assert verdict, f"{name}: nothing was reported as removed"


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_everyday_outputs_still_show(name: str) -> None:
    bundle, survivor = BENIGN[name]
    cleaned, _, verdict = clean_bundle(bundle, {}, Context())
    text = json.dumps(cleaned) if not isinstance(next(iter(cleaned.values())), str) else next(iter(cleaned.values()))
    assert survivor in text, (name, cleaned)
    assert not verdict.removed and not verdict.forged, (name, verdict)


def test_svg_stays_well_formed_xml() -> None:
    bundle, _ = BENIGN["matplotlib svg"]
    cleaned, _, _ = clean_bundle(bundle, {}, Context())
    xml.dom.minidom.parseString(cleaned["image/svg+xml"])


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:x", "java\tscript:x",
     "java\nscript:x", "javascript&colon;x", "&#106;avascript:x", "vbscript:x",
     "data:text/html,x", "\x01javascript:x"],
)
def test_no_spelling_of_a_script_url_is_a_safe_link(url: str) -> None:
    assert not is_safe_link(url)


def test_links_and_media_that_stay() -> None:
    assert is_safe_link("https://example.org") and is_safe_link("notes.html#x")
    assert is_safe_media("data:image/png;base64,AA") and not is_safe_media("http://x/a.png")


def test_css_keeps_the_look_and_drops_what_leaves_the_box() -> None:
    kept = clean_declarations(
        "color: red; background: url(http://x); position: fixed; margin-top: -500px; "
        "padding: 2px; fill: url(#grad)"
    )
    assert kept == "color: red; padding: 2px; fill: url(#grad)"


def test_ids_are_prefixed_and_fragment_links_follow() -> None:
    out = clean_html('<a href="#s">go</a><h2 id="s">S</h2>')
    assert 'href="#sandbox-output-s"' in out and 'id="sandbox-output-s"' in out


def test_metadata_keeps_only_display_hints() -> None:
    _, meta, _ = clean_bundle(
        {"image/png": "AA=="},
        {"image/png": {"width": 100, "onload": "x"}, "isolated": True, "anything": {"a": 1}},
        Context(),
    )
    assert meta == {"image/png": {"width": 100}}


def _guard() -> OutputGuard:
    return OutputGuard(
        trust_scripts=False,
        comm_targets=("jupyter.widget", "jupyter.widget.version"),
        widget_modules=("@jupyter-widgets/controls", "@jupyter-widgets/base", "@jupyter-widgets/output"),
    )


def _msg(msg_type: str, content: dict) -> dict:
    return {"header": {"msg_type": msg_type}, "parent_header": {"msg_id": "p"}, "metadata": {"x": 1},
            "content": content, "buffers": []}


def test_widgets_from_other_modules_are_not_opened() -> None:
    guard = _guard()
    state = {"_model_module": "anywidget", "_model_name": "AnyModel", "_view_module": "anywidget",
             "_esm": "export default {render(){fetch('/api/kernels',{method:'POST'})}}"}
    msg, note = guard.iopub(_msg("comm_open", {"comm_id": "c1", "target_name": "jupyter.widget",
                                               "data": {"state": state}}))
    assert msg is None and "anywidget" in note
    # Its later messages and a view of it go nowhere either.
    assert guard.iopub(_msg("comm_msg", {"comm_id": "c1", "data": {"method": "update"}}))[0] is None
    shown, _ = guard.iopub(_msg("display_data", {"data": {
        "application/vnd.jupyter.widget-view+json": {"model_id": "c1"}, "text/plain": "w"}}))
    assert shown is not None and "application/vnd.jupyter.widget-view+json" not in shown["content"]["data"]


def test_widget_html_and_output_widget_outputs_are_cleaned() -> None:
    guard = _guard()
    html_state = {"_model_module": "@jupyter-widgets/controls", "_model_name": "HTMLModel",
                  "_view_module": "@jupyter-widgets/controls", "value": '<img src=x onerror="alert(1)">',
                  "description": "<b>ok</b><script>x</script>"}
    msg, _ = guard.iopub(_msg("comm_open", {"comm_id": "h", "target_name": "jupyter.widget",
                                            "data": {"state": html_state}}))
    assert msg is not None
    state = msg["content"]["data"]["state"]
    assert "onerror" not in state["value"] and "<script" not in state["description"]
    out_state = {"_model_module": "@jupyter-widgets/output", "_model_name": "OutputModel",
                 "_view_module": "@jupyter-widgets/output", "outputs": [
                     {"output_type": "display_data", "data": {"application/javascript": "alert(1)",
                                                              "text/plain": "x"}, "metadata": {}}]}
    msg, _ = guard.iopub(_msg("comm_open", {"comm_id": "o", "target_name": "jupyter.widget",
                                            "data": {"state": out_state}}))
    assert msg is not None
    assert msg["content"]["data"]["state"]["outputs"][0]["data"] == {"text/plain": "x"}
    # A later update cannot switch the model to another module.
    switched, note = guard.iopub(_msg("comm_msg", {"comm_id": "o", "data": {
        "method": "update", "state": {"_view_module": "anywidget"}}}))
    assert switched is None and "anywidget" in note


def test_unknown_comm_targets_and_iopub_types_are_dropped() -> None:
    guard = _guard()
    assert guard.iopub(_msg("comm_open", {"comm_id": "x", "target_name": "evil", "data": {}}))[0] is None
    assert guard.iopub(_msg("debug_event", {}))[0] is None


def test_page_payload_and_user_expressions_are_cleaned() -> None:
    guard = _guard()
    reply = _msg("execute_reply", {
        "status": "ok",
        "payload": [
            {"source": "page", "data": {"text/html": '<img src=x onerror="alert(1)">'}},
            {"source": "something_else", "data": {}},
        ],
        "user_expressions": {"a": {"status": "ok", "data": {"application/javascript": "x", "text/plain": "1"}}},
    })
    cleaned = guard.reply(reply)
    assert cleaned is not None
    content = cleaned["content"]
    assert len(content["payload"]) == 1 and "onerror" not in content["payload"][0]["data"]["text/html"]
    assert content["user_expressions"]["a"]["data"] == {"text/plain": "1"}


def test_trusting_mode_passes_scripts() -> None:
    guard = OutputGuard(trust_scripts=True, comm_targets=(), widget_modules=())
    msg, _ = guard.iopub(_msg("display_data", {"data": {"application/javascript": "x"}}))
    assert msg is not None and "application/javascript" in msg["content"]["data"]


def test_the_inner_kernel_info_keeps_only_short_language_fields() -> None:
    guard = _guard()
    reply = guard.reply(_msg("kernel_info_reply", {
        "language_info": {"name": "python", "version": "3.11.2", "mimetype": "text/x-python",
                          "codemirror_mode": {"name": "ipython", "version": 3, "x": "<script>"},
                          "file_extension": ".py", "help": {"<script>": 1}, "pygments_lexer": "x" * 10_000},
        "banner": "b" * 100_000,
        "help_links": [{"text": "x", "url": "javascript:alert(1)"}],
    }))
    assert reply is not None
    info = reply["content"]["language_info"]
    assert info["name"] == "python" and info["codemirror_mode"] == {"name": "ipython", "version": 3}
    assert "help" not in info and len(info["pygments_lexer"]) == 100
    assert len(reply["content"]["banner"]) == 4096


def test_widget_classes_and_icons_cannot_dress_up_as_the_page() -> None:
    guard = _guard()
    state = {"_model_module": "@jupyter-widgets/controls", "_model_name": "ButtonModel",
             "_view_module": "@jupyter-widgets/controls", "_dom_classes": ["mine", "jp-Dialog"],
             "icon": "check jp-Dialog", "description": "ok"}
    msg, _ = guard.iopub(_msg("comm_open", {"comm_id": "b", "target_name": "jupyter.widget",
                                            "data": {"state": state}}))
    assert msg is not None
    cleaned = msg["content"]["data"]["state"]
    assert cleaned["_dom_classes"] == ["mine"] and cleaned["icon"] == ""


def test_tex_cannot_spell_a_macro_by_name() -> None:
    cleaned, _, _ = clean_bundle({"text/latex": r"$\csname href\endcsname{javascript:alert(1)}{x}$"}, {}, Context())
    assert "\\csname" not in cleaned["text/latex"]


def test_plotly_express_figures_pass_unchanged_and_their_hover_box_is_cleaned() -> None:
    """Plotly Express ends every hover template with ``<extra></extra>`` (Plotly's own
    tag, not HTML): dropping it changed the figure and put a notice under every one."""
    figure = {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "x": [1, 2, 3],
                "y": [1, 3, 2],
                "hovertemplate": "day=%{x}<br>pnl=%{y}<extra></extra>",
                "line": {"color": "#636efa", "dash": "solid"},
            }
        ],
        "layout": {"title": {"text": "<b>PnL</b>"}, "xaxis": {"title": {"text": "day"}}},
    }
    bundle = {"application/vnd.plotly.v1+json": figure}
    cleaned, _, verdict = clean_bundle(bundle, {}, Context())
    assert cleaned == bundle and not verdict
    hostile = {
        "data": [{"hovertemplate": '%{y}<extra><img src=x onerror="alert(1)">name</extra>'}],
        "layout": {"title": {"text": '<extra onclick="alert(1)">t</extra>'}},
    }
    cleaned, _, verdict = clean_bundle({"application/vnd.plotly.v1+json": hostile}, {}, Context())
    text = json.dumps(cleaned)
    assert "onerror" not in text and "onclick" not in text and verdict
    assert "<extra>" in text  # the tag itself stays; only what it holds was cleaned
    # Only Plotly's renderer knows the tag: in HTML it is an unknown element, removed.
    assert "<extra>" not in clean_html("a<extra>b</extra>")


def test_a_notice_is_said_once_per_session_and_the_output_cleaned_every_time() -> None:
    guard = _guard()
    hostile = {"data": {"text/html": '<b>table</b><script>copy()</script>', "text/plain": "t"}}
    shown = [guard.iopub(_msg("display_data", json.loads(json.dumps(hostile)))) for _ in range(3)]
    notes = [note for _, note in shown]
    assert "script" in notes[0] and "once per session" in notes[0]
    assert notes[1:] == ["", ""]
    for msg, _ in shown:
        assert msg is not None and "<script" not in msg["content"]["data"]["text/html"]
    # another kind of removal is its own notice
    _, other = guard.iopub(_msg("display_data", {"data": {"application/javascript": "x", "text/plain": "t"}}))
    assert "application/javascript" in other
