"""Resource exhaustion, and killing what runs the sandbox.

One family of the escape suite's table (see :mod:`.attacks` for the rules).
"""

from __future__ import annotations

from .core import LIMITS, Attack, MiB, announced, fail

ATTACKS: list[Attack] = [
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
            (cell.status == "ok" or fail(cell))
            and ("output truncated" in cell.stderr or fail(cell))
            and (len(cell.stdout) <= MiB or fail(cell))
        ),
        check_succeeded=lambda cell: len(cell.stdout) >= 8_000_000 or fail(cell),
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
            time.sleep(1)  # the relay reaps at SIGCHLD, not at its next wake-up (2 s)
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
