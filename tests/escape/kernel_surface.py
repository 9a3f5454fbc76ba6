"""Attacks on the kernel's surface: dangerous syscalls, privileges, and the kernel's
control files and devices (Docker's masked and read-only paths).

One family of the escape suite's table (see :mod:`.attacks` for the rules).
"""

from __future__ import annotations

from .core import (
    DOCKER_DEFAULT,
    NO_CONTROL_DOCKER,
    ROOT_CAPS,
    ROOT_CAPS_UNCONFINED,
    UNCONFINED,
    Attack,
)

ATTACKS: list[Attack] = [
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
        no_control=NO_CONTROL_DOCKER,
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
        no_control=NO_CONTROL_DOCKER
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
]
