"""Unit tests of the browser-safety filter for outputs (pure functions)."""

from __future__ import annotations

from sandbox_kernel.outputs import (
    is_active_markup,
    make_safe,
    neutralise_strings,
    strip_active_data,
)


def test_plain_tables_and_images_pass() -> None:
    data = {
        "text/html": "<table><tr><td>1</td></tr></table>",
        "image/png": "iVBOR",
        "text/plain": "t",
    }
    assert strip_active_data(data) == (data, [])


def test_scripts_handlers_and_links_are_active() -> None:
    for text in [
        "<script>alert(1)</script>",
        "<SCRIPT src=x>",
        "<img src=x onerror='alert(1)'>",
        "<a href='javascript:alert(1)'>x</a>",
        "<iframe srcdoc='<script>'>",
        "<svg onload=alert(1)>",
    ]:
        assert is_active_markup(text), text
    assert not is_active_markup("<b>bold</b> and 'on' words like onion = 3")


def test_javascript_bundle_is_replaced_by_a_note() -> None:
    kept, removed = strip_active_data({"application/javascript": "alert(1)"})
    assert removed == ["application/javascript"]
    assert "removed" in kept["text/plain"]


def test_widget_state_is_escaped() -> None:
    content = {"comm_id": "c", "data": {"state": {"value": "<img src=x onerror=alert(1)>", "n": 3}}}
    safe, removed = make_safe("comm_msg", content)
    assert removed
    assert safe["data"]["state"]["value"].startswith("&lt;img")
    assert safe["data"]["state"]["n"] == 3
    value, changed = neutralise_strings({"a": ["fine"]})
    assert not changed and value == {"a": ["fine"]}
