"""Every setting of the sandbox, as traitlets traits.

One :class:`SandboxConfig` carries what the kernel, the :class:`~sandbox_kernel.Sandbox`
API and the CLI share. Each trait is ``config=True``, so it can be set from a
``sandbox_kernel_config.py`` (``c.SandboxConfig.memory = "4g"``), from the
kernelspec argv (``--SandboxConfig.memory=4g``) or from the command line.

The defaults are the hardened configuration. Each protection is its own trait so an
administrator can loosen exactly one thing knowingly, and so the escape suite can
prove each protection matters by dropping only that one.
"""

from __future__ import annotations

import re
from typing import Any

from traitlets import Bool, Dict, Enum, Float, Int, List, Unicode, validate
from traitlets.config import Configurable

from .errors import ConfigError

DEFAULT_IMAGE = "sandbox-kernel:latest"

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str | int) -> int:
    """Parse a Docker-style size (``"2g"``, ``"512m"``, ``"1.5GiB"``, ``1024``) into bytes.

    Raises:
        ConfigError: when the text is not a size.
    """
    if isinstance(text, int):
        return text
    match = _SIZE_RE.match(text)
    if not match:
        raise ConfigError(f"{text!r} is not a size; use a number with k, m or g, such as '2g'")
    number, unit, _ = match.groups()
    return int(float(number) * _SIZE_FACTORS[unit.lower()])


def format_size(num_bytes: float) -> str:
    """Format bytes for people: ``312 MiB``, ``2 GiB``, ``0 B``."""
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            if unit == "B":
                return f"{int(value)} B"
            return (
                f"{value:.0f} {unit}"
                if value >= 10 or value == int(value)
                else f"{value:.1f} {unit}"
            )
        value /= 1024
    raise AssertionError("unreachable")


def parse_mount(spec: str) -> tuple[str, str]:
    """Split ``HOST_DIR[:CONTAINER_DIR]`` into absolute host and container paths.

    Without a container path the folder appears as ``/data/<its name>``.

    Raises:
        ConfigError: when either side is not an absolute path.
    """
    import os.path
    import posixpath

    host, sep, container = spec.partition(":")
    host = os.path.abspath(os.path.expanduser(host))
    if not sep or not container:
        container = posixpath.join("/data", os.path.basename(host.rstrip("/")) or "root")
    if not container.startswith("/"):
        raise ConfigError(f"mount {spec!r}: the container path must be absolute")
    if container.rstrip("/") in {"", "/proc", "/sys", "/dev", "/tmp", "/etc", "/usr"}:
        raise ConfigError(f"mount {spec!r}: {container} cannot be a mount target")
    return host, posixpath.normpath(container)


