"""What may reach the browser from inside the sandbox.

The container stops code from reaching the host, but a cell's outputs are rendered by
JupyterLab in the user's browser, with the user's Jupyter session: script in them would
run outside the sandbox. Every message from inside is judged by :class:`.guard.OutputGuard`
on arrival, and every bundle is rebuilt from an allowlist (:mod:`.bundles`) by parsers,
never by regular expressions: HTML and SVG (:mod:`.html`, nh3), CSS (:mod:`.css`,
tinycss2), Markdown (:mod:`.markdown`, markdown-it-py), TeX (:mod:`.latex`), Plotly and
Vega specifications (:mod:`.specs`), comms and widgets (:mod:`.widgets`), URLs
(:mod:`.urls`).
"""

from .guard import OutputGuard

__all__ = ["OutputGuard"]
