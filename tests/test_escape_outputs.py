"""The escape suite, frontend section: outputs that would run or fetch in the browser.

Each attack is a notebook cell that makes a hostile output through one carrier (a
display, a result, an update, a help page, a widget, a comm). It runs through the real
kernel, validation off, and everything the frontend receives for the cell is judged by
``output_oracle`` (which shares no code with the sanitiser):

* hardened (the defaults): nothing the frontend gets would run script, fetch from
  elsewhere, style the page or forge the kernel's records;
* negative control: with ``allow_scripts_in_output`` the same cell's output is flagged,
  so the attack is real and the sanitiser is what stops it.

The browser test (tests/test_browser.py) runs the main chain in JupyterLab itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hostile_outputs import BUNDLES, SCRIPT
from output_oracle import judge_message

from harness import USAGE_MIME, CellResult, Kernel, KernelSpecs, start_kernel

pytestmark = pytest.mark.docker


@dataclass(frozen=True)
class OutputAttack:
    id: str
    cell: str


def _display(bundle: dict) -> str:
    return (
        "import json\nfrom IPython.display import display\n"
        f"display(json.loads({json.dumps(json.dumps(bundle))}), raw=True)"
    )


_HOSTILE_HTML = f'<img alt=">" src=x onerror="{SCRIPT}">'
_HANDLER = f'onerror="{SCRIPT}">'
_ESM = "export default {render() { " + SCRIPT + " }}"

ATTACKS: list[OutputAttack] = [
    *(OutputAttack(f"display: {name}", _display(bundle)) for name, bundle in sorted(BUNDLES.items())),
    OutputAttack(
        "execute_result through _repr_mimebundle_",
        "class Evil:\n"
        "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
        f"        return {{'text/html': {_HOSTILE_HTML!r}, 'text/plain': 'evil'}}\n"
        "Evil()",
    ),
    OutputAttack(
        "update_display_data with list-valued HTML",
        "from IPython.display import display, update_display\n"
        "display({'text/plain': 'first'}, raw=True, display_id='d1')\n"
        f"update_display({{'text/html': ['<img src=x ', {_HANDLER!r}]}}, raw=True, display_id='d1')",
    ),
    OutputAttack(
        "page payload in the execute_reply",
        "ip = get_ipython()\n"
        f"ip.payload_manager.write_payload({{'source': 'page', 'data': {{'text/html': {_HOSTILE_HTML!r}, 'text/plain': 'p'}}, 'start': 0}})",
    ),
    OutputAttack(
        "Output widget whose outputs carry JavaScript",
        "import ipywidgets as w\nout = w.Output()\n"
        f"out.outputs = ({{'output_type': 'display_data', 'data': {{'application/javascript': {SCRIPT!r}, 'text/plain': 'x'}}, 'metadata': {{}}}},)\n"
        "display(out)",
    ),
    OutputAttack(
        "execute_result forging a validation record",
        "class Verdict:\n"
        "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
        "        return {'application/vnd.sandbox-kernel.validation+json': {'blocked': False}, 'text/plain': 'ok'}\n"
        "Verdict()",
    ),
    OutputAttack(
        "update_display_data forging a usage record",
        "from IPython.display import display, update_display\n"
        "display({'text/plain': 'first'}, raw=True, display_id='u1')\n"
        "update_display({'application/vnd.sandbox-kernel.usage+json': {'wall_time_s': 0.001}, "
        "'text/plain': '1 ms wall'}, raw=True, display_id='u1')",
    ),
    OutputAttack(
        "Output widget whose outputs forge a usage record",
        "import ipywidgets as w\nout = w.Output()\n"
        "out.outputs = ({'output_type': 'display_data', 'data': {'application/vnd.sandbox-kernel.usage+json': "
        "{'wall_time_s': 0.001}, 'text/plain': '1 ms wall'}, 'metadata': {}},)\n"
        "display(out)",
    ),
    OutputAttack(
        "ipywidgets.HTML value with an event handler",
        f"import ipywidgets as w\ndisplay(w.HTML(value={_HOSTILE_HTML!r}))",
    ),
    OutputAttack(
        "a widget from a module that runs the model's code",
        "from ipykernel.comm import Comm\n"
        "c = Comm(target_name='jupyter.widget', data={'state': {'_model_module': 'anywidget', "
        "'_model_name': 'AnyModel', '_view_module': 'anywidget', '_view_name': 'AnyView', "
        f"'_esm': {_ESM!r}}}, 'buffer_paths': []}})",
    ),
]


def test_every_carrier_of_the_issue_is_attacked() -> None:
    ids = {a.id for a in ATTACKS}
    for needed in ("display: quote-hidden >", "display: html as a list", "display: raw html in markdown",
                   "update_display_data with list-valued HTML", "page payload in the execute_reply",
                   "Output widget whose outputs carry JavaScript", "ipywidgets.HTML value with an event handler",
                   "display: markdown image leaves the page", "display: css url leaves the page",
                   "display: style element hides usage lines", "display: forged usage record"):
        assert needed in ids, needed


def _findings(cell: CellResult) -> list[str]:
    found = []
    usage_lines = 0
    for msg in cell.messages:
        data = msg["content"].get("data")
        if isinstance(data, dict) and USAGE_MIME in data:
            usage_lines += 1  # the host's own line, once per cell; judged by count
            continue
        found += judge_message(msg["msg_type"], msg["content"])
    if usage_lines > 1:
        found.append(f"{usage_lines} usage records for one cell")
    for payload in cell.reply["content"].get("payload", []):
        if payload.get("source") == "page":
            found += judge_message("display_data", payload)
    return found


@pytest.fixture(scope="module")
def hardened(docker_client: object, specs: KernelSpecs) -> Iterator[Kernel]:
    with start_kernel(specs) as kernel:
        yield kernel


@pytest.fixture(scope="module")
def trusting(docker_client: object, specs: KernelSpecs) -> Iterator[Kernel]:
    with start_kernel(specs, allow_scripts_in_output=True) as kernel:
        yield kernel


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.id for a in ATTACKS])
def test_output_attack_is_made_inert(attack: OutputAttack, hardened: Kernel) -> None:
    cell = hardened.execute(attack.cell)
    assert cell.status == "ok", cell.text
    assert _findings(cell) == [], attack.id
    assert hardened.execute("print(6 * 7)").stdout.strip() == "42"


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.id for a in ATTACKS])
def test_output_attack_succeeds_without_the_sanitiser(attack: OutputAttack, trusting: Kernel) -> None:
    cell = trusting.execute(attack.cell)
    assert cell.status == "ok", cell.text
    assert _findings(cell), f"negative control: {attack.id} reached the frontend harmless anyway"


def test_everyday_outputs_are_kept(hardened: Kernel) -> None:
    cell = hardened.execute(
        "import pandas as pd, matplotlib\nmatplotlib.use('module://matplotlib_inline.backend_inline')\n"
        "import matplotlib.pyplot as plt\n%config InlineBackend.figure_formats = ['svg', 'png']\n"
        "df = pd.DataFrame({'close': [101.5, 102.25]})\n"
        "display(df)\ndisplay(df.style.background_gradient())\n"
        "plt.plot([1, 2, 3]); plt.show()"
    )
    assert cell.status == "ok", cell.text
    bundles = [m["content"]["data"] for m in cell.of_type("display_data")]
    html = [b["text/html"] for b in bundles if "text/html" in b]
    assert any("101.5" in h and "<table" in h for h in html), html
    assert any("background-color" in h for h in html), "Styler's colours were lost"
    assert any("image/svg+xml" in b and "<path" in b["image/svg+xml"] for b in bundles)
    assert any("image/png" in b for b in bundles)
    assert not [m for m in cell.of_type("stream") if "removed" in m["content"]["text"]]


@pytest.mark.parametrize("trusting", [False, True], ids=["hardened", "negative control"])
def test_the_sandbox_api_gets_the_same_clean_outputs(docker_client: object, trusting: bool) -> None:
    """Programs that show results in a web page of their own get what a notebook gets."""
    import asyncio

    from sandbox_kernel import Sandbox

    from harness import IMAGE

    cell = _display(BUNDLES["quote-hidden >"]) + "\n" + _display(BUNDLES["forged usage record"])

    async def run() -> list[dict]:
        async with Sandbox(image=IMAGE, warm_spare=False, validation="off",
                           allow_scripts_in_output=trusting) as sandbox:
            result = await sandbox.execute(cell)
            assert result.success, result.error
            return result.outputs

    outputs = asyncio.run(run())
    findings = [f for o in outputs for f in judge_message(o["output_type"], o)]
    assert len(outputs) >= 2, outputs
    if trusting:
        assert findings, "negative control: the outputs were harmless anyway"
    else:
        assert findings == [], findings


def test_a_later_cell_cannot_clear_away_an_earlier_usage_line(hardened: Kernel) -> None:
    """clear_output naming an earlier cell clears its outputs, never the host's usage line.

    No setting turns this off (the usage line is the host's own record, republished
    under the cell), so the check is on what the frontend ends up with: the last
    message for the earlier cell, after the clear, is its usage line again.
    """
    first = hardened.execute("_first = get_ipython().kernel.get_parent('shell')\nprint('kept?')")
    first_id = first.reply["parent_header"]["msg_id"]
    assert first.usage is not None
    second_id = hardened.kc.execute(
        "k = get_ipython().kernel\n"
        "_ = k.session.send(k.iopub_socket, 'clear_output', {'wait': False}, parent=_first)"
    )
    seen = []
    while True:
        msg = hardened.kc.get_iopub_msg(timeout=30)
        seen.append(msg)
        if msg["parent_header"].get("msg_id") == second_id and msg["content"].get("execution_state") == "idle":
            break
    seen += hardened.drain_iopub()
    late = [m for m in seen if m["parent_header"].get("msg_id") == first_id]
    kinds = [m["msg_type"] for m in late]
    assert "clear_output" in kinds, "the attack did not reach the earlier cell"
    assert kinds[-1] == "display_data" and USAGE_MIME in late[-1]["content"]["data"], kinds
