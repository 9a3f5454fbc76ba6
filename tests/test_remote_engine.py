"""The kernel works against an engine reached over TCP, with and without TLS.

The engine here is local, but the kernel only reaches it through a TCP proxy on
loopback (TLS terminated by the proxy, client certificates required), so nothing
may depend on a shared filesystem or a unix socket: this is how DOCKER_HOST=tcp://
and Docker Desktop's VM look to the kernel.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import USAGE_MIME, KernelSpecs, accepted, start_kernel

pytestmark = pytest.mark.docker

ENGINE_SOCKET = "/var/run/docker.sock"


def _make_certs(root: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=root, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    )
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}-key.pem",
            "-out",
            f"{name}.csr",
        )
        (root / f"{name}.ext").write_text(ext + "\n")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.pem",
        )
    # docker-py's names for the client side
    (root / "cert.pem").write_bytes((root / "client.pem").read_bytes())
    (root / "key.pem").write_bytes((root / "client-key.pem").read_bytes())


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(1 << 16):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def engine_proxy(tls_dir: Path | None) -> Iterator[int]:
    """Forward TCP (optionally TLS) on a loopback port to the engine's unix socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    context = None
    if tls_dir is not None:
        context = ssl.create_default_context(
            ssl.Purpose.CLIENT_AUTH, cafile=str(tls_dir / "ca.pem")
        )
        context.load_cert_chain(tls_dir / "server.pem", tls_dir / "server-key.pem")
        context.verify_mode = ssl.CERT_REQUIRED

    def serve() -> None:
        for conn in accepted(listener):
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    def handle(conn: socket.socket) -> None:
        try:
            client = context.wrap_socket(conn, server_side=True) if context else conn
        except (OSError, ssl.SSLError):
            conn.close()
            return
        engine = socket.socket(socket.AF_UNIX)
        engine.connect(ENGINE_SOCKET)
        # TLS sockets are not safe to read and write from two threads at once in
        # every OpenSSL; this proxy is a test fixture, keep it simple: one thread
        # per direction on a plain socket pair around the TLS one.
        threading.Thread(target=_pump, args=(engine, client), daemon=True).start()
        _pump(client, engine)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield port
    finally:
        listener.close()


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tcp+tls"])
def test_kernel_over_a_tcp_engine(tls: bool, specs: KernelSpecs, tmp_path: Path) -> None:
    env = {}
    if tls:
        _make_certs(tmp_path)
        env = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)}
    with engine_proxy(tmp_path if tls else None) as port:
        scheme = "tcp"
        env["DOCKER_HOST"] = f"{scheme}://127.0.0.1:{port}"
        with start_kernel(specs, env=env) as kernel:
            cell = kernel.execute("import sys\nx = [i * i for i in range(5)]\nprint(sum(x))")
            assert cell.status == "ok", cell.text
            assert cell.stdout == "30\n"
            big = kernel.execute("print('y' * 3_000_000)")
            assert len(big.stdout) == 3_000_001
            answer = kernel.execute("name = input('?')\nprint(name[::-1])", stdin=["engine"])
            assert answer.stdout.strip() == "enigne"
            # With a remote engine the usage line follows the reply (stats can take
            # up to a second); it still belongs to the cell.
            cell = kernel.execute("sum(range(10**6))")
            parent_id = cell.reply["parent_header"]["msg_id"]
            usage = cell.usage
            deadline = time.monotonic() + 10
            while usage is None and time.monotonic() < deadline:
                msg = kernel.kc.get_iopub_msg(timeout=10)
                data = msg["content"].get("data", {})
                if msg["parent_header"].get("msg_id") == parent_id and USAGE_MIME in data:
                    usage = data[USAGE_MIME]
            assert usage is not None and usage["source"] == "docker-stats"
            assert usage["wall_time_s"] > 0 and usage["memory_limit_bytes"] == 2 * 1024**3


