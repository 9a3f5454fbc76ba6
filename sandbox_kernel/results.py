"""Results out through one door: the outputs folder, copied back after each cell.

Files a notebook writes to ``outputs/`` under its working directory (the name is the
``outputs_dir`` setting) are copied, after each cell, into the ``outputs/`` folder of
the notebook's directory on the host. Nothing else of the sandbox ever reaches the
host's files, and the copy is built to hold against a hostile sandbox:

- The files come through the engine's archive API (``get_archive``), read as a
  stream and treated as hostile input: only regular files are taken (no symlinks,
  hard links, devices, fifos); names must be relative, without ``..``, valid UTF-8
  and free of control characters (see :func:`.workspace.confined_name`).
- Writing on the host never follows a symlink: every folder is opened relative to
  its parent with ``O_NOFOLLOW``, each file is written to a fresh temporary name
  (``O_EXCL``) and renamed over the old one, so a symlink planted in the host's
  ``outputs/`` (by anyone) is replaced, never written through. A host ``outputs``
  that is itself a symlink is refused.
- Bounded: ``outputs_max_cell_size`` and ``outputs_max_files`` per cell,
  ``outputs_max_session_size`` per kernel; what is over is skipped and the cell
  says so. Files are written without execute bits.
- Only new and changed files are written: a file whose size and modification time
  (to the second, as the engine's tar gives it) are those last copied is skipped.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

from .config import SandboxConfig, format_size, parse_size
from .spec import WORKDIR
from .workspace import Entry, confined_name

if TYPE_CHECKING:
    import docker

    from .engine import Engine

_CHUNK = 1 << 20
#: Most skipped names a notice lists.
_LISTED = 10


class _StreamReader(io.RawIOBase):
    """A read-only file over the engine's chunk iterator, for tarfile's stream mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        while size < 0 or len(self._buffer) < size:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                break
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Read the response to its end: only then does the engine's HTTP connection go
        back to the pool (a connection left open is an SSH channel gone, and sshd
        allows ten). Bounded by the sandbox's working directory tmpfs."""
        for _ in self._chunks:
            pass
        self._buffer = b""
        super().close()


def fetch(client: Engine | docker.DockerClient, container_id: str, path: str) -> IO[bytes] | None:
    """A tar stream of ``path`` in the sandbox, or None when it does not exist.

    Raises:
        OSError: the engine failed.
    """
    from .engine import as_engine

    try:
        chunks = as_engine(client).get_archive(container_id, path)
    except Exception as err:  # the engine, or paramiko for ssh:// engines
        raise OSError(f"the engine failed: {err}") from err
    return None if chunks is None else cast(IO[bytes], _StreamReader(chunks))


def read_bytes(
    client: Engine | docker.DockerClient, container_id: str, rel: str, limit: int, base: str = ""
) -> bytes:
    """One regular file of the sandbox's working directory (``Sandbox.read_file``);
    ``base``: where that is below the copy's top.

    Raises:
        ValueError: ``rel`` is not a relative path inside the working directory.
        FileNotFoundError: there is no regular file of that name.
        OSError: larger than ``limit``, or the engine failed.
    """
    name = confined_name(rel)
    if name is None:
        raise ValueError(f"{rel!r} is not a relative path inside the working directory")
    stream = fetch(
        client, container_id, f"{WORKDIR}/{base}/{name}" if base else f"{WORKDIR}/{name}"
    )
    if stream is None:
        raise FileNotFoundError(f"no file {rel!r} in the sandbox's working directory")
    with stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if not member.isreg():
                break
            if member.size > limit:
                raise OSError(f"{rel!r} is {format_size(member.size)}, over {format_size(limit)}")
            handle = tar.extractfile(member)
            assert handle is not None
            return handle.read()
    raise FileNotFoundError(f"{rel!r} in the sandbox is not a regular file")


