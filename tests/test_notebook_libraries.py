"""The libraries of the image show their outputs as on a plain kernel.

Found by running public notebooks on both (bench/run_notebooks.py): a plotly figure
failed in the sandbox with "Mime type rendering requires nbformat>=4.2.0 but it is not
installed", since a plain kernel has nbformat from Jupyter itself and the image did
not; then every plotly figure came with a notice of the output sanitiser. Each cell
here is one way real notebooks show a result.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness import CellResult, KernelSpecs, start_kernel

pytestmark = pytest.mark.docker

PLOTLY = "application/vnd.plotly.v1+json"


def _data(cell: CellResult) -> list[dict[str, Any]]:
    return [
        m["content"].get("data", {})
        for m in cell.outputs
        if m["msg_type"] in ("display_data", "execute_result")
    ]


def test_plotly_seaborn_and_statsmodels_outputs_show(specs: KernelSpecs) -> None:
    with start_kernel(specs) as kernel:
        express = kernel.execute("import plotly.express as px\npx.line(x=[1, 2, 3], y=[1, 3, 2])")
        assert express.status == "ok", express.text
        assert any(PLOTLY in data for data in _data(express))
        # Drawn as it came: no notice (its hover templates end in Plotly's <extra> tag).
        assert "[sandbox-kernel" not in express.stderr, express.stderr
        shown = kernel.execute(
            "import plotly.graph_objects as go\n"
            "fig = go.Figure(go.Scatter(y=[3, 1, 2]))\nfig.show()"
        )
        assert shown.status == "ok", shown.text
        assert any(PLOTLY in data for data in _data(shown))
        seaborn = kernel.execute(
            "import seaborn as sns, matplotlib.pyplot as plt\n"
            "sns.histplot([1, 2, 2, 3, 3, 3])\nplt.show()"
        )
        assert seaborn.status == "ok", seaborn.text
        assert any("image/png" in data for data in _data(seaborn))
        summary = kernel.execute(
            "import numpy as np, statsmodels.api as sm\n"
            "x = np.arange(20.0)\n"
            "sm.OLS(2 * x + np.sin(x), sm.add_constant(x)).fit().summary()"
        )
        assert summary.status == "ok", summary.text
        assert any("text/html" in data for data in _data(summary))


@pytest.mark.parametrize("magic", ["%matplotlib notebook", "%pylab nbagg"])
def test_a_figure_asked_for_in_the_browsers_script_backend_shows_inline(
    specs: KernelSpecs, magic: str
) -> None:
    # The nbagg backend draws with script and a comm, which the host refuses: on its
    # own the figure would not show at all (a text/plain "<Figure ...>" and notices).
    with start_kernel(specs) as kernel:
        asked = kernel.execute(magic)
        assert asked.status == "ok", asked.text
        assert "figures show inline, as images" in asked.stderr
        cells = [
            kernel.execute("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2]);")
            for _ in range(2)
        ]
        for cell in cells:
            assert cell.status == "ok", cell.text
            assert any("image/png" in data for data in _data(cell)), cell.text
            assert "[sandbox-kernel" not in cell.stderr, cell.stderr  # said once
        backend = kernel.execute("import matplotlib\nprint(matplotlib.get_backend())")
        assert "inline" in backend.stdout


DOWNLOAD = "import urllib.request\nurllib.request.urlopen('http://data.example.org/prices.csv')"


def test_a_download_says_that_the_sandbox_has_no_network(specs: KernelSpecs) -> None:
    """Public notebooks fetch their data (pd.read_csv(url), urlopen): a real capability
    the sandbox does not have, and the failure must say so, not look like an outage."""
    with start_kernel(specs) as kernel:
        cell = kernel.execute(DOWNLOAD)
        assert cell.status == "error"
        assert "the sandbox has no network" in cell.text, cell.text
        reading = kernel.execute(
            "import pandas as pd\npd.read_csv('https://data.example.org/prices.csv')"
        )
        assert "the sandbox has no network" in reading.text, reading.text
        assert kernel.execute("import socket\nsocket.gethostname()").status == "ok"


def test_with_a_network_a_failed_download_is_not_blamed_on_the_sandbox(
    specs: KernelSpecs,
) -> None:
    """The control: the same cell on a sandbox with a network fails (this machine
    resolves no such name) without the sandbox's explanation."""
    with start_kernel(specs, network_mode="bridge") as kernel:
        cell = kernel.execute(DOWNLOAD)
        assert cell.status == "error"
        assert "the sandbox has no network" not in cell.text, cell.text


def test_a_file_past_the_size_limit_names_the_setting(specs: KernelSpecs) -> None:
    """Found on a public notebook (an 800 MB ``np.memmap``): "File too large" alone
    reads like a fault of the disk; on a plain kernel the write works, so the error
    names the sandbox's setting and how to raise it."""
    with start_kernel(specs, max_file_size="1m", validation="off") as kernel:
        under = kernel.execute("open('small.bin', 'wb').write(b'x' * 500_000)")
        assert under.status == "ok", under.text  # control: the limit is what says no
        over = kernel.execute(
            "import numpy as np\nnp.memmap('big.dat', mode='w+', shape=(2_000_000,))"
        )
        assert over.status == "error" and over.error is not None
        assert "File too large" in over.error["evalue"]
        assert "max_file_size (1m)" in over.error["evalue"]
        assert "--SandboxConfig.max_file_size=" in over.text
