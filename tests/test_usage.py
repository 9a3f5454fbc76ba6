"""Unit tests of the usage numbers and their display, without an engine.

Stats documents in tests/data/stats/: ``v1_*`` were recorded from this project's
Docker 20.10 engine on cgroup v1 with ``client.api.stats(id, stream=False,
one_shot=True)`` (``v1_none_*`` around a cell that allocated 200 MiB, wrote 16 MiB to
/tmp and spun for 0.5 s; ``v1_bridge`` after sending 100 KB of UDP). ``v2_*`` are
hand-written in the documented cgroup v2 form (see their ``_comment``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import sandbox_kernel.usage as usage_module
from sandbox_kernel.errors import SandboxError
from sandbox_kernel.usage import (
    MIME_TYPE,
    REPORT_MIME_TYPE,
    CellUsage,
    CgroupCounters,
    Reading,
    SessionUsage,
    cell_usage,
    cgroup_dirs,
    format_seconds,
    measurements_table,
    reading_from_stats,
)

DATA = Path(__file__).parent / "data" / "stats"
MiB = 2**20
GiB = 2**30


def load(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


def make_usage(**changes: Any) -> CellUsage:
    """The issue's example line, with ``changes`` applied."""
    fields: dict[str, Any] = {
        "wall_time_s": 1.24,
        "cpu_time_s": 1.10,
        "peak_memory_bytes": 312 * MiB,
        "memory_bytes": 200 * MiB,
        "memory_limit_bytes": 2 * GiB,
        "pids": 3,
        "pids_peak": 3,
        "net_rx_bytes": 0,
        "net_tx_bytes": 0,
        "tmp_bytes": None,
        "cpu_throttled": False,
        "oom_killed": False,
        "source": "cgroup-v2",
        "peak_exact": True,
        "pids_limit": 256,
    }
    fields.update(changes)
    return CellUsage(**fields)


def reading(**changes: Any) -> Reading:
    fields: dict[str, Any] = {
        "at": 0.0,
        "cpu_ns": 0,
        "memory_usage": 10 * MiB,
        "memory_working": 8 * MiB,
        "memory_limit": 512 * MiB,
        "memory_hwm": None,
        "pids": 1,
        "pids_hwm": None,
        "pids_limit": 64,
        "net_rx": 0,
        "net_tx": 0,
        "shmem": None,
        "nr_throttled": 0,
        "oom_kills": 0,
    }
    fields.update(changes)
    return Reading(**fields)


# -- the line ----------------------------------------------------------------------------


def test_text_is_the_issue_example() -> None:
    assert (
        make_usage().text() == "1.24 s wall · 1.10 s CPU · peak 312 MiB of 2 GiB · 3 pids · net 0 B"
    )


def test_text_shows_sampled_peak_pids_peak_net_tmp_and_flags() -> None:
    line = make_usage(
        peak_exact=False,
        pids=1,
        pids_peak=9,
        net_rx_bytes=3 * MiB,
        net_tx_bytes=2048,
        tmp_bytes=-5 * MiB,
        cpu_throttled=True,
        oom_killed=True,
        memory_limit_bytes=0,
    ).text()
    assert line == (
        "1.24 s wall · 1.10 s CPU · peak ~312 MiB · 1 pid (peak 9) · net ↓3 MiB ↑2 KiB"
        " · tmp -5 MiB · CPU throttled · out of memory: a process was killed"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0 ms"),
        (0.0123, "12 ms"),
        (0.9994, "999 ms"),
        (1.0, "1.00 s"),
        (9.99, "9.99 s"),
        (12.34, "12.3 s"),
        (125, "2 min 05 s"),
        (3 * 3600 + 7 * 60, "3 h 07 min"),
    ],
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"peak_memory_bytes": int(0.79 * 2 * GiB)}, []),
        ({"peak_memory_bytes": int(0.8 * 2 * GiB) + 1}, ["memory"]),
        ({"pids_peak": 205}, ["pids"]),
        ({"pids_peak": 204}, []),
        ({"pids_limit": 0, "pids_peak": 10_000}, []),
        ({"cpu_throttled": True}, ["throttled"]),
        ({"oom_killed": True}, ["oom"]),
    ],
)
def test_warnings_at_80_percent_of_a_limit(changes: dict[str, Any], expected: list[str]) -> None:
    assert make_usage(**changes).warnings == expected


