"""Start, restart, shutdown, crashes and failures: no container is ever left behind,
and every failure reaches the user as one readable sentence, never a hang.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from harness import CellResult, Kernel, KernelSpecs, start_kernel

pytestmark = pytest.mark.docker


def _exists(client: docker.DockerClient, container_id: str) -> bool:
    try:
        client.api.inspect_container(container_id)
    except docker.errors.NotFound:
        return False
    return True


def _wait_gone(client: docker.DockerClient, container_id: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not _exists(client, container_id):
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"container {container_id[:12]} still exists after {timeout} s")


def _wait_for_spare(client: docker.DockerClient, kernel: Kernel) -> None:
    """Wait until an unclaimed warm spare runs for ``kernel``'s configuration."""
    fingerprint = client.api.inspect_container(kernel.container_id)["Config"]["Labels"][
        "sandbox-kernel.fingerprint"
    ]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # The low-level list: the high-level one inspects each container, and fails
        # when one goes away in between (spares of other tests expire).
        spares = client.api.containers(
            filters={"label": [f"sandbox-kernel.fingerprint={fingerprint}"]}
        )
        if any("-spare-" in name for c in spares for name in c["Names"]):
            return
        time.sleep(0.3)
    raise AssertionError("no warm spare was started within 30 s")


def test_restart_gives_a_fresh_container_and_removes_the_old(
    docker_client: docker.DockerClient, specs: KernelSpecs
) -> None:
    with start_kernel(specs) as kernel:
        kernel.execute("precious = 1\nopen('/tmp/work/note.txt', 'w').write('x')")
        before = kernel.container_id
        kernel.km.restart_kernel(now=False)
        kernel.kc.wait_for_ready(timeout=60)
        after = kernel.container_id
        assert after != before
        _wait_gone(docker_client, before, 10)
        cell = kernel.execute(
            "import os\nprint('precious' in dir(), os.path.exists('/tmp/work/note.txt'))"
        )
        assert cell.stdout.strip() == "False False"


def test_shutdown_removes_the_container(
    docker_client: docker.DockerClient, specs: KernelSpecs
) -> None:
    with start_kernel(specs) as kernel:
        container_id = kernel.container_id
        assert _exists(docker_client, container_id)
    _wait_gone(docker_client, container_id, 10)


def test_shutdown_is_answered_and_the_process_exits_cleanly(
    docker_client: docker.DockerClient, specs: KernelSpecs, tmp_path: Path
) -> None:
    # The kernel process ends without the interpreter's own teardown: the replies
    # must still get out, on control and on IOPub, the exit status must be 0, and
    # nothing may be sent on a socket already closed (which the log would show).
    log_path = tmp_path / "kernel.log"
    with log_path.open("w") as log, start_kernel(specs, log=log) as kernel:
        container_id = kernel.container_id
        process = kernel.km.provisioner.process  # type: ignore[union-attr]
        msg_id = kernel.kc.shutdown(restart=False)
        reply = kernel.kc.control_channel.get_msg(timeout=10)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "ok"
        while True:
            msg = kernel.kc.get_iopub_msg(timeout=10)
            if msg["msg_type"] == "shutdown_reply":
                break
        assert process.wait(timeout=10) == 0
    _wait_gone(docker_client, container_id, 10)
    assert "Traceback" not in log_path.read_text()


def test_kernel_info_is_answered_on_both_channels_while_the_sandbox_starts(
    specs: KernelSpecs, tmp_path: Path
) -> None:
    # Jupyter Server's nudge asks on shell and control at once, right after launch;
    # the control thread has an event loop of its own, the sandbox starts on shell's.
    log_path = tmp_path / "kernel.log"
    with log_path.open("w") as log, start_kernel(specs, log=log, wait_ready=False) as kernel:
        session = kernel.kc.session
        on_control = session.msg("kernel_info_request")
        kernel.kc.control_channel.send(on_control)
        on_shell = kernel.kc.kernel_info()
        control_reply = kernel.kc.control_channel.get_msg(timeout=60)
        shell_reply = kernel.kc.get_shell_msg(timeout=60)
    assert control_reply["parent_header"]["msg_id"] == on_control["header"]["msg_id"]
    assert shell_reply["parent_header"]["msg_id"] == on_shell
    # Both answers wait for the sandbox, so both carry the inner Python's version.
    assert control_reply["content"]["status"] == shell_reply["content"]["status"] == "ok"
    assert control_reply["content"]["language_info"] == shell_reply["content"]["language_info"]
    assert "Traceback" not in log_path.read_text()


