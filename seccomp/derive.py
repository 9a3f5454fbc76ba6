"""Derive ``profile.json`` from Docker's default seccomp profile.

``docker-default.json`` is moby's ``profiles/seccomp/default.json`` exactly as the
Docker engine of this project's machines (20.10.24, Debian bookworm) ships it. The
sandbox profile is that file with the changes below, made by this script so that every
change is written down once, with its reason, and can be reviewed and re-applied when
the base is updated::

    python seccomp/derive.py            # rewrite profile.json and profile-runsc.json
    python seccomp/derive.py --check    # exit 1 when either is not up to date

How the changes are made: a syscall that the sandbox denies is *removed* from every
allow rule of the base (also the capability-gated ones, so the denial holds even for an
administrator who adds a capability), and an explicit rule with the reason as its
``comment`` is added. Adding a deny rule next to an allow rule for the same syscall
would give libseccomp two actions for one syscall, which it rejects or resolves in a
way that is not the one intended.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BASE = HERE / "docker-default.json"
PROFILE = HERE / "profile.json"
#: The variant for gVisor (runsc with --oci-seccomp): see :func:`derive_runsc`.
PROFILE_RUNSC = HERE / "profile-runsc.json"

EPERM = 1
EAFNOSUPPORT = 97
AF_UNIX = 1

# File-type bits of a mode (S_IFMT) and the types mknod may still create.
S_IFMT = 0o170000
MKNOD_ALLOWED_TYPES = {
    0: "a regular file (type 0)",
    0o100000: "a regular file",
    0o010000: "a FIFO (os.mkfifo)",
    0o140000: "a socket file",
}

#: Syscalls denied with EPERM, each with the reason that goes into its rule's comment.
DENIED: dict[str, str] = {
    "ptrace": "no tracing: ptrace reads and writes other processes of the sandbox and has "
    "been the path of many kernel bugs; no notebook code needs it",
    "process_vm_readv": "reads another process's memory directly, like ptrace",
    "process_vm_writev": "writes another process's memory directly, like ptrace",
    "io_uring_setup": "io_uring is a large, young kernel surface with a long list of "
    "privilege escalations, and it bypasses seccomp for the operations it submits",
    "io_uring_enter": "see io_uring_setup",
    "io_uring_register": "see io_uring_setup",
    "userfaultfd": "lets a process stall the kernel on a page fault at a chosen moment, "
    "the classic tool to win kernel race conditions",
    "keyctl": "the kernel keyring is not namespaced: keys could leak between containers",
    "add_key": "the kernel keyring is not namespaced: keys could leak between containers",
    "request_key": "the kernel keyring is not namespaced: keys could leak between containers",
    "bpf": "no eBPF programs or maps: a large kernel attack surface (verifier bugs)",
    "perf_event_open": "performance counters leak information about the host and other "
    "processes, and have had many kernel bugs",
    "memfd_create": "anonymous in-memory files can be executed, which would get around the "
    "read-only root and the noexec /tmp; the scientific stack does not use them",
    "execveat": "executing a file descriptor (e.g. a memfd) would get around the read-only "
    "root and the noexec /tmp; plain execve stays allowed",
    "mount": "no mounting, even with CAP_SYS_ADMIN: the file system layout is fixed",
    "umount": "no unmounting: it could uncover what a mount hides",
    "umount2": "no unmounting: it could uncover what a mount hides",
    "pivot_root": "no changing the root of the mount namespace",
    "move_mount": "new mount API: no mounting",
    "open_tree": "new mount API: no mounting (and no detached copies of mount trees)",
    "fsopen": "new mount API: no mounting",
    "fsconfig": "new mount API: no mounting",
    "fsmount": "new mount API: no mounting",
    "fspick": "new mount API: no mounting",
    "mount_setattr": "new mount API: no changing mount flags such as read-only",
    "unshare": "no new namespaces: user namespaces expose kernel code (netfilter, "
    "mounts) that otherwise needs root, the root of many container escapes",
    "setns": "no joining other namespaces",
    "chroot": "no chroot, even with CAP_SYS_CHROOT: it serves only to confuse programs "
    "about where they are",
}

AF_NETLINK = 16
NETLINK_ROUTE = 0
#: One past the highest address family of current kernels (AF_MCTP is 45). Families
#: above it get a rule too, so a family added by a future kernel is denied as well.
AF_MAX = 46

SOCKET_REASON = (
    "only local (AF_UNIX) sockets: the kernel's zmq channels, asyncio and "
    "multiprocessing use them; every other family (IP, packet, vsock, ...) fails with "
    "EAFNOSUPPORT, as if the kernel lacked it, so code that probes for a family falls "
    "back instead of crashing, and no network protocol code is reachable even though "
    "the container's network is only loopback"
)
NETLINK_REASON = (
    "AF_NETLINK with NETLINK_ROUTE only, which getifaddrs() needs to list interfaces: "
    "libzmq calls it for every tcp:// bind (ipykernel binds its IOPub pipe to "
    "tcp://127.0.0.1) and aborts the whole process when it fails; it only reads the "
    "container's own network namespace (loopback). Other netlink protocols (netfilter, "
    "audit, uevent, sock_diag, ...) fail with EAFNOSUPPORT"
)


def derive(base: dict[str, Any]) -> dict[str, Any]:
    """Return the sandbox profile made from Docker's default profile ``base``."""
    profile = copy.deepcopy(base)
    rules: list[dict[str, Any]] = profile["syscalls"]
    removed = set(DENIED) | {"socket", "socketpair", "mknod", "mknodat", "clone3"}

    kept: list[dict[str, Any]] = []
    for rule in rules:
        if rule["action"] == "SCMP_ACT_ALLOW":
            names = [name for name in rule["names"] if name not in removed]
            if _is_cap_sys_admin_rule(rule):
                # Docker lets CAP_SYS_ADMIN create namespaces with clone; the sandbox
                # never does (see the clone rules below).
                names = [name for name in names if name != "clone"]
            if not names:
                continue
            dropped = [name for name in rule["names"] if name not in names]
            if dropped:
                note = (
                    f"Docker's rule without {', '.join(dropped)}, which the sandbox denies "
                    "(see their own rules)"
                )
                rule["comment"] = f"{rule['comment']}; {note}" if rule.get("comment") else note
            rule["names"] = names
        if rule["names"] in (["clone"], ["clone3"]):
            _drop_cap_sys_admin_exclusion(rule)
        kept.append(rule)

    kept.extend(
        {
            "names": [name],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": EPERM,
            "args": [],
            "comment": reason,
            "includes": {},
            "excludes": {},
        }
        for name, reason in DENIED.items()
    )
    kept.extend(_socket_rules())
    for name, mode_index in (("mknod", 1), ("mknodat", 2)):
        for file_type, what in MKNOD_ALLOWED_TYPES.items():
            kept.append(
                {
                    "names": [name],
                    "action": "SCMP_ACT_ALLOW",
                    # Docker's MASKED_EQ: (arg & value) == valueTwo.
                    "args": [
                        {
                            "index": mode_index,
                            "value": S_IFMT,
                            "valueTwo": file_type,
                            "op": "SCMP_CMP_MASKED_EQ",
                        }
                    ],
                    "comment": f"{name} may create {what}; device nodes fall to the "
                    "default action (EPERM), even with CAP_MKNOD",
                    "includes": {},
                    "excludes": {},
                }
            )
    profile["syscalls"] = kept
    return profile


