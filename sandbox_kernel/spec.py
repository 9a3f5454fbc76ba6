"""What the sandbox container is: the Docker create options, built from the settings.

A pure function of :class:`~sandbox_kernel.config.SandboxConfig`, so the hardening can
be read in one place and unit-tested without an engine. The session module turns
these options into a running container.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
from importlib import resources
from typing import Any

from . import gvisor
from .config import SandboxConfig, parse_mount, parse_size
from .runtime import is_gvisor
from .seccomp import load_profile

LABEL = "sandbox-kernel"
LABEL_ROLE = "sandbox-kernel.role"
LABEL_FINGERPRINT = "sandbox-kernel.fingerprint"
LABEL_CONTROLLER = "sandbox-kernel.controller"
LABEL_CREATED = "sandbox-kernel.created"
#: When a pre-started sandbox exits unless claimed (epoch seconds; see prestart.py).
LABEL_EXPIRES = "sandbox-kernel.expires"

#: Inside the container everything writable lives in the tmpfs at /tmp.
HOME = "/tmp/home"
WORKDIR = "/tmp/work"


def relay_source() -> str:
    """The relay program's text, which becomes the container's command."""
    return resources.files("sandbox_kernel").joinpath("relay.py").read_text(encoding="utf-8")


def bootstrap_source() -> str:
    """The inner kernel's start (ipykernel and its patches), run by the relay."""
    return resources.files("sandbox_kernel").joinpath("bootstrap.py").read_text(encoding="utf-8")


def sandbox_environment(config: SandboxConfig) -> dict[str, str]:
    """The container's whole environment, from an allowlist.

    Nothing of the host environment is passed: no credentials, no paths, no
    connection key. Caches point into the private tmpfs because the root is read-only.
    """
    threads = str(max(1, int(config.cpus)))
    env = {
        "HOME": HOME,
        "SANDBOX_WORKDIR": WORKDIR,
        "SANDBOX_NETWORK": config.network_mode,  # see bootstrap.explain_no_network
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "XDG_CACHE_HOME": "/tmp/.cache",
        "MPLCONFIGDIR": "/tmp/.cache/matplotlib",
        "IPYTHONDIR": "/tmp/.ipython",
        "JUPYTER_CONFIG_DIR": "/tmp/.jupyter",
        "JUPYTER_DATA_DIR": "/tmp/.local/share/jupyter",
        "JUPYTER_RUNTIME_DIR": "/tmp/.sandbox-kernel/runtime",
        # One BLAS thread per CPU of the quota: more only thrash and eat the pids limit.
        "OPENBLAS_NUM_THREADS": threads,
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
    }
    env.update(config.extra_env)
    return env


def relay_command(
    config: SandboxConfig, *, claim_timeout: float, warm_delay: float = 0.0
) -> list[str]:
    """The container's command: the relay, with its timeouts.

    Args:
        claim_timeout: seconds to wait for the controller's OPEN before exiting.
        warm_delay: seconds before the kernel starts unless OPEN comes first (a warm
            spare: its kernel's start should not compete with the session that made it).
    """
    return [
        config.python,
        "-c",
        relay_source(),
        f"--lease={config.controller_timeout}",
        f"--claim-timeout={claim_timeout}",
        f"--reap={int(config.init)}",
        f"--warm-delay={warm_delay}",
        *_relay_identity(config),
        f"--bootstrap={bootstrap_source()}",
    ]


def _relay_identity(config: SandboxConfig) -> list[str]:
    # Under gVisor the relay takes a uid of its own and runs the kernel as the user
    # (gvisor.kernel_user says why); under runc both are the container's user.
    user = gvisor.kernel_user(config) if is_gvisor(config.runtime) else ""
    return [f"--kernel-user={user}", f"--relay-uid={gvisor.RELAY_UID}"] if user else []


