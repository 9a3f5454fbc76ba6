"""Attacks on the file system: writes outside the private tmpfs, running dropped files,
the host's files, the host's environment and the outer kernel's key.

One family of the escape suite's table (see :mod:`.attacks` for the rules).
"""

from __future__ import annotations

from .core import DLOPEN, DOCKER_DEFAULT, EXEC, LDSO, MOUNTED, ROOT_RW, ROOT_RW_NOTE, Attack

ATTACKS: list[Attack] = [
    # -- writes outside the private tmpfs ------------------------------------------------------
    Attack(
        "write_etc",
        ROOT_RW_NOTE,
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
        ROOT_RW_NOTE,
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
        ROOT_RW_NOTE,
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
        ROOT_RW_NOTE + " (the sandbox user's own HOME is /tmp/home, in the private tmpfs)",
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
        ROOT_RW_NOTE
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
        'FOLDER = "/tmp"\n' + EXEC,
        {"tmp_noexec": False},
    ),
    Attack(
        "exec_dev_shm",
        "Docker mounts /dev/shm noexec for every container (tmp_noexec only adds /tmp)",
        'FOLDER = "/dev/shm"\n' + EXEC,
        {"tmp_noexec": False},
        # Docker mounts /dev/shm noexec,nosuid,nodev itself; no sandbox setting makes it
        # exec-capable. The control runs the same attack against /tmp with tmp_noexec off:
        # it proves the attack recognises a successful exec.
        control_code='FOLDER = "/tmp"\n' + EXEC,
    ),
    Attack(
        "exec_via_dynamic_loader",
        "tmp_noexec (ld.so maps the program with PROT_EXEC, which a noexec mount refuses)",
        'FOLDER = "/tmp"\n' + LDSO,
        {"tmp_noexec": False},
    ),
    Attack(
        "exec_via_dynamic_loader_dev_shm",
        "Docker mounts /dev/shm noexec (ld.so's PROT_EXEC mapping is refused as from /tmp)",
        'FOLDER = "/dev/shm"\n' + LDSO,
        {"tmp_noexec": False},
        # No setting makes /dev/shm exec-capable: the control is the /tmp attack, weakened.
        control_code='FOLDER = "/tmp"\n' + LDSO,
    ),
    Attack(
        "dlopen_from_tmp",
        "tmp_noexec (a dropped shared library cannot be mapped executable)",
        'FOLDER = "/tmp"\n' + DLOPEN,
        {"tmp_noexec": False},
    ),
    Attack(
        "dlopen_from_dev_shm",
        "Docker mounts /dev/shm noexec (a dropped shared library cannot be mapped executable)",
        'FOLDER = "/dev/shm"\n' + DLOPEN,
        {"tmp_noexec": False},
        control_code='FOLDER = "/tmp"\n' + DLOPEN,
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
]