def test_a_big_print_followed_by_a_little_work_arrives_before_idle(
    specs: KernelSpecs,
) -> None:
    """Megabytes printed, then a few ms of work: the stream is sent while the cell still
    runs, and the cell's end must not overtake it (the frontend drops what comes after
    the idle status)."""
    with engine_proxy(None) as port:
        env = {"DOCKER_HOST": f"tcp://127.0.0.1:{port}"}
        with start_kernel(specs, env=env) as kernel:
            lost = []
            for size in (1_100_000, 3_000_000, 8_000_000):
                for work in ("time.sleep(0.005)", "sum(range(50_000))", "sum(range(500_000))"):
                    cell = kernel.execute(f"import time\nprint('y' * {size})\n{work}")
                    assert cell.status == "ok", cell.text
                    if len(cell.stdout) != size + 1:
                        lost.append((size, work, len(cell.stdout)))
            assert not lost


@pytest.fixture
def ssh_engine(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An sshd on loopback that forwards to the engine's socket, and a client HOME for it."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists():
        pytest.fail("sshd is missing: scripts/setup.sh installs openssh-server")
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True
        )
    (tmp_path / "authorized_keys").write_text((tmp_path / "client_key.pub").read_text())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp_path}/host_key\n"
        f"AuthorizedKeysFile {tmp_path}/authorized_keys\nPermitRootLogin prohibit-password\n"
        f"PasswordAuthentication no\nStrictModes no\nUsePAM no\nPidFile {tmp_path}/sshd.pid\n"
        "AllowStreamLocalForwarding yes\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    server = subprocess.Popen(
        [sshd, "-D", "-f", str(tmp_path / "sshd_config"), "-E", str(tmp_path / "sshd.log")]
    )
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {tmp_path}/client_key\n"
    )
    host_key = " ".join((tmp_path / "host_key.pub").read_text().split()[:2])
    (home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key}\n")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        time.sleep(0.1)
    try:
        yield {"HOME": str(home), "DOCKER_HOST": f"ssh://root@127.0.0.1:{port}"}
    finally:
        server.terminate()
        server.wait(10)


def test_kernel_over_an_ssh_engine(ssh_engine: dict[str, str], specs: KernelSpecs) -> None:
    with start_kernel(specs, env=ssh_engine) as kernel:
        cell = kernel.execute("print(sum(i * i for i in range(5)))")
        assert cell.status == "ok", cell.text
        assert cell.stdout == "30\n"
        assert len(kernel.execute("print('z' * 2_000_000)").stdout) == 2_000_001
        reply = kernel.interrupt_running_cell("import time\nfor _ in range(300): time.sleep(0.1)")
        assert reply["content"]["ename"] == "KeyboardInterrupt"


def _folder_round_trip(specs: KernelSpecs, env: dict[str, str], folder: Path) -> None:
    """The notebook's folder goes in and outputs/ comes back through the engine API only."""
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "prices.csv").write_text("close\n1\n2\n3\n")
    (folder / "passwd").symlink_to("/etc/passwd")
    with start_kernel(specs, env=env, cwd=folder) as kernel:
        cell = kernel.execute(
            "import csv, os\nrows = list(csv.DictReader(open('data/prices.csv')))\n"
            "print(sum(float(r['close']) for r in rows), os.path.lexists('passwd'))\n"
            "os.makedirs('outputs', exist_ok=True)\nopen('outputs/total.txt', 'w').write('6')\n"
            "open('data/prices.csv', 'w').write('overwritten')"
        )
        assert cell.stdout == "6.0 False\n", cell.text
        (folder / "data" / "prices.csv").write_text("close\n10\n")
        assert kernel.execute("print(open('data/prices.csv').read())").stdout == "close\n10\n\n"
    assert (folder / "outputs" / "total.txt").read_text() == "6"
    assert (folder / "data" / "prices.csv").read_text() == "close\n10\n"


def test_notebook_folder_over_a_tls_engine(specs: KernelSpecs, tmp_path: Path) -> None:
    _make_certs(tmp_path)
    env = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)}
    with engine_proxy(tmp_path) as port:
        env["DOCKER_HOST"] = f"tcp://127.0.0.1:{port}"
        _folder_round_trip(specs, env, tmp_path / "nb")


def test_notebook_folder_over_an_ssh_engine(
    ssh_engine: dict[str, str], specs: KernelSpecs, tmp_path: Path
) -> None:
    _folder_round_trip(specs, ssh_engine, tmp_path / "nb")