def _socket_rules() -> list[dict[str, Any]]:
    """socket/socketpair: AF_UNIX, plus socket(AF_NETLINK, *, NETLINK_ROUTE); else EAFNOSUPPORT.

    Each rule compares an argument once: runc turns several comparisons of the same
    argument in one rule into separate rules (OR instead of AND), so "family is neither
    1 nor 16" cannot be one rule. Every other family gets its own rule instead.
    """

    def rule(
        names: list[str], action: str, args: list[dict[str, Any]], reason: str
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {"names": names, "action": action}
        if action == "SCMP_ACT_ERRNO":
            entry["errnoRet"] = EAFNOSUPPORT
        entry.update({"args": args, "comment": reason, "includes": {}, "excludes": {}})
        return entry

    both = ["socket", "socketpair"]
    allow, deny = "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"
    rules = [
        rule(both, allow, [{"index": 0, "value": AF_UNIX, "op": "SCMP_CMP_EQ"}], SOCKET_REASON),
        rule(
            ["socket"],
            allow,
            [
                {"index": 0, "value": AF_NETLINK, "op": "SCMP_CMP_EQ"},
                {"index": 2, "value": NETLINK_ROUTE, "op": "SCMP_CMP_EQ"},
            ],
            NETLINK_REASON,
        ),
        rule(
            ["socket"],
            deny,
            [
                {"index": 0, "value": AF_NETLINK, "op": "SCMP_CMP_EQ"},
                {"index": 2, "value": NETLINK_ROUTE, "op": "SCMP_CMP_NE"},
            ],
            NETLINK_REASON,
        ),
        rule(
            ["socketpair"],
            deny,
            [{"index": 0, "value": AF_NETLINK, "op": "SCMP_CMP_EQ"}],
            SOCKET_REASON,
        ),
    ]
    rules.extend(
        rule(both, deny, [{"index": 0, "value": family, "op": "SCMP_CMP_EQ"}], SOCKET_REASON)
        for family in range(AF_MAX)
        if family not in (AF_UNIX, AF_NETLINK)
    )
    rules.append(
        rule(both, deny, [{"index": 0, "value": AF_MAX - 1, "op": "SCMP_CMP_GT"}], SOCKET_REASON)
    )
    return rules


def _is_cap_sys_admin_rule(rule: dict[str, Any]) -> bool:
    return (rule.get("includes") or {}).get("caps") == ["CAP_SYS_ADMIN"]


def _drop_cap_sys_admin_exclusion(rule: dict[str, Any]) -> None:
    """Make Docker's clone flag filter and clone3 ENOSYS apply with CAP_SYS_ADMIN too."""
    excludes = rule.get("excludes") or {}
    caps = [cap for cap in excludes.get("caps", []) if cap != "CAP_SYS_ADMIN"]
    if caps:
        excludes["caps"] = caps
    else:
        excludes.pop("caps", None)
    rule["excludes"] = excludes
    if rule["names"] == ["clone"]:
        rule["comment"] = (
            "Docker's filter: clone only without CLONE_NEW* flags (no new namespaces); "
            "unlike Docker's default it holds with CAP_SYS_ADMIN too"
        )
    else:
        rule["comment"] = (
            f"{rule.get('comment') or 'clone3'}: its flags cannot be filtered (they are in "
            "memory), so ENOSYS makes glibc fall back to clone, which is filtered; unlike "
            "Docker's default it holds with CAP_SYS_ADMIN too"
        )


#: Why the gVisor variant differs, one entry per difference (they go into its rules).
RUNSC_CLONE3_REASON = (
    "gVisor variant: clone3 is allowed through to gVisor, which answers ENOSYS itself "
    "(its Sentry has no clone3; a test checks it), so glibc still falls back to clone, "
    "whose flag filter holds. The profile's own 'ENOSYS for clone3' cannot work under "
    "gVisor: runsc (release 2022-12-19) ignores errnoRet and answers EPERM for every "
    "errno rule, and glibc falls back to clone only on ENOSYS, so no thread could start "
    "(libzmq aborts: 'Operation not permitted (src/thread.cpp:241)'). The namespaces a "
    "clone3 could make would be gVisor's own, not the host kernel's"
)
#: Syscalls gVisor knows by another name: gVisor resolves a profile's names with its own
#: syscall table, and a name it does not know is dropped, so the call falls to the
#: default action (EPERM). glibc's select() is pselect6, which gVisor calls "pselect":
#: without this, every select() in the sandbox fails (the relay's warm-spare wait does).
GVISOR_NAMES: dict[str, str] = {"pselect6": "pselect"}
RUNSC_NAMES_NOTE = (
    "; gVisor variant: also under gVisor's own names for the same syscalls ({names}), "
    "since gVisor drops names it does not know"
)
RUNSC_ERRNO_NOTE = (
    "; under gVisor this answers EPERM, not EAFNOSUPPORT: runsc (release 2022-12-19) "
    "ignores errnoRet"
)


def derive_runsc(profile: dict[str, Any]) -> dict[str, Any]:
    """The gVisor variant of the sandbox ``profile``: the fewest changes that let it run.

    gVisor (``runsc --oci-seccomp``) applies the profile in its own kernel, the Sentry,
    with one difference that matters: every ``SCMP_ACT_ERRNO`` rule answers EPERM,
    whatever its ``errnoRet``. Rules whose errno is not EPERM are changed or annotated
    here, each with its reason; everything else is the profile unchanged.
    """
    variant = copy.deepcopy(profile)
    rules: list[dict[str, Any]] = []
    for rule in variant["syscalls"]:
        if rule["names"] == ["clone3"]:
            continue  # replaced by the one rule below
        if rule["action"] == "SCMP_ACT_ERRNO" and rule.get("errnoRet", EPERM) != EPERM:
            rule["comment"] = f"{rule.get('comment', '')}{RUNSC_ERRNO_NOTE}"
        aliases = [GVISOR_NAMES[name] for name in rule["names"] if name in GVISOR_NAMES]
        if rule["action"] == "SCMP_ACT_ALLOW" and aliases:
            pairs = ", ".join(f"{n} = {GVISOR_NAMES[n]}" for n in rule["names"] if n in GVISOR_NAMES)
            rule["names"] = [*rule["names"], *aliases]
            rule["comment"] = f"{rule.get('comment', '')}{RUNSC_NAMES_NOTE.format(names=pairs)}"
        rules.append(rule)
    rules.append(
        {
            "names": ["clone3"],
            "action": "SCMP_ACT_ALLOW",
            "args": [],
            "comment": RUNSC_CLONE3_REASON,
            "includes": {},
            "excludes": {},
        }
    )
    variant["syscalls"] = rules
    return variant


def render(profile: dict[str, Any]) -> str:
    return json.dumps(profile, indent="\t") + "\n"


def main(argv: list[str]) -> int:
    profile = derive(json.loads(BASE.read_text()))
    outputs = {PROFILE: render(profile), PROFILE_RUNSC: render(derive_runsc(profile))}
    if "--check" in argv:
        stale = [path for path, text in outputs.items() if path.read_text() != text]
        for path in stale:
            print(f"{path} is out of date: run python {Path(__file__).name}", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
