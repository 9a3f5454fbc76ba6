"""The escape suite: attacks a notebook cell can try, each shown to fail in the sandbox.

Every attack in ``tests/escape/attacks.py`` (a table by family) runs twice, through the real kernel as a
notebook cell runs (jupyter_client, validation off — the container must hold without
the validator):

* ``test_attack_is_blocked``: in the hardened sandbox (the defaults) the attack fails,
  and the kernel still answers afterwards, with its state or after an announced restart;
* ``test_attack_succeeds_when_weakened``: the negative control. The same attack against
  a sandbox with only the protection under test dropped must *succeed*; otherwise the
  first test proves nothing. A handful of attacks have no control, each says why.

The host plants bait first (tests/escape/host.py): canary files, a canary environment
variable, listeners on 127.0.0.1 and on a unix socket; the attacks look for it.
"""

from __future__ import annotations

import ast
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from sandbox_kernel import gvisor as gvisor_spec
from sandbox_kernel.config import SandboxConfig
from sandbox_kernel.spec import container_options

from escape import gvisor
from escape.attacks import ATTACKS, RESTART_ENAMES, Attack, is_blocked
from escape.host import HostBait, KernelPool, PooledKernel, fill
from harness import GVISOR, CellResult, Kernel, KernelSpecs, start_kernel

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def bait() -> Iterator[HostBait]:
    bait = HostBait()
    yield bait
    bait.close()


@pytest.fixture(scope="module")
def pool(docker_client: docker.DockerClient, bait: HostBait) -> Iterator[KernelPool]:
    pool = KernelPool(bait)
    yield pool
    pool.close()


def _run(
    kernel: PooledKernel, attack: Attack, bait: HostBait, *, control: bool = False
) -> CellResult:
    code = fill(attack.cell(control=control), {**bait.values, "KEY": kernel.key})
    return kernel.execute(code, timeout=attack.cell_timeout)


def _assert_usable(kernel: Kernel, marker: str, cell: CellResult) -> None:
    """The kernel answers, with the state from before the attack or after an announced restart."""
    after = kernel.execute("print(1 + 1)\nprint(globals().get('_escape_marker'))", timeout=60)
    assert after.status == "ok", after.text
    lines = after.stdout.split()
    assert lines[0] == "2", after.text
    if lines[1] == marker:
        return
    restart_error = cell.error is not None and cell.error.get("ename") in RESTART_ENAMES
    assert restart_error or "state is lost" in after.stderr, (
        "the kernel lost its state without announcing a restart",
        cell.text[-1000:],
        after.text,
    )


def _blocked_params() -> list[Any]:
    params = []
    for attack in ATTACKS:
        marks = []
        if GVISOR and attack.id in gvisor.GAPS:
            marks.append(pytest.mark.xfail(strict=True, reason=gvisor.GAPS[attack.id]))
        elif GVISOR and attack.id in gvisor.SLOWER:
            marks.append(pytest.mark.xfail(strict=False, reason=gvisor.SLOWER[attack.id]))
        params.append(pytest.param(attack, id=attack.id, marks=marks))
    return params


@pytest.mark.parametrize("attack", _blocked_params())
def test_attack_is_blocked(attack: Attack, pool: KernelPool, bait: HostBait) -> None:
    kernel = pool.kept(attack.hardened)
    marker = uuid.uuid4().hex
    assert kernel.execute(f"_escape_marker = {marker!r}").status == "ok"
    cell = _run(kernel, attack, bait)
    if GVISOR and attack.id in gvisor.BLOCKED_AS:
        gvisor.BLOCKED_AS[attack.id][0](cell)
        assert "RESULT: escaped" not in cell.stdout, cell.text
    else:
        attack.check_blocked(cell)
    _assert_usable(kernel, marker, cell)
    if attack.id == "tcp_host_loopback":
        assert bait.tcp_connections == 0


def _control_key(attack: Attack) -> str:
    return json.dumps({**attack.hardened, **(attack.weakened or {})}, sort_keys=True)


