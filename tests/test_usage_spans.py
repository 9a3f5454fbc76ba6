"""A cell's usage span ends when the cell has really ended, not when code inside says so.

Code in the inner kernel's process can send an ``execute_reply`` of its own for the
running cell (on the kernel's shell socket) and go on working. The host takes the span's
end from a request the inner kernel can only answer after the cell's handler returned.
Real kernel, real engine, validation off (the validator would refuse the kernel access;
the span must hold without it).
"""

from __future__ import annotations

import pytest

from harness import Kernel

pytestmark = pytest.mark.docker

_BURN = (
    "import time\n"
    "t = time.process_time()\n"
    "while time.process_time() - t < 1.0:\n"
    "    pass\n"
)

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
