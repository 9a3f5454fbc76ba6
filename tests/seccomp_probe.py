"""Call each syscall the sandbox profile denies and print the errno each one got, as JSON.

Runs inside a container (``python3 -c <this source>``) on x86_64. Every call is made
with arguments that do no harm when it succeeds, so that the same probe can run without
seccomp as the negative control. 0 means the call succeeded.
"""

import ctypes
import json
import os
import socket

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

# x86_64 syscall numbers.
NR = {
    "ptrace": 101,
    "process_vm_readv": 310,
    "io_uring_setup": 425,
    "userfaultfd": 323,
    "keyctl": 250,
    "add_key": 248,
    "bpf": 321,
    "perf_event_open": 298,
    "memfd_create": 319,
    "execveat": 322,
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "open_tree": 428,
    "fsopen": 430,
    "unshare": 272,
    "setns": 308,
    "chroot": 161,
    "mknodat": 259,
}
AT_FDCWD = -100
CLONE_NEWUSER = 0x10000000
KEY_SPEC_SESSION_KEYRING = -3
UFFD_USER_MODE_ONLY = 1
S_IFCHR = 0o020000


def call(name, *args):
    ctypes.set_errno(0)
    c_args = [a if isinstance(a, (bytes, ctypes.Array)) else ctypes.c_long(a) for a in args]
    result = libc.syscall(ctypes.c_long(NR[name]), *c_args)
    if result == -1:
        return ctypes.get_errno()
    # A file descriptor came back (memfd, io_uring, open_tree, ...): close it.
    if name in ("memfd_create", "io_uring_setup", "userfaultfd", "open_tree", "fsopen"):
        os.close(result)
    return 0


def sock(family, kind=socket.SOCK_STREAM, proto=0):
    try:
        socket.socket(family, kind, proto).close()
        return 0
    except OSError as exc:
        return exc.errno


def pair(family):
    try:
        a, b = socket.socketpair(family)
        a.close()
        b.close()
        return 0
    except OSError as exc:
        return exc.errno


buf = ctypes.create_string_buffer(64)
local = (ctypes.c_long * 2)(ctypes.addressof(buf), 8)
remote = (ctypes.c_long * 2)(ctypes.addressof(buf) + 8, 8)
io_uring_params = ctypes.create_string_buffer(120)

results = {
    "process_vm_readv": call(
        "process_vm_readv", os.getpid(), ctypes.addressof(local), 1, ctypes.addressof(remote), 1, 0
    ),
    "io_uring_setup": call("io_uring_setup", 1, ctypes.addressof(io_uring_params)),
    "userfaultfd": call("userfaultfd", UFFD_USER_MODE_ONLY),
    "keyctl": call("keyctl", 0, KEY_SPEC_SESSION_KEYRING, 0),
    "add_key": call("add_key", b"user", b"probe", b"x", 1, KEY_SPEC_SESSION_KEYRING),
    "bpf": call("bpf", 0, 0, 0),
    "perf_event_open": call("perf_event_open", 0, 0, -1, -1, 0),
    "memfd_create": call("memfd_create", b"probe", 0),
    "execveat": call("execveat", -1, b"", 0, 0, 0),
    "mount": call("mount", b"none", b"/tmp", b"tmpfs", 0, 0),
    "umount2": call("umount2", b"/nonexistent-probe", 0),
    "pivot_root": call("pivot_root", b"/tmp", b"/tmp"),
    "open_tree": call("open_tree", AT_FDCWD, b"/", 0),
    "fsopen": call("fsopen", b"tmpfs", 0),
    "setns": call("setns", -1, 0),
    "chroot": call("chroot", b"/"),
    "mknodat_chr": call("mknodat", AT_FDCWD, b"/tmp/probe-null", S_IFCHR | 0o600, 0x103),
    "socket_inet": sock(socket.AF_INET),
    "socket_inet6": sock(socket.AF_INET6),
    "socket_netlink_route": sock(socket.AF_NETLINK, socket.SOCK_RAW, 0),
    "socket_netlink_sock_diag": sock(socket.AF_NETLINK, socket.SOCK_RAW, 4),
    "socket_packet": sock(socket.AF_PACKET, socket.SOCK_RAW, 0),
    "socket_unix": sock(socket.AF_UNIX),
    "socketpair_inet": pair(socket.AF_INET),
    "socketpair_unix": pair(socket.AF_UNIX),
}
try:
    os.mkfifo("/tmp/probe-fifo")
    results["mkfifo"] = 0
except OSError as exc:
    results["mkfifo"] = exc.errno
# Last, because each succeeds by changing the process: a new user namespace, and being
# traced by the parent.
results["unshare"] = call("unshare", CLONE_NEWUSER)
results["ptrace"] = call("ptrace", 0, 0, 0, 0)
print(json.dumps(results))
