"""The folder's tar is built from files that may change under it (no engine needed).

Between the scan and the copy, a file of the notebook's folder can be rewritten, cut
short, or replaced (a log being written, a download in progress, a network file
system, another program). The tar must stay well formed, carry only what the folder
holds, never block and never follow a link swapped in after the scan.
"""

from __future__ import annotations

import os
import tarfile
import threading
from pathlib import Path

from sandbox_kernel.workspace import Entry, pack, scan

SIZE_LIES = Path("/sys/kernel/mm/transparent_hugepage/enabled")  # st_size 4096, less inside


def _entries(root: Path) -> list[Entry]:
    return list(scan(root, max_bytes=1 << 30, max_files=100, hidden=False).values())


def _members(entries: list[Entry]) -> dict[str, bytes]:
    found = {}
    with tarfile.open(fileobj=pack(entries, 1000, 1000)) as tar:
        for member in tar.getmembers():
            if member.isfile() and (content := tar.extractfile(member)) is not None:
                found[member.name] = content.read()
    return found


def test_a_file_that_reads_shorter_than_it_said_is_taken_as_read() -> None:
    info = SIZE_LIES.stat()
    assert info.st_size > len(SIZE_LIES.read_bytes())  # the premise: its size lies
    entry = Entry("enabled", str(SIZE_LIES), info.st_size, info.st_mtime_ns, 0o100644)
    got = _members([entry])
    assert got["enabled"] == SIZE_LIES.read_bytes()


def test_files_changed_after_the_scan_are_copied_as_they_are_now(tmp_path: Path) -> None:
    (tmp_path / "grows.csv").write_text("a\n1\n")
    (tmp_path / "shrinks.csv").write_text("a\n" + "1\n" * 1000)
    (tmp_path / "kept.txt").write_text("same")
    entries = _entries(tmp_path)
    (tmp_path / "grows.csv").write_text("a\n1\n2\n3\n")
    (tmp_path / "shrinks.csv").write_text("a\n")
    got = _members(entries)
    assert got == {"grows.csv": b"a\n1\n2\n3\n", "shrinks.csv": b"a\n", "kept.txt": b"same"}


def test_a_link_swapped_in_after_the_scan_is_not_followed(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    secret = tmp_path / "secret.key"
    secret.write_text("host secret")
    (folder / "data.csv").write_text("x\n1\n")
    entries = _entries(folder)
    (folder / "data.csv").unlink()
    (folder / "data.csv").symlink_to(secret)
    assert (folder / "data.csv").read_text() == "host secret"  # control: a plain open follows it
    got = _members(entries)
    assert b"host secret" not in b"".join(got.values())
    assert "data.csv" not in got


def test_a_fifo_swapped_in_after_the_scan_does_not_block(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("x\n1\n")
    (tmp_path / "other.csv").write_text("y\n2\n")
    entries = _entries(tmp_path)
    (tmp_path / "data.csv").unlink()
    os.mkfifo(tmp_path / "data.csv")
    result: dict[str, bytes] = {}
    worker = threading.Thread(target=lambda: result.update(_members(entries)), daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "pack blocked on a FIFO"
    assert result == {"other.csv": b"y\n2\n"}
