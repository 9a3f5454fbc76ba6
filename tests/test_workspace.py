"""The notebook's folder in the sandbox, and results out through the outputs door.

Real kernels against the real engine: a notebook folder runs the same in the sandbox
as in a plain ipykernel; host changes are seen; writes reach the host only through
``outputs/``; symlinks and hidden files stay out; caps say which setting to change;
the outputs door holds against hostile names, links, sizes and symlink swaps on the
host. Each refusal has a control that shows the same test seeing the thing when it
is allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from sandbox_kernel import Sandbox
from sandbox_kernel.config import SandboxConfig
from sandbox_kernel.workspace import Workspace, confined_name

from harness import GVISOR, IMAGE, CellResult, Kernel, KernelSpecs, start_kernel

pytestmark = pytest.mark.docker


def make_notebook_folder(root: Path) -> Path:
    """A small research folder: data files, a helper module, a subfolder, a config."""
    (root / "data" / "raw").mkdir(parents=True)
    rows = "\n".join(f"2024-01-{d:02d},{100 + d * 0.5:.2f},{1000 + d}" for d in range(1, 29))
    (root / "data" / "prices.csv").write_text("date,close,volume\n" + rows + "\n")
    (root / "data" / "raw" / "part1.csv").write_text("x\n1\n2\n")
    (root / "data" / "raw" / "part2.csv").write_text("x\n3\n")
    (root / "helpers.py").write_text(
        "def annualised(r, periods=252):\n    return (1 + r) ** periods - 1\n\nLOADED = 'helpers'\n"
    )
    (root / "setup_vars.py").write_text("WINDOW = 5\nprint('setup ran')\n")
    (root / "config.yaml").write_text("window: 5\nname: demo\n")
    (root / "cache").mkdir()  # an empty folder the notebook writes into
    (root / "weights.bin").write_bytes(struct.pack("<6d", *range(6)))
    return root


#: Cells a notebook in that folder runs: relative paths, glob, %run, import, binary
#: data, and a result written to outputs/. Standard library only, so that the plain
#: ipykernel on the host (which has no pandas) runs them too.
NOTEBOOK = [
    "import csv, glob, json, struct\n"
    "rows = list(csv.DictReader(open('data/prices.csv')))\nrows[-1]",
    "sorted(glob.glob('data/**/*.csv', recursive=True))",
    "%run setup_vars.py\nprint(WINDOW)",
    "import helpers\nprint(helpers.LOADED, round(helpers.annualised(0.0004), 6))",
    "print(sum(struct.unpack('<6d', open('weights.bin', 'rb').read())))\n"
    "print(open('config.yaml').read())",
    "import os\nos.makedirs('outputs', exist_ok=True)\n"
    "closes = [float(r['close']) for r in rows]\n"
    "ma = [round(sum(closes[i - WINDOW:i]) / WINDOW, 4) for i in range(WINDOW, len(closes) + 1)]\n"
    "json.dump(ma, open('outputs/ma.json', 'w'))\nprint(len(ma))",
    "json.load(open('outputs/ma.json'))[:3]",
    "open('cache/step1.txt', 'w').write('intermediate')",
    "from pathlib import Path\nsorted(p.name for p in Path('.').iterdir())",
    "open('missing.csv')",
]


def settled(kernel: Kernel, cell: CellResult) -> str:
    """What the cell said after its reply (notices of the outputs door), once its
    outputs folder is on the host: the next cell starts only after that copy."""
    parent = cell.reply["parent_header"]["msg_id"]
    follower = kernel.kc.execute("pass", store_history=False)
    late = []
    while True:
        msg = kernel.kc.get_iopub_msg(timeout=60)
        msg_parent = msg["parent_header"].get("msg_id")
        if msg_parent == parent and msg["msg_type"] == "stream":
            late.append(msg["content"]["text"])
        if (
            msg_parent == follower
            and msg["msg_type"] == "status"
            and msg["content"]["execution_state"] == "idle"
        ):
            return "".join(late)


def execute(kernel: Kernel, code: str) -> CellResult:
    """Run a cell and wait for its outputs folder; late notices join its stderr."""
    cell = kernel.execute(code)
    late = settled(kernel, cell)
    if late:
        cell.messages.append(
            {
                "msg_type": "stream",
                "content": {"name": "stderr", "text": late},
                "parent_header": cell.reply["parent_header"],
            }
        )
    return cell


def run_cells(kernel: Kernel, cells: list[str]) -> list[str]:
    return [execute(kernel, code).text for code in cells]


@contextlib.contextmanager
def plain_kernel(cwd: Path) -> Iterator[Kernel]:
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(cwd))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield Kernel(km, kc)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run_as_on_a_plain_kernel(
    specs: KernelSpecs, plain_dir: Path, sandbox_dir: Path, cells: list[str]
) -> list[str]:
    """Run ``cells`` on a plain ipykernel in one folder and in the sandbox in a copy of
    it; every cell must show the same text. Returns the sandbox's."""
    with plain_kernel(plain_dir) as kernel:
        expected = run_cells(kernel, cells)
    with start_kernel(specs, cwd=sandbox_dir) as kernel:
        got = run_cells(kernel, cells)
    for index, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert have == want, f"cell {index}: {cells[index]!r}"
    return got


