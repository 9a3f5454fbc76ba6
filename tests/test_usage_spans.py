"""A cell's usage span ends when the cell has really ended, not when code inside says so.

Code in the inner kernel's process can send an ``execute_reply`` of its own for the
running cell (on the kernel's shell socket) and go on working. The host takes the span's
end from a request the inner kernel can only answer after the cell's handler returned.
Real kernel, real engine, validation off (the validator would refuse the kernel access;
the span must hold without it). CPU spent while no cell runs, and by threads that were
busy before a cell began, is shown as background, never as a cell's.
"""

from __future__ import annotations

import pytest

from harness import Kernel, KernelSpecs, start_kernel

pytestmark = pytest.mark.docker

_BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0:\n    pass\n"

_FORGE = (
    "k = get_ipython().kernel\n"
    "k.session.send(k.shell_stream.socket, 'execute_reply',\n"
    "    {'status': 'error', 'ename': 'Forged', 'evalue': '', 'traceback': [], 'execution_count': 1},\n"
    "    parent=k.get_parent('shell'), ident=k._get_shell_context_var(k._shell_parent_ident))\n"
)

_NOTICE = "sent an execute_reply of its own"


def test_a_forged_reply_does_not_end_the_span(kernel: Kernel) -> None:
    cell = kernel.execute(_FORGE + _BURN)
    usage = cell.usage
    assert usage is not None
    assert usage["cpu_time_s"] >= 0.9, usage  # the whole burn, not the forged end
    # The frontend gets the kernel's real reply, not the forged error.
    assert cell.status == "ok", cell.reply["content"]
    # The notice proves the forged reply reached the host before the real one: that is
    # where the span used to end (the attack is real).
    assert _NOTICE in cell.stderr


def test_control_an_honest_cell_has_no_notice_and_the_same_span(kernel: Kernel) -> None:
    cell = kernel.execute(_BURN)
    usage = cell.usage
    assert usage is not None and usage["cpu_time_s"] >= 0.9
    assert cell.status == "ok"
    assert _NOTICE not in cell.stderr


#: Looks for the id that proves the cell's end where a cell can see its request
#: (bootstrap.end_marker), and answers it the way the kernel would.
_FORGE_END = (
    "k = get_ipython().kernel\n"
    "p = k.get_parent('shell')\n"
    "marker = p['content'].get('sandbox_end_marker') or p['metadata'].get('sandbox_end_marker')\n"
    "print('marker seen:', marker is not None)\n"
    "if marker:\n"
    "    k.session.send(k.shell_stream.socket, 'comm_info_reply', {'status': 'ok', 'comms': {}},\n"
    "        parent={**p['header'], 'msg_id': marker, 'msg_type': 'comm_info_request'},\n"
    "        ident=k._get_shell_context_var(k._shell_parent_ident))\n"
)


def test_a_cell_cannot_answer_for_its_own_end(kernel: Kernel) -> None:
    """With a forged reply and the end's proof forged too, if the cell could see it."""
    cell = kernel.execute(_FORGE + _FORGE_END + _BURN)
    assert "marker seen: False" in cell.stdout, cell.stdout
    usage = cell.usage
    assert usage is not None and usage["cpu_time_s"] >= 0.9, usage
    assert cell.status == "ok", cell.reply["content"]
    # Control: the same cell's forged execute_reply reached the host (the notice), so
    # the forging works; only the id was out of its reach.
    assert _NOTICE in cell.stderr


