"""Whether a folder may have changed since the last look: inotify on Linux, else yes.

The per-cell scan of the notebook's folder costs an ``lstat`` per file (3 to 6 µs a
file here, milliseconds for a folder of a thousand files), on the path of every cell.
On Linux an inotify watch on each of its folders says "nothing happened" for the price
of one non-blocking read, so the scan runs only after something did. Where inotify is
missing (macOS, Windows) or its watch limit is reached, :meth:`FolderWatch.changed`
always says yes, and every cell scans as before. Only a hint: the scan decides.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import sys

# inotify(7) event bits: a file written, its metadata changed, an entry made, removed or
# renamed, or the watched folder itself gone.
_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_MASK = (
    _IN_MODIFY
    | _IN_ATTRIB
    | _IN_CLOSE_WRITE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_DELETE_SELF
    | _IN_MOVE_SELF
)
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        return libc
    except (OSError, AttributeError):
        return None


class FolderWatch:
    """inotify watches on a set of folders; :meth:`changed` tells whether any fired."""

    def __init__(self) -> None:
        self._libc = _libc()
        self._fd = -1
        self._watched: set[str] = set()
        self.usable = False
        if self._libc is not None:
            fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                self.usable = True

    def watch(self, folders: list[str]) -> None:
        """Watch these folders too (already watched ones are skipped)."""
        if not self.usable or self._libc is None:
            return
        for folder in folders:
            if folder in self._watched:
                continue
            if self._libc.inotify_add_watch(self._fd, os.fsencode(folder), _MASK) < 0:
                # Out of watches (fs.inotify.max_user_watches) or gone: scan every cell.
                self.close()
                return
            self._watched.add(folder)

    def changed(self) -> bool:
        """True when an event came since the last call (or when inotify is unusable)."""
        if not self.usable:
            return True
        seen = False
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return seen
            except OSError as err:
                if err.errno == errno.EAGAIN:
                    return seen
                self.close()
                return True
            if not data:
                return seen
            seen = True

    def close(self) -> None:
        self.usable = False
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        self._watched.clear()
