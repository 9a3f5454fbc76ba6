"""How the escape suite reads under gVisor (``SANDBOX_KERNEL_TEST_RUNTIME=runsc``).

Measured on runsc release 2022-12-19 (Debian 12, ptrace platform), registered with
``--network=none --oci-seccomp``. The kinds of difference, each with its reason:

* :data:`GAPS`: a protection of the sandbox that does **not** hold under gVisor (strict
  xfail: when a gVisor release closes the gap, the test says so). Empty: the six gaps
  found are closed by the container's gVisor differences (sandbox_kernel/gvisor.py).
* :data:`BLOCKED_AS`: attacks blocked under gVisor in another way than under runc
  (the process that tries dies instead of getting an error).
* :data:`GVISOR_PROTECTS`: the negative control cannot succeed, because gVisor itself
  refuses the attack even with the sandbox's protection dropped: there gVisor is the
  protection (the control then checks that the attack is still blocked).
* :func:`control_settings`: controls that weaken to Docker's default seccomp profile
  use no seccomp instead: under gVisor Docker's default profile stops every thread
  (its clone3 rule answers EPERM: runsc ignores errnoRet), so no kernel would start;
  and :data:`CONTROL_EXTRA`, controls that must weaken one setting more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from escape.attacks import announced
from harness import CellResult

#: Hardened attacks that get through under gVisor: attack id -> why. None since the
#: container's gVisor differences (sandbox_kernel/gvisor.py) closed the six of release
#: 2022-12-19: noexec against mmap (x2), fork_bomb, inode_exhaustion, kill_pid1, and
#: the relay's stdout through /proc (test_cell_cannot_flood_the_host_through_the_transport).
GAPS: dict[str, str] = {}

_SEGV = (
    "the host's noexec refuses gVisor's PROT_EXEC mapping of the file (the writable "
    "areas are host tmpfs volumes under gVisor), and gVisor answers the process with "
    "SIGSEGV where Linux returns EPERM from mmap: no code from the file runs, the kernel "
    "dies and is restarted, announced"
)

#: Hardened attacks blocked differently under gVisor: id -> (how it shows, why).
BLOCKED_AS: dict[str, tuple[Callable[[CellResult], None], str]] = {
    "dlopen_from_tmp": (announced("SandboxRestarted", "SIGSEGV"), _SEGV),
    "dlopen_from_dev_shm": (announced("SandboxRestarted", "SIGSEGV"), _SEGV),
}

#: Attacks that pass under gVisor only on a slower machine's timing: id -> why (xfail, not strict).
SLOWER: dict[str, str] = {
    "output_flood": (
        "80,000 writes outlast the 2 s timeout under gVisor (ptrace platform); the output "
        "cap held all the same"
    ),
}

#: Negative controls that cannot succeed under gVisor: attack id -> what stops it.
GVISOR_PROTECTS: dict[str, str] = {
    "raw_socket": "gVisor with --network=none has no raw sockets (EPERM)",
    "packet_socket": "gVisor with --network=none has no packet sockets (EPERM)",
    "su_and_sudo": "gVisor refuses su's setuid switch ('su: System error')",
    "docker_and_host_unix_sockets": (
        "gVisor's file system (its gofer) does not connect to host unix sockets"
    ),
    "tcp_host_loopback": "runsc --network=none: the sandbox has its own loopback only",
    "host_unix_sockets_in_netns": "runsc --network=none: no host network namespace is shared",
    "routes_and_interfaces": "runsc --network=none: only gVisor's own loopback exists",
    "netlink_audit": "gVisor has no NETLINK_AUDIT (EPROTONOSUPPORT)",
    "netlink_netfilter": "gVisor has no NETLINK_NETFILTER (EPROTONOSUPPORT)",
    "vsock_to_vm_host": "gVisor has no AF_VSOCK (EAFNOSUPPORT)",
    "process_vm_readv": "gVisor has no process_vm_readv (ENOSYS)",
    "mount": "gVisor refuses mount, also in a user namespace (EPERM)",
    "setns": "gVisor does not support setns into a user namespace (ENOTSUP)",
    "keyctl": "gVisor has no kernel keyring (EACCES)",
    "bpf": "gVisor has no bpf (EPERM)",
    "perf_event_open": "gVisor has no perf events (ENODEV)",
    "userfaultfd": "gVisor has no userfaultfd (ENOSYS)",
    "mknod_device": (
        "under gVisor /tmp is a host tmpfs volume served by gVisor's gofer, which creates "
        "no device node there (EPERM), even for root with every capability and no seccomp"
    ),
    "no_new_privileges": (
        "runsc sets no_new_privs on every process of the sandbox, whatever the container's "
        "setting (prctl says 1 with no_new_privileges off)"
    ),
    "ptrace_attach": (
        "gVisor applies Yama's ptrace_scope 1: a child cannot attach to its parent (EPERM)"
    ),
}

#: Negative controls that need more time or memory under gVisor than their limits give:
#: id -> why (xfail, not strict: they may pass on a faster machine).
CONTROL_SLOWER: dict[str, str] = {
    "fork_bomb": (
        "400 forked kernel-sized Pythons cost gVisor about 10 GiB (22-29 MiB each, "
        "measured), and RLIMIT_NPROC is bounded by the memory limit (gvisor.nproc): "
        "the control would need a memory limit this shared machine cannot give"
    ),
    "output_flood": "under gVisor 8 MB of printing outlasts the control's 2 s timeout",
}


#: Controls that need more weakened under gVisor: id -> (extra settings, why).
CONTROL_EXTRA: dict[str, tuple[dict[str, Any], str]] = {
    "thread_bomb": (
        {"memory": "16g"},
        "under gVisor RLIMIT_NPROC is also bounded by the memory limit (gvisor.nproc: 64 "
        "tasks at 2 GiB), so the control lifts both; 400 idle threads use little of it",
    ),
}


def control_settings(attack_id: str, settings: dict[str, Any]) -> dict[str, Any]:
    """A control's settings as gVisor can run them (Docker's default profile: none)."""
    settings = {**settings, **CONTROL_EXTRA.get(attack_id, ({}, ""))[0]}
    if settings.get("seccomp_profile") == "docker-default":
        return {**settings, "seccomp_profile": "unconfined"}
    return settings