def _control_params() -> list[Any]:
    params = []
    # Grouped by weakened configuration: one kernel per group.
    for attack in sorted(ATTACKS, key=_control_key):
        marks = (
            [pytest.mark.skip(reason=f"no negative control: {attack.no_control}")]
            if attack.weakened is None
            else []
        )
        if GVISOR and attack.id in gvisor.CONTROL_SLOWER:
            marks.append(pytest.mark.xfail(strict=False, reason=gvisor.CONTROL_SLOWER[attack.id]))
        params.append(pytest.param(attack, id=attack.id, marks=marks))
    return params


@pytest.mark.parametrize("attack", _control_params())
def test_attack_succeeds_when_weakened(attack: Attack, pool: KernelPool, bait: HostBait) -> None:
    assert attack.weakened is not None
    settings = {**attack.hardened, **attack.weakened}
    kernel = pool.current(gvisor.control_settings(attack.id, settings) if GVISOR else settings)
    cell = _run(kernel, attack, bait, control=True)
    if GVISOR and attack.id in gvisor.GVISOR_PROTECTS:
        # gVisor itself is the protection here: without the sandbox's, still no escape.
        assert "RESULT: escaped" not in cell.stdout, gvisor.GVISOR_PROTECTS[attack.id]
        if attack.check_blocked is is_blocked:
            is_blocked(cell)
        return
    attack.check_succeeded(cell)


def test_tmp_noexec_false_really_allows_exec() -> None:
    """Docker mounts a tmpfs noexec unless told ``exec``: dropping the setting must say so."""
    hardened = container_options(SandboxConfig())["host_config"]["tmpfs"]["/tmp"].split(",")
    loosened = container_options(SandboxConfig(tmp_noexec=False))["host_config"]["tmpfs"][
        "/tmp"
    ].split(",")
    assert "noexec" in hardened and "exec" not in hardened
    assert "exec" in loosened and "noexec" not in loosened


def test_every_attack_has_a_control_or_a_reason() -> None:
    assert len(ATTACKS) >= 40
    for attack in ATTACKS:
        assert (attack.weakened is None) == bool(attack.no_control), attack.id
    assert sum(attack.weakened is None for attack in ATTACKS) <= 5


# -- isolation between sandboxes and between sessions -------------------------------------------

_PLANT = """
import os, subprocess
open('/tmp/sk-mark-{m}', 'w').write('x')
open('/dev/shm/sk-mark-{m}', 'w').write('x')
open(os.path.expanduser('~/sk-mark-{m}'), 'w').write('x')
sleeper = subprocess.Popen(['sleep', '{m}'])
sk_precious = '{m}'
print('planted')
"""

_LOOK = """
import os
hits = [p for p in ('/tmp/sk-mark-{m}', '/dev/shm/sk-mark-{m}', os.path.expanduser('~/sk-mark-{m}'))
        if os.path.exists(p)]
for pid in (p for p in os.listdir('/proc') if p.isdigit()):
    try:
        if '{m}' in open(f'/proc/{{pid}}/cmdline').read():
            hits.append('process ' + pid)
    except OSError:
        pass
if globals().get('sk_precious') == '{m}':
    hits.append('variable')
print('SEEN', sorted(hits))
"""


def _seen(kernel: Kernel, marker: str) -> list[str]:
    cell = kernel.execute(_LOOK.format(m=marker))
    assert cell.status == "ok", cell.text
    line = next(line for line in cell.stdout.splitlines() if line.startswith("SEEN "))
    return list(ast.literal_eval(line[5:]))


def test_two_kernels_cannot_see_each_others_files_or_processes(specs: KernelSpecs) -> None:
    marker = str(900000 + uuid.uuid4().int % 99999)  # also the sleep's duration, in seconds
    with start_kernel(specs) as first, start_kernel(specs) as second:
        assert first.container_id != second.container_id
        assert first.execute(_PLANT.format(m=marker)).stdout.strip() == "planted"
        # Positive control: the same look finds everything from inside the first kernel.
        assert len(_seen(first, marker)) == 5
        assert _seen(second, marker) == []
        first.execute("sleeper.kill(); sleeper.wait()")