def test_html_is_plain_until_a_limit_is_near() -> None:
    calm = make_usage().html()
    assert "var(--jp-ui-font-color2" in calm and "var(--jp-ui-font-size0" in calm
    assert "--jp-warn-color0" not in calm and "--jp-error-color0" not in calm
    assert "1.24 s wall · 1.10 s CPU · peak 312 MiB of 2 GiB · 3 pids · net 0 B" in calm

    hot = make_usage(peak_memory_bytes=int(1.8 * GiB), cpu_throttled=True, oom_killed=True).html()
    assert (
        '<span style="color: var(--jp-warn-color0, #f57c00); font-weight: 600">peak 1.8 GiB of 2 GiB (90%)</span>'
        in hot
    )
    assert (
        '<span style="color: var(--jp-warn-color0, #f57c00); font-weight: 600">CPU throttled</span>'
        in hot
    )
    assert "var(--jp-error-color0, #d32f2f)" in hot


def test_html_escapes_and_says_how_it_measured() -> None:
    page = make_usage(source="cgroup-v1", peak_exact=False).html()
    assert 'title="Measured outside the sandbox (cgroup-v1); memory peak sampled"' in page
    assert "peak ~312 MiB" in page
    assert "<script" not in make_usage(source="<script>").html()


def test_bundle_has_the_text_forms_and_the_json_keys() -> None:
    bundle = make_usage(tmp_bytes=4096).bundle()
    assert set(bundle) == {"text/plain", "text/html", "text/latex", MIME_TYPE}
    assert bundle["text/latex"].startswith("\\texttt{") and "$\\cdot$" in bundle["text/latex"]
    assert MIME_TYPE == "application/vnd.sandbox-kernel.usage+json"
    data = json.loads(json.dumps(bundle[MIME_TYPE]))
    for key in (
        "wall_time_s",
        "cpu_time_s",
        "peak_memory_bytes",
        "memory_bytes",
        "memory_limit_bytes",
        "pids",
        "net_rx_bytes",
        "net_tx_bytes",
        "pids_peak",
        "tmp_bytes",
        "cpu_throttled",
        "oom_killed",
        "source",
        "peak_exact",
        "warnings",
    ):
        assert key in data, key
    assert data["peak_memory_bytes"] == 312 * MiB and data["tmp_bytes"] == 4096
    assert data["source"] == "cgroup-v2" and data["peak_exact"] is True


# -- stats documents ----------------------------------------------------------------------


def test_v1_recorded_document_reads() -> None:
    doc = load("v1_none_end.json")
    got = reading_from_stats(doc, oom_kills=2)
    mem = doc["memory_stats"]
    assert got.cpu_ns == 706162606
    assert got.memory_usage == 20541440 == mem["usage"]
    assert got.memory_working == mem["usage"] - mem["stats"]["total_inactive_file"]
    assert got.memory_hwm == 250314752  # max_usage: only v1 engines have it
    assert got.memory_limit == 512 * MiB
    assert (got.pids, got.pids_limit, got.pids_hwm) == (1, 64, None)
    assert (got.net_rx, got.net_tx) == (0, 0)  # network "none": no "networks" at all
    assert got.shmem is None  # Docker's v1 stats leave total_shmem out
    assert got.oom_kills == 2 and got.online_cpus == 2


def test_v1_recorded_bridge_document_counts_the_interface() -> None:
    got = reading_from_stats(load("v1_bridge.json"))
    assert (got.net_rx, got.net_tx) == (4624, 104242)


def test_v1_recorded_cell() -> None:
    begin = reading_from_stats(load("v1_none_begin.json"), oom_kills=0)
    end = reading_from_stats(load("v1_none_end.json"), oom_kills=0)
    cell = cell_usage(begin, end, 0.81, source="docker-stats", memory_limit_bytes=2 * GiB)
    assert cell.cpu_time_s == pytest.approx(0.672042678)
    # The cell raised the all-time max_usage, so the new mark is its exact peak.
    assert cell.peak_exact and cell.peak_memory_bytes == 250314752
    assert cell.memory_limit_bytes == 512 * MiB  # the engine's, not the fallback
    assert cell.tmp_bytes is None and not cell.oom_killed and not cell.cpu_throttled
    assert cell.text() == "810 ms wall · 672 ms CPU · peak 239 MiB of 512 MiB · 1 pid · net 0 B"