def test_a_notebook_folder_runs_as_in_a_plain_kernel(specs: KernelSpecs, tmp_path: Path) -> None:
    plain_dir = make_notebook_folder(tmp_path / "plain")
    sandbox_dir = make_notebook_folder(tmp_path / "sandbox")
    got = run_as_on_a_plain_kernel(specs, plain_dir, sandbox_dir, NOTEBOOK)
    assert "FileNotFoundError" in got[-1]  # the comparison can see a failure
    assert (sandbox_dir / "outputs" / "ma.json").read_bytes() == (
        plain_dir / "outputs" / "ma.json"
    ).read_bytes()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_notebook_folder(tmp_path / "nb")


def test_host_changes_are_seen_by_the_next_cell(specs: KernelSpecs, folder: Path) -> None:
    with start_kernel(specs, cwd=folder) as kernel:
        assert (
            execute(kernel, "print(open('config.yaml').read())").stdout
            == "window: 5\nname: demo\n\n"
        )
        (folder / "config.yaml").write_text("window: 7\nname: demo\n")  # same size
        (folder / "data" / "new.csv").write_text("y\n9\n")
        cell = execute(kernel, "print(open('config.yaml').read(), open('data/new.csv').read())")
        assert cell.stdout == "window: 7\nname: demo\n y\n9\n\n"


def test_the_working_directory_volume_goes_with_its_container(
    specs: KernelSpecs, docker_client: docker.DockerClient
) -> None:
    """And under gVisor, the /tmp and /dev/shm volumes too (sandbox_kernel/gvisor.py)."""
    with start_kernel(specs) as kernel:
        container = docker_client.api.inspect_container(kernel.container_id)
        volumes = {
            m["Destination"]: m["Name"] for m in container["Mounts"] if m["Type"] == "volume"
        }
        expected = ["/dev/shm", "/tmp", "/tmp/work"] if GVISOR else ["/tmp/work"]
        assert sorted(volumes) == expected
        for volume in volumes.values():
            assert docker_client.api.inspect_volume(volume)["Labels"] == {"sandbox-kernel": "1"}
    deadline = time.monotonic() + 30
    left = set(volumes.values())
    while left and time.monotonic() < deadline:
        for volume in list(left):
            try:
                docker_client.api.inspect_volume(volume)
            except docker.errors.NotFound:
                left.discard(volume)
        time.sleep(0.2)
    assert not left, f"the volumes {left} outlived their container"


def test_with_sync_at_start_host_changes_wait_for_a_restart(
    specs: KernelSpecs, folder: Path
) -> None:
    """The control of the test above: without the per-cell scan the change is not seen."""
    with start_kernel(specs, cwd=folder, workspace_sync="start") as kernel:
        assert execute(kernel, "print(open('config.yaml').read())").stdout.startswith("window: 5")
        (folder / "config.yaml").write_text("window: 7\nname: demo\n")
        assert execute(kernel, "print(open('config.yaml').read())").stdout.startswith("window: 5")


