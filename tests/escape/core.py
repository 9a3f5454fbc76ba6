"""What every attack of the escape suite shares: the cell prelude, the checks, the
:class:`Attack` record and the weakened configurations the negative controls use.

The attacks themselves are tables by family (files, network, kernel_surface,
resources); :mod:`.attacks` joins them. See there for the rules every attack follows.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import CellResult

MiB = 1024 * 1024

# -- the code every attack cell starts with -----------------------------------------------


def _syscall_numbers() -> dict[str, int]:
    """x86_64 syscall numbers, reused from tests/seccomp_probe.py's ``NR`` table."""
    source = (Path(__file__).resolve().parent.parent / "seccomp_probe.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "NR":
            numbers: dict[str, int] = ast.literal_eval(node.value)
            return {**numbers, "syslog": 103}
    raise AssertionError("tests/seccomp_probe.py has no NR table")


#: Shared by the cell and by child processes (``run_child``).
CHILD_PRELUDE = textwrap.dedent(
    f"""\
    import ctypes, errno, os, struct, sys, time
    NR = {_syscall_numbers()!r}
    _libc = ctypes.CDLL(None, use_errno=True)
    _libc.syscall.restype = ctypes.c_long

    def syscall(name, *args):
        \"\"\"A raw x86_64 syscall: its result, or minus the errno.\"\"\"
        ctypes.set_errno(0)
        conv = [a if isinstance(a, (bytes, ctypes.Array)) else ctypes.c_long(a) for a in args]
        result = _libc.syscall(ctypes.c_long(NR[name]), *conv)
        return result if result >= 0 else -ctypes.get_errno()

    def ename(err):
        code = abs(err) if isinstance(err, int) else getattr(err, "errno", None)
        if code is None:
            return f"{{type(err).__name__}}: {{err}}"
        return errno.errorcode.get(code, str(code))
    """
)

PRELUDE = CHILD_PRELUDE + textwrap.dedent(
    f"""\
    import json, re, shutil, signal, socket, stat, subprocess, textwrap, threading
    CHILD_PRELUDE = {CHILD_PRELUDE!r}

    def run_child(src, *args, timeout=60):
        \"\"\"Python code in a fresh single-threaded process (unshare and setns need one).\"\"\"
        proc = subprocess.run([sys.executable, "-c", CHILD_PRELUDE + src, *map(str, args)],
                              capture_output=True, text=True, timeout=timeout)
        err = proc.stderr.strip()
        return proc.stdout.strip() + (f" [stderr: {{err[-300:]}}]" if err else "")

    def pids():
        return [p for p in os.listdir("/proc") if p.isdigit()]

    def try_create(paths):
        \"\"\"Create each file (then remove it): the paths that worked and why the others failed.\"\"\"
        done, failed = [], []
        for path in paths:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except OSError as err:
                failed.append(f"{{path}}: {{ename(err)}}")
                continue
            os.write(fd, b"sk-escape")
            os.close(fd)
            os.unlink(path)
            done.append(path)
        return done, failed

    def try_open_write(paths):
        \"\"\"Open existing files for writing and close them again: never writes a byte.\"\"\"
        done, failed = [], []
        for path in paths:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
            except OSError as err:
                failed.append(f"{{path}}: {{ename(err)}}")
                continue
            os.close(fd)
            done.append(path)
        return done, failed

    def walk_root(skip=("proc", "sys")):
        \"\"\"os.walk over / without /proc and /sys, ignoring what cannot be read.\"\"\"
        for top, dirs, files in os.walk("/", onerror=lambda err: None):
            if top == "/":
                dirs[:] = [d for d in dirs if d not in skip]
            yield top, dirs, files

    def fill(paths, chunk_mib, chunks_per_file):
        \"\"\"Write zeros to each file in turn (then remove them): MiB written, and why it stopped.\"\"\"
        chunk, written, failure, made = b"\\0" * (chunk_mib * 2**20), 0, "none", []
        try:
            for path in paths:
                made.append(path)
                with open(path, "wb") as f:
                    for _ in range(chunks_per_file):
                        f.write(chunk)
                        written += chunk_mib
        except OSError as err:
            failure = ename(err)
        finally:
            for path in made:
                if os.path.exists(path):
                    os.unlink(path)
        return written, failure

    def drop_executable(folder, source="/bin/echo"):
        path = os.path.join(folder, f"sk-exec-{{os.getpid()}}")
        shutil.copyfile(source, path)
        os.chmod(path, 0o755)
        return path

    def report(attack):
        try:
            escaped, detail = attack()
        except Exception as err:  # an attack that breaks is neither blocked nor escaped
            print(f"RESULT: error {{type(err).__name__}}: {{err}}")
            return
        print(("RESULT: escaped " if escaped else "RESULT: blocked ") + str(detail)[:3000])
    """
)


# -- checks ----------------------------------------------------------------------------------

RESTART_ENAMES = {"SandboxRestarted", "SandboxOutOfMemory", "SandboxTimeout"}


def verdict(cell: CellResult) -> str:
    lines = [line for line in cell.stdout.splitlines() if line.startswith("RESULT: ")]
    assert len(lines) == 1, f"expected one RESULT line; got: {cell.text[-3000:]}"
    return lines[0]


def is_blocked(cell: CellResult) -> None:
    assert cell.status == "ok", cell.text[-3000:]
    assert verdict(cell).startswith("RESULT: blocked "), verdict(cell)


def is_escaped(cell: CellResult) -> None:
    assert verdict(cell).startswith("RESULT: escaped "), verdict(cell)


def announced(ename: str, *phrases: str) -> Callable[[CellResult], None]:
    """The cell failed with the sandbox's announced error (a restart, or an interrupt)."""

    def check(cell: CellResult) -> None:
        assert cell.status == "error", cell.text[-2000:]
        error = cell.error or cell.reply["content"]
        assert error.get("ename") == ename, (
            error.get("ename"),
            error.get("evalue"),
            cell.text[-2000:],
        )
        for phrase in phrases:
            assert phrase in (error.get("evalue", "") + cell.stderr), (phrase, error, cell.stderr)

    return check


# -- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    id: str
    #: The setting(s) that stop it, for people.
    guard: str
    #: Cell source defining ``attack()`` (or, with ``raw``, the whole cell).
    code: str
    #: Settings changed from the hardened ones for the negative control; None: no control.
    weakened: dict[str, Any] | None
    no_control: str = ""
    #: Extra settings of the hardened kernel this attack runs in (limits it needs).
    hardened: dict[str, Any] = field(default_factory=dict)
    check_blocked: Callable[[CellResult], None] = is_blocked
    check_succeeded: Callable[[CellResult], None] = is_escaped
    #: Cell source for the negative control when it differs from ``code``.
    control_code: str | None = None
    raw: bool = False
    cell_timeout: float = 120

    def cell(self, *, control: bool = False) -> str:
        code = textwrap.dedent(self.control_code if control and self.control_code else self.code)
        if self.raw:
            return code
        return PRELUDE + "\n" + code + "\nreport(attack)\n"


# Weakened configurations shared by several attacks.
ROOT_RW = {"user": "0:0", "read_only_root": False}  # both: root owns the image's files
ROOT_CAPS = {"user": "0:0", "drop_capabilities": False}
ROOT_CAPS_UNCONFINED = {**ROOT_CAPS, "seccomp_profile": "unconfined"}
UNCONFINED = {"seccomp_profile": "unconfined"}
DOCKER_DEFAULT = {"seccomp_profile": "docker-default"}
MOUNTED = {"mounts": ["@CANARY_DIR@:@CANARY_DIR@"]}
#: Limits for the timeout and output attacks (the defaults have no timeout).
LIMITS = {"timeout": 2, "interrupt_grace": 2, "max_output_bytes": 1 * MiB}

ROOT_RW_NOTE = (
    "read_only_root (EROFS) and user (the image's files belong to root): the control drops both"
)
NO_CONTROL_DOCKER = (
    "Docker mounts it read-only (or masks it) for every unprivileged container, whatever "
    "the sandbox settings; only --privileged, which no setting gives, would lift that"
)

# Code run from a noexec folder without execve (FOLDER is set in front of each).
EXEC = """\
def attack():
    path = drop_executable(FOLDER)
    try:
        out = subprocess.run([path, "SK-EXEC-OK"], capture_output=True, text=True).stdout
    except OSError as err:
        return False, f"exec {path}: {ename(err)}"
    finally:
        os.unlink(path)
    return "SK-EXEC-OK" in out, f"ran {path}: {out.strip()!r}"
"""
LDSO = """\
def attack():
    path = drop_executable(FOLDER)
    try:
        proc = subprocess.run(["/lib64/ld-linux-x86-64.so.2", path, "SK-EXEC-OK"], capture_output=True, text=True)
    finally:
        os.unlink(path)
    return "SK-EXEC-OK" in proc.stdout, f"ld.so {path}: rc={proc.returncode} {proc.stdout.strip()!r} {proc.stderr.strip()[-200:]!r}"
"""
DLOPEN = """\
import glob
def attack():
    source = sorted(glob.glob("/usr/lib/x86_64-linux-gnu/libbz2.so*") + glob.glob("/lib/x86_64-linux-gnu/libm.so.6"))[0]
    path = f"{FOLDER}/sk-lib-{os.getpid()}.so"
    shutil.copyfile(source, path)
    try:
        lib = ctypes.CDLL(path)
    except OSError as err:
        return False, f"dlopen {path} (copy of {source}): {err}"
    finally:
        os.unlink(path)
    return True, f"loaded {path} (copy of {source}): {lib}"
"""


def fail(cell: CellResult) -> bool:
    """A check for an outcome that must not happen at all: says what happened instead."""
    raise AssertionError(
        f"status {cell.status}, {len(cell.stdout)} bytes of stdout, stderr {cell.stderr[-500:]!r}"
    )
