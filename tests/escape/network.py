"""Attacks through sockets and the network.

One family of the escape suite's table (see :mod:`.attacks` for the rules).
"""

from __future__ import annotations

from .core import MOUNTED, ROOT_CAPS_UNCONFINED, UNCONFINED, Attack

ATTACKS: list[Attack] = [
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
]
