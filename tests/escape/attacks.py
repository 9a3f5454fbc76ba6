"""The escape suite's attacks: what a notebook cell tries, and how to tell it failed.

Each :class:`Attack` is cell source that defines ``attack()`` returning
``(escaped, detail)``; the prelude prints one verdict line, ``RESULT: blocked <detail>``
or ``RESULT: escaped <detail>`` (``RESULT: error ...`` when the attack itself broke,
which neither check accepts). A few attacks (resource exhaustion, timeouts, killing
the kernel) are judged by what the notebook sees instead: the announced restart error
or the truncated output.

Every attack names the setting(s) that stop it and ``weakened``: the settings that,
changed from the hardened configuration, let it succeed (the negative control). Where
two independent protections both stop an attack, the control drops both and a comment
says so. ``no_control`` explains the few attacks no setting can let through (Docker
itself stops them whatever the sandbox settings, short of ``--privileged``).

Placeholders ``@NAME@`` are filled from the host bait (tests/escape/host.py) and the
kernel's own connection key (``@KEY@``).

Safety of the negative controls: network attacks never send a packet to a non-loopback
address, not even in a weakened sandbox — they stop at socket creation and report it;
only the host's 127.0.0.1 listener is ever connected to. Resource attacks are bounded
(a few hundred processes, 2.5 GiB, 700 MiB). Dangerous kernel files (sysrq-trigger,
/proc/sys, cgroup files) are opened for writing but never written.
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

_ROOT_RW_NOTE = (
    "read_only_root (EROFS) and user (the image's files belong to root): the control drops both"
)
_NO_CONTROL_DOCKER = (
    "Docker mounts it read-only (or masks it) for every unprivileged container, whatever "
    "the sandbox settings; only --privileged, which no setting gives, would lift that"
)

# Code run from a noexec folder without execve (FOLDER is set in front of each).
_LDSO = """\
def attack():
    path = drop_executable(FOLDER)
    try:
        proc = subprocess.run(["/lib64/ld-linux-x86-64.so.2", path, "SK-EXEC-OK"], capture_output=True, text=True)
    finally:
        os.unlink(path)
    return "SK-EXEC-OK" in proc.stdout, f"ld.so {path}: rc={proc.returncode} {proc.stdout.strip()!r} {proc.stderr.strip()[-200:]!r}"
"""
_DLOPEN = """\
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