def test_v2_document_cell() -> None:
    begin = reading_from_stats(load("v2_begin.json"), oom_kills=0)
    end = reading_from_stats(load("v2_end.json"), oom_kills=0)
    assert begin.memory_hwm is None and begin.shmem == 4 * MiB and begin.online_cpus == 4
    assert end.memory_working == 360710144 - 12582912
    cell = cell_usage(begin, end, 1.24, source="docker-stats", sampled_memory=300 * MiB)
    assert cell.cpu_time_s == pytest.approx(1.1)
    assert not cell.peak_exact and cell.peak_memory_bytes == 360710144  # end > sampled
    assert (cell.net_rx_bytes, cell.net_tx_bytes) == (1048576, 12000)
    assert cell.tmp_bytes == 10 * MiB and cell.cpu_throttled
    assert (cell.pids, cell.pids_peak, cell.pids_limit) == (5, 5, 256)
    assert cell.text() == (
        "1.24 s wall · 1.10 s CPU · peak ~344 MiB of 2 GiB · 5 pids · net ↓1 MiB ↑12 KiB"
        " · tmp +10 MiB · CPU throttled"
    )


def test_stopped_container_document_is_an_error() -> None:
    empty = {"read": "0001-01-01T00:00:00Z", "memory_stats": {}, "cpu_stats": {}}
    with pytest.raises(SandboxError, match="not running"):
        reading_from_stats(empty)


# -- the per-cell rules ---------------------------------------------------------------------


def test_reset_peak_is_exact_even_below_the_old_mark() -> None:
    cell = cell_usage(
        reading(memory_hwm=400 * MiB),
        reading(memory_hwm=50 * MiB, memory_usage=20 * MiB),
        1.0,
        source="cgroup-v1",
        peak_reset=True,
        sampled_memory=30 * MiB,
    )
    assert cell.peak_exact and cell.peak_memory_bytes == 50 * MiB


def test_unreset_mark_counts_only_when_the_cell_raised_it() -> None:
    raised = cell_usage(
        reading(memory_hwm=100 * MiB), reading(memory_hwm=300 * MiB), 1.0, source="s"
    )
    assert raised.peak_exact and raised.peak_memory_bytes == 300 * MiB
    kept = cell_usage(
        reading(memory_hwm=300 * MiB, memory_usage=12 * MiB),
        reading(memory_hwm=300 * MiB, memory_usage=11 * MiB),
        1.0,
        source="s",
        sampled_memory=40 * MiB,
    )
    assert not kept.peak_exact and kept.peak_memory_bytes == 40 * MiB


def test_pids_peak_from_mark_or_samples() -> None:
    assert (
        cell_usage(reading(pids_hwm=9), reading(pids_hwm=30, pids=2), 1, source="s").pids_peak == 30
    )
    kept = cell_usage(
        reading(pids_hwm=30, pids=4), reading(pids_hwm=30, pids=2), 1, source="s", sampled_pids=7
    )
    assert kept.pids_peak == 7 and kept.pids == 2


def test_counters_are_deltas() -> None:
    begin = reading(
        cpu_ns=5 * 10**9, net_rx=1000, net_tx=10, shmem=MiB, nr_throttled=4, oom_kills=1
    )
    end = reading(
        cpu_ns=6 * 10**9, net_rx=3000, net_tx=10, shmem=3 * MiB, nr_throttled=4, oom_kills=2
    )
    cell = cell_usage(begin, end, 2.0, source="s")
    assert cell.cpu_time_s == 1.0 and (cell.net_rx_bytes, cell.net_tx_bytes) == (2000, 0)
    assert cell.tmp_bytes == 2 * MiB and not cell.cpu_throttled and cell.oom_killed
    unknown = cell_usage(reading(oom_kills=None), reading(oom_kills=None), 1, source="s")
    assert not unknown.oom_killed and unknown.tmp_bytes is None


def test_limits_fall_back_to_the_configuration() -> None:
    cell = cell_usage(
        reading(memory_limit=0, pids_limit=0),
        reading(memory_limit=0, pids_limit=0),
        1,
        source="s",
        memory_limit_bytes=GiB,
        pids_limit=100,
    )
    assert (cell.memory_limit_bytes, cell.pids_limit) == (GiB, 100)


# -- the session view --------------------------------------------------------------------------