def container_options(config: SandboxConfig) -> dict[str, Any]:
    """Keyword arguments for ``client.api.create_host_config`` and ``create_container``.

    Returns a dict with ``host_config`` (host-config keyword arguments) and
    ``container`` (create-container keyword arguments, without image and command).
    Mounts, ulimits and the log config are already the engine API's JSON (what the
    SDK's types build): :func:`create_body` needs no SDK (tests/test_seams.py compares
    its body with the SDK's translation of these arguments).

    Raises:
        ConfigError: a size, mount or seccomp setting is invalid.
    """
    memory = parse_size(config.memory)
    on_gvisor = is_gvisor(config.runtime)
    # Docker mounts a tmpfs noexec unless told "exec": without it, tmp_noexec=False
    # would silently keep /tmp noexec.
    tmp_flags = "rw,nosuid,nodev" + (",noexec" if config.tmp_noexec else ",exec")
    tmpfs = {
        "/tmp": f"{tmp_flags},size={parse_size(config.tmp_size)},"
        f"nr_inodes={config.tmp_inodes},mode=1777"
    }
    security_opt = []
    if config.no_new_privileges:
        security_opt.append("no-new-privileges:true")
    profile = load_profile(config.seccomp_profile, config.runtime)
    if profile is not None:
        security_opt.append(f"seccomp={profile}")
    host_pids, nproc = pids_limits(config)
    mounts = [
        # Under gVisor /tmp and /dev/shm are host tmpfs volumes (gvisor.writable_mounts).
        *(gvisor.writable_mounts(config) if on_gvisor else []),
        workdir_mount(config),
        *(
            {"Target": target, "Source": source, "Type": "bind", "ReadOnly": True}
            for source, target in (parse_mount(spec) for spec in config.mounts)
        ),
    ]
    host_config: dict[str, Any] = {
        "network_mode": config.network_mode,
        "read_only": config.read_only_root,
        "tmpfs": {} if on_gvisor else tmpfs,
        "shm_size": parse_size(config.shm_size),
        "cap_drop": ["ALL"] if config.drop_capabilities else None,
        "security_opt": security_opt or None,
        "mem_limit": memory,
        "memswap_limit": memory,
        "nano_cpus": int(config.cpus * 1e9),
        "pids_limit": host_pids,
        "ulimits": [
            ulimit("nofile", config.nofile),
            ulimit("fsize", parse_size(config.max_file_size)),
            ulimit("core", 0),
            *nproc,
        ],
        # The relay itself is PID 1 and reaps orphans (see relay.py): Docker's init
        # would hold the container's stdio pipes open, where the sandbox's user
        # could reach them through /proc.
        "init": False,
        "ipc_mode": "private",
        "mounts": mounts,
        "log_config": {"Type": "none", "Config": {}},
        # The container removes itself when it stops, whoever stops it.
        "auto_remove": True,
    }
    if config.runtime:
        host_config["runtime"] = config.runtime
    user = config.user
    if on_gvisor and gvisor.kernel_user(config):
        # Root with only the capabilities the relay's uid switch needs (it drops them
        # before the kernel starts): see gvisor.kernel_user and relay.become_relay.
        user = "0:0"
        host_config["cap_add"] = gvisor.RELAY_CAPS
    container = {
        "user": user,
        "environment": sandbox_environment(config),
        "working_dir": "/tmp",
        "hostname": "sandbox",
        # stdin_open without detach makes docker-py set StdinOnce: when the
        # controller's attach connection closes, the relay's stdin closes. That is how
        # a container notices its controller died, even by kill -9.
        "stdin_open": True,
        "detach": False,
        "tty": False,
        # docker-py would inject the client's proxy settings into the environment.
        "use_config_proxy": False,
        "network_disabled": config.network_mode == "none",
    }
    return {"host_config": host_config, "container": container}