ATTACKS: list[Attack] = [
    # -- writes outside the private tmpfs ------------------------------------------------------
    Attack(
        "write_etc",
        _ROOT_RW_NOTE,
        """
        def attack():
            done, failed = try_create(["/etc/sk-escape", "/etc/ld.so.preload"])
            opened, refused = try_open_write(["/etc/passwd", "/etc/profile"])
            return bool(done or opened), f"created {done} opened {opened}; refused {failed + refused}"
        """,
        ROOT_RW,
    ),
    Attack(
        "write_usr",
        _ROOT_RW_NOTE,
        """
        def attack():
            done, failed = try_create(["/usr/bin/sk-escape", "/usr/local/bin/sk-escape", "/usr/lib/sk-escape"])
            opened, refused = try_open_write(["/usr/bin/env"])
            return bool(done or opened), f"created {done} opened {opened}; refused {failed + refused}"
        """,
        ROOT_RW,
    ),
    Attack(
        "write_site_packages",
        _ROOT_RW_NOTE,
        """
        import site, sysconfig
        def attack():
            folders = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
                       *site.getsitepackages(), "/usr/lib/python3/dist-packages"}
            folders = sorted(f for f in folders if os.path.isdir(f))
            done, failed = try_create([f"{f}/sk_escape.pth" for f in folders] + [f"{f}/sitecustomize.py" for f in folders])
            import numpy
            opened, refused = try_open_write([numpy.__file__])
            return bool(done or opened), f"created {done} opened {opened}; refused {failed + refused}"
        """,
        ROOT_RW,
    ),
    Attack(
        "write_home_and_root",
        _ROOT_RW_NOTE + " (the sandbox user's own HOME is /tmp/home, in the private tmpfs)",
        """
        def attack():
            done, failed = try_create(["/home/sk-escape", "/root/sk-escape", "/sk-escape",
                                       "/root/.bashrc-sk", "/home/.profile-sk"])
            return bool(done), f"created {done}; refused {failed}; HOME is {os.environ['HOME']}"
        """,
        ROOT_RW,
    ),
    Attack(
        "write_world_writable_image_dirs",
        "read_only_root alone: the image's /var/tmp and /run/lock are world-writable",
        """
        def attack():
            folders = []
            for top, dirs, files in walk_root(skip=("proc", "sys", "dev", "tmp")):
                st = os.lstat(top)
                if st.st_mode & stat.S_IWOTH and os.stat(top).st_dev == os.stat("/").st_dev:
                    folders.append(top)
            done, failed = try_create([f"{f}/sk-escape" for f in folders])
            return bool(done), f"world-writable image folders {folders}: created {done}; refused {failed}"
        """,
        {"read_only_root": False},
    ),
    Attack(
        "exec_from_image_dirs",
        "read_only_root alone: without it /var/tmp is a writable, exec-capable place next to the noexec /tmp",
        """
        def attack():
            tried = []
            for folder in ("/var/tmp", "/run/lock", "/"):
                try:
                    path = drop_executable(folder)
                except OSError as err:
                    tried.append(f"{folder}: {ename(err)}")
                    continue
                try:
                    out = subprocess.run([path, "SK-EXEC-OK"], capture_output=True, text=True).stdout
                except OSError as err:
                    tried.append(f"{folder}: exec {ename(err)}")
                    continue
                finally:
                    os.unlink(path)
                if "SK-EXEC-OK" in out:
                    return True, f"dropped and ran {path}"
            return False, f"could not drop or run a program: {tried}"
        """,
        {"read_only_root": False},
    ),
    Attack(
        "write_host_bind_files",
        _ROOT_RW_NOTE
        + "; Docker's bind mounts of host files (/etc/hostname, hosts, resolv.conf) follow the"
        " read-only root (docker-init is always read-only, and busy)",
        """
        def attack():
            opened, refused = try_open_write(["/etc/hostname", "/etc/hosts", "/etc/resolv.conf",
                                              "/usr/sbin/docker-init", "/sbin/docker-init"])
            return bool(opened), f"opened for writing {opened}; refused {refused}"
        """,
        ROOT_RW,
    ),
    # -- executing dropped files -------------------------------------------------------------------
    Attack(
        "exec_tmp",
        "tmp_noexec",
        """
        def attack():
            path = drop_executable("/tmp")
            try:
                out = subprocess.run([path, "SK-EXEC-OK"], capture_output=True, text=True).stdout
            except OSError as err:
                return False, f"exec {path}: {ename(err)}"
            finally:
                os.unlink(path)
            return "SK-EXEC-OK" in out, f"ran {path}: {out.strip()!r}"
        """,
        {"tmp_noexec": False},
    ),
    Attack(
        "exec_dev_shm",
        "Docker mounts /dev/shm noexec for every container (tmp_noexec only adds /tmp)",
        """
        FOLDER = "/dev/shm"
        def attack():
            path = drop_executable(FOLDER)
            try:
                out = subprocess.run([path, "SK-EXEC-OK"], capture_output=True, text=True).stdout
            except OSError as err:
                return False, f"exec {path}: {ename(err)}"
            finally:
                os.unlink(path)
            return "SK-EXEC-OK" in out, f"ran {path}: {out.strip()!r}"
        """,
        {"tmp_noexec": False},
        # Docker mounts /dev/shm noexec,nosuid,nodev itself; no sandbox setting makes it
        # exec-capable. The control runs the same attack against /tmp with tmp_noexec off:
        # it proves the attack recognises a successful exec.
        control_code="""
        FOLDER = "/tmp"
        def attack():
            path = drop_executable(FOLDER)
            try:
                out = subprocess.run([path, "SK-EXEC-OK"], capture_output=True, text=True).stdout
            except OSError as err:
                return False, f"exec {path}: {ename(err)}"
            finally:
                os.unlink(path)
            return "SK-EXEC-OK" in out, f"ran {path}: {out.strip()!r}"
        """,
    ),
    Attack(
        "exec_via_dynamic_loader",
        "tmp_noexec (ld.so maps the program with PROT_EXEC, which a noexec mount refuses)",
        'FOLDER = "/tmp"\n' + _LDSO,
        {"tmp_noexec": False},
    ),
    Attack(
        "exec_via_dynamic_loader_dev_shm",
        "Docker mounts /dev/shm noexec (ld.so's PROT_EXEC mapping is refused as from /tmp)",
        'FOLDER = "/dev/shm"\n' + _LDSO,
        {"tmp_noexec": False},
        # No setting makes /dev/shm exec-capable: the control is the /tmp attack, weakened.
        control_code='FOLDER = "/tmp"\n' + _LDSO,
    ),
    Attack(
        "dlopen_from_tmp",
        "tmp_noexec (a dropped shared library cannot be mapped executable)",
        'FOLDER = "/tmp"\n' + _DLOPEN,
        {"tmp_noexec": False},
    ),
    Attack(
        "dlopen_from_dev_shm",
        "Docker mounts /dev/shm noexec (a dropped shared library cannot be mapped executable)",
        'FOLDER = "/dev/shm"\n' + _DLOPEN,
        {"tmp_noexec": False},
        control_code='FOLDER = "/tmp"\n' + _DLOPEN,
    ),
    Attack(
        "exec_memfd",
        "seccomp_profile (builtin denies memfd_create and execveat; Docker's default allows both)",
        """
        def attack():
            try:
                fd = os.memfd_create("sk-escape", 0)
            except OSError as err:
                return False, f"memfd_create: {ename(err)}"
            with open("/bin/echo", "rb") as f:
                os.write(fd, f.read())
            try:
                out = subprocess.run([f"/proc/self/fd/{fd}", "SK-EXEC-OK"], pass_fds=(fd,), capture_output=True, text=True).stdout
            except OSError as err:
                return False, f"exec memfd: {ename(err)}"
            finally:
                os.close(fd)
            return "SK-EXEC-OK" in out, f"ran a program from memory: {out.strip()!r}"
        """,
        DOCKER_DEFAULT,
    ),
    # -- the host's files -----------------------------------------------------------------------
    Attack(
        "host_file_by_path",
        "mounts (nothing of the host is mounted); the control mounts the canary folder at its host path",
        """
        def attack():
            found, missed = [], []
            for path in ["@CANARY_FILE@", "@HOME_CANARY@"]:
                try:
                    with open(path) as f:
                        data = f.read()
                except OSError as err:
                    missed.append(f"{path}: {ename(err)}")
                    continue
                if "@TOKEN@" in data:
                    found.append(path)
            return bool(found), f"read {found}" if found else f"host canaries unreadable: {missed}"
        """,
        MOUNTED,
    ),
    Attack(
        "host_file_by_walk",
        "mounts",
        """
        def attack():
            found, seen = [], 0
            for top, dirs, files in walk_root():
                seen += len(files)
                found += [os.path.join(top, n) for n in files + dirs if "@TOKEN@" in n]
            return bool(found), f"found {found}" if found else f"no host canary among {seen} files under /"
        """,
        MOUNTED,
    ),
    Attack(
        "host_file_via_proc_root",
        "mounts (every /proc/*/root is the sandbox's own root: one PID namespace, one mount namespace)",
        """
        def attack():
            found, roots = [], set()
            for pid in pids():
                for path in ["@CANARY_FILE@", "@HOME_CANARY@", "/proc/1/root@CANARY_FILE@"]:
                    if os.path.exists(f"/proc/{pid}/root{path}"):
                        found.append(f"/proc/{pid}/root{path}")
                try:
                    roots.add(tuple(sorted(os.listdir(f"/proc/{pid}/root/"))))
                except OSError:
                    pass
            return bool(found), f"found {found}" if found else f"{len(pids())} processes, {len(roots)} distinct root(s), no host canary"
        """,
        MOUNTED,
    ),
    Attack(
        "host_paths_in_mountinfo",
        "mounts (no host folder is bind-mounted, so no host path shows in the mount table)",
        """
        def attack():
            prefixes = [p.rstrip("/") for p in ("/work", "/root", "/home", "@CANARY_DIR@", "@HOST_CWD@") if len(p) > 1]
            hits = set()
            for path in ("/proc/self/mountinfo", "/proc/1/mountinfo", "/proc/mounts", "/proc/self/mountstats"):
                if not os.path.exists(path):
                    continue  # gVisor has no mountstats
                with open(path) as f:
                    for token in re.split(r"[\\s,=:]+", f.read()):
                        if any(token == p or token.startswith(p + "/") for p in prefixes):
                            hits.add(token)
            return bool(hits), f"host paths in the mount table: {sorted(hits)}" if hits else f"none of {prefixes} in the mount table"
        """,
        MOUNTED,
    ),
    # -- the host's environment and the outer kernel's key -----------------------------------------
    Attack(
        "host_env_in_environ",
        "extra_env (the sandbox environment is an allowlist); the control leaks the variable through it",
        """
        def attack():
            hits = [k for k, v in os.environ.items() if k == "@ENV_NAME@" or "@ENV_VALUE@" in v]
            return bool(hits), f"host variable visible as {hits}" if hits else f"not among {len(os.environ)} variables"
        """,
        {"extra_env": {"@ENV_NAME@": "@ENV_VALUE@"}},
    ),
    Attack(
        "host_env_in_proc_environ",
        "extra_env",
        """
        def attack():
            hits, read = [], 0
            for pid in pids():
                try:
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                read += 1
                if b"@ENV_VALUE@" in data:
                    hits.append(pid)
            return bool(hits), f"host variable in /proc/{hits}/environ" if hits else f"not in the environ of {read} processes"
        """,
        {"extra_env": {"@ENV_NAME@": "@ENV_VALUE@"}},
    ),
    Attack(
        "connection_key_in_env_and_proc",
        "extra_env (the outer kernel's key never enters the container); the control leaks it through it",
        """
        def attack():
            key = "@KEY@"
            hits = [f"env {k}" for k, v in os.environ.items() if key in v]
            for pid in pids():
                for part in ("environ", "cmdline"):
                    try:
                        with open(f"/proc/{pid}/{part}", "rb") as f:
                            if key.encode() in f.read():
                                hits.append(f"/proc/{pid}/{part}")
                    except OSError:
                        pass
            return bool(hits), f"outer key in {hits}" if hits else "outer key in no environment or command line"
        """,
        {"extra_env": {"SK_LEAKED_KEY": "@KEY@"}},
    ),
    Attack(
        "connection_key_in_files",
        "mounts; the control mounts the host folder holding the (made readable) connection file",
        """
        def attack():
            key = "@KEY@".encode()
            with open("/proc/stat") as f:
                btime = next(int(line.split()[1]) for line in f if line.startswith("btime"))
            with open("/proc/1/stat") as f:
                started = btime + int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
            root_dev = os.stat("/").st_dev
            hits, read = [], 0
            for top, dirs, files in walk_root():
                for name in files:
                    path = os.path.join(top, name)
                    try:
                        st = os.lstat(path)
                    except OSError:
                        continue
                    if not stat.S_ISREG(st.st_mode) or st.st_size > 4 * 2**20:
                        continue
                    if st.st_dev == root_dev and st.st_ctime < started - 5:
                        continue  # a file of the image, unchanged since before the sandbox started
                    try:
                        with open(path, "rb") as f:
                            data = f.read()
                    except OSError:
                        continue
                    read += 1
                    if key in data:
                        hits.append(path)
            return bool(hits), f"outer key in {hits}" if hits else f"outer key in none of the {read} files written or mounted since start"
        """,
        MOUNTED,
    ),
    # -- sockets ------------------------------------------------------------------------------------
    Attack(
        "docker_and_host_unix_sockets",
        "mounts (no host socket is mounted); the control mounts a folder holding a host unix socket listener",
        """
        def attack():
            known = ["/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock",
                     "/var/run/containerd/containerd.sock", "/run/podman/podman.sock", "/var/run/crio/crio.sock"]
            present = [p for p in known if os.path.lexists(p)]
            private = {os.stat("/tmp").st_dev, os.stat("/dev/shm").st_dev}
            found = []
            for top, dirs, files in walk_root():
                for name in files:
                    path = os.path.join(top, name)
                    try:
                        st = os.lstat(path)
                    except OSError:
                        continue
                    if stat.S_ISSOCK(st.st_mode) and st.st_dev not in private:
                        found.append(path)
            reachable, refused = [], []
            for path in present + found:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(2)
                try:
                    s.connect(path)
                    reachable.append(path)
                except OSError as err:
                    refused.append(f"{path}: {ename(err)}")
                finally:
                    s.close()
            escaped = bool(present or reachable)
            return escaped, f"present {present}, reachable {reachable}, refused {refused}" if escaped else f"no Docker socket; sockets outside the private tmpfs: {found}"
        """,
        MOUNTED,
    ),
    Attack(
        "host_unix_sockets_in_netns",
        "network_mode (the private network namespace has its own unix socket table, host abstract sockets included)",
        """
        def attack():
            foreign, own = [], 0
            with open("/proc/net/unix") as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) < 8:
                        continue
                    if parts[7].startswith(("/tmp/", "/dev/shm/")):
                        own += 1
                    else:
                        foreign.append(parts[7])
            return bool(foreign), f"host sockets visible: {foreign[:10]}" if foreign else f"only the sandbox's own {own} named sockets"
        """,
        {"network_mode": "host"},
    ),
    # -- network ----------------------------------------------------------------------------------------
    Attack(
        "tcp_host_loopback",
        "seccomp_profile (no AF_INET socket) and network_mode (127.0.0.1 is the sandbox's own loopback): the control drops both",
        """
        def attack():
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except OSError as err:
                return False, f"socket(AF_INET): {ename(err)}"
            s.settimeout(3)
            try:
                s.connect(("127.0.0.1", @PORT@))
                data = s.recv(200)
            except OSError as err:
                return False, f"socket created, but 127.0.0.1:@PORT@ is the sandbox's own loopback: {ename(err)}"
            finally:
                s.close()
            return b"@TOKEN@" in data, f"connected to the host's listener: {data!r}"
        """,
        {"network_mode": "host", "seccomp_profile": "unconfined"},
    ),
    Attack(
        "dns_resolution",
        "seccomp_profile (no AF_INET/AF_INET6 socket, so no query can be sent) and network_mode (no route)",
        """
        def attack():
            try:
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()
            except OSError as err:
                created = ename(err)
            else:
                # Never resolve once a socket can be made: that would send a query.
                return True, "an AF_INET UDP socket can be created (no query sent)"
            try:
                # Safe: no IP socket can be created, so nothing can leave the sandbox.
                info = socket.getaddrinfo("example.com", 443)
            except OSError as err:
                return False, f"socket(AF_INET, SOCK_DGRAM): {created}; getaddrinfo: {err}"
            return True, f"example.com resolved: {info[:2]}"
        """,
        UNCONFINED,
    ),
    Attack(
        "internet_tcp",
        "seccomp_profile and network_mode (no route; shown by routes_and_interfaces)",
        """
        def attack():
            try:
                socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
            except OSError as err:
                return False, f"socket(AF_INET, SOCK_STREAM) for 1.1.1.1:443: {ename(err)}"
            return True, "an AF_INET TCP socket can be created (connect not attempted)"
        """,
        UNCONFINED,
    ),
    Attack(
        "internet_ipv6",
        "seccomp_profile and network_mode",
        """
        def attack():
            try:
                socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
            except OSError as err:
                return False, f"socket(AF_INET6) for [2606:4700:4700::1111]:443: {ename(err)}"
            return True, "an AF_INET6 socket can be created (connect not attempted)"
        """,
        UNCONFINED,
    ),
    Attack(
        "cloud_metadata",
        "seccomp_profile and network_mode",
        """
        def attack():
            made = []
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                try:
                    socket.socket(socket.AF_INET, kind).close()
                    made.append(kind.name)
                except OSError as err:
                    failed = ename(err)
            if made:
                return True, f"sockets for 169.254.169.254 can be created: {made} (connect not attempted)"
            return False, f"socket(AF_INET) for 169.254.169.254:80: {failed}"
        """,
        UNCONFINED,
    ),
    Attack(
        "routes_and_interfaces",
        "network_mode ('none': only loopback, no route anywhere)",
        """
        def attack():
            with open("/proc/net/dev") as f:
                interfaces = [line.split(":")[0].strip() for line in f.read().splitlines()[2:]]
            with open("/proc/net/route") as f:
                routes = [line.split()[:2] for line in f.read().splitlines()[1:] if line.strip()]
            routes6 = []
            if os.path.exists("/proc/net/ipv6_route"):
                with open("/proc/net/ipv6_route") as f:
                    routes6 = [line.split()[-1] for line in f if line.split()[-1] != "lo"]
            outside = [i for i in interfaces if i != "lo"] + [r[0] for r in routes if r[0] != "lo"] + routes6
            return bool(outside), f"interfaces {interfaces}, IPv4 routes {routes}, IPv6 routes off lo {routes6}"
        """,
        {"network_mode": "host"},
    ),
    Attack(
        "raw_socket",
        "seccomp_profile (EAFNOSUPPORT) and drop_capabilities/user (CAP_NET_RAW): the control drops all three",
        """
        def attack():
            try:
                socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
            except OSError as err:
                return False, f"socket(AF_INET, SOCK_RAW, ICMP): {ename(err)}"
            return True, "a raw ICMP socket can be created (nothing sent)"
        """,
        ROOT_CAPS_UNCONFINED,
    ),
    Attack(
        "packet_socket",
        "seccomp_profile and drop_capabilities/user (CAP_NET_RAW): the control drops all three",
        """
        def attack():
            try:
                socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
            except OSError as err:
                return False, f"socket(AF_PACKET, SOCK_RAW): {ename(err)}"
            return True, "an AF_PACKET socket can be created (nothing sent)"
        """,
        ROOT_CAPS_UNCONFINED,
    ),
    Attack(
        "netlink_audit",
        "seccomp_profile (only NETLINK_ROUTE is allowed)",
        """
        def attack():
            try:
                socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 9).close()  # NETLINK_AUDIT
            except OSError as err:
                return False, f"socket(AF_NETLINK, NETLINK_AUDIT): {ename(err)}"
            return True, "a NETLINK_AUDIT socket can be created"
        """,
        UNCONFINED,
    ),
    Attack(
        "netlink_netfilter",
        "seccomp_profile",
        """
        def attack():
            try:
                socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12).close()  # NETLINK_NETFILTER
            except OSError as err:
                return False, f"socket(AF_NETLINK, NETLINK_NETFILTER): {ename(err)}"
            return True, "a NETLINK_NETFILTER socket can be created"
        """,
        UNCONFINED,
    ),
    Attack(
        "netlink_other_protocols",
        "seccomp_profile",
        """
        def attack():
            made, refused = [], []
            for name, proto in (("SOCK_DIAG", 4), ("XFRM", 6), ("KOBJECT_UEVENT", 15), ("GENERIC", 16)):
                try:
                    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, proto).close()
                    made.append(name)
                except OSError as err:
                    refused.append(f"{name}: {ename(err)}")
            return bool(made), f"created {made}; refused {refused}"
        """,
        UNCONFINED,
    ),
    Attack(
        "vsock_to_vm_host",
        "seccomp_profile (AF_VSOCK reaches the hypervisor host of a VM)",
        """
        def attack():
            try:
                socket.socket(40, socket.SOCK_STREAM).close()  # AF_VSOCK
            except OSError as err:
                return False, f"socket(AF_VSOCK): {ename(err)}"
            return True, "an AF_VSOCK socket can be created (connect not attempted)"
        """,
        UNCONFINED,
    ),
    # -- dangerous syscalls ----------------------------------------------------------------------------
    Attack(
        "ptrace_attach",
        "seccomp_profile (builtin denies ptrace; Docker's default allows it)",
        """
        CHILD = '''
        target = int(sys.argv[1])
        print(syscall("ptrace", 0x4206, target, 0, 0))  # PTRACE_SEIZE: no stop; detached at exit
        '''
        def attack():
            out = run_child(textwrap.dedent(CHILD), os.getpid())
            r = int(out.split()[0])
            return r == 0, f"PTRACE_SEIZE of the kernel (pid {os.getpid()}) from its child: {'attached' if r == 0 else ename(r)}"
        """,
        DOCKER_DEFAULT,
    ),
    Attack(
        "process_vm_readv",
        "seccomp_profile",
        """
        CHILD = '''
        pid, addr, size = map(int, sys.argv[1:4])
        buf = ctypes.create_string_buffer(size)
        local = (ctypes.c_long * 2)(ctypes.addressof(buf), size)
        remote = (ctypes.c_long * 2)(addr, size)
        r = syscall("process_vm_readv", pid, ctypes.addressof(local), 1, ctypes.addressof(remote), 1, 0)
        print(r, buf.raw[:max(r, 0)].decode(errors="replace"))
        '''
        def attack():
            secret = b"SK-KERNEL-SECRET-@TOKEN@"
            buf = ctypes.create_string_buffer(secret)
            out = run_child(textwrap.dedent(CHILD), os.getpid(), ctypes.addressof(buf), len(secret))
            r = int(out.split()[0])
            return secret.decode() in out, f"process_vm_readv of the kernel's memory: {out if r >= 0 else ename(r)}"
        """,
        UNCONFINED,
    ),
    Attack(
        "unshare_user_namespace",
        "seccomp_profile (builtin denies unshare; Docker's default needs CAP_SYS_ADMIN)",
        """
        def attack():
            out = run_child('print(syscall("unshare", 0x10000000 | 0x00020000))')  # CLONE_NEWUSER | CLONE_NEWNS
            r = int(out.split()[0])
            return r == 0, f"unshare(CLONE_NEWUSER|CLONE_NEWNS): {'a new user namespace, root inside it' if r == 0 else ename(r)}"
        """,
        UNCONFINED,
    ),
    Attack(
        "mount",
        "seccomp_profile and drop_capabilities (directly), seccomp_profile (through a user namespace)",
        """
        CHILD = '''
        direct = syscall("mount", b"none", b"/tmp", b"tmpfs", 0, 0)
        userns = syscall("unshare", 0x10000000 | 0x00020000)
        inside = syscall("mount", b"none", b"/tmp", b"tmpfs", 0, 0) if userns == 0 else userns
        print(direct, userns, inside)
        '''
        def attack():
            out = run_child(textwrap.dedent(CHILD))
            direct, userns, inside = map(int, out.split()[:3])
            return 0 in (direct, inside), f"mount tmpfs: {ename(direct) if direct else 'mounted'}; unshare: {ename(userns) if userns else 'ok'}; mount in a user namespace: {ename(inside) if inside else 'mounted'}"
        """,
        UNCONFINED,
    ),
    Attack(
        "setns",
        "seccomp_profile",
        """
        CHILD = '''
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.write(w, str(syscall("unshare", 0x10000000)).encode().ljust(8))
            time.sleep(10)
            os._exit(0)
        os.close(w)
        made = int(os.read(r, 8))
        target = f"/proc/{pid}/ns/user" if made == 0 else "/proc/1/ns/user"
        try:
            fd = os.open(target, os.O_RDONLY)
            joined = syscall("setns", fd, 0x10000000)
        except OSError as err:
            joined = -err.errno
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        print(joined, made, target)
        '''
        def attack():
            out = run_child(textwrap.dedent(CHILD))
            joined, made, target = out.split()[:3]
            joined = int(joined)
            return joined == 0, f"setns(CLONE_NEWUSER) into {target}: {'joined' if joined == 0 else ename(joined)}"
        """,
        UNCONFINED,
    ),
    Attack(
        "chroot",
        "seccomp_profile and drop_capabilities (directly), seccomp_profile (through a user namespace)",
        """
        CHILD = '''
        direct = syscall("chroot", b"/")
        userns = syscall("unshare", 0x10000000) if direct else 0
        inside = syscall("chroot", b"/") if direct and userns == 0 else (direct or userns)
        print(direct, userns, inside)
        '''
        def attack():
            out = run_child(textwrap.dedent(CHILD))
            direct, userns, inside = map(int, out.split()[:3])
            return 0 in (direct, inside), f"chroot: {ename(direct) if direct else 'done'}; in a user namespace: {ename(inside) if inside else 'done'}"
        """,
        UNCONFINED,
    ),
    Attack(
        "mknod_device",
        "seccomp_profile (no device nodes) and drop_capabilities/user (CAP_MKNOD): the control drops all three",
        """
        def attack():
            path = f"/tmp/sk-null-{os.getpid()}"
            try:
                os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
            except OSError as err:
                return False, f"mknod c 1:3: {ename(err)}"
            is_dev = stat.S_ISCHR(os.lstat(path).st_mode)
            os.unlink(path)
            return is_dev, "created a character device node"
        """,
        ROOT_CAPS_UNCONFINED,
    ),
    Attack(
        "keyctl",
        "seccomp_profile (the kernel keyring is not namespaced)",
        """
        def attack():
            r = syscall("keyctl", 0, -3, 0)  # KEYCTL_GET_KEYRING_ID of the session keyring
            return r > 0, f"keyctl: {'session keyring ' + str(r) if r > 0 else ename(r)}"
        """,
        UNCONFINED,
    ),
    Attack(
        "bpf",
        "seccomp_profile (and the host's kernel.unprivileged_bpf_disabled, which the control shows is the next layer)",
        """
        def attack():
            probe = syscall("bpf", 0, 0, 0)
            attr = ctypes.create_string_buffer(72)
            struct.pack_into("IIII", attr, 0, 2, 4, 4, 1)  # BPF_MAP_TYPE_ARRAY, 4-byte key/value, 1 entry
            made = syscall("bpf", 0, attr, 72)
            if made >= 0:
                os.close(made)
            # The profile answers EPERM before the kernel is reached; any other answer
            # means the syscall reached the kernel's BPF code.
            reached = probe != -errno.EPERM or made >= 0
            return reached, f"bpf(0, NULL, 0): {ename(probe)}; BPF_MAP_CREATE: {'map created' if made >= 0 else ename(made)}"
        """,
        UNCONFINED,
    ),
    Attack(
        "perf_event_open",
        "seccomp_profile",
        """
        def attack():
            attr = ctypes.create_string_buffer(128)
            struct.pack_into("IIQ", attr, 0, 1, 128, 1)  # PERF_TYPE_SOFTWARE, size, TASK_CLOCK
            struct.pack_into("Q", attr, 40, 1 | 1 << 5 | 1 << 6)  # disabled, exclude_kernel, exclude_hv
            fd = syscall("perf_event_open", attr, 0, -1, -1, 0)
            if fd >= 0:
                os.close(fd)
            return fd >= 0, f"perf_event_open on itself: {'opened' if fd >= 0 else ename(fd)}"
        """,
        UNCONFINED,
    ),
    Attack(
        "userfaultfd",
        "seccomp_profile",
        """
        def attack():
            fd = syscall("userfaultfd", 1)  # UFFD_USER_MODE_ONLY
            if fd >= 0:
                os.close(fd)
            return fd >= 0, f"userfaultfd: {'opened' if fd >= 0 else ename(fd)}"
        """,
        UNCONFINED,
    ),
    Attack(
        "io_uring",
        "seccomp_profile (builtin denies io_uring; Docker 20.10's default allows it)",
        """
        def attack():
            params = ctypes.create_string_buffer(120)
            fd = syscall("io_uring_setup", 1, params)
            if fd >= 0:
                os.close(fd)
            return fd >= 0, f"io_uring_setup: {'ring created' if fd >= 0 else ename(fd)}"
        """,
        DOCKER_DEFAULT,
    ),
    # -- privileges -----------------------------------------------------------------------------------
    Attack(
        "capabilities",
        "drop_capabilities and user (uid 1000 has no effective capabilities either way): the control drops both",
        """
        def attack():
            with open("/proc/self/status") as f:
                caps = {k: v.strip() for k, v in (line.split(":", 1) for line in f) if k.startswith("Cap")}
            held = {k: v for k, v in caps.items() if k in ("CapEff", "CapPrm", "CapAmb") and int(v, 16)}
            return bool(held), f"capabilities {caps}"
        """,
        ROOT_CAPS,
    ),
    Attack(
        "no_new_privileges",
        "no_new_privileges",
        """
        def attack():
            # prctl(PR_GET_NO_NEW_PRIVS): gVisor's /proc/self/status has no NoNewPrivs line.
            value = str(_libc.prctl(39, 0, 0, 0, 0))
            return value != "1", f"NoNewPrivs: {value}"
        """,
        {"no_new_privileges": False},
    ),
    Attack(
        "seccomp_mode",
        "seccomp_profile",
        """
        def attack():
            with open("/proc/self/status") as f:
                value = next(line.split(":")[1].strip() for line in f if line.startswith("Seccomp:"))
            return value != "2", f"Seccomp: {value}"
        """,
        UNCONFINED,
    ),
    Attack(
        "su_and_sudo",
        "user and drop_capabilities (su is not setuid in the image; root without CAP_SETUID/SETGID cannot switch): the control drops both",
        """
        def attack():
            tried, escaped = [], False
            for argv in (["su", "-s", "/bin/sh", "-c", "id -u", "root"], ["sudo", "-n", "id", "-u"]):
                if shutil.which(argv[0]) is None:
                    tried.append(f"{argv[0]}: absent")
                    continue
                proc = subprocess.run(argv, input="", capture_output=True, text=True, timeout=15)
                tried.append(f"{argv[0]}: rc={proc.returncode} {proc.stdout.strip()!r} {proc.stderr.strip()[:120]!r}")
                escaped = escaped or (proc.returncode == 0 and proc.stdout.strip() == "0")
            return escaped, "; ".join(tried)
        """,
        ROOT_CAPS,
    ),
    # -- kernel control files and devices (Docker's masked and read-only paths) ------------------------
    Attack(
        "proc_sys_and_sysrq",
        "Docker's read-only /proc/sys and /proc/sysrq-trigger (plus user and drop_capabilities)",
        """
        def attack():
            opened, refused = try_open_write([
                "/proc/sysrq-trigger", "/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe",
                "/proc/sys/vm/drop_caches", "/proc/sys/kernel/sysrq", "/proc/sys/net/ipv4/ip_forward",
                "/proc/sys/fs/binfmt_misc/register"])
            return bool(opened), f"opened for writing {opened}; refused {refused}"
        """,
        None,
        no_control=_NO_CONTROL_DOCKER,
    ),
    Attack(
        "cgroup_files",
        "Docker's read-only cgroup mounts (plus user and drop_capabilities)",
        """
        def attack():
            files, made = [], []
            for top, dirs, names in os.walk("/sys/fs/cgroup"):
                files += [os.path.join(top, n) for n in names]
                for d in dirs:
                    path = os.path.join(top, d, "sk-escape")
                    try:
                        os.mkdir(path)
                        os.rmdir(path)
                        made.append(path)
                    except OSError:
                        pass
            opened, refused = try_open_write(files)
            return bool(opened or made), f"{len(files)} cgroup files: opened for writing {opened[:10]}, new cgroups {made}; e.g. refused {refused[:4]}"
        """,
        None,
        no_control=_NO_CONTROL_DOCKER
        + " (cgroup files), and cgroup v1 cannot be mounted from a user namespace",
    ),
    Attack(
        "raw_devices_and_kmsg",
        "Docker's device list and device cgroup (plus user and drop_capabilities; seccomp blocks mknod of devices)",
        """
        def attack():
            opened, refused = [], []
            for path in ("/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg", "/dev/sda", "/dev/vda", "/dev/xvda",
                         "/dev/nvme0n1", "/dev/mapper/control", "/proc/kmsg", "/proc/kcore"):
                try:
                    os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
                    opened.append(path)
                except OSError as err:
                    refused.append(f"{path}: {ename(err)}")
            block = [os.path.join(top, n) for top, dirs, names in os.walk("/dev") for n in names
                     if stat.S_ISBLK(os.lstat(os.path.join(top, n)).st_mode)]
            disk = os.stat("/etc/hostname").st_dev  # the host disk behind Docker's bind mounts
            node = f"/dev/shm/sk-disk-{os.getpid()}"
            try:
                os.mknod(node, stat.S_IFBLK | 0o600, disk)
                try:
                    os.close(os.open(node, os.O_RDONLY))
                    opened.append(f"{node} (block {os.major(disk)}:{os.minor(disk)})")
                finally:
                    os.unlink(node)
            except OSError as err:
                refused.append(f"mknod/open block {os.major(disk)}:{os.minor(disk)}: {ename(err)}")
            log = syscall("syslog", 10, 0, 0)  # SYSLOG_ACTION_SIZE_BUFFER
            if log >= 0:
                opened.append("syslog()")
            else:
                refused.append(f"syslog: {ename(log)}")
            return bool(opened or block), f"opened {opened}, block devices {block}; refused {refused}"
        """,
        None,
        no_control=(
            "Docker creates no such device, its device cgroup refuses to open any other "
            "even for root with every default capability, and reading the kernel log needs "
            "CAP_SYSLOG, which is not among Docker's default capabilities"
        ),
    ),
    # -- resource exhaustion ---------------------------------------------------------------------------
    Attack(
        "fork_bomb",
        "pids (256)",
        """
        def attack():
            r, w = os.pipe()
            children, failure = [], "none"
            for _ in range(400):
                try:
                    pid = os.fork()
                except OSError as err:
                    failure = ename(err)
                    break
                if pid == 0:
                    os.close(w)
                    os.read(r, 1)
                    os._exit(0)
                children.append(pid)
            os.close(w)
            os.close(r)
            for pid in children:
                os.waitpid(pid, 0)
            return len(children) >= 400, f"forked {len(children)} of 400 processes (failure: {failure}); all reaped"
        """,
        {"pids": 4096},
    ),
    Attack(
        "thread_bomb",
        "pids (threads count too)",
        """
        def attack():
            stop = threading.Event()
            threads, failure = [], "none"
            for _ in range(400):
                t = threading.Thread(target=stop.wait, daemon=True)
                try:
                    t.start()
                except RuntimeError as err:
                    failure = str(err)
                    break
                threads.append(t)
            stop.set()
            for t in threads:
                t.join()
            return len(threads) >= 400, f"started {len(threads)} of 400 threads (failure: {failure})"
        """,
        {"pids": 4096},
    ),
    Attack(
        "memory_bomb",
        "memory (2g, no swap): the OOM kill is announced and the kernel restarts",
        """
        def attack():
            hog = [b"\\x01" * (64 * 2**20) for _ in range(40)]
            total = sum(map(len, hog)) // 2**20
            del hog
            return True, f"allocated {total} MiB"
        """,
        {"memory": "4g"},
        check_blocked=announced("SandboxOutOfMemory", "memory limit"),
    ),
    Attack(
        "memory_creep",
        "memory",
        """
        def attack():
            hog = []
            while len(hog) < 160:
                hog.append(b"\\x02" * (16 * 2**20))
                time.sleep(0.005)
            total = sum(map(len, hog)) // 2**20
            del hog
            return True, f"crept up to {total} MiB"
        """,
        {"memory": "4g"},
        check_blocked=announced("SandboxOutOfMemory", "memory limit"),
    ),
    Attack(
        "fill_tmp",
        "tmp_size (512m)",
        """
        def attack():
            # four files of 176 MiB: each stays under max_file_size
            written, failure = fill([f"/tmp/sk-fill-{i}" for i in range(4)], 8, 22)
            return written >= 700, f"wrote {written} MiB of 704 to /tmp (failure: {failure}); removed"
        """,
        {"tmp_size": "2g"},
    ),
    Attack(
        "fill_dev_shm",
        "shm_size (64m)",
        """
        def attack():
            written, failure = fill(["/dev/shm/sk-fill"], 4, 25)
            return written >= 100, f"wrote {written} MiB of 100 to /dev/shm (failure: {failure}); removed"
        """,
        {"shm_size": "256m"},
    ),
    Attack(
        "inode_exhaustion",
        "tmp_inodes (65536)",
        """
        def attack():
            folder, made, failure = f"/tmp/sk-inodes-{os.getpid()}", 0, "none"
            os.mkdir(folder)
            try:
                for i in range(70000):
                    os.close(os.open(f"{folder}/{i}", os.O_WRONLY | os.O_CREAT, 0o600))
                    made += 1
            except OSError as err:
                failure = ename(err)
            finally:
                shutil.rmtree(folder)
            return made >= 70000, f"created {made} of 70000 empty files (failure: {failure}); removed"
        """,
        {"tmp_inodes": 200000},
    ),
    Attack(
        "file_size_limit",
        "max_file_size (256m)",
        """
        def attack():
            written, failure = fill(["/tmp/sk-big"], 8, 38)
            return written >= 300, f"wrote {written} MiB of 304 to one file (failure: {failure}); removed"
        """,
        {"max_file_size": "1g"},
    ),
    Attack(
        "fd_exhaustion",
        "nofile (1024)",
        """
        def attack():
            fds, failure = [], "none"
            try:
                for _ in range(2000):
                    fds.append(os.open("/dev/null", os.O_RDONLY))
            except OSError as err:
                failure = ename(err)
            finally:
                for fd in fds:
                    os.close(fd)
            return len(fds) >= 2000, f"opened {len(fds)} of 2000 files (failure: {failure})"
        """,
        {"nofile": 4096},
    ),
    Attack(
        "busy_loop_past_timeout",
        "timeout (2 s here: the cell is interrupted and the state kept)",
        """
        def attack():
            started = time.monotonic()
            while time.monotonic() - started < 6:
                pass
            return True, "busy for 6 s"
        """,
        {"timeout": 0},
        hardened=LIMITS,
        check_blocked=announced("SandboxTimeout", "timeout"),
    ),
    Attack(
        "sigint_ignored",
        "timeout and interrupt_grace (the cell ignores the interrupt: the kernel is restarted)",
        """
        def attack():
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            started = time.monotonic()
            while time.monotonic() - started < 6:
                time.sleep(0.05)
            signal.signal(signal.SIGINT, previous)
            return True, "ran 6 s with SIGINT ignored"
        """,
        {"timeout": 0},
        hardened=LIMITS,
        check_blocked=announced("SandboxTimeout", "restarted"),
    ),
    Attack(
        "output_flood",
        "max_output_bytes (1 MiB here)",
        """
        import sys
        line = "x" * 99 + "\\n"
        for _ in range(80000):
            sys.stdout.write(line)
        sys.stdout.flush()
        """,
        {"max_output_bytes": 100 * MiB},
        hardened=LIMITS,
        raw=True,
        check_blocked=lambda cell: (
            (cell.status == "ok" or _fail(cell))
            and ("output truncated" in cell.stderr or _fail(cell))
            and (len(cell.stdout) <= MiB or _fail(cell))
        ),
        check_succeeded=lambda cell: len(cell.stdout) >= 8_000_000 or _fail(cell),
    ),
    Attack(
        "zombie_orphans",
        "init (an init process as PID 1 reaps orphans; otherwise zombies pile up against the pids limit)",
        """
        def attack():
            for _ in range(50):
                pid = os.fork()
                if pid == 0:
                    if os.fork() == 0:
                        time.sleep(0.3)  # outlive the parent: reparented to PID 1
                        os._exit(0)
                    os._exit(0)
                os.waitpid(pid, 0)
            time.sleep(2)
            zombies = []
            for pid in pids():
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if fields[0] == "Z":
                    zombies.append(pid)
            with open("/proc/1/comm") as f:
                init = f.read().strip()
            return len(zombies) >= 40, f"{len(zombies)} zombies left of 50 orphans; PID 1 is {init}"
        """,
        {"init": False},
    ),
    # -- killing what runs the sandbox ------------------------------------------------------------------
    Attack(
        "kill_pid1",
        "the PID namespace: its init ignores signals from inside it (PID 1 runs as uid 1000 too); "
        "under gVisor, which delivers them, the relay's own real uid",
        """
        def attack():
            with open("/proc/1/stat") as f:
                before = f.read().rsplit(")", 1)[1].split()[19]
            results = []
            for sig in (signal.SIGKILL, signal.SIGSTOP):
                try:
                    os.kill(1, sig)
                    results.append(f"{sig.name}: sent")
                except OSError as err:
                    results.append(f"{sig.name}: {ename(err)}")
            time.sleep(0.5)
            with open("/proc/1/stat") as f:
                after = f.read().rsplit(")", 1)
            alive = after[1].split()[19] == before and after[1].split()[0] not in ("Z", "T", "X")
            with open("/proc/1/comm") as f:
                init = f.read().strip()
            return not alive, f"{results}; PID 1 ({init}) still running: {alive}"
        """,
        None,
        no_control=(
            "the kernel drops SIGKILL and SIGSTOP sent to a PID namespace's init from inside "
            "it, with or without Docker's init; no setting shares the host's PID namespace "
            "(under gVisor, test_under_gvisor_without_the_relays_own_uid_... is the control)"
        ),
    ),
    Attack(
        "kill_the_kernel",
        "the sandbox's restart: the death is announced and a fresh kernel answers",
        """
        import os
        os.kill(os.getpid(), 9)
        """,
        None,
        raw=True,
        check_blocked=announced("SandboxRestarted", "SIGKILL", "state is lost"),
        no_control=(
            "a recovery check, not a protection a setting could turn off: the cell may kill "
            "its own kernel, and the sandbox must say so and start a fresh one"
        ),
    ),
]


def _fail(cell: CellResult) -> bool:
    raise AssertionError(
        f"status {cell.status}, {len(cell.stdout)} bytes of stdout, stderr {cell.stderr[-500:]!r}"
    )


BY_ID = {attack.id: attack for attack in ATTACKS}
assert len(BY_ID) == len(ATTACKS), "duplicate attack ids"