def test_session_report_totals_and_top_cells() -> None:
    session = SessionUsage()
    session.add(1, "import numpy as np\n", make_usage(wall_time_s=0.5, peak_memory_bytes=50 * MiB))
    session.add(
        2, "\n\nx = train(<data>)  # long\nmore()", make_usage(wall_time_s=30.0, cpu_time_s=29.0)
    )
    session.add(
        None,
        "big = [0] * 10**9",
        make_usage(wall_time_s=2.0, peak_memory_bytes=1900 * MiB, oom_killed=True),
    )
    bundle = session.report_bundle(top=2)
    assert set(bundle) == {"text/plain", "text/html", REPORT_MIME_TYPE}
    data = bundle[REPORT_MIME_TYPE]
    totals = data["totals"]
    assert totals["cells"] == 3 and totals["wall_time_s"] == pytest.approx(32.5)
    assert totals["peak_memory_bytes"] == 1900 * MiB and totals["oom_cells"] == 1
    assert [e["execution_count"] for e in data["top_by_time"]] == [2, None]
    assert [e["execution_count"] for e in data["top_by_memory"]] == [None, 2]
    assert data["top_by_time"][0]["code"] == "x = train(<data>)  # long"
    text = bundle["text/plain"]
    assert text.splitlines()[0] == (
        "Sandbox usage: 3 cells · 32.5 s wall · 31.2 s CPU · peak 1.9 GiB of 2 GiB"
        " · net ↓0 B ↑0 B · 1 out of memory"
    )
    assert "Slowest cells:" in text and "Largest memory peaks:" in text
    slowest = text.split("Slowest cells:")[1].splitlines()
    assert slowest[1].split() == ["cell", "wall", "CPU", "peak", "code"]
    assert slowest[2].startswith("  [2]   30.0 s  29.0 s  312 MiB  x = train(")
    assert slowest[3].startswith("  [ ]   2.00 s  1.10 s  1.9 GiB  big = ")
    assert "&lt;data&gt;" in bundle["text/html"] and "<data>" not in bundle["text/html"]
    json.dumps(data)


def test_empty_session_report() -> None:
    bundle = SessionUsage().report_bundle()
    assert bundle["text/plain"] == "Sandbox usage: no cells measured yet."
    assert bundle[REPORT_MIME_TYPE]["top_by_time"] == []


def test_measurements_table_is_in_the_module_docstring() -> None:
    table = measurements_table()
    assert table in (usage_module.__doc__ or "")
    assert table.count("\n") == len(usage_module.MEASUREMENTS) + 1


# -- the cgroup files, on prepared trees (this host's cgroup v2 has no controllers) -------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  999999      10    0    0    0     0          0         0   999999      10    0    0    0     0       0          0
  eth0:    5000      20    0    0    0     0          0         0     700       9    0    0    0     0       0          0