def create_body(
    config: SandboxConfig,
    image_id: str,
    *,
    version: str,
    role: str,
    fingerprint_: str,
    claim_timeout: float,
    warm_delay: float = 0.0,
    extra_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The engine's create request for this sandbox: the JSON body of ``POST
    /containers/create`` exactly as it is sent (API ``version``).

    The SDK's translation of :func:`container_options` (``docker.types.ContainerConfig``
    and ``HostConfig``, without the top-level nulls), done here without the SDK: the
    kernel process reaches ready without importing it (engine.py). tests/test_seams.py
    checks the two agree over the settings. The kernel's raw first request (see coldcache.py) replays a
    cached copy of it, and its container is used only when the copy equals this.

    Raises:
        ConfigError: a size, mount or seccomp setting is invalid.
    """
    options = container_options(config)
    container = dict(options["container"])
    container.pop("use_config_proxy")  # an argument of create_container, not of the request
    body = _container_body(
        image_id,
        relay_command(config, claim_timeout=claim_timeout, warm_delay=warm_delay),
        container,
        host_config=_host_body(options["host_config"]),
        labels={**labels(role, fingerprint_), **(extra_labels or {})},
    )
    return dict(json.loads(json.dumps(body)))


#: How the SDK's HostConfig names each host-config argument in the engine API, and
#: whether it leaves the field out when the value is None only (True) or when falsy.
_HOST_FIELDS: dict[str, tuple[str, bool]] = {
    "network_mode": ("NetworkMode", True),
    "read_only": ("ReadonlyRootfs", True),
    "tmpfs": ("Tmpfs", False),
    "shm_size": ("ShmSize", True),
    "cap_add": ("CapAdd", False),
    "cap_drop": ("CapDrop", False),
    "security_opt": ("SecurityOpt", True),
    "mem_limit": ("Memory", True),
    "memswap_limit": ("MemorySwap", True),
    "nano_cpus": ("NanoCpus", False),
    "pids_limit": ("PidsLimit", False),
    "ulimits": ("Ulimits", True),
    "init": ("Init", True),
    "ipc_mode": ("IpcMode", False),
    "mounts": ("Mounts", True),
    "log_config": ("LogConfig", True),
    "auto_remove": ("AutoRemove", False),
    "runtime": ("Runtime", False),
}


def _host_body(host_config: dict[str, Any]) -> dict[str, Any]:
    """The engine API's HostConfig for :func:`container_options`' arguments, as the
    SDK's ``docker.types.HostConfig`` translates them (for the arguments used here)."""
    unknown = set(host_config) - set(_HOST_FIELDS)
    if unknown:  # a new option in container_options needs its translation here
        raise ValueError(f"no engine field for host-config argument(s) {sorted(unknown)}")
    body: dict[str, Any] = {"NetworkMode": "default"}
    for argument, value in host_config.items():
        field, unless_none = _HOST_FIELDS[argument]
        if value is not None if unless_none else value:
            body[field] = value
    if not body["NetworkMode"]:
        body["NetworkMode"] = "default"
    return body


def _container_body(
    image_id: str,
    command: list[str],
    container: dict[str, Any],
    *,
    host_config: dict[str, Any],
    labels: dict[str, str],
) -> dict[str, Any]:
    """The engine API's create body, as the SDK's ``docker.types.ContainerConfig``
    builds it for :func:`container_options`' arguments, without its null fields."""
    options = dict(container)
    attached = not options.pop("detach")  # attached: stdout, stderr, and stdin if open
    stdin_open = bool(options.pop("stdin_open"))
    environment = options.pop("environment")
    body = {
        "Hostname": options.pop("hostname"),
        "User": str(options.pop("user")),
        "Tty": options.pop("tty"),
        "OpenStdin": stdin_open,
        "StdinOnce": attached and stdin_open,
        "AttachStdin": attached and stdin_open,
        "AttachStdout": attached,
        "AttachStderr": attached,
        "Env": [f"{name}={value}" for name, value in environment.items()],
        "Cmd": command,
        "Image": image_id,
        "NetworkDisabled": options.pop("network_disabled"),
        "WorkingDir": options.pop("working_dir"),
        "HostConfig": host_config,
        "Labels": labels,
    }
    if options:  # a new option in container_options needs its translation here
        raise ValueError(f"no engine field for container argument(s) {sorted(options)}")
    return {field: value for field, value in body.items() if value is not None}


#: Under gVisor, host pids (threads) allowed per sandbox task, and for gVisor itself.
#: Measured on the ptrace platform: gVisor's kernel uses about 60 host threads, and
#: each process of the sandbox 4-5 more (its stub process and threads).
GVISOR_HOST_PIDS_PER_TASK = 8
GVISOR_HOST_PIDS_BASE = 256


def ulimit(name: str, limit: int) -> dict[str, Any]:
    """A ulimit (soft = hard) as the engine API has it (``docker.types.Ulimit``)."""
    return {"Name": name, "Soft": limit, "Hard": limit}


def pids_limits(config: SandboxConfig) -> tuple[int, list[dict[str, Any]]]:
    """The container's pids cgroup limit and the ulimits that carry the ``pids`` setting.

    Under runc the pids cgroup counts the sandbox's processes and threads: it is the
    setting itself. Under gVisor it counts gVisor's host threads instead (about 60,
    plus 4-5 per process of the sandbox), and reaching it ends the whole sandbox. So
    there the setting becomes RLIMIT_NPROC, which gVisor's own kernel enforces per
    sandbox (fork and thread creation fail with EAGAIN, as with a pids limit), and the
    cgroup gets a budget that the sandbox cannot reach first; RLIMIT_NPROC is also
    bounded by the forks the memory limit holds (:func:`.gvisor.nproc`). Never
    RLIMIT_NPROC under runc: it counts every process of uid 1000 on the host, other
    sandboxes included.
    """
    if not is_gvisor(config.runtime) or config.pids <= 0:
        return config.pids, []
    host = config.pids * GVISOR_HOST_PIDS_PER_TASK + GVISOR_HOST_PIDS_BASE
    nproc = gvisor.nproc(config)
    return host, [ulimit("nproc", nproc)]