def test_writes_reach_the_host_only_through_outputs(specs: KernelSpecs, folder: Path) -> None:
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with start_kernel(specs, cwd=folder) as kernel:
        cell = execute(
            kernel,
            "import os\n"
            "open('data/prices.csv', 'w').write('overwritten')\n"
            "open('new_file.txt', 'w').write('x')\n"
            "os.remove('helpers.py')\n"
            "os.makedirs('outputs/figures')\n"
            "open('outputs/figures/equity.txt', 'w').write('curve')\n"
            "open('/tmp/elsewhere.txt', 'w').write('y')",
        )
        assert cell.status == "ok", cell.text
        assert cell.stderr == ""
    after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after.pop(folder / "outputs" / "figures" / "equity.txt") == b"curve"
    assert after == before


def test_symlinks_leaving_the_folder_and_hidden_files_stay_out(
    specs: KernelSpecs, folder: Path, tmp_path: Path
) -> None:
    fake_ssh = tmp_path / "home" / ".ssh"
    fake_ssh.mkdir(parents=True)
    (fake_ssh / "id_ed25519").write_text("PRIVATE KEY")
    (folder / "passwd").symlink_to("/etc/passwd")
    (folder / "ssh").symlink_to(fake_ssh)
    (folder / "key").symlink_to(fake_ssh / "id_ed25519")
    (folder / "inside.csv").symlink_to(folder / "data" / "prices.csv")  # control
    (folder / ".env").write_text("API_KEY=secret\n")
    (folder / "settings.txt").symlink_to(folder / ".env")  # a way round the hidden rule
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("[core]\n")
    probe = (
        "import os\n"
        "print([n for n in ('passwd', 'ssh', 'key', 'settings.txt', 'inside.csv', '.env', '.git') "
        "if os.path.lexists(n)])\n"
        "print(open('inside.csv').read() == open('data/prices.csv').read())"
    )
    with start_kernel(specs, cwd=folder) as kernel:
        assert execute(kernel, probe).stdout == "['inside.csv']\nTrue\n"
    with start_kernel(specs, cwd=folder, workspace_hidden=True) as kernel:
        assert (
            execute(kernel, probe).stdout
            == "['settings.txt', 'inside.csv', '.env', '.git']\nTrue\n"
        )


