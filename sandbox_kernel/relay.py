"""The relay that runs inside the container, between the host and the inner kernel.

This file is not imported on the host: its source text is the container's command
(``python3 -c <this file> ...``), so nothing of this package has to be installed in
the image and a package upgrade never forces an image rebuild. It therefore uses only
the standard library and pyzmq (which every image with ipykernel has), and must run
on any Python 3 that ipykernel supports.

What it does:

* starts ``ipykernel`` with IPC sockets in the container's own tmpfs (no network is
  needed: the container runs with ``network_mode=none``);
* waits for the controller's OPEN frame on stdin (a spare container waits here until
  it is claimed, or exits after ``--claim-timeout`` seconds);
* then moves messages between the container's stdin/stdout and the kernel's sockets,
  as length-prefixed frames (see ``sandbox_kernel.wire`` on the host side), and
  answers every PING with a PONG, so the host can tell a frozen sandbox;
* is the container's PID 1: reaps orphaned processes (``--reap``), and is not
  dumpable, so no process of the sandbox can open its stdout (the host transport);
  under gVisor, which honours neither, it takes a real uid of its own instead
  (``--kernel-user``, ``--relay-uid``: see :func:`become_relay`);
* when the kernel exits, tells the host how and why (EXITED) and waits for the host
  to read the container's last numbers and remove it;
* exits on SHUTDOWN, when stdin reaches EOF (the controller detached or died), or
  when no PING came for ``--lease`` seconds (a controller that hangs, or a broken
  remote connection).

Wire format, both directions: ``>BI`` (kind, number of parts), then for each part
``>I`` length and the bytes.
"""

import hashlib
import json
import os
import secrets
import select
import signal
import struct
import subprocess
import sys
import time
import types

#: pyzmq, imported once the kernel process is started (see Relay.start_kernel).
zmq = types.ModuleType("zmq")

# Frame kinds. Keep in sync with sandbox_kernel/wire.py.
SHELL, CONTROL, STDIN, IOPUB = 1, 2, 3, 4
OPEN, PING, INTERRUPT, SHUTDOWN, STAT = 10, 11, 12, 13, 14
HELLO, EXITED, LOG, PONG, STATED = 20, 21, 22, 23, 24

HEADER = struct.Struct(">BI")
LENGTH = struct.Struct(">I")
MAX_PART = 256 * 1024 * 1024
IOV_MAX = 1024
#: Most messages, and bytes, taken from one socket before they are written out.
DRAIN_MESSAGES = 64
DRAIN_BYTES = 4 * 1024 * 1024
RUNTIME_DIR = "/tmp/.sandbox-kernel"


# The first line the kernel process writes: which of its patches applied (see
# sandbox_kernel/bootstrap.py, whose text the host passes as --bootstrap).
PATCH_REPORT = b"\x00sandbox-kernel-patches "
MAX_REPORT = 65536


def parse_args(argv):
    opts = {"claim-timeout": 0.0, "lease": 6.0, "reap": 1.0, "warm-delay": 0.0}
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            name, value = arg[2:].split("=", 1)
            opts[name] = value if name in ("bootstrap", "kernel-user") else float(value)
    return opts