class SandboxConfig(Configurable):
    """Settings of one sandbox: image, limits, hardening, validation and display."""

    # -- what runs ---------------------------------------------------------------------
    image = Unicode(
        DEFAULT_IMAGE,
        help="Docker image of the sandbox. Any image with python3 and ipykernel works; "
        "`sandbox-kernel image build` makes the default one.",
    ).tag(config=True)
    docker_host = Unicode(
        "",
        help="Docker engine address (unix://, tcp://, ssh://). Empty: DOCKER_HOST or the local socket.",
    ).tag(config=True)
    python = Unicode(
        "python3", help="Python interpreter inside the image that runs the relay and kernel."
    ).tag(config=True)
    runtime = Unicode(
        "", help="OCI runtime of the container, e.g. 'runsc' for gVisor. Empty: the engine default."
    ).tag(config=True)

    # -- limits ------------------------------------------------------------------------
    memory = Unicode("2g", help="Memory limit of the sandbox (no swap beyond it).").tag(config=True)
    cpus = Float(2.0, help="CPU quota of the sandbox, in CPUs.").tag(config=True)
    pids = Int(256, help="Most processes and threads the sandbox may have at once.").tag(
        config=True
    )
    timeout = Float(
        0.0,
        help="Per-cell wall-clock timeout in seconds (0: none). The cell is interrupted first; "
        "if it does not stop within `interrupt_grace`, the sandbox is restarted.",
    ).tag(config=True)
    interrupt_grace = Float(
        5.0, help="Seconds a timed-out cell gets to stop after an interrupt before a restart."
    ).tag(config=True)
    tmp_size = Unicode("512m", help="Size of the private /tmp (a tmpfs, counted in memory).").tag(
        config=True
    )
    tmp_inodes = Int(65536, help="Most files and folders in /tmp.").tag(config=True)
    shm_size = Unicode("64m", help="Size of /dev/shm.").tag(config=True)
    nofile = Int(1024, help="Most open files of a process inside the sandbox.").tag(config=True)
    max_file_size = Unicode("256m", help="Largest file a process may write (ulimit fsize).").tag(
        config=True
    )
    max_output_bytes = Int(
        32 * 1024 * 1024,
        help="Bytes one cell may send to the notebook - every message it causes: streams, "
        "displays, errors, comms, metadata and binary buffers, also after its reply - "
        "before the rest is dropped and the notebook is told. Output with no cell to "
        "charge (a thread started long ago) shares one budget of this size per sandbox.",
    ).tag(config=True)

    # -- hardening (each can be loosened, knowingly) --------------------------------------
    network_mode = Unicode(
        "none", help="Docker network of the sandbox. 'none' leaves only loopback."
    ).tag(config=True)
    read_only_root = Bool(True, help="Mount the image's root filesystem read-only.").tag(
        config=True
    )
    user = Unicode("1000:1000", help="uid:gid the sandbox runs as. Never root by default.").tag(
        config=True
    )
    drop_capabilities = Bool(True, help="Drop every Linux capability.").tag(config=True)
    no_new_privileges = Bool(
        True, help="Forbid gaining privileges through setuid/setgid binaries."
    ).tag(config=True)
    seccomp_profile = Unicode(
        "builtin",
        help="Seccomp profile: 'builtin' (this package's profile), 'docker-default', "
        "'unconfined', or a path to a JSON profile.",
    ).tag(config=True)
    tmp_noexec = Bool(True, help="Mount /tmp noexec (/dev/shm is always noexec).").tag(config=True)
    init = Bool(
        True,
        help="PID 1 (the relay) reaps orphaned processes, so zombies do not pile up "
        "against the pids limit.",
    ).tag(config=True)
    mounts = List(
        Unicode(),
        help="Host folders to mount read-only, as HOST_DIR[:CONTAINER_DIR]. "
        "Without CONTAINER_DIR a folder appears as /data/<name>.",
    ).tag(config=True)
    extra_env = Dict(
        value_trait=Unicode(),
        help="Extra environment variables for the sandbox. Nothing of the host environment "
        "is passed otherwise.",
    ).tag(config=True)

    # -- the notebook's folder and results ------------------------------------------------
    workspace = Enum(
        ["copy", "none"],
        default_value="copy",
        help="What the kernel does with its working directory (the notebook's folder): "
        "'copy' copies it into the sandbox's working directory, so relative paths, glob, "
        "%run and `import helpers` work as on a plain kernel (writes inside never reach "
        "the host); 'none' leaves the sandbox's working directory empty. The Sandbox API "
        "copies a folder only when a program passes one (Sandbox(workspace=...)).",
    ).tag(config=True)
    workspace_root = Enum(
        ["repository", "folder"],
        default_value="repository",
        help="What 'copy' copies: 'repository' the repository the notebook's folder is in "
        "(its nearest parent folder holding .git, never a home or root folder), with the "
        "sandbox's working directory at the notebook's place in it, so '../data/x.csv' "
        "and sys.path.append('..') work as on a plain kernel; the notebook's folder alone "
        "when there is no repository or it is over a cap. 'folder': the folder alone.",
    ).tag(config=True)
    workspace_max_size = Unicode(
        "256m",
        help="Largest notebook folder copied into the sandbox (total of its files); a "
        "bigger one is not copied and the first cell says so. The sandbox's working "
        "directory is a tmpfs of workspace_max_size + tmp_size.",
    ).tag(config=True)
    workspace_max_files = Int(
        5000, help="Most files of the notebook folder copied into the sandbox."
    ).tag(config=True)
    workspace_hidden = Bool(
        False,
        help="Also copy hidden files and folders (.git, .env, .ssh, ...) of the notebook's "
        "folder. Off: they never enter the sandbox.",
    ).tag(config=True)
    workspace_sync = Enum(
        ["cell", "start"],
        default_value="cell",
        help="When host changes to the notebook's folder reach the sandbox: 'cell' copies "
        "new and changed files before each cell (a size/mtime scan), 'start' only when the "
        "sandbox starts. Files deleted on the host stay in the sandbox until a restart.",
    ).tag(config=True)
    outputs_dir = Unicode(
        "outputs",
        help="The one folder of the working directory whose new and changed regular files "
        "are copied back to the same folder of the notebook's directory after each cell. "
        "Empty: nothing is ever copied back.",
    ).tag(config=True)
    outputs_max_cell_size = Unicode(
        "256m", help="Most bytes copied back from the outputs folder after one cell."
    ).tag(config=True)
    outputs_max_session_size = Unicode(
        "1g", help="Most bytes copied back from the outputs folder in one kernel's lifetime."
    ).tag(config=True)
    outputs_max_files = Int(
        1000, help="Most files copied back from the outputs folder after one cell."
    ).tag(config=True)

    # -- lifecycle ----------------------------------------------------------------------
    startup_timeout = Float(60.0, help="Seconds the kernel inside may take to become ready.").tag(
        config=True
    )
    controller_timeout = Float(
        6.0,
        help="Seconds without a word from the controller after which the container exits "
        "by itself (the controller pings every two seconds).",
    ).tag(config=True)
    warm_spare = Bool(
        True,
        help="Keep one started spare container ready, so that a restart or the next kernel "
        "starts without waiting for a container.",
    ).tag(config=True)
    spare_idle_timeout = Float(
        600.0, help="Seconds an unclaimed spare container waits before it exits."
    ).tag(config=True)
    prestart_limit = Int(
        40,
        help="Most sandboxes `sandbox-kernel prestart` keeps waiting for one configuration "
        "(each holds an idle kernel's memory until claimed or expired).",
    ).tag(config=True)

    # -- policy and display ---------------------------------------------------------------
    validation = Enum(
        ["block", "warn", "off"],
        default_value="block",
        help="What the validator does with a risky cell: block it, warn and run it, or nothing.",
    ).tag(config=True)
    validation_profile = Enum(
        ["notebook", "strict"],
        default_value=None,
        allow_none=True,
        help="What the validator refuses: 'notebook' (capabilities: processes, shells, "
        "network, native code, interpreter escapes, strings run as code, unsafe "
        "deserialisation, system paths, kernel control; everyday os/pathlib/shutil code "
        "passes) or 'strict' (also any os, shutil, file-writing magic: the original "
        "executor's behaviour). Unset: 'notebook' in the kernel, 'strict' in the Sandbox API.",
    ).tag(config=True)
    validation_threshold = Int(
        30, help="Risk score at which the validator blocks a cell (block mode)."
    ).tag(config=True)
    validation_rule_scores = Dict(
        value_trait=Int(),
        help="Per-rule score overrides, e.g. {'SK401': 10}; 0 turns a rule off.",
    ).tag(config=True)
    validation_banned_modules = List(
        Unicode(), help="Modules the validator refuses in addition to its own list."
    ).tag(config=True)
    validation_allowed_modules = List(
        Unicode(), help="Modules the validator allows although its list refuses them."
    ).tag(config=True)
    validation_banned_calls = List(Unicode(), help="Extra calls to refuse, e.g. 'time.sleep'.").tag(
        config=True
    )
    validation_allowed_calls = List(Unicode(), help="Calls to allow despite the rules.").tag(
        config=True
    )
    validation_banned_attributes = List(Unicode(), help="Extra attribute names to refuse.").tag(
        config=True
    )
    validation_allowed_attributes = List(
        Unicode(), help="Attribute names to allow despite the rules."
    ).tag(config=True)
    validation_banned_magics = List(Unicode(), help="Extra IPython magics to refuse.").tag(
        config=True
    )
    validation_allowed_magics = List(Unicode(), help="IPython magics to allow.").tag(config=True)
    validation_custom_rules = List(
        Unicode(),
        help="Extra rules as 'package.module:function' paths (rules registered in the "
        "'sandbox_kernel.rules' entry point group are always loaded).",
    ).tag(config=True)
    allow_scripts_in_output = Bool(
        False,
        help="Pass outputs and widgets to the browser as the sandbox made them, script "
        "included. Off (the default): every output is rebuilt from an allowlist of "
        "mimetypes, HTML/SVG/Markdown go through a parser-based sanitiser, comms and "
        "widgets through an allowlist of targets and modules; script in an output would "
        "run in the user's browser with their Jupyter session, outside the sandbox.",
    ).tag(config=True)
    allowed_comm_targets = List(
        Unicode(),
        default_value=["jupyter.widget", "jupyter.widget.version"],
        help="Comm targets the sandbox may open in the frontend (ipywidgets' by default).",
    ).tag(config=True)
    allowed_widget_modules = List(
        Unicode(),
        default_value=[
            "@jupyter-widgets/controls",
            "@jupyter-widgets/base",
            "@jupyter-widgets/output",
        ],
        help="Widget model and view modules the sandbox may create in the frontend. Add a "
        "library's module (e.g. 'jupyter-matplotlib') only if its frontend code runs "
        "nothing the model carries; never 'anywidget', whose models carry JavaScript.",
    ).tag(config=True)
    max_message_nodes = Int(
        250_000,
        help="JSON values one message from the sandbox may hold; a larger one is dropped "
        "with a notice before it is parsed (each value costs the host a Python object).",
    ).tag(config=True)
    max_message_depth = Int(
        100, help="How deep the JSON of one message from the sandbox may nest."
    ).tag(config=True)
    usage_display = Enum(
        ["always", "slow", "off"],
        default_value="always",
        help="Show the usage line under every cell, only under cells slower than "
        "`usage_min_seconds`, or never.",
    ).tag(config=True)
    usage_min_seconds = Float(
        1.0, help="With usage_display='slow', the wall time above which the usage line shows."
    ).tag(config=True)

    @validate(
        "memory",
        "tmp_size",
        "shm_size",
        "max_file_size",
        "workspace_max_size",
        "outputs_max_cell_size",
        "outputs_max_session_size",
    )
    def _check_size(self, proposal: Any) -> str:
        parse_size(proposal["value"])
        return str(proposal["value"])

    @validate("outputs_dir")
    def _check_outputs_dir(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip("/")
        if value and (value.startswith(".") or any(p in ("", ".", "..") for p in value.split("/"))):
            raise ConfigError(
                f"outputs_dir {proposal['value']!r} must be a plain relative folder name "
                "such as 'outputs' (or empty to turn the copy back off)"
            )
        return value

    @validate("mounts")
    def _check_mounts(self, proposal: Any) -> list[str]:
        for spec in proposal["value"]:
            parse_mount(spec)
        return list(proposal["value"])

    @property
    def memory_bytes(self) -> int:
        return parse_size(self.memory)

    def summary(self) -> dict[str, Any]:
        """The settings a notebook should record about where it ran."""
        return {
            "image": self.image,
            "memory": self.memory,
            "cpus": self.cpus,
            "pids": self.pids,
            "timeout": self.timeout,
            "validation": self.validation,
            "validation_profile": self.validation_profile,
            "network": self.network_mode,
            "runtime": self.runtime or "default",
            "mounts": list(self.mounts),
            "workspace": self.workspace,
            "outputs_dir": self.outputs_dir or None,
        }
