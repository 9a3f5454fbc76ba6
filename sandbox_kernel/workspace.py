"""The notebook's folder, copied into the sandbox's working directory.

A plain kernel starts in the notebook's folder (Jupyter Server, papermill and nbclient
set the kernel's working directory), so ``pd.read_csv("data/prices.csv")``, ``glob``,
``%run helpers.py`` and ``import helpers`` work. :class:`Workspace` gives the sandbox
the same: it copies that folder into the sandbox's working directory (``/tmp/work``)
through the engine's archive API (a tar to ``put_archive``), which works with a local
engine, a remote one and Docker Desktop's VM alike, since nothing is shared but the
API. It is a copy: what the sandbox writes never reaches the host folder (results
leave only through :mod:`.results`).

What is taken: regular files, and symlinks whose target is a regular file inside the
folder (as that file's content). What is not: hidden files and folders (``.git``,
``.env``, ``.ssh``, ``.venv``, ...) unless ``workspace_hidden``; symlinks that leave
the folder or point to a folder; sockets, devices and fifos. Bounded: a folder over
``workspace_max_size`` or ``workspace_max_files`` is not copied at all and the first
cell says which setting to change; the scan stops as soon as it is over, so a home
folder with a million files costs no more than the cap.

Host changes: with ``workspace_sync = "cell"`` each cell is preceded by a scan of
sizes and modification times (``lstat`` only, no reading), and only new or changed
files are sent. Files deleted on the host stay in the sandbox until it restarts.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tarfile
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from .config import SandboxConfig, format_size, parse_size
from .spec import WORKDIR
from .watch import FolderWatch

if TYPE_CHECKING:
    import docker

    from .engine import Engine

#: Bytes of a tar kept in memory before it spills to a temporary file.
_SPOOL_BYTES = 8 * 1024 * 1024


class Entry(NamedTuple):
    """One file of the folder as the scan saw it (a tuple: scans compare thousands)."""

    rel: str  # POSIX path relative to the folder
    path: str  # where to read it on the host (the target, for a symlink)
    size: int
    mtime_ns: int
    mode: int


#: What a scan found to send: the files, or the notice that the folder is over a cap.
WorkspaceScan = list[Entry] | str


class WorkspaceTooLarge(Exception):
    """The folder is over a cap; the message names the setting."""


def owner(config: SandboxConfig) -> tuple[int, int]:
    """The uid and gid files get in the sandbox (the sandbox's user, else 1000)."""
    uid, _, gid = config.user.partition(":")
    user = int(uid) if uid.isdigit() else 1000
    return user, int(gid) if gid.isdigit() else user


def scan(root: Path, *, max_bytes: int, max_files: int, hidden: bool) -> dict[str, Entry]:
    """Every file of ``root`` that is copied, by relative path.

    Raises:
        WorkspaceTooLarge: over ``max_bytes`` or ``max_files`` (stops at once).
    """
    found: dict[str, Entry] = {}
    total = 0
    real_root = os.path.realpath(root)
    pending = [("", str(root))]
    while pending:
        rel_dir, directory = pending.pop()
        try:
            listing = list(os.scandir(directory))
        except OSError:
            continue  # unreadable folder: as if empty, like a plain kernel's glob
        for item in listing:
            if not hidden and item.name.startswith("."):
                continue
            rel = f"{rel_dir}{item.name}"
            try:
                info = item.stat(follow_symlinks=False)
            except OSError:
                continue
            path = item.path
            if stat.S_ISLNK(info.st_mode):
                target = os.path.realpath(item.path)
                if os.path.commonpath([real_root, target]) != real_root:
                    continue  # leaves the folder: never followed
                inside = os.path.relpath(target, real_root).split(os.sep)
                if not hidden and any(part.startswith(".") for part in inside):
                    continue  # a way round the hidden-file rule
                try:
                    info = os.stat(target)
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue  # a linked folder could loop; take its real place instead
                path = target
            if stat.S_ISDIR(info.st_mode):
                # Folders are entries too (key ending in "/"): an empty outputs/ or
                # cache/ must exist inside as it does on the host.
                found[rel + "/"] = Entry(rel + "/", item.path, 0, 0, info.st_mode)
                pending.append((rel + "/", item.path))
                if len(found) > max_files:
                    raise WorkspaceTooLarge(
                        f"has more than {max_files} files, over `workspace_max_files`"
                    )
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            total += info.st_size
            found[rel] = Entry(rel, path, info.st_size, info.st_mtime_ns, info.st_mode)
            if len(found) > max_files:
                raise WorkspaceTooLarge(
                    f"has more than {max_files} files, over `workspace_max_files`"
                )
            if total > max_bytes:
                raise WorkspaceTooLarge(
                    f"holds more than {format_size(max_bytes)}, over `workspace_max_size`"
                )
    return found


def pack(entries: list[Entry], uid: int, gid: int) -> IO[bytes]:
    """A tar of these files and their folders, owned by the sandbox's user, rewound.

    Folders are listed explicitly: the engine would make missing parents owned by
    root, where the sandbox's user could not write.
    """
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
    folders: set[str] = set()
    with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            parts = entry.rel.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder in folders:
                    continue
                folders.add(folder)
                info = tarfile.TarInfo(folder)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                info.uid, info.gid = uid, gid
                tar.addfile(info)
            if entry.rel.endswith("/"):
                continue  # a folder: made above
            content = _snapshot(entry.path, entry.size + _SPOOL_BYTES)
            if content is None:
                continue  # gone, unreadable or no longer a plain file: as if absent
            with content:
                info = tarfile.TarInfo(entry.rel)
                info.size = content.seek(0, os.SEEK_END)
                content.seek(0)
                info.mtime = entry.mtime_ns / 1e9
                info.mode = (entry.mode & 0o755) | 0o600
                info.uid, info.gid = uid, gid
                tar.addfile(info, content)
    spool.seek(0)
    return spool


def _snapshot(path: str, limit: int) -> IO[bytes] | None:
    """The file's bytes as read now (at most ``limit``), or None when it cannot be read.

    The folder may change between the scan and this copy (a log being written, a
    download, a network file system whose sizes are approximate). The bytes are read
    before the tar header is written, so the header never promises more or less than
    the stream holds. The file is opened without following a link or blocking on a
    FIFO swapped in since the scan, and must still be a plain file. A file cut at
    ``limit`` has a newer mtime than the scan saw, so the next sync sends it again.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        copy: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
        try:
            while limit > 0 and (chunk := handle.read(min(limit, 1 << 20))):
                copy.write(chunk)
                limit -= len(chunk)
        except OSError:
            copy.close()
            return None
    return copy


def put(
    client: Engine | docker.DockerClient, container_id: str, archive: IO[bytes] | bytes
) -> None:
    """Extract a tar into the sandbox's working directory through the engine API.

    Raises:
        OSError: the engine refused it (the message says why).
    """
    from .engine import as_engine

    try:
        as_engine(client).put_archive(container_id, WORKDIR, archive)
    except Exception as err:  # the Docker SDK, requests, or paramiko for ssh:// engines
        raise OSError(f"the engine refused the copy: {_reason(err)}") from err


def _reason(err: BaseException) -> str:
    text = getattr(err, "explanation", None) or str(err) or type(err).__name__
    return str(text).strip().splitlines()[0][:300]


def repository_top(folder: Path, *, hidden: bool) -> Path | None:
    """The top of the repository ``folder`` is in: the nearest folder holding ``.git``,
    ``folder`` itself included. None when there is none, when it is a home or root
    folder (a dotfiles repository is not a project), or when the way down to ``folder``
    passes a hidden folder that is not copied."""
    never = {Path.home().resolve(), Path("/")}
    for candidate in (folder, *folder.parents):
        if candidate.resolve() in never:
            return None
        if (candidate / ".git").exists():
            way = folder.relative_to(candidate).parts
            if not hidden and any(part.startswith(".") for part in way):
                return None
            return candidate
    return None


class Workspace:
    """One host folder and what of it the current sandbox already has.

    With ``workspace_root = "repository"`` the folder copied is the repository the
    notebook's folder is in, and the notebook's folder is at :attr:`inside` in the
    sandbox, so paths above it (``../data``) resolve as on a plain kernel.

    Args:
        root: the notebook's folder (the kernel's working directory).
        config: the settings (caps, hidden files, what is copied).
    """

    def __init__(self, root: Path, config: SandboxConfig) -> None:
        self.folder = root
        top = (
            repository_top(root, hidden=config.workspace_hidden)
            if config.workspace_root == "repository"
            else None
        )
        self.root = top or root  # what is copied
        self.subdir = root.relative_to(top).as_posix() if top and top != root else ""
        self.fallback = ""  # the repository was over a cap: said with the next send
        self.config = config
        self.max_bytes = parse_size(config.workspace_max_size)
        self.uid, self.gid = owner(config)
        self.sent: dict[str, Entry] = {}
        self.refused = False  # over a cap: said once, not copied until a restart
        self.is_home = root.resolve() in (Path.home().resolve(), Path("/"))
        # Skips the per-cell scan while nothing in the folder moved (Linux); a scan
        # with its watches in place since the previous scan is what may be trusted.
        self.watch = FolderWatch() if config.workspace_sync == "cell" else None
        self._watched_scans = 0

    def _scan(self) -> dict[str, Entry]:
        return scan(
            self.root,
            max_bytes=self.max_bytes,
            max_files=self.config.workspace_max_files,
            hidden=self.config.workspace_hidden,
        )

    def start(self, client: Engine | docker.DockerClient, container_id: str) -> str:
        """Copy the whole folder into a new sandbox; a notice for the notebook, or ''."""
        self.sent = {}
        self.refused = False
        self._watched_scans = 0  # a new sandbox has nothing: scan whatever the watch says
        return self.sync(client, container_id)

    def sync(self, client: Engine | docker.DockerClient, container_id: str) -> str:
        """Copy new and changed files; a notice for the notebook, or ''."""
        changed = self.changes()
        return self.send(client, container_id, changed) if changed else ""

    @property
    def inside(self) -> str:
        """Where the notebook's folder is in the sandbox (its working directory)."""
        return f"{WORKDIR}/{self.subdir}" if self.subdir else WORKDIR

    def here(self) -> dict[str, Entry]:
        """What the sandbox has of the notebook's folder, by path relative to it."""
        if not self.subdir:
            return self.sent
        prefix = self.subdir + "/"
        return {rel[len(prefix) :]: e for rel, e in self.sent.items() if rel.startswith(prefix)}

    def note_written(self, folder: str, names: list[str]) -> None:
        """Files the outputs door just wrote on the host (``folder`` relative to the
        notebook's folder), as the sandbox has them."""
        base = f"{self.subdir}/{folder}" if self.subdir else folder
        for name in names:
            parts = f"{base}/{name}".split("/")
            for depth in range(1, len(parts) + 1):
                rel = "/".join(parts[:depth])
                path = os.path.join(self.root, *parts[:depth])
                with contextlib.suppress(OSError):
                    info = os.lstat(path)
                    if depth < len(parts):  # a folder, as scan() lists it
                        self.sent[rel + "/"] = Entry(rel + "/", path, 0, 0, info.st_mode)
                    else:
                        self.sent[rel] = Entry(
                            rel, path, info.st_size, info.st_mtime_ns, info.st_mode
                        )

    def changes(self) -> WorkspaceScan:
        """New and changed files since the last copy (a notice instead when over a cap)."""
        if self.refused:
            return []
        if self.is_home:
            # A notebook in the home folder would show the sandbox all of it
            # (Documents, Downloads, ...): that is never what copying its folder meant.
            self.refused = True
            return (
                f"[sandbox-kernel] The notebook's folder is {self.folder}, a home or root "
                "folder, so it was not copied into the sandbox: move the notebook into a "
                "project folder (or set workspace='none' to silence this)."
            )
        watch = self.watch
        moved = watch.changed() if watch is not None else True
        if not moved and self._watched_scans >= 2:
            return []
        try:
            found = self._scan()
        except WorkspaceTooLarge as err:
            if self.root != self.folder:
                self.fallback = (
                    f"[sandbox-kernel] The repository {self.root} {err}, so only the "
                    "notebook's folder was copied into the sandbox (paths above it, such "
                    "as ../data, are not there): raise the setting, or set "
                    "workspace_root='folder' to silence this."
                )
                self.root, self.subdir = self.folder, ""
                return self.changes()
            self.refused = True
            return (
                f"[sandbox-kernel] The notebook's folder {self.root} {err}, so it was not "
                "copied into the sandbox: raise the setting (e.g. "
                "--SandboxConfig.workspace_max_size=1g), mount big data read-only "
                "(--mount), or set workspace='none'."
            )
        if watch is not None and watch.usable:
            watch.watch([str(self.root), *(e.path for e in found.values() if e.rel.endswith("/"))])
            self._watched_scans = self._watched_scans + 1 if watch.usable else 0
        return [e for rel, e in found.items() if self.sent.get(rel) != e]

    def send(
        self, client: Engine | docker.DockerClient, container_id: str, changed: WorkspaceScan
    ) -> str:
        """Copy what :meth:`changes` found; a notice for the notebook, or ''."""
        fallback, self.fallback = self.fallback, ""
        if isinstance(changed, str):
            return "\n".join(filter(None, [fallback, changed]))
        archive = pack(changed, self.uid, self.gid)
        try:
            put(client, container_id, archive)
        except OSError as err:
            return f"[sandbox-kernel] The notebook's folder could not be copied: {err}."
        finally:
            archive.close()
        self.sent.update((e.rel, e) for e in changed)
        return fallback