def folder_fingerprint(path):
    """A digest of the names, sizes and modification times of the files under ``path``.

    For the outputs door (see the host's results.py): the host asks after each cell
    whether the folder changed, here rather than in the kernel, so the next cell never
    waits behind the question. Symlinks are not followed; a missing folder is empty.
    """
    digest = hashlib.sha256()
    seen = 0
    for root, dirs, files in os.walk(path):
        dirs.sort()
        seen += len(files)
        if seen > 20000:
            # Bounded: a folder this big counts as changed, and the host's caps apply.
            return secrets.token_hex(16).encode()
        for name in sorted(files):
            full = os.path.join(root, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            digest.update(b"%s\0%d\0%d\0" % (full, st.st_size, st.st_mtime_ns))
    return digest.hexdigest().encode()


def oom_kills():
    """The cgroup's OOM-kill counter, as the container sees its own cgroup (v2 or v1)."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        except (OSError, ValueError):
            continue
    return -1


def make_undumpable():
    """Keep the sandbox's code out of this process's /proc entries.

    The relay runs as the same user as the kernel (under runc), and its stdout is the
    host transport: without this, a cell could open /proc/<relay>/fd/1 and write frames
    to the host. (gVisor ignores the flag: there :func:`become_relay` protects it.) A non-dumpable process's fds, memory and environ need CAP_SYS_PTRACE,
    which nothing in the sandbox has. (The kernel is started with execve, which makes
    it dumpable again, as Python debugging tools expect.)
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except Exception:
        pass


def become_relay(kernel_user, relay_uid):
    """Take real and saved uids of our own, the kernel's as the effective one (gVisor).

    Under gVisor a non-dumpable PID 1 is not enough: it delivers SIGKILL from inside
    to the init and lets the same uid open its fds through /proc. kill(2) and /proc
    compare the real and saved uids, which become ``relay_uid``; file access uses the
    effective uid, which stays the kernel's (its files and sockets are ours to use).
    The container starts as root with CAP_SETUID, CAP_SETGID and CAP_SETPCAP only;
    the bounding set is emptied first, and leaving uid 0 clears the rest. Returns the
    kernel's (uid, gid), or None when there is no switch to make (under runc).
    """
    if not kernel_user:
        return None
    uid, gid = (int(part) for part in kernel_user.split(":"))
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
        for cap in range(64):
            prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP; unknown numbers fail harmlessly
    except Exception:
        pass
    os.setresuid(relay_uid, uid, relay_uid)
    with open("/proc/self/status") as f:
        held = [line for line in f if line.startswith(("CapPrm:", "CapEff:"))]
    if any(int(line.split()[1], 16) for line in held):
        os._exit(5)  # never run a kernel next to a relay that kept a capability
    return uid, gid


def redundant(parts):
    """IOPub messages the host never relays: the outer kernel publishes its own
    execute_input and busy status. (Idle is kept: it marks a request's last output.)"""
    topic = parts[0].bytes
    if topic.endswith(b".execute_input"):
        return True
    return topic.endswith(b".status") and b'"busy"' in parts[-1].bytes[:64]


#: The size asked for the pipe to the host (Linux's limit for an unprivileged process).
STDOUT_PIPE_BYTES = 1 << 20


def widen_stdout_pipe(fd=1):
    """Give the pipe that carries frames to the host (through the engine) room for
    a whole piece of printed output (the inner kernel sends every half megabyte):
    with the default 64 KiB, each piece's write blocked eight times, each a wake-up
    of this process and of the engine's shim. Not a pipe, or refused: kept as is."""
    try:
        import fcntl

        fcntl.fcntl(fd, 1031, STDOUT_PIPE_BYTES)  # F_SETPIPE_SZ
    except (OSError, ValueError):
        pass


def drain(fd):
    try:
        while os.read(fd, 4096):
            pass
    except OSError:  # empty (EAGAIN)
        pass


def exit_code(status):
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def wait_warm(delay):
    """A warm spare's wait before its kernel starts, so that booting it does not slow
    the session that just made it: ``delay`` seconds, or less when woken.

    Woken by anything on stdin (a claim: its controller's first frame) or by SIGUSR1
    from the engine (a kernel restarting: its successor will claim this spare in a
    moment, and the old kernel sends it on its way out). Only then is there a handler
    for SIGUSR1; afterwards the default again, which the init of a PID namespace never
    receives: no process of the sandbox can signal the relay.
    """
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end)
    signal.signal(signal.SIGUSR1, lambda *_: None)
    try:
        select.select([0, read_end], [], [], delay)
    finally:
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        os.close(read_end)
        os.close(write_end)


def kernel_preexec(ids):
    """In the kernel's process before exec: its uids (when the relay has its own)."""

    def preexec():
        raise_oom_score()
        if ids is not None:
            os.setresuid(ids[0], ids[0], ids[0])

    return preexec


def raise_oom_score():
    # Make the kernel, not the relay, the OOM killer's first choice, so the relay
    # survives to report what happened. Raising one's own score needs no privilege.
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


