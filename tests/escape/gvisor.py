"""How the escape suite reads under gVisor (``SANDBOX_KERNEL_TEST_RUNTIME=runsc``).

Measured on runsc release 2022-12-19 (Debian 12, ptrace platform), registered with
``--network=none --oci-seccomp``. Three kinds of difference, each with its reason:

* :data:`GAPS`: a protection of the sandbox that does **not** hold under gVisor. The
  hardened test is expected to fail there (strict xfail: when a gVisor release closes
  the gap, the test says so). What the attack reaches is gVisor's own kernel, not the
  host's, and the kernel stays usable; but the protection named by the attack is gone.
* :data:`GVISOR_PROTECTS`: the negative control cannot succeed, because gVisor itself
  refuses the attack even with the sandbox's protection dropped: there gVisor is the
  protection (the control then checks that the attack is still blocked).
* :func:`control_settings`: controls that weaken to Docker's default seccomp profile
  use no seccomp instead: under gVisor Docker's default profile stops every thread
  (its clone3 rule answers EPERM: runsc ignores errnoRet), so no kernel would start.
"""

from __future__ import annotations

from typing import Any

_NOEXEC = (
    "gVisor does not apply the tmpfs's noexec to mmap(PROT_EXEC): ld.so and dlopen run "
    "code from /tmp (execve of it is still refused); the code runs on gVisor's kernel"
)

#: Hardened attacks that get through under gVisor: attack id -> why.
GAPS: dict[str, str] = {
    "exec_via_dynamic_loader": _NOEXEC,
    "dlopen_from_tmp": _NOEXEC,
    "fork_bomb": (
        "under gVisor the pids setting is RLIMIT_NPROC (spec.pids_limits), which stops "
        "threads at the limit (thread_bomb is blocked), but forked Pythons cost gVisor "
        "more memory than under runc: 2 GiB runs out before 256 processes, and the "
        "memory limit ends the bomb with an announced restart"
    ),
    "inode_exhaustion": "gVisor's tmpfs ignores nr_inodes (the size limit holds)",
    "kill_pid1": (
        "gVisor delivers SIGKILL from inside to the PID namespace's init (the relay): the "
        "cell ends its own sandbox, which is restarted with an announcement"
    ),
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
    "fork_bomb": "400 forked Pythons outgrow the 2 GiB limit under gVisor before the count",
    "output_flood": "under gVisor 8 MB of printing outlasts the control's 2 s timeout",
}


def control_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A control's settings as gVisor can run them (Docker's default profile: none)."""
    if settings.get("seccomp_profile") == "docker-default":
        return {**settings, "seccomp_profile": "unconfined"}
    return settings