def write_bytes(
    client: Engine | docker.DockerClient,
    container_id: str,
    config: SandboxConfig,
    rel: str,
    data: bytes,
    base: str = "",
) -> None:
    """Write one file into the sandbox's working directory (``Sandbox.write_file``);
    ``base``: where that is below the copy's top (:attr:`Workspace.subdir`).

    Raises:
        ValueError: ``rel`` is not a relative path inside the working directory.
        OSError: the engine refused it.
    """
    name = confined_name(rel)
    if name is None:
        raise ValueError(f"{rel!r} is not a relative path inside the working directory")
    name = f"{base}/{name}" if base else name
    uid, gid = owner(config)
    with contextlib.closing(io.BytesIO()) as buffer:
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            parts = name.split("/")
            for depth in range(1, len(parts)):
                info = tarfile.TarInfo("/".join(parts[:depth]))
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                info.uid, info.gid = uid, gid
                tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.uid, info.gid = uid, gid
            tar.addfile(info, io.BytesIO(data))
        put(client, container_id, buffer.getvalue())


def confined_name(name: Any) -> str | None:
    """``name`` as a safe relative POSIX path, or None when it is not one.

    Refused: absolute paths, ``..``, ``.`` and empty components, names that are not
    valid UTF-8 (surrogate escapes), control characters (newlines included) and
    components over 255 bytes.
    """
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name:
        return None
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            return None
        if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in part):
            return None
        if len(part.encode("utf-8")) > 255:
            return None
    return name