def workdir_mount(config: SandboxConfig) -> dict[str, Any]:
    """The working directory: a tmpfs of its own, as an anonymous engine-side volume.

    Why a volume and not a folder of /tmp: the engine's archive API (``put_archive``,
    ``get_archive``), the one way to move files that works with a remote engine and
    behind Docker Desktop's VM, refuses a read-only root filesystem and cannot see
    into ``--tmpfs`` mounts (Docker 20.10); it can reach volumes. A ``local`` volume
    of type tmpfs is still memory only, never on the engine's disk, capped in size
    and inodes, with the same flags as /tmp, and ``AutoRemove`` deletes it with the
    container. It holds the notebook's folder (up to ``workspace_max_size``) plus
    ``tmp_size`` for what the notebook writes.
    """
    size = parse_size(config.workspace_max_size) + parse_size(config.tmp_size)
    return gvisor.tmpfs_volume(
        WORKDIR,
        size=size,
        inodes=config.tmp_inodes,
        noexec=config.tmp_noexec,
        mode="0700",
        owner=config.user,
    )


def fingerprint(config: SandboxConfig, image_id: str) -> str:
    """A digest of everything that makes two sandboxes interchangeable.

    Warm spares are only ever claimed by a kernel with the same fingerprint.
    """
    options = container_options(config)
    material = json.dumps(
        {
            "image": image_id,
            "options": options,
            "command": relay_command(config, claim_timeout=0),
            "python": config.python,
        },
        sort_keys=True,
        default=repr,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def controller_host() -> str:
    """This host's name as controller ids carry it."""
    return _name_safe(socket.gethostname())


def controller_id() -> str:
    """Who controls a container: this host and process, for orphan cleanup."""
    return f"{controller_host()}:{os.getpid()}"


def _name_safe(host: str) -> str:
    # The characters container names allow ([a-zA-Z0-9_.-]), as labels are read back.
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", host)


def spare_name(fingerprint_: str) -> str:
    """The one name an unclaimed spare of this configuration has on its engine.

    Container names are unique per engine and taken atomically: of kernels that
    make a spare at the same instant, one gets the name and the others a conflict,
    so there is never more than one unclaimed spare per configuration.
    """
    return f"sandbox-kernel-spare-{fingerprint_[:24]}"


def prestart_name(fingerprint_: str) -> str:
    """A pre-started spare's name: the spare name plus a random part, so a teacher's
    N of them are unclaimed spares to every kernel (and to cleanup) but not the one."""
    return spare_name(fingerprint_) + secrets.token_hex(4)


def claimed_name(container_id: str) -> str:
    """The name a warm spare takes when claimed: one rename, to a name the spare alone
    determines.

    The engine turns down a rename to a container's own current name, and gives a name
    to one container at a time, so of kernels racing for one spare exactly one gets it.
    (A name per claimer, naming its host and pid, let a second claimer rename the
    spare again, from the first one's name to its own: both attached to it.) So the
    name cannot say who claimed it: a claimed container ends when its controller does
    (its attach connection closes: the relay's stdin ends; or its lease runs out).
    The rename frees the spare's name for the next spare.
    """
    return f"sandbox-kernel-claimed-{container_id[:24]}"


def controller_of(name: str, labels: dict[str, str]) -> str:
    """``host:pid`` of the process that made a container; "" for a claimed spare (see
    :func:`claimed_name`: it ends with its controller, whoever that is)."""
    if name.lstrip("/").startswith("sandbox-kernel-claimed-"):
        return ""
    return labels.get(LABEL_CONTROLLER, "")


def labels(role: str, fingerprint_: str) -> dict[str, str]:
    import time

    return {
        LABEL: "1",
        LABEL_ROLE: role,
        LABEL_FINGERPRINT: fingerprint_,
        LABEL_CONTROLLER: controller_id(),
        LABEL_CREATED: str(int(time.time())),
    }