def test_a_folder_over_a_cap_is_not_copied_and_says_which_setting(
    specs: KernelSpecs, folder: Path
) -> None:
    (folder / "big.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    with start_kernel(specs, cwd=folder, workspace_max_size="1m") as kernel:
        cell = execute(kernel, "import os\nprint(sorted(os.listdir('.')))")
        assert "workspace_max_size" in cell.stderr and "not copied" in cell.stderr
        assert cell.stdout == "[]\n"
        assert execute(kernel, "print(1)").stderr == ""  # said once
    with start_kernel(specs, cwd=folder, workspace_max_files=3) as kernel:
        cell = execute(kernel, "print(1)")
        assert "workspace_max_files" in cell.stderr
    with start_kernel(specs, cwd=folder, workspace_max_size="3m") as kernel:  # control
        cell = execute(kernel, "import os\nprint(os.path.getsize('big.bin'))")
        assert cell.stdout == f"{2 * 1024 * 1024}\n" and cell.stderr == ""


def test_workspace_none_leaves_the_sandbox_folder_empty(specs: KernelSpecs, folder: Path) -> None:
    with start_kernel(specs, cwd=folder, workspace="none") as kernel:
        cell = execute(
            kernel,
            "import os\nprint(os.listdir('.'))\nos.mkdir('outputs')\n"
            "open('outputs/r.txt', 'w').write('r')",
        )
        assert cell.stdout == "[]\n"
    assert (folder / "outputs" / "r.txt").read_text() == "r"  # the door is its own setting


def test_outputs_off_copies_nothing_back(specs: KernelSpecs, folder: Path) -> None:
    with start_kernel(specs, cwd=folder, outputs_dir="") as kernel:
        cell = execute(
            kernel, "import os\nos.mkdir('outputs')\nopen('outputs/r.txt', 'w').write('r')"
        )
        assert cell.status == "ok"
    assert not (folder / "outputs").exists()


HOSTILE = r"""
import os
os.makedirs('outputs/sub', exist_ok=True)
open('outputs/good.csv', 'w').write('good')
open('outputs/sub/nested.csv', 'w').write('nested')
os.symlink('/etc/passwd', 'outputs/passwd')
os.symlink('../../../../etc', 'outputs/etc')
open('outputs/new\nline.csv', 'w').write('n')
open(b'outputs/bad\xff.csv', 'wb').write(b'b')
os.mkfifo('outputs/fifo')
open('outputs/target.csv', 'w').write('swapped?')
open('outputs/big.bin', 'wb').write(b'\0' * (3 * 1024 * 1024))
print('written')
"""


def test_the_outputs_door_holds_against_hostile_entries(
    specs: KernelSpecs, folder: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (folder / "outputs").mkdir()
    # A symlink already on the host, where the sandbox writes a file of that name:
    # it is replaced, never written through.
    (folder / "outputs" / "target.csv").symlink_to(victim)
    with start_kernel(specs, cwd=folder, outputs_max_cell_size="2m") as kernel:
        cell = execute(kernel, HOSTILE)
        assert cell.stdout == "written\n", cell.text
        notice = cell.stderr
    assert victim.read_text() == "precious"
    out = folder / "outputs"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "good.csv",
        "sub",
        "sub/nested.csv",
        "target.csv",
    ]
    assert (out / "good.csv").read_text() == "good"
    assert (out / "sub" / "nested.csv").read_text() == "nested"
    assert not (out / "target.csv").is_symlink()
    assert (out / "target.csv").read_text() == "swapped?"
    assert not (out / "good.csv").stat().st_mode & 0o111
    for said in ("passwd", "etc", "new\\nline.csv", "fifo", "big.bin", "outputs_max_cell_size"):
        assert said in notice, said
    assert "\\udcff" in notice or "bad" in notice


def test_the_outputs_door_caps_files_per_cell_and_bytes_per_session(
    specs: KernelSpecs, folder: Path
) -> None:
    with start_kernel(
        specs, cwd=folder, outputs_max_files=3, outputs_max_session_size="10k"
    ) as kernel:
        cell = execute(
            kernel,
            "import os\nos.mkdir('outputs')\n"
            "for i in range(6):\n    open(f'outputs/f{i}.txt', 'w').write('x')",
        )
        assert "outputs_max_files" in cell.stderr
        assert len(list((folder / "outputs").iterdir())) == 3
        cell = execute(kernel, "open('outputs/big.bin', 'wb').write(b'1' * 20_000)")
        assert "outputs_max_session_size" in cell.stderr
        assert not (folder / "outputs" / "big.bin").exists()
        cell = execute(kernel, "open('outputs/small.txt', 'w').write('s')")  # control
        assert (folder / "outputs" / "small.txt").read_text() == "s"


def test_a_host_outputs_symlink_is_refused(
    specs: KernelSpecs, folder: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (folder / "outputs").symlink_to(elsewhere)
    with start_kernel(specs, cwd=folder) as kernel:
        cell = execute(
            kernel,
            "import os\nos.makedirs('outputs', exist_ok=True)\n"
            "open('outputs/r.txt', 'w').write('r')",
        )
        assert "symlink" in cell.stderr
    assert list(elsewhere.iterdir()) == []


def test_changed_outputs_are_copied_again_and_unchanged_ones_are_not(
    specs: KernelSpecs, folder: Path
) -> None:
    with start_kernel(specs, cwd=folder) as kernel:
        execute(
            kernel, "import os, time\nos.mkdir('outputs')\nopen('outputs/a.txt', 'w').write('1')"
        )
        assert (folder / "outputs" / "a.txt").read_text() == "1"
        (folder / "outputs" / "a.txt").write_text("host edit")  # the host's copy moves on
        execute(kernel, "print(1)")
        assert (folder / "outputs" / "a.txt").read_text() == "host edit"
        execute(kernel, "open('outputs/a.txt', 'w').write('22')")
        assert (folder / "outputs" / "a.txt").read_text() == "22"


def test_papermill_style_runs_get_their_outputs(
    specs: KernelSpecs, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nbclient (papermill's engine) sets the kernel's cwd and shuts it down gracefully
    after the last cell: the last cell's outputs are on the host by then."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("import csv\nrows = list(csv.reader(open('data/prices.csv')))"),
        nbformat.v4.new_code_cell(
            "import os\nos.makedirs('outputs', exist_ok=True)\n"
            "open('outputs/summary.txt', 'w').write(f'{len(rows) - 1} rows')"
        ),
    ]
    monkeypatch.setenv("JUPYTER_PATH", str(specs.root))
    client = NotebookClient(
        notebook,
        kernel_name=specs.make(),
        timeout=120,
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute()
    assert (folder / "outputs" / "summary.txt").read_text() == "28 rows"


def test_the_sandbox_api_sees_no_host_folder_by_default_and_moves_files_explicitly(
    folder: Path,
) -> None:
    async def scenario() -> tuple[Any, ...]:
        async with Sandbox(image=IMAGE, warm_spare=False, validation="off") as sandbox:
            listing = await sandbox.execute("import os\nprint(os.listdir('.'))")
            await sandbox.write_file("inputs/prices.csv", b"close\n1\n2\n")
            summed = await sandbox.execute(
                "import pandas as pd\nprint(pd.read_csv('inputs/prices.csv').close.sum())\n"
                "os.symlink('/etc/passwd', 'link')\nopen('result.txt', 'w').write('r')"
            )
            result = await sandbox.read_file("result.txt")
            errors = []
            for bad in ("link", "../etc/passwd", "/etc/passwd", "missing.txt"):
                try:
                    await sandbox.read_file(bad)
                except (ValueError, OSError) as err:
                    errors.append(type(err).__name__)
            try:
                await sandbox.write_file("../escape.txt", b"x")
            except ValueError:
                errors.append("write refused")
            return listing.stdout, summed.stdout, result, errors

    listing, summed, result, errors = asyncio.run(scenario())
    assert listing == "[]\n"
    assert summed == "3\n"
    assert result == b"r"
    assert errors == [
        "FileNotFoundError",
        "ValueError",
        "ValueError",
        "FileNotFoundError",
        "write refused",
    ]


def test_what_the_door_wrote_is_not_sent_back_in(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path, SandboxConfig())
    (tmp_path / "a.txt").write_text("x")
    workspace.sent = dict((e.rel, e) for e in workspace.changes() if not isinstance(e, str))
    (tmp_path / "outputs" / "sub").mkdir(parents=True)
    (tmp_path / "outputs" / "sub" / "r.csv").write_text("r")
    (tmp_path / "outputs" / "top.csv").write_text("t")
    (tmp_path / "b.txt").write_text("new on the host")  # control: this one is news
    workspace.note_written("outputs", ["sub/r.csv", "top.csv"])
    changed = workspace.changes()
    assert [e.rel for e in changed if not isinstance(e, str)] == ["b.txt"]


def test_the_scan_is_skipped_only_while_nothing_in_the_folder_moved(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("1")
    workspace = Workspace(tmp_path, SandboxConfig())
    if workspace.watch is None or not workspace.watch.usable:
        pytest.skip("no inotify here: every cell scans")
    for _ in range(2):  # the second scan runs with the watches in place
        workspace.sent.update((e.rel, e) for e in workspace.changes() if not isinstance(e, str))
    assert workspace.changes() == []
    (tmp_path / "data" / "a.csv").write_text("2")  # same size: only the mtime tells
    assert [e.rel for e in workspace.changes() if not isinstance(e, str)] == ["data/a.csv"]
    (tmp_path / "data" / "new").mkdir()
    assert "data/new/" in [e.rel for e in workspace.changes() if not isinstance(e, str)]
    (tmp_path / "data" / "new" / "b.csv").write_text("b")  # in a folder watched since
    assert "data/new/b.csv" in [e.rel for e in workspace.changes() if not isinstance(e, str)]


def test_a_home_folder_is_never_copied() -> None:
    for root in (Path.home(), Path("/")):
        notice = Workspace(root, SandboxConfig()).changes()
        assert isinstance(notice, str) and "not copied" in notice and "project folder" in notice


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a.csv", True),
        ("figs/equity.png", True),
        ("../x", False),
        ("a/../../x", False),
        ("/etc/passwd", False),
        ("a//b", False),
        ("./a", False),
        ("new\nline", False),
        ("bad\udcff.csv", False),
        ("x" * 256, False),
        ("", False),
        ("a\\b", False),
    ],
)
def test_confined_names(name: str, ok: bool) -> None:
    assert (confined_name(name) == name) is ok