def test_kill_9_of_the_outer_kernel_leaves_no_container(
    docker_client: docker.DockerClient, specs: KernelSpecs
) -> None:
    with start_kernel(specs) as kernel:
        container_id = kernel.container_id
        kernel.execute("import time")  # in use, not just started
        pid = kernel.km.provisioner.pid  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
        took = _wait_gone(docker_client, container_id, 10)
        assert took < 10


def test_cleanup_removes_orphans_but_not_live_kernels(
    docker_client: docker.DockerClient, specs: KernelSpecs
) -> None:
    # An orphan: a kernel container whose controller process on this host is gone.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = docker_client.containers.create(
        "sandbox-kernel:latest",
        command=["python3", "-c", "import time; time.sleep(120)"],
        labels={
            "sandbox-kernel": "1",
            "sandbox-kernel.role": "kernel",
            "sandbox-kernel.controller": f"{os.uname().nodename}:{dead.pid}",
        },
        network_mode="none",
    )
    orphan.start()
    # A volume left by a container removed without its volumes, and one not ours.
    tmpfs = {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    leftover = docker_client.volumes.create(driver_opts=tmpfs, labels={"sandbox-kernel": "1"})
    not_ours = docker_client.volumes.create(driver_opts=tmpfs)
    # The live kernel runs in a warm spare that a kernel now gone made and left: the
    # spare's labels name its maker, but it is this live kernel's now.
    name = specs.make(warm_spare=True)
    with start_kernel(specs, kernel_name=name) as maker:
        _wait_for_spare(docker_client, maker)
    with start_kernel(specs, kernel_name=name) as kernel:
        live = kernel.container_id
        assert "-claimed-" in docker_client.api.inspect_container(live)["Name"]
        out = subprocess.run(
            [sys.executable, "-m", "sandbox_kernel", "cleanup"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert orphan.name in out.stdout
        assert not _exists(docker_client, orphan.id)
        assert _exists(docker_client, live)
        assert kernel.execute("1").status == "ok"  # its own volume is in use: kept
        volumes = {v.name for v in docker_client.volumes.list()}
        assert leftover.name not in volumes and "unused volume" in out.stdout
        assert not_ours.name in volumes
        not_ours.remove()


def test_unreachable_engine_is_one_clear_sentence(specs: KernelSpecs) -> None:
    with start_kernel(specs, docker_host="unix:///nonexistent/docker.sock") as kernel:
        info = kernel.request("kernel_info")["content"]
        assert "not reachable" in info["banner"]
        started = time.monotonic()
        cell = kernel.execute("print(1)")
        assert time.monotonic() - started < 30
        assert cell.status == "error"
        assert cell.error is not None
        assert cell.error["ename"] == "DockerUnavailableError"
        assert "Docker engine is not reachable" in cell.error["evalue"]


def test_missing_image_names_the_build_command(specs: KernelSpecs) -> None:
    with start_kernel(specs, image="sandbox-kernel:does-not-exist") as kernel:
        cell = kernel.execute("print(1)")
        assert cell.status == "error"
        assert cell.error is not None and cell.error["ename"] == "ImageNotFoundError"
        assert "sandbox-kernel image build" in cell.error["evalue"]


def test_image_without_ipykernel_fails_fast_with_a_reason(
    docker_client: docker.DockerClient, specs: KernelSpecs
) -> None:
    # The container starts but its Python cannot: the start must fail, not hang.
    with start_kernel(specs, extra_env={"PYTHONHOME": "/nonexistent"}) as kernel:
        cell = kernel.execute("print(1)", timeout=60)
        assert cell.status == "error"
        assert cell.error is not None
        assert cell.error["ename"] in {"KernelNotReadyError", "ContainerStartError"}
        # What the dying kernel wrote on stderr is quoted, not guessed at.
        assert "its last words:" in cell.error["evalue"], cell.error["evalue"]
        assert "No module named 'encodings'" in cell.error["evalue"], cell.error["evalue"]


def test_a_runtime_the_engine_lacks_is_one_clear_sentence(specs: KernelSpecs) -> None:
    with start_kernel(specs, runtime="runsc-not-registered") as kernel:
        cell = kernel.execute("print(1)", timeout=60)
        assert cell.status == "error" and cell.error is not None
        assert cell.error["ename"] == "ContainerStartError"
        assert "has no runtime 'runsc-not-registered'" in cell.error["evalue"]
        assert "scripts/engine.sh" in cell.error["evalue"]  # how to fix it


def _assert_fresh_after(kernel: Kernel, cell_code: str, expect: str, ename: str) -> CellResult:
    kernel.execute("survivor = 1")
    cell = kernel.execute(cell_code, timeout=120)
    assert cell.status == "error", cell.text
    assert cell.error is not None and cell.error["ename"] == ename, cell.error
    assert expect in cell.error["evalue"]
    assert "state is lost" in cell.error["evalue"]
    after = kernel.execute("print('survivor' in dir())")
    assert after.status == "ok" and after.stdout.strip() == "False"
    return cell


def test_kernel_exiting_on_its_own_is_explained(kernel: Kernel) -> None:
    _assert_fresh_after(
        kernel, "import os; os._exit(3)", "exited on its own (exit code 3)", "SandboxRestarted"
    )


def test_kernel_killed_by_a_signal_is_explained(kernel: Kernel) -> None:
    _assert_fresh_after(
        kernel,
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
        "SIGKILL",
        "SandboxRestarted",
    )


def test_memory_bomb_reports_the_limit_and_recovers(specs: KernelSpecs) -> None:
    with start_kernel(specs, memory="256m") as kernel:
        cell = _assert_fresh_after(
            kernel,
            "hog = []\nwhile True:\n    hog.append(bytearray(16 * 2**20))",
            "exceeded the sandbox memory limit (256 MiB)",
            "SandboxOutOfMemory",
        )
        # The fatal cell still gets its usage line, which says what happened.
        assert cell.usage is not None
        assert cell.usage["oom_killed"] is True
        assert cell.usage["peak_memory_bytes"] > 200 * 1024**2


def test_container_killed_from_outside_is_announced(
    docker_client: docker.DockerClient, kernel: Kernel
) -> None:
    kernel.execute("survivor = 1")
    docker_client.api.kill(kernel.container_id)
    time.sleep(1)
    cell = kernel.execute("print('survivor' in dir())")
    if cell.status == "error":
        # The death was heard only when the cell was sent (a loaded machine): the cell
        # did not run; it says so, and the next one runs in the fresh sandbox.
        assert cell.error is not None
        assert cell.error["ename"] == "SandboxRestarted", cell.text
        assert "stopped from outside" in cell.text and "state is lost" in cell.text
        cell = kernel.execute("print('survivor' in dir())")
    else:
        assert "stopped from outside" in cell.stderr and "state is lost" in cell.stderr
    assert cell.status == "ok", cell.text
    assert cell.stdout.strip() == "False"


def test_a_cell_sent_as_the_container_is_killed_says_so_and_the_next_runs(
    docker_client: docker.DockerClient, kernel: Kernel
) -> None:
    # No pause: the death is heard only once the cell is on its way. That cell is
    # answered with the reason (never a hang, never a bare "connection lost"), and the
    # next cell runs in the fresh sandbox.
    kernel.execute("survivor = 1")
    docker_client.api.kill(kernel.container_id)
    cell = kernel.execute("print('survivor' in dir())")
    assert cell.status == "error", cell.text
    assert cell.error is not None and cell.error["ename"] == "SandboxRestarted", cell.text
    assert "stopped from outside" in cell.text and "state is lost" in cell.text
    assert cell.reply["content"]["ename"] == "SandboxRestarted"
    cell = kernel.execute("print('survivor' in dir())")
    assert cell.status == "ok", cell.text
    assert cell.stdout.strip() == "False"


def test_timeout_interrupts_a_busy_cell_and_keeps_state(specs: KernelSpecs) -> None:
    with start_kernel(specs, timeout=2) as kernel:
        kernel.execute("kept = 7")
        started = time.monotonic()
        cell = kernel.execute("while True:\n    pass", timeout=60)
        assert time.monotonic() - started < 15
        assert cell.status == "error"
        # Named for what stopped it, in the reply and in the error output alike.
        assert cell.reply["content"]["ename"] == "SandboxTimeout"
        assert cell.error is not None and cell.error["ename"] == "SandboxTimeout"
        assert "2 s timeout" in cell.error["evalue"]
        assert "SandboxTimeout" in cell.error["traceback"][-1]
        assert "timeout" in cell.stderr
        assert kernel.execute("print(kept)").stdout.strip() == "7"
        # Negative control: the user's own interrupt is still a KeyboardInterrupt.
        reply = kernel.interrupt_running_cell("import time\ntime.sleep(30)", after=0.5)
        assert reply["content"]["ename"] == "KeyboardInterrupt"


def test_timeout_restarts_a_cell_that_ignores_sigint(specs: KernelSpecs) -> None:
    with start_kernel(specs, timeout=2, interrupt_grace=2) as kernel:
        cell = kernel.execute(
            "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: time.sleep(0.05)",
            timeout=60,
        )
        assert cell.status == "error"
        assert cell.error is not None and cell.error["ename"] == "SandboxTimeout"
        assert "restarted" in cell.error["evalue"]
        assert kernel.execute("print(40 + 2)").stdout.strip() == "42"


def test_output_flood_is_capped_and_the_kernel_keeps_working(specs: KernelSpecs) -> None:
    with start_kernel(specs, max_output_bytes=1024 * 1024) as kernel:
        cell = kernel.execute("for i in range(200000):\n    print('x' * 99)", timeout=120)
        assert cell.status == "ok"
        assert "output truncated" in cell.stderr
        assert 1000 * 1024 <= len(cell.stdout) <= 1024 * 1024  # everything up to the cap
        assert kernel.execute("print('alive')").stdout == "alive\n"


def test_restart_while_a_cell_runs_ends_that_cell_with_the_reason(specs: KernelSpecs) -> None:
    with start_kernel(specs) as kernel:
        msg_id = kernel.kc.execute("print('running', flush=True)\nimport time\ntime.sleep(60)")
        while True:
            msg = kernel.kc.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                break
        kernel.km.restart_kernel(now=False)
        reply = kernel.kc.get_shell_msg(timeout=30)
        while reply["parent_header"]["msg_id"] != msg_id:  # wait_for_ready's extra replies
            reply = kernel.kc.get_shell_msg(timeout=30)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KernelShutdown"
        assert "restarted" in reply["content"]["evalue"]
        kernel.kc.wait_for_ready(timeout=60)
        assert kernel.execute("print('running' in dir())").stdout == "False\n"


def test_warm_spare_is_claimed_on_restart(
    docker_client: docker.DockerClient, specs: KernelSpecs
) -> None:
    with start_kernel(specs, warm_spare=True) as kernel:
        _wait_for_spare(docker_client, kernel)
        kernel.km.restart_kernel(now=False)
        kernel.kc.wait_for_ready(timeout=60)
        name = docker_client.api.inspect_container(kernel.container_id)["Name"]
        assert "-claimed-" in name
        assert kernel.execute("print(6 * 7)").stdout.strip() == "42"
    for container in docker_client.api.containers(filters={"label": "sandbox-kernel.role=spare"}):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            docker_client.api.remove_container(container["Id"], force=True, v=True)


def test_a_frozen_sandbox_is_declared_dead_and_replaced(
    docker_client: docker.DockerClient, kernel: Kernel
) -> None:
    kernel.execute("survivor = 1")
    frozen = kernel.container_id
    docker_client.api.pause(frozen)
    started = time.monotonic()
    cell = kernel.execute("print('survivor' in dir())", timeout=90)
    assert time.monotonic() - started < 40
    assert "stopped responding" in cell.text and "state is lost" in cell.text, cell.text
    after = kernel.execute("print('fresh')")
    assert after.stdout == "fresh\n"
    _wait_gone(docker_client, frozen, 20)