def _container_cpu_s(kernel: Kernel) -> float:
    """The container's CPU seconds so far, asked on the control channel (no cell runs)."""
    msg = kernel.kc.session.msg("usage_request", {})
    kernel.kc.control_channel.send(msg)
    while True:
        answer = kernel.kc.get_control_msg(timeout=10)
        if answer["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            return float(answer["content"]["sandbox"]["cpu_time_s"])


def _wait_until_quiet(kernel: Kernel) -> None:
    """Until the container stops using CPU (the background thread is done)."""
    import time

    previous = _container_cpu_s(kernel)
    for _ in range(100):
        time.sleep(0.3)
        now = _container_cpu_s(kernel)
        if now - previous < 0.01:
            return
        previous = now
    raise AssertionError("the container never went quiet")


def test_background_cpu_between_cells_is_shown_as_background(kernel: Kernel) -> None:
    kernel.execute("1")
    starter = kernel.execute(
        "import threading, time\n"
        "def burn():\n"
        "    t = time.thread_time()\n"
        "    while time.thread_time() - t < 0.8:\n"
        "        pass\n"
        "threading.Thread(target=burn).start()"
    )
    assert starter.usage is not None
    _wait_until_quiet(kernel)
    innocent = kernel.execute("x = 1")
    usage = innocent.usage
    assert usage is not None
    assert usage["background_cpu_s"] >= 0.5, usage  # the thread's work, apart
    assert usage["cpu_time_s"] < 0.5, usage  # not charged to this cell
    line = innocent.usage_message["content"]["data"]["text/plain"]  # type: ignore[index]
    assert "CPU in the background" in line
    report = kernel.execute("%sandbox usage").of_type("display_data")[0]["content"]["data"]
    totals = report["application/vnd.sandbox-kernel.usage-report+json"]["totals"]
    assert totals["background_cpu_s"] >= 0.5
    assert "CPU in the background" in report["text/plain"]


def test_control_a_quiet_pause_shows_no_background(kernel: Kernel) -> None:
    kernel.execute("1")
    _wait_until_quiet(kernel)
    usage = kernel.execute("x = 2").usage
    assert usage is not None and usage["background_cpu_s"] < 0.05
    assert (
        "background" not in kernel.execute("x = 3").usage_message["content"]["data"]["text/plain"]
    )  # type: ignore[index]


_THREAD = (
    "import threading, time\n"
    "def burn():\n"
    "    t = time.thread_time()\n"
    "    while time.thread_time() - t < 2.5:\n"
    "        pass\n"
    "threading.Thread(target=burn, daemon=True).start()"
)


def test_a_thread_left_busy_is_background_in_the_next_cell_too(kernel: Kernel) -> None:
    import time

    starter = kernel.execute(_THREAD)
    time.sleep(1)  # a reader's pause: the thread burns while no cell runs
    sleeper = kernel.execute("import time\ntime.sleep(1)")
    usage = sleeper.usage
    assert usage is not None
    assert usage["cpu_time_s"] < 0.2, usage  # the sleeping cell did not burn
    assert usage["background_cpu_s"] >= 0.5, usage  # the thread did, before and during it
    # ... and the line names the cell that started it.
    count = starter.reply["content"]["execution_count"]
    assert usage["background_cells"] == [count], usage
    assert f"(threads of [{count}])" in sleeper.usage_message["content"]["data"]["text/plain"]  # type: ignore[index]
    _wait_until_quiet(kernel)


def test_back_to_back_a_thread_left_busy_is_background(kernel: Kernel) -> None:
    # "Run All": the next cell starts at once, with no pause to see the thread busy in.
    starter = kernel.execute(_THREAD)
    sleeper = kernel.execute("import time\ntime.sleep(1)")
    usage = sleeper.usage
    assert usage is not None
    assert usage["cpu_time_s"] < 0.2, usage  # the sleeping cell did not burn
    # The thread did, during it (how much depends on the machine's load: at least a
    # tenth of a core; without the pause nothing at all was moved before).
    assert usage["background_cpu_s"] >= 0.1, usage
    assert usage["background_cells"] == [starter.reply["content"]["execution_count"]], usage
    _wait_until_quiet(kernel)


_POOL = (
    "from concurrent.futures import ThreadPoolExecutor\n"
    "import time\n"
    "def burn(seconds):\n"
    "    t = time.thread_time()\n"
    "    while time.thread_time() - t < seconds:\n"
    "        pass\n"
    "pool = ThreadPoolExecutor(2)\n"
    "pool.submit(burn, 0.01).result()"
)


def test_control_back_to_back_a_thread_idle_between_cells_works_for_the_next(
    kernel: Kernel,
) -> None:
    # Negative control: a Python thread an earlier cell started, idle when the next cell
    # begins, then working for it (a thread pool the cell waits on): the cell's own CPU.
    kernel.execute(_POOL)
    usage = kernel.execute("pool.submit(burn, 0.8).result()").usage
    assert usage is not None
    assert usage["cpu_time_s"] >= 0.5, usage
    assert usage["background_cpu_s"] < 0.2, usage


def test_control_a_thread_pool_working_for_the_cell_stays_the_cells(kernel: Kernel) -> None:
    import time

    kernel.execute("import numpy as np\na = np.random.default_rng(0).random((700, 700))")
    work = "for _ in range(6):\n    b = a @ a"
    kernel.execute(work)
    reference = kernel.execute(work).usage  # back to back: nothing judged background
    # A short pause, while the BLAS pool still spins after the last cell: that spin
    # must not make the pool background work, or this cell's own work would go too.
    time.sleep(0.05)
    after_pause = kernel.execute(work).usage
    assert reference is not None and after_pause is not None
    assert after_pause["cpu_time_s"] >= 0.5 * reference["cpu_time_s"], (reference, after_pause)


def test_a_forged_reply_does_not_escape_the_timeout(specs: KernelSpecs) -> None:
    with start_kernel(specs, timeout=2) as timed:
        cell = timed.execute(_FORGE + "while True:\n    pass", timeout=60)
        assert cell.status == "error", cell.reply["content"]  # the real reply: timed out
        assert cell.reply["content"]["ename"] == "SandboxTimeout"
        assert cell.stderr.count("was interrupted") == 1, cell.stderr  # one interrupt
        # Without a forged reply: the probe after the interrupted cell's reply gets the
        # interrupt's grace, not a second interrupt.
        plain = timed.execute("while True:\n    pass", timeout=60)
        assert plain.reply["content"]["ename"] == "SandboxTimeout"
        assert plain.stderr.count("was interrupted") == 1, plain.stderr
        assert timed.execute("print(6 * 7)").stdout.strip() == "42"


def test_without_the_end_marker_the_probe_request_proves_the_end() -> None:
    """An image whose ipykernel does not take bootstrap.end_marker: the host sends the
    trivial request behind the cell instead, and a forged reply still cannot end the
    span (the fallback path, forced here on the real image)."""
    import asyncio
    import os

    from sandbox_kernel import Sandbox

    image = os.environ.get("SANDBOX_KERNEL_TEST_IMAGE", "sandbox-kernel:latest")

    async def run() -> tuple[float, str]:
        async with Sandbox(image=image, warm_spare=False, validation="off") as sandbox:
            assert sandbox.inner_patches.get("end_marker") == "applied"
            sandbox.inner_patches["end_marker"] = "not applied (forced by the test)"
            result = await sandbox.execute(_FORGE + _BURN)
            assert result.usage is not None
            return result.usage.cpu_time_s, result.stderr

    cpu, stderr = asyncio.run(run())
    assert cpu >= 0.9, cpu
    assert _NOTICE in stderr
