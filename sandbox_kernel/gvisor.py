"""How the container differs under gVisor (runsc): pure functions of the settings.

Measured on runsc release 2022-12-19 (Debian 12, ptrace platform). gVisor's own kernel
leaves three protections of the sandbox out, and each difference below puts it back
(:mod:`.spec` applies them when :func:`~.runtime.is_gvisor` says so; never under runc):

* **noexec against mmap, nr_inodes**: gVisor's internal tmpfs refuses execve of a file
  on a noexec mount, but maps it PROT_EXEC (ld.so and dlopen run code from /tmp and
  /dev/shm), and it ignores ``nr_inodes``. So the writable areas are not gVisor's tmpfs
  but engine-side ``local`` volumes of type tmpfs (:func:`tmpfs_volume`), served to
  gVisor by its gofer from the host: the host kernel's tmpfs counts the inodes, and its
  noexec refuses gVisor's host mapping, so code from there never runs (the process that
  tries gets SIGSEGV, where Linux answers mmap with EPERM).
* **PID 1 and its /proc entries**: gVisor delivers SIGKILL from inside to the PID
  namespace's init, and lets a process of the same uid open a non-dumpable process's
  fds through /proc. Both are the relay's protections under runc (it is PID 1 and not
  dumpable), and its stdout is the host transport. So the relay gets real and saved
  uids of its own (:data:`RELAY_UID`), which kill(2) and /proc's access check compare,
  and keeps the kernel's uid as its effective uid, which file access uses (it creates
  the kernel's files and connects to its sockets). The container starts as root with
  only CAP_SETUID, CAP_SETGID and CAP_SETPCAP; the relay switches before anything else
  runs (relay.py ``become_relay``), which empties its capabilities and bounding set.
* **fork's cost**: gVisor breaks copy-on-write in 2 MiB units, so a forked kernel-sized
  Python costs it 22-29 MiB (ipykernel imported; numpy and pandas too), against about
  1.4 MiB under runc. The ``pids`` setting becomes RLIMIT_NPROC (:func:`nproc`), also
  bounded by what the memory limit holds at :data:`FORK_BYTES` a process, so a fork
  bomb meets EAGAIN before the memory limit ends the sandbox.
"""

from __future__ import annotations

from typing import Any

from .config import SandboxConfig, parse_size

#: The relay's real and saved uid under gVisor: no process of the sandbox has it.
RELAY_UID = 65534

#: Capabilities the container starts with under gVisor, for the relay's switch only.
RELAY_CAPS = ["SETUID", "SETGID", "SETPCAP"]

#: Memory a forked process may cost gVisor (measured 22-29 MiB for a kernel-sized Python).
FORK_BYTES = 32 * 1024 * 1024

VOLUME_LABEL = "sandbox-kernel"


def tmpfs_volume(
    target: str, *, size: int, inodes: int, noexec: bool, mode: str, owner: str = ""
) -> dict[str, Any]:
    """An anonymous engine-side volume of type tmpfs: memory only, capped, removed with
    the container (``AutoRemove``), and it works with a remote engine.

    Args:
        owner: ``uid:gid`` of its root folder (numeric), or empty for root.
    """
    options = [f"size={size}", f"nr_inodes={inodes}", f"mode={mode}", "nosuid", "nodev"]
    # The host's tmpfs is exec unless told noexec; say "exec" so the choice is visible.
    options.append("noexec" if noexec else "exec")
    uid, _, gid = owner.partition(":")
    if uid.isdigit():
        options += [f"uid={uid}", f"gid={gid if gid.isdigit() else uid}"]
    # The engine API's Mount, as docker.types.Mount builds it (tests/test_seams.py).
    return {
        "Target": target,
        "Source": None,
        "Type": "volume",
        "ReadOnly": False,
        "VolumeOptions": {
            "NoCopy": True,
            "Labels": {VOLUME_LABEL: "1"},
            "DriverConfig": {
                "Name": "local",
                "Options": {"type": "tmpfs", "device": "tmpfs", "o": ",".join(options)},
            },
        },
    }


def writable_mounts(config: SandboxConfig) -> list[dict[str, Any]]:
    """/tmp and /dev/shm as host tmpfs volumes (instead of gVisor's own tmpfs)."""
    return [
        tmpfs_volume(
            "/tmp",
            size=parse_size(config.tmp_size),
            inodes=config.tmp_inodes,
            noexec=config.tmp_noexec,
            mode="1777",
        ),
        # Docker mounts /dev/shm noexec whatever the settings; so does this.
        tmpfs_volume(
            "/dev/shm",
            size=parse_size(config.shm_size),
            inodes=config.tmp_inodes,
            noexec=True,
            mode="1777",
        ),
    ]


def kernel_user(config: SandboxConfig) -> str:
    """``uid:gid`` the relay hands the kernel when it takes a uid of its own, else "".

    Only for a numeric, non-root kernel user other than :data:`RELAY_UID` (a root
    kernel, as some negative controls run, has nothing the split would protect).
    """
    uid, _, gid = config.user.partition(":")
    if not uid.isdigit() or int(uid) in (0, RELAY_UID):
        return ""
    return f"{uid}:{gid if gid.isdigit() else uid}"


def nproc(config: SandboxConfig) -> int:
    """RLIMIT_NPROC that carries the ``pids`` setting: bounded by the memory's forks."""
    memory = parse_size(config.memory)
    return min(config.pids, max(memory // FORK_BYTES, 16)) if memory else config.pids