class Relay:
    def __init__(self, opts):
        self.opts = opts
        # The inner kernel's messages are not signed: its sockets are in this
        # container's private tmpfs, where the only other code is the sandboxed code
        # itself, which runs inside that kernel anyway and could read any key from it.
        # Signing would only cost a pass over every byte of output, twice.
        self.key = ""
        self.inbuf = bytearray()
        self.opened = False
        self.hello_sent = False
        # The kernel's patch report (None until its first line came), for HELLO.
        self.patches = None
        self.report_buf = b""
        self.kernel_done = False
        self.reap = bool(opts["reap"])
        self.last_ping = time.monotonic()
        self.oom_at_start = oom_kills()
        self.kernel_ids = None

    def write_frame(self, kind, parts):
        self.write_frames([(kind, parts)])

    def write_frames(self, frames):
        chunks = []
        for kind, parts in frames:
            chunks.append(memoryview(HEADER.pack(kind, len(parts))))
            for part in parts:
                view = memoryview(part).cast("B")
                chunks.append(memoryview(LENGTH.pack(view.nbytes)))
                chunks.append(view)
        # One gathered write, no copies; a pipe may take only part of a large frame.
        try:
            while chunks:
                written = os.writev(1, chunks[:IOV_MAX])
                while chunks and written >= len(chunks[0]):
                    written -= len(chunks[0])
                    chunks.pop(0)
                if chunks and written:
                    chunks[0] = chunks[0][written:]
        except OSError:  # the host is gone (as PID 1, SIGPIPE does not end us)
            self.stop(0)

    def drain_socket(self, source, out):
        """Take what the kernel has queued on one socket (a reply, its outputs and the
        idle status come together), within bounds, so they leave in one write."""
        kind = self.kind_of[source]
        size = 0
        for _ in range(DRAIN_MESSAGES):
            try:
                parts = source.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if self.opened and not (kind == IOPUB and self.drop_redundant and redundant(parts)):
                out.append((kind, [p.buffer for p in parts]))
                size += sum(len(p.buffer) for p in parts)
                if size >= DRAIN_BYTES:
                    return  # the rest waits for the next turn (the poll is level-triggered)

    def start_kernel(self):
        os.makedirs(RUNTIME_DIR, mode=0o700, exist_ok=True)
        os.makedirs(os.environ.get("HOME", "/tmp/home"), mode=0o700, exist_ok=True)
        workdir = os.environ.get("SANDBOX_WORKDIR", "/tmp/work")
        os.makedirs(workdir, mode=0o700, exist_ok=True)
        base = RUNTIME_DIR + "/kernel"
        connection = {
            "transport": "ipc",
            "ip": base,
            "shell_port": 1,
            "iopub_port": 2,
            "stdin_port": 3,
            "control_port": 4,
            "hb_port": 5,
            "key": self.key,
            "signature_scheme": "hmac-sha256",
            "kernel_name": "sandbox-inner",
        }
        conn_file = RUNTIME_DIR + "/connection.json"
        with open(os.open(conn_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(connection, f)
        # Automagic off: bootstrap.automagic_for_shell_like_lines turns it on for the
        # lines the validator judges as magics, so `ls -n data/` works as on a plain
        # kernel while `run(x)` stays Python; if that patch cannot apply, it stays off.
        kernel_config = {
            "InteractiveShell": {"automagic": False},
            # History lives in the kernel's memory: cells never land in a file that
            # other code in the sandbox could read back (or that fills the tmpfs).
            "HistoryManager": {"hist_file": ":memory:"},
            # The host waits for the idle status anyway; ipykernel's half-millisecond
            # sleep before each reply is pure latency here.
            "IPythonKernel": {"_execute_sleep": 0.0},
        }
        config_file = RUNTIME_DIR + "/kernel_config.json"
        with open(config_file, "w") as f:
            json.dump(kernel_config, f)
        self.kernel = subprocess.Popen(
            [
                sys.executable,
                "-c",
                self.opts["bootstrap"],
                RUNTIME_DIR + "/iopub-pipe",
                "-f",
                conn_file,
                "--config=" + config_file,
            ],
            stdin=subprocess.DEVNULL,
            # Never our stdout: that is the transport, and the kernel's own fd 1 must
            # not be able to write frames onto it.
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
            preexec_fn=kernel_preexec(self.kernel_ids),
        )
        self.kernel_log_fd = self.kernel.stdout.fileno()  # type: ignore[union-attr]
        os.set_blocking(self.kernel_log_fd, False)

        # Imported only now: the import (about 50 ms) overlaps the kernel's start, the
        # longest part of a cold start, instead of delaying it.
        global zmq
        import zmq

        self.ctx = zmq.Context()

        # The kernel routes input_request to the identity that sent execute_request,
        # so the stdin socket must share the shell socket's identity (as
        # jupyter_client's clients do).
        identity = secrets.token_hex(8).encode()

        def connect(kind, port):
            sock = self.ctx.socket(kind)
            sock.linger = 0
            if kind == zmq.DEALER:
                sock.identity = identity
            if kind == zmq.SUB:
                sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect("ipc://%s-%d" % (base, port))
            return sock

        self.sockets = {
            SHELL: connect(zmq.DEALER, 1),
            IOPUB: connect(zmq.SUB, 2),
            STDIN: connect(zmq.DEALER, 3),
            CONTROL: connect(zmq.DEALER, 4),
        }
        self.kind_of = {sock: kind for kind, sock in self.sockets.items()}

    def hello(self):
        self.hello_sent = True
        info = {
            "patches": self.patches if self.patches is not None else {},
            "key": self.key,
            "signature_scheme": "hmac-sha256",
            "python": sys.version.split()[0],
            "executable": sys.executable,
            "kernel_pid": self.kernel.pid,
            "relay_pid": os.getpid(),
            "uid": os.getuid(),
        }
        self.write_frame(HELLO, [json.dumps(info).encode()])

    def handle_frame(self, kind, parts):
        if kind == PING:
            # The host counts a silent relay (stopped, frozen) as a dead sandbox.
            if self.opened:
                self.write_frame(PONG, [])
            return
        if kind in (SHELL, CONTROL, STDIN):
            self.sockets[kind].send_multipart(parts, copy=False)
        elif kind == OPEN:
            if self.opened:
                # A second OPEN: two controllers attached to one container (two kernels
                # claimed one spare). It must serve neither: each starts a new one.
                self.stop(5)
            else:
                self.opened = True
                # HELLO says which patches applied: it waits for the kernel's first
                # line, written before ipykernel starts (the host waits for the
                # kernel's first reply anyway).
                if self.patches is not None:
                    self.hello()
        elif kind == INTERRUPT:
            try:
                os.killpg(self.kernel.pid, signal.SIGINT)
            except OSError:
                pass
        elif kind == SHUTDOWN:
            self.stop(0)
        elif kind == STAT and len(parts) == 2 and self.opened:
            self.write_frame(STATED, [parts[0], folder_fingerprint(parts[1])])

    def read_stdin(self):
        data = os.read(0, 1 << 20)
        if not data:
            self.stop(0)
        self.last_ping = time.monotonic()
        buf = self.inbuf
        buf += data
        pos = 0
        while len(buf) - pos >= HEADER.size:
            kind, count = HEADER.unpack_from(buf, pos)
            cursor = pos + HEADER.size
            parts = []
            complete = True
            for _ in range(count):
                if len(buf) - cursor < LENGTH.size:
                    complete = False
                    break
                (length,) = LENGTH.unpack_from(buf, cursor)
                if length > MAX_PART:
                    self.stop(3)
                cursor += LENGTH.size
                if len(buf) - cursor < length:
                    complete = False
                    break
                parts.append(bytes(buf[cursor : cursor + length]))
                cursor += length
            if not complete:
                break
            pos = cursor
            self.handle_frame(kind, parts)
        del buf[:pos]

    def forward_kernel_log(self):
        fd = self.kernel_log_fd
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, OSError, ValueError):
            return
        if not data:
            # The kernel closed its end (it is exiting): stop polling a pipe at EOF.
            try:
                self.poller.unregister(fd)
            except (KeyError, AttributeError):
                pass
            return
        if self.patches is None:
            data = self.read_patch_report(data)
        if data and self.opened:
            self.write_frame(LOG, [data])

    def read_patch_report(self, data):
        """Take the kernel's first line, its patch report; what follows is log."""
        buf = self.report_buf + data
        if not buf.startswith(PATCH_REPORT[: len(buf)]):
            self.patches = {"bootstrap": "no patch report"}
            rest = buf
        else:
            end = buf.find(b"\n")
            if end < 0 and len(buf) < MAX_REPORT:
                self.report_buf = buf
                return b""
            line, rest = (buf[:end], buf[end + 1 :]) if end >= 0 else (buf, b"")
            try:
                self.patches = json.loads(line[len(PATCH_REPORT) :].decode("utf-8"))
            except ValueError:
                self.patches = {"bootstrap": "unreadable patch report"}
        self.drop_redundant = self.patches.get("no_busy_or_execute_input") != "applied"
        self.report_buf = b""
        if self.opened and not self.hello_sent:
            self.hello()
        return rest

    def kernel_exited(self, returncode):
        self.forward_kernel_log()
        if self.opened and not self.hello_sent:
            self.hello()
        if self.opened:
            status = {
                "returncode": returncode,
                "oom_kills": max(oom_kills() - self.oom_at_start, 0)
                if self.oom_at_start >= 0
                else -1,
            }
            self.write_frame(EXITED, [json.dumps(status).encode()])
            # Stay until the host is done with the container (it reads the final usage
            # from the cgroup, then removes it): SHUTDOWN, EOF or the lease ends us.
            self.kernel_done = True
            return
        self.stop(0)

    def stop(self, code):
        kernel = getattr(self, "kernel", None)
        if kernel is not None and kernel.poll() is None:
            try:
                os.killpg(kernel.pid, signal.SIGKILL)
            except OSError:
                pass
        os._exit(code)

    def wake_on_child_exit(self):
        """A pipe that becomes readable when a process of ours exits (SIGCHLD).

        Orphans are reaped as soon as they exit, as an init does, not at the loop's
        next wake-up (up to 2 s later): a burst of short-lived orphans must not pile up
        as zombies against the pids limit. The handler does nothing itself; Python
        writes the signal's number to the pipe, which wakes the poll."""
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        return read_end

    def reap_children(self):
        """As PID 1, collect every exited process: orphans are re-parented to us."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.kernel.pid and self.kernel.returncode is None:
                self.kernel.returncode = exit_code(status)

    def run(self):
        self.kernel_ids = become_relay(
            self.opts.get("kernel-user"), int(self.opts.get("relay-uid", 0))
        )
        make_undumpable()
        widen_stdout_pipe()
        if self.opts["warm-delay"]:
            wait_warm(self.opts["warm-delay"])
        self.start_kernel()
        poller = self.poller = zmq.Poller()
        poller.register(0, zmq.POLLIN)
        poller.register(self.kernel_log_fd, zmq.POLLIN)
        child_died = self.wake_on_child_exit() if self.reap else None
        if child_died is not None:
            poller.register(child_died, zmq.POLLIN)
        for sock in self.sockets.values():
            poller.register(sock, zmq.POLLIN)
        started = time.monotonic()
        claim_timeout = self.opts["claim-timeout"]
        lease = self.opts["lease"]
        out: list[tuple[int, list[memoryview]]] = []
        while True:
            # Every frame, log line and PING (every 2 s) wakes this loop; the timeout
            # only bounds how late a lease, a claim timeout or an orphan is noticed.
            events = dict(poller.poll(2000))
            for source in events:
                if source == 0:
                    self.read_stdin()
                elif source == child_died:
                    drain(child_died)  # reaped below
                elif isinstance(source, int):
                    self.forward_kernel_log()
                else:
                    self.drain_socket(source, out)
            if out:
                self.write_frames(out)
                out = []
            if self.reap:
                self.reap_children()
            returncode = None if self.kernel_done else self.kernel.poll()
            if returncode is not None:
                self.kernel_exited(returncode)
            now = time.monotonic()
            if not self.opened and claim_timeout and now - started > claim_timeout:
                self.stop(0)
            if self.opened and lease and now - self.last_ping > lease:
                self.stop(4)


if __name__ == "__main__":
    # The relay is the container's PID 1: it reaps orphans (--reap) and only the
    # signals it handles reach it, none of them from inside the container.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    Relay(parse_args(sys.argv[1:])).run()