def test_files_processes_and_state_are_gone_after_restart(specs: KernelSpecs) -> None:
    marker = str(900000 + uuid.uuid4().int % 99999)
    with start_kernel(specs) as kernel:
        assert kernel.execute(_PLANT.format(m=marker)).stdout.strip() == "planted"
        assert len(_seen(kernel, marker)) == 5  # positive control, before the restart
        kernel.km.restart_kernel(now=False)
        kernel.kc.wait_for_ready(timeout=60)
        started = time.monotonic()
        assert _seen(kernel, marker) == []
        assert time.monotonic() - started < 30


# -- the transport to the host -------------------------------------------------------------------

_TRANSPORT_FLOOD = """
import os, signal, struct, time
relay = os.getppid()
targets = [f"/proc/{relay}/fd/1", "/proc/1/fd/1"]  # the relay's and init's stdout
for path in targets:
    try:
        fd = os.open(path, os.O_WRONLY)
        break
    except OSError as err:
        print("RESULT: blocked", path, err)
else:
    raise SystemExit
# Freeze the relay so that none of its own frames interleaves, then write a frame
# header claiming 4096 parts and 160 parts of 1 MiB: the frame never completes.
os.kill(relay, signal.SIGSTOP)
time.sleep(0.5)
try:
    os.write(fd, struct.pack(">BI", 4, 4096))
    chunk = struct.pack(">I", 1 << 20) + bytes(1 << 20)
    for _ in range(160):
        os.write(fd, chunk)
    print("RESULT: escaped wrote 160 MiB into", path)
except OSError as err:
    print("RESULT: blocked", path, err)
finally:
    os.kill(relay, signal.SIGCONT)
"""


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def test_cell_cannot_flood_the_host_through_the_transport(specs: KernelSpecs) -> None:
    """A cell must not write into the host transport (the relay's stdout).

    Were it to (it did, before the relay became a non-dumpable PID 1), the host's
    decoder still bounds what it holds: see tests/test_wire.py.
    """
    with start_kernel(specs) as kernel:
        outer = kernel.km.provisioner.pid  # type: ignore[union-attr]
        before = _rss(outer)
        try:
            cell: CellResult | None = kernel.execute(_TRANSPORT_FLOOD, timeout=15)
        except TimeoutError:
            cell = None  # the channel is wedged by the never-completed frame
        growth = _rss(outer) - before
        assert growth < 100 * 1024 * 1024, f"the host kernel grew by {growth >> 20} MiB"
        assert cell is not None, "the kernel stopped answering"
        # The relay is PID 1 and not dumpable: its stdout cannot be opened from a cell.
        # (gVisor ignores the non-dumpable flag; there the relay's real uid is its own:
        # sandbox_kernel/gvisor.py.)
        assert "RESULT: blocked" in cell.stdout and "escaped" not in cell.stdout, cell.text
        after = kernel.execute("print(1 + 1)", timeout=60)
        assert after.stdout.split()[0] == "2", after.text


@pytest.mark.skipif(not GVISOR, reason="under runc the relay is PID 1 and not dumpable")
def test_under_gvisor_without_the_relays_own_uid_pid1_and_the_transport_are_reachable(
    specs: KernelSpecs, bait: HostBait
) -> None:
    """The negative control of kill_pid1 and of the transport flood under gVisor.

    gVisor ignores what protects the relay under runc (PID 1's immunity, the
    non-dumpable flag); its protection there is a real uid of its own
    (sandbox_kernel/gvisor.py). A kernel whose user is the relay's uid gets none, and
    both attacks reach the relay.
    """
    uid = gvisor_spec.RELAY_UID
    with start_kernel(specs, user=f"{uid}:{uid}") as kernel:
        [kill] = [attack for attack in ATTACKS if attack.id == "kill_pid1"]
        cell = kernel.execute(fill(kill.cell(), bait.values), timeout=kill.cell_timeout)
        assert cell.error is not None and cell.error.get("ename") == "SandboxRestarted", cell.text
        # The relay (PID 1) died: the container ended, "stopped from outside".
        assert "stopped from outside" in cell.error.get("evalue", ""), cell.text
        try:
            flood = kernel.execute(_TRANSPORT_FLOOD, timeout=15)
        except TimeoutError:
            return  # the relay's stdout opened: the never-completed frame wedged the channel
        assert "escaped" in flood.stdout or "state is lost" in flood.text, flood.text
