"""The outer kernel relays the whole Jupyter protocol to the kernel in the container.

Every test talks to the real kernel through jupyter_client, as JupyterLab does.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from sandbox_kernel import gvisor

from harness import GVISOR, Kernel, KernelSpecs, start_kernel

pytestmark = pytest.mark.docker


def test_state_persists_and_counts_are_the_outer_kernels(kernel: Kernel) -> None:
    first = kernel.execute("shared_value = 20")
    second = kernel.execute("shared_value * 2 + 1")
    assert first.status == second.status == "ok"
    count = second.reply["content"]["execution_count"]
    assert count == first.reply["content"]["execution_count"] + 1
    [result] = second.of_type("execute_result")
    assert result["content"]["data"]["text/plain"] == "41"
    assert result["content"]["execution_count"] == count


def test_no_duplicated_status_or_execute_input(kernel: Kernel) -> None:
    cell = kernel.execute("print('once')")
    states = [m["content"]["execution_state"] for m in cell.messages if m["msg_type"] == "status"]
    assert states == ["busy", "idle"]
    assert len([m for m in cell.messages if m["msg_type"] == "execute_input"]) == 1
    assert cell.stdout == "once\n"


@pytest.mark.parametrize(
    "code",
    [
        "print('out')",
        "1 + 1",
        "x = 1",
        "raise ValueError('boom')",
        "import os\nos.system('id')",  # refused by the validator
        "%sandbox info",  # answered by the outer kernel
        "%sandbox nonsense",
    ],
)
def test_busy_and_execute_input_come_first_and_idle_last(kernel: Kernel, code: str) -> None:
    cell = kernel.execute(code)
    kinds = [m["msg_type"] for m in cell.messages]
    assert kinds[:2] == ["status", "execute_input"], kinds
    assert cell.messages[0]["content"]["execution_state"] == "busy"
    assert cell.messages[1]["content"]["code"] == code
    assert (
        cell.messages[1]["content"]["execution_count"] == cell.reply["content"]["execution_count"]
    )
    # Only an error cell's usage line follows its idle status (see the README).
    after = cell.messages[-1] if cell.messages[-1]["msg_type"] == "status" else cell.messages[-2]
    assert after["content"] == {"execution_state": "idle"}, kinds
    assert kinds.count("status") == 2 and kinds.count("execute_input") == 1


def test_silent_cell_is_busy_then_idle_without_execute_input(kernel: Kernel) -> None:
    cell = kernel.execute("y = 2", silent=True)
    assert [m["msg_type"] for m in cell.messages] == ["status", "status"]
    assert [m["content"]["execution_state"] for m in cell.messages] == ["busy", "idle"]


def test_output_streams_while_the_cell_runs(kernel: Kernel) -> None:
    code = "import time\nprint('start', flush=True)\ntime.sleep(1.5)\nprint('end')"
    msg_id = kernel.kc.execute(code)
    first_output_at = None
    started = time.monotonic()
    while True:
        msg = kernel.kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream" and first_output_at is None:
            first_output_at = time.monotonic() - started
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            finished_at = time.monotonic() - started
            break
    assert first_output_at is not None
    assert finished_at - first_output_at > 1.0, "output was held back until the cell ended"


def test_rich_display_update_and_clear(kernel: Kernel) -> None:
    cell = kernel.execute(
        "from IPython.display import display, HTML, clear_output\n"
        "h = display(HTML('<i>one</i>'), display_id=True)\n"
        "h.update(HTML('<i>two</i>'))\n"
        "clear_output(wait=True)\n"
        "display({'application/json': {'a': 1}}, raw=True)"
    )
    assert cell.status == "ok"
    types = [m["msg_type"] for m in cell.outputs]
    assert types == ["display_data", "update_display_data", "clear_output", "display_data"]
    display_id = cell.outputs[0]["content"]["transient"]["display_id"]
    assert cell.outputs[1]["content"]["transient"]["display_id"] == display_id
    assert cell.outputs[1]["content"]["data"]["text/html"] == "<i>two</i>"
    assert cell.outputs[3]["content"]["data"]["application/json"] == {"a": 1}


def test_errors_carry_the_traceback(kernel: Kernel) -> None:
    cell = kernel.execute("def f():\n    raise KeyError('missing')\nf()")
    assert cell.status == "error"
    assert cell.reply["content"]["ename"] == "KeyError"
    assert cell.error is not None and any("f()" in line for line in cell.error["traceback"])


def test_syntax_errors_are_python_syntax_errors(kernel: Kernel) -> None:
    cell = kernel.execute("x = (1,\nprint(x")
    assert cell.status == "error"
    assert cell.reply["content"]["ename"] == "SyntaxError"


def test_input_and_getpass_reach_the_frontend(kernel: Kernel) -> None:
    cell = kernel.execute(
        "name = input('who? ')\nimport getpass\nsecret = getpass.getpass('pin: ')\n"
        "print('hi', name, len(secret))",
        stdin=["quant", "1234"],
    )
    assert cell.status == "ok", cell.text
    assert cell.stdout.strip().endswith("hi quant 4")


def test_input_without_stdin_support_is_a_clear_error(kernel: Kernel) -> None:
    cell = kernel.execute("input('x')")
    assert cell.status == "error"
    assert "StdinNotImplementedError" in cell.reply["content"]["ename"]


def test_complete_inspect_is_complete_history(kernel: Kernel) -> None:
    kernel.execute("import collections\nmy_long_variable = 3")
    reply = kernel.request("complete", "my_long_v", 9)["content"]
    assert "my_long_variable" in reply["matches"]
    reply = kernel.request("inspect", "collections.OrderedDict", 10)["content"]
    assert reply["found"] and "OrderedDict" in reply["data"]["text/plain"]
    assert kernel.request("is_complete", "for i in x:")["content"]["status"] == "incomplete"
    assert kernel.request("is_complete", "x = 1")["content"]["status"] == "complete"
    history = kernel.request("history", hist_access_type="tail", n=50, output=False, raw=True)
    sources = [entry[2] for entry in history["content"]["history"]]
    assert any("my_long_variable = 3" in s for s in sources)


def test_kernel_info_reports_the_inner_python_and_the_sandbox(kernel: Kernel) -> None:
    content = kernel.request("kernel_info")["content"]
    assert content["language_info"]["name"] == "python"
    assert content["implementation"] == "sandbox-kernel"
    banner = content["banner"]
    assert "image:" in banner and "sha256:" in banner
    assert "memory 2g" in banner and "validation: off" in banner
    assert content["sandbox"]["container"]


def test_the_inner_kernel_starts_without_the_debugger_a_cell_can_still_import_it(
    kernel: Kernel,
) -> None:
    # debugpy cannot work in the sandbox (no TCP); loading it at start cost time and
    # memory, and its warnings on stderr showed up in the first cell after a restart.
    cell = kernel.execute(
        "import sys\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'debugpy', '_pydevd_bundle'}))\n"
        "import debugpy\n"
        "print(debugpy.__name__)"
    )
    assert cell.stdout == "[]\ndebugpy\n"


def test_comms_both_ways_with_binary_buffers(kernel: Kernel) -> None:
    target = f"echo_{uuid.uuid4().hex[:6]}"
    setup = kernel.execute(
        "def _echo_target(comm, open_msg):\n"
        "    @comm.on_msg\n"
        "    def _recv(msg):\n"
        "        comm.send({'echo': msg['content']['data']}, buffers=[bytes(b)[::-1] for b in msg['buffers']])\n"
        "    comm.send({'opened': open_msg['content']['data']})\n"
        f"get_ipython().kernel.comm_manager.register_target('{target}', _echo_target)"
    )
    assert setup.status == "ok", setup.text
    kernel.drain_iopub()
    comm_id = uuid.uuid4().hex
    kc = kernel.kc
    open_msg = kc.session.msg(
        "comm_open", {"comm_id": comm_id, "target_name": target, "data": {"hello": 1}}
    )
    kc.shell_channel.send(open_msg)
    data_msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {"x": 42}})
    kc.session.send(kc.shell_channel.socket, data_msg, buffers=[b"\x00\x01\x02abc"])
    received = []
    deadline = time.monotonic() + 20
    while len(received) < 2 and time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=20)
        if msg["msg_type"] == "comm_msg" and msg["content"]["comm_id"] == comm_id:
            received.append(msg)
    assert received[0]["content"]["data"] == {"opened": {"hello": 1}}
    assert received[0]["parent_header"]["msg_id"] == open_msg["header"]["msg_id"]
    assert received[1]["content"]["data"] == {"echo": {"x": 42}}
    assert [bytes(b) for b in received[1]["buffers"]] == [b"cba\x02\x01\x00"]
    comms = kernel.request("comm_info", target_name=target)["content"]["comms"]
    assert comm_id in comms


def test_ipywidgets_and_tqdm_notebook_bars(kernel: Kernel) -> None:
    cell = kernel.execute(
        "import ipywidgets as w\nslider = w.IntSlider(value=3)\ndisplay(slider)\n"
        "from tqdm.notebook import tqdm\nfor _ in tqdm(range(3)): pass"
    )
    assert cell.status == "ok", cell.text
    opens = [
        m for m in cell.of_type("comm_open") if m["content"]["target_name"] == "jupyter.widget"
    ]
    assert opens, "no widget comm was opened"
    views = [
        m
        for m in cell.of_type("display_data")
        if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
    ]
    assert len(views) >= 2  # the slider and the tqdm bar
    # The frontend moves the slider: the kernel's model follows.
    slider_id = views[0]["content"]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
    kc = kernel.kc
    update = kc.session.msg(
        "comm_msg",
        {
            "comm_id": slider_id,
            "data": {"method": "update", "state": {"value": 9}, "buffer_paths": []},
        },
    )
    kc.shell_channel.send(update)
    time.sleep(0.5)
    assert (
        kernel.execute("slider.value").of_type("execute_result")[0]["content"]["data"]["text/plain"]
        == "9"
    )


def test_a_cell_kept_out_of_history_takes_no_number_and_no_usage_line(kernel: Kernel) -> None:
    # store_history=False is how editors run their helper code (listing variables,
    # say) and they parse its outputs: numbered as IPython does, and nothing added.
    before = kernel.execute("'before'").reply["content"]["execution_count"]
    helper = kernel.execute("'helper'", store_history=False)
    assert helper.usage_message is None
    assert helper.reply["content"]["execution_count"] == before
    [result] = helper.of_type("execute_result")
    assert result["content"]["execution_count"] == before
    after = kernel.execute("'after'")
    assert after.usage_message is not None
    assert after.reply["content"]["execution_count"] == before + 1
    [result] = after.of_type("execute_result")
    assert result["content"]["execution_count"] == before + 1


@pytest.mark.parametrize("stop_on_error", [True, False])
def test_run_all_stops_at_the_first_failing_cell(kernel: Kernel, stop_on_error: bool) -> None:
    # JupyterLab's "Run All" sends every cell at once; after a failing cell the cells
    # already sent are aborted, unless the frontend said not to stop on errors.
    kernel.execute("ran = []")
    cells = ["ran.append(1)", "1/0", *[f"ran.append({n})" for n in range(2, 8)]]
    expected_rest = ["aborted"] * 6 if stop_on_error else ["ok"] * 6
    assert kernel.run_all(cells, stop_on_error=stop_on_error) == ["ok", "error", *expected_rest]
    ran = [1] if stop_on_error else [1, 2, 3, 4, 5, 6, 7]
    assert kernel.execute("print(ran)").stdout == f"{ran}\n"


def test_interrupt_stops_the_cell_and_keeps_state(kernel: Kernel) -> None:
    kernel.execute("kept = 'still here'")
    reply = kernel.interrupt_running_cell("import time\nfor _ in range(600): time.sleep(0.1)")
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    kernel.drain_iopub()
    assert (
        kernel.execute("kept").of_type("execute_result")[0]["content"]["data"]["text/plain"]
        == "'still here'"
    )


def test_sandbox_magic_is_answered_by_the_outer_kernel(kernel: Kernel) -> None:
    cell = kernel.execute("%sandbox info")
    assert cell.status == "ok"
    [display] = cell.of_type("display_data")
    assert display["content"]["data"]["application/json"]["image"]


def test_output_of_forked_workers_reaches_the_notebook(kernel: Kernel) -> None:
    cell = kernel.execute(
        "import multiprocessing as mp\n"
        "def work(i):\n    print(f'worker {i} says hi', flush=True)\n    return i * i\n"
        "with mp.get_context('fork').Pool(2) as pool:\n    print(sum(pool.map(work, range(4))))",
        timeout=60,
    )
    assert cell.status == "ok", cell.text
    assert "worker 3 says hi" in cell.stdout
    assert "14" in cell.stdout


def test_script_output_never_reaches_the_browser(kernel: Kernel) -> None:
    cell = kernel.execute(
        "from IPython.display import display, HTML, Javascript\n"
        'display(Javascript(\'fetch("/api/terminals", {method: "POST"})\'))\n'
        "display(HTML('<img src=x onerror=\"alert(1)\">'))\n"
        "display(HTML('<table><tr><td>safe</td></tr></table>'))"
    )
    assert cell.status == "ok", cell.text
    bundles = [m["content"]["data"] for m in cell.of_type("display_data")]
    assert all("application/javascript" not in b for b in bundles)
    assert all("onerror" not in b.get("text/html", "") for b in bundles)
    assert any("<tr><td>safe</td></tr>" in b.get("text/html", "") for b in bundles)


def test_a_10_mb_cell_runs(kernel: Kernel) -> None:
    payload = "q" * (10 * 1024 * 1024)
    cell = kernel.execute(f"big = '{payload}'\nprint(len(big))", timeout=120)
    assert cell.status == "ok", cell.text[:200]
    assert cell.stdout.strip() == str(len(payload))


def test_settings_come_from_sandbox_kernel_config_py(specs: KernelSpecs, tmp_path: Path) -> None:
    (tmp_path / "sandbox_kernel_config.py").write_text(
        "c.SandboxConfig.memory = '768m'\nc.SandboxConfig.pids = 99\n"
    )
    with start_kernel(specs, env={"JUPYTER_CONFIG_DIR": str(tmp_path)}) as configured:
        banner = configured.request("kernel_info")["content"]["banner"]
        assert "memory 768m" in banner and "99 pids" in banner
        if GVISOR:
            # Under gVisor the setting is RLIMIT_NPROC, which gVisor enforces (see
            # spec.pids_limits), bounded by the forks 768m holds (gvisor.nproc); the
            # cgroup's limit is a budget for gVisor's threads.
            limit = configured.execute(
                "import resource; print(resource.getrlimit(resource.RLIMIT_NPROC)[0])"
            )
            expected = min(99, 768 * 1024 * 1024 // gvisor.FORK_BYTES)
            assert limit.stdout.strip() == str(expected) == "24", limit.text
            return
        limit = configured.execute(
            "print(open('/sys/fs/cgroup/pids/pids.max').read().strip()"
            " if __import__('os').path.exists('/sys/fs/cgroup/pids/pids.max')"
            " else open('/sys/fs/cgroup/pids.max').read().strip())"
        )
        assert limit.stdout.strip() == "99"


def test_megabytes_of_output_flow_while_the_cell_prints(kernel: Kernel) -> None:
    # Sent by the megabyte, not all at the end: the frontend starts showing output
    # (and the host relaying it) while the cell is still printing.
    cell = kernel.execute("line = 'z' * 999\nfor _ in range(8 * 1024):\n    print(line)")
    assert cell.stdout == ("z" * 999 + "\n") * (8 * 1024)
    assert len(cell.of_type("stream")) > 1, "all the output came at the end of the cell"