class Results:
    """Copies the sandbox's outputs folder into the host's after each cell.

    Args:
        root: the notebook's folder on the host.
        config: the settings (folder name, caps).
    """

    def __init__(self, root: Path, config: SandboxConfig) -> None:
        self.name = config.outputs_dir
        self.target = root / self.name
        self.config = config
        self.cell_limit = parse_size(config.outputs_max_cell_size)
        self.session_limit = parse_size(config.outputs_max_session_size)
        self.session_bytes = 0
        self.known: dict[str, tuple[int, int]] = {}
        self.path = f"{WORKDIR}/{self.name}"  # in the sandbox
        self.token: str | None = None
        self.written: list[str] = []  # what the last collect wrote on the host

    def start(self, copied_in: dict[str, Entry]) -> None:
        """A new sandbox: what it already has of the outputs folder is not news."""
        self.known = {}
        self.token = None
        self.note(copied_in)

    def note(self, copied_in: dict[str, Entry]) -> None:
        """Files the host sent into the sandbox's outputs folder need not come back."""
        prefix = self.name + "/"
        self.known.update(
            (rel[len(prefix) :], (e.size, e.mtime_ns // 1_000_000_000))
            for rel, e in copied_in.items()
            if rel.startswith(prefix) and not rel.endswith("/")
        )

    def changed(self, token: str | None) -> bool:
        """Whether the outputs folder's fingerprint after a cell (names, sizes and times,
        from the relay: a ``get_archive`` costs the engine about 20 to 50 ms whatever
        the folder holds) differs from the last one; None (no answer) counts as changed.
        The sandbox could lie about it; then only its own results stay inside."""
        if token is not None and token == self.token:
            return False
        self.token = token
        return True

    def collect(self, client: Engine | docker.DockerClient, container_id: str) -> str:
        """Copy new and changed files back; a notice for the notebook, or ''."""
        self.written = []
        try:
            stream = fetch(client, container_id, self.path)
        except OSError as err:
            self.token = None
            return f"[sandbox-kernel] {self.name}/ was not copied back: {err}."
        if stream is None:
            return ""
        try:
            with stream:
                return self._copy(stream)
        except (tarfile.TarError, OSError) as err:
            self.token = None  # look again after the next cell
            return f"[sandbox-kernel] {self.name}/ was not copied back: {err}."

    def _copy(self, stream: IO[bytes]) -> str:
        skipped: list[str] = []
        cell_bytes = 0
        files = 0
        over = ""
        folder = None
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    top, _, rel = member.name.partition("/")
                    if not rel or top != self.name:
                        continue  # the folder itself
                    if member.isdir():
                        continue  # made as files need them
                    name = confined_name(rel)
                    stamp = (member.size, int(member.mtime))
                    if self.known.get(rel) == stamp:
                        continue  # copied, or said why not, already
                    if name is None or not member.isreg():
                        self.known[rel] = stamp
                        skipped.append(f"{rel!r} (not a regular file with a plain name)")
                        continue
                    if files >= self.config.outputs_max_files:
                        over = (
                            f"more than {self.config.outputs_max_files} files (`outputs_max_files`)"
                        )
                        break
                    if cell_bytes + member.size > self.cell_limit:
                        over = f"over {format_size(self.cell_limit)} (`outputs_max_cell_size`)"
                        skipped.append(repr(name))
                        continue
                    if self.session_bytes + member.size > self.session_limit:
                        over = (
                            f"over {format_size(self.session_limit)} for this session "
                            "(`outputs_max_session_size`)"
                        )
                        skipped.append(repr(name))
                        continue
                    if folder is None:
                        folder = self._open_target()
                    source = tar.extractfile(member)
                    assert source is not None
                    problem = _write(folder, name, source, member.size)
                    if problem:
                        skipped.append(f"{name!r} ({problem})")
                        continue
                    self.known[name] = stamp
                    self.written.append(name)
                    files += 1
                    cell_bytes += member.size
                    self.session_bytes += member.size
        finally:
            if folder is not None:
                os.close(folder)
        if not skipped and not over:
            return ""
        notice = f"[sandbox-kernel] {self.name}/: "
        if over:
            notice += f"{over}; "
        if skipped:
            more = len(skipped) - _LISTED
            shown = ", ".join(skipped[:_LISTED]) + (f" and {more} more" if more > 0 else "")
            notice += f"not copied to the host: {shown}"
        return notice.rstrip("; ")

    def _open_target(self) -> int:
        """The host outputs folder, opened without following a symlink (made if missing)."""
        parent = os.open(self.target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return _open_folder(parent, self.name)
        finally:
            os.close(parent)


def _open_folder(parent: int, name: str) -> int:
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=parent)
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR):
            raise OSError(f"{name} on the host is a symlink or a file, not a folder") from err
        raise


def _write(folder: int, name: str, source: IO[bytes], size: int) -> str:
    """Write one file under ``folder`` without following symlinks; '' or what went wrong."""
    *dirs, base = name.split("/")
    opened: list[int] = []
    try:
        parent = folder
        for part in dirs:
            parent = _open_folder(parent, part)
            opened.append(parent)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.stat(base, dir_fd=parent, follow_symlinks=False).st_mode):
                return "a folder of that name is on the host"
        temp = f".{base[:200]}.sandbox-kernel-{secrets.token_hex(4)}"
        fd = os.open(
            temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=parent
        )
        try:
            with os.fdopen(fd, "wb") as out:
                remaining = size
                while remaining > 0:
                    chunk = source.read(min(_CHUNK, remaining))
                    if not chunk:
                        break
                    out.write(chunk)
                    remaining -= len(chunk)
            os.replace(temp, base, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=parent)
            raise
        return ""
    except OSError as err:
        return err.strerror or str(err)
    finally:
        for fd_ in opened:
            os.close(fd_)