"""


def v2_tree(base: Path) -> Path:
    directory = base / "system.slice" / "docker-abc123.scope"
    files = {
        "memory.current": "104857600\n",
        "memory.max": "max\n",
        "memory.peak": "209715200\n",
        "memory.stat": "anon 73400320\nfile 31457280\nshmem 10485760\ninactive_anon 0\n"
        "active_file 0\ninactive_file 20971520\nworkingset_refault_file 3\n",
        "memory.events": "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n",
        "cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n"
        "nr_periods 40\nnr_throttled 3\nthrottled_usec 120000\n",
        "pids.current": "4\n",
        "pids.peak": "12\n",
        "pids.max": "256\n",
    }
    for name, text in files.items():
        write(directory / name, text)
    write(base / "net_dev", NET_DEV)
    return directory


def test_v2_counters_read_every_file(tmp_path: Path) -> None:
    directory = v2_tree(tmp_path)
    counters = CgroupCounters(
        "cgroup-v2", {"": str(directory)}, str(tmp_path / "net_dev"), reset_peaks=False
    )
    try:
        got = counters.read()
        assert not counters.peak_resettable
        assert got.cpu_ns == 2_500_000_000
        assert (got.memory_usage, got.memory_working) == (100 * MiB, 80 * MiB)
        assert got.memory_limit == 0  # "max"
        assert got.memory_hwm == 200 * MiB
        assert (got.pids, got.pids_hwm, got.pids_limit) == (4, 12, 256)
        assert (got.net_rx, got.net_tx) == (5000, 700)  # lo left out
        assert got.shmem == 10 * MiB and got.nr_throttled == 3 and got.oom_kills == 1
        assert counters.sample() == (100 * MiB, 4)
        # The same descriptors see new values: nothing is cached.
        (directory / "memory.current").write_text("5\n")
        assert counters.read().memory_usage == 5
    finally:
        counters.close()


def test_v2_counters_without_optional_files(tmp_path: Path) -> None:
    directory = v2_tree(tmp_path)
    for name in ("memory.peak", "pids.peak", "pids.max"):
        (directory / name).unlink()
    counters = CgroupCounters("cgroup-v2", {"": str(directory)}, str(tmp_path / "net_dev"))
    try:
        got = counters.read()
        assert got.memory_hwm is None and got.pids_hwm is None and got.pids_limit == 0
        assert not counters.peak_resettable
    finally:
        counters.close()


def test_missing_required_file_fails(tmp_path: Path) -> None:
    directory = v2_tree(tmp_path)
    (directory / "memory.stat").unlink()
    with pytest.raises(FileNotFoundError):
        CgroupCounters("cgroup-v2", {"": str(directory)}, str(tmp_path / "net_dev"))


CID = "abc123"


def proc_tree(base: Path, cgroup: str, mountinfo: str) -> str:
    write(base / "proc" / "42" / "cgroup", cgroup)
    write(base / "proc" / "self" / "mountinfo", mountinfo)
    return str(base / "proc")


def test_cgroup_dirs_v2_systemd(tmp_path: Path) -> None:
    root = tmp_path / "sys fs"  # a space: mountinfo escapes it as \040
    v2_tree(root)
    mounted = str(root).replace(" ", "\\040")
    proc = proc_tree(
        tmp_path,
        f"0::/system.slice/docker-{CID}.scope\n",
        f"35 24 0:30 / {mounted} rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n",
    )
    source, dirs = cgroup_dirs(42, CID, proc=proc)
    assert source == "cgroup-v2"
    assert dirs == {"": str(root / "system.slice" / f"docker-{CID}.scope")}
    with pytest.raises(OSError, match="not the container's"):
        cgroup_dirs(42, "somebody-else", proc=proc)


def test_cgroup_dirs_v1_comounted_and_sub_tree_mounts(tmp_path: Path) -> None:
    for ctrl in ("memory", "cpu,cpuacct", "pids"):
        (tmp_path / ctrl / "docker" / CID).mkdir(parents=True)
    mountinfo = "".join(
        f"{30 + i} 24 0:{40 + i} {root} {tmp_path / ctrl} rw - cgroup cgroup rw,{ctrl}\n"
        for i, (ctrl, root) in enumerate(
            [("memory", "/"), ("cpu,cpuacct", "/"), ("pids", "/outer")]
        )
    )
    cgroup = f"5:pids:/outer/docker/{CID}\n4:cpu,cpuacct:/docker/{CID}\n3:memory:/docker/{CID}\n0::/docker/{CID}\n"
    source, dirs = cgroup_dirs(42, CID, proc=proc_tree(tmp_path, cgroup, mountinfo))
    assert source == "cgroup-v1"
    assert dirs == {
        "memory": str(tmp_path / "memory" / "docker" / CID),
        "cpuacct": str(tmp_path / "cpu,cpuacct" / "docker" / CID),
        "cpu": str(tmp_path / "cpu,cpuacct" / "docker" / CID),
        # mounted from /outer: the path inside the mount drops that prefix
        "pids": str(tmp_path / "pids" / "docker" / CID),
    }


def test_cgroup_dirs_refuses_a_cgroup_outside_the_mounted_sub_tree(tmp_path: Path) -> None:
    v2_tree(tmp_path / "mnt")
    proc = proc_tree(
        tmp_path,
        f"0::/system.slice/docker-{CID}.scope\n",
        f"35 24 0:30 /kubepods {tmp_path / 'mnt'} rw - cgroup2 cgroup2 rw\n",
    )
    with pytest.raises(OSError, match="outside"):
        cgroup_dirs(42, CID, proc=proc)


def test_this_process_is_not_a_container() -> None:
    with pytest.raises(OSError):
        cgroup_dirs(os.getpid(), "0" * 64)


def test_the_readme_shows_the_measurements_table_and_the_real_intervals() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert measurements_table() in readme
    local = f"every {usage_module.LOCAL_SAMPLE_INTERVAL * 1000:.0f} ms locally"
    pids = f"every {usage_module.LOCAL_PIDS_SAMPLE_INTERVAL * 1000:.0f} ms, for pids only"
    api = f"every {usage_module.STATS_SAMPLE_INTERVAL:.0f} s via the API"
    for interval in (local, pids, api):
        assert interval in " ".join(readme.split()), interval
