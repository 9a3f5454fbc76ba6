"""Every private ipykernel API the kernel leans on is still there and still behaves.

sandbox_kernel/seams.py overrides or reads ipykernel's private names (host side);
sandbox_kernel/bootstrap.py patches the inner kernel's. A new ipykernel that renames,
re-signs or changes the behaviour of one of them fails here, by name, instead of
silently in a notebook. scripts/ipykernel_range.sh runs this file with the lowest and
highest ipykernel of the range pyproject.toml pins.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from ipykernel import iostream, ipkernel, kernelapp, kernelbase
from ipykernel.kernelbase import Kernel
from jupyter_client.session import Session
from traitlets import Float

from sandbox_kernel import bootstrap, seams
from sandbox_kernel.kernel import SandboxKernel
from sandbox_kernel.kernelapp import SandboxKernelApp

from harness import BOOTSTRAP_PATCHES, start_kernel

ROOT = Path(__file__).resolve().parent.parent


def params(func: object) -> list[str]:
    return list(inspect.signature(func).parameters)  # type: ignore[arg-type]


# -- the host side: seams.py ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("_abort_queues", ["self", "subshell_id"]),
        ("_publish_status", ["self", "status", "channel", "parent"]),
        ("_publish_execute_input", ["self", "code", "parent", "execution_count"]),
        ("shell_main", ["self", "subshell_id", "msg"]),
        ("_get_shell_context_var", ["self", "var"]),
        ("_topic", ["self", "topic"]),
        ("get_parent", ["self", "channel"]),
        ("execute_request", ["self", "stream", "ident", "parent"]),
        ("dispatch_shell", ["self", "msg"]),
    ],
)
def test_overridden_and_called_kernel_methods_keep_their_signatures(
    name: str, expected: list[str]
) -> None:
    assert params(getattr(Kernel, name))[: len(expected)] == expected


def test_every_override_in_seams_overrides_something() -> None:
    """An override of a name ipykernel dropped would be dead code that looks alive."""
    for cls, base in ((seams.KernelSeams, Kernel), (seams.KernelAppSeams, kernelapp.IPKernelApp)):
        own = [n for n, v in vars(cls).items() if callable(v) and not n.startswith("__")]
        helpers = {"_release_held", "_shell_ident", "_uncount_unstored_cell", "_flush_iopub"}
        for name in set(own) - helpers:
            assert hasattr(base, name), f"{base.__name__}.{name} is gone"
    assert issubclass(SandboxKernel, seams.KernelSeams)
    assert issubclass(SandboxKernelApp, seams.KernelAppSeams)


def test_private_attributes_read_exist() -> None:
    assert isinstance(Kernel.class_traits()["_execute_sleep"], Float)
    assert "shell_channel_thread" in Kernel.class_trait_names()
    assert "shell_channel_thread" in kernelapp.IPKernelApp.class_trait_names()
    assert "control_thread" in vars(kernelapp.IPKernelApp) or hasattr(
        kernelapp.IPKernelApp, "control_thread"
    )
    assert callable(iostream.IOPubThread.schedule)
    from ipykernel.utils import _async_in_context

    assert callable(_async_in_context)
    # Kernel.__init__ makes the context variable that _shell_ident reads.
    assert "_shell_parent_ident" in inspect.getsource(Kernel.__init__)


def test_execute_request_counts_every_non_silent_cell() -> None:
    """_uncount_unstored_cell undoes a count ipykernel makes whatever store_history says."""
    source = inspect.getsource(Kernel.execute_request)
    counting = source[
        source.index("execution_count += 1") - 200 : source.index("execution_count += 1")
    ]
    assert "if not silent" in counting
    assert "store_history" not in counting.splitlines()[-2]


def test_execute_request_sleeps_for_execute_sleep() -> None:
    assert "self._execute_sleep" in inspect.getsource(Kernel.execute_request)


def test_shell_main_ends_aborting_on_the_marker() -> None:
    """_abort_queues queues ipykernel's own marker message; it must still mean 'stop'."""
    # shell_main hands the message to dispatch_shell, which recognises the marker.
    assert "self.dispatch_shell(msg" in inspect.getsource(Kernel.shell_main)
    dispatch = inspect.getsource(Kernel.dispatch_shell)
    literal = f'b"{seams.STOP_ABORTING.decode()}"'
    assert literal in dispatch
    marker = dispatch[dispatch.index(literal) :][:600]
    assert "_aborting = False" in marker


def test_the_app_builds_a_shell_channel_thread_we_can_drop() -> None:
    # init_sockets makes it (in init_control), init_kernel hands it to the kernel.
    assert "self.init_control(" in inspect.getsource(kernelapp.IPKernelApp.init_sockets)
    assert "self.shell_channel_thread =" in inspect.getsource(kernelapp.IPKernelApp.init_control)
    assert "shell_channel_thread=self.shell_channel_thread" in inspect.getsource(
        kernelapp.IPKernelApp.init_kernel
    ).replace(" ", "")


def test_unsigned_session_neither_signs_nor_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        session = seams.unsigned_session("hmac-sha256", "test")
    assert "signing is disabled" not in caplog.text
    assert session.auth is None
    assert session.sign([b"{}"]) == b""
    # Negative control: the plain constructor still warns, so the seam is needed
    # and the capture above would have seen it.
    with caplog.at_level(logging.WARNING):
        Session(key=b"", signature_scheme="hmac-sha256")
    assert "signing is disabled" in caplog.text


@pytest.mark.docker
def test_kernel_start_logs_no_signing_warning() -> None:
    with tempfile.TemporaryFile("w+") as log:
        with start_kernel(log=log) as kernel:
            assert kernel.execute("1 + 1").status == "ok"
        log.seek(0)
        text = log.read()
    assert "signing is disabled" not in text
    assert text == "" or "Traceback" not in text


# -- the inner side: bootstrap.py --------------------------------------------------------
def test_every_bootstrap_patch_applies_to_this_ipykernel() -> None:
    """Run in a fresh interpreter: the patches change ipykernel's classes for good."""
    code = (
        "import json, sys; from sandbox_kernel import bootstrap; "
        "print(json.dumps(bootstrap.apply_patches(sys.argv[1])))"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", code, os.path.join(tmp, "pipe")],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    report = json.loads(out.strip().splitlines()[-1])
    assert report == dict.fromkeys(report, "applied")
    assert len(report) == BOOTSTRAP_PATCHES


def test_python_threads_are_named_for_the_host() -> None:
    """name_python_threads wraps threading's private ``Thread._bootstrap_inner``: a
    thread started after it has the OS name the host's ledger looks for."""
    code = (
        "import threading; from sandbox_kernel import bootstrap; "
        "bootstrap.name_python_threads(); names = []\n"
        "def look(): names.append(open('/proc/thread-self/comm').read().strip())\n"
        "t = threading.Thread(target=look); t.start(); t.join(); print(names[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == bootstrap.THREAD_NAME


def test_a_patch_that_does_not_fit_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    # Negative control for the report: an ipykernel without OutStream._flush_buffers.
    monkeypatch.delattr(iostream.OutStream, "_flush_buffers")
    monkeypatch.setattr(iostream.OutStream, "flush", iostream.OutStream.flush)
    with pytest.raises(AttributeError, match="_flush_buffers"):
        bootstrap.flush_only_when_written()


def test_patched_names_exist_in_this_ipykernel() -> None:
    assert callable(ipkernel._accepts_parameters)
    for name in ("_setup_pipe_in", "_setup_pipe_out", "_handle_pipe_msg"):
        assert hasattr(iostream.IOPubThread, name)
    for name in ("_flush", "_is_master_process", "_flush_buffers"):
        assert hasattr(iostream.OutStream, name)
    # A flush skips its wait only when no send is pending: the flag ipykernel sets when
    # it schedules a send and clears when the send starts (bootstrap.py relies on it).
    source = inspect.getsource(iostream.OutStream._flush)
    assert "self._flush_pending = False" in source
    assert "self._flush_pending = True" in inspect.getsource(iostream.OutStream._schedule_flush)
    assert params(kernelbase.Kernel._publish_status)[:3] == ["self", "status", "channel"]


def test_bootstrap_and_relay_agree_on_the_report_line() -> None:
    relay = (ROOT / "sandbox_kernel" / "relay.py").read_text()
    assert repr(bootstrap.REPORT_PREFIX.encode()).replace("'", '"') in relay.replace("\\\\", "\\")


def test_the_pinned_range_is_the_tested_one_and_holds_this_ipykernel() -> None:
    import ipykernel
    from packaging.version import Version

    lowest, upper = (v.lstrip("<>=") for v in seams.TESTED_IPYKERNEL)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"ipykernel>={lowest},<{upper}"' in pyproject
    assert Version(lowest) <= Version(ipykernel.__version__) < Version(upper)


# -- the Docker SDK: spec.create_body is its translation, built without it ---------------
def _sdk_body(config: object, image_id: str, **kwargs: object) -> dict[str, object]:
    """The create body as the SDK's request types build it (how session.py built it
    before the kernel's start stopped importing the SDK; see spec.create_body)."""
    import docker.types

    from sandbox_kernel import spec

    options = spec.container_options(config)  # type: ignore[arg-type]
    container = dict(options["container"])
    container.pop("use_config_proxy")
    host = dict(options["host_config"])
    # As the SDK's own types, so that their translation is what is compared.
    host["mounts"] = [
        docker.types.Mount(
            target=m["Target"],
            source=m["Source"],
            type=m["Type"],
            read_only=m["ReadOnly"],
            no_copy=m.get("VolumeOptions", {}).get("NoCopy", False),
            labels=m.get("VolumeOptions", {}).get("Labels"),
            driver_config=docker.types.DriverConfig(
                m["VolumeOptions"]["DriverConfig"]["Name"],
                m["VolumeOptions"]["DriverConfig"]["Options"],
            )
            if "VolumeOptions" in m
            else None,
        )
        for m in host["mounts"]
    ]
    host["ulimits"] = [
        docker.types.Ulimit(name=u["Name"], soft=u["Soft"], hard=u["Hard"]) for u in host["ulimits"]
    ]
    host["log_config"] = docker.types.LogConfig(type=host["log_config"]["Type"])
    version = str(kwargs.pop("version"))
    body = docker.types.ContainerConfig(
        version,
        image_id,
        spec.relay_command(
            config,  # type: ignore[arg-type]
            claim_timeout=kwargs["claim_timeout"],  # type: ignore[arg-type]
            warm_delay=kwargs.get("warm_delay", 0.0),  # type: ignore[arg-type]
        ),
        host_config=docker.types.HostConfig(version=version, **host),
        labels={
            **spec.labels(str(kwargs["role"]), str(kwargs["fingerprint_"])),
            **(kwargs.get("extra_labels") or {}),  # type: ignore[dict-item]
        },
        **container,
    )
    sent = {key: value for key, value in body.items() if value is not None}
    return dict(json.loads(json.dumps(sent)))


#: Every setting of config.py that reaches the container, each away from its default.
CONTAINER_SETTINGS: list[dict[str, object]] = [
    {},
    {"memory": "768m", "cpus": 0.5, "pids": 64},
    {"memory": "0", "cpus": 0.0, "pids": 0},
    {"tmp_size": "100m", "tmp_inodes": 1000, "shm_size": "8m", "tmp_noexec": False},
    {"nofile": 64, "max_file_size": "1m"},
    {"network_mode": "bridge", "read_only_root": False, "drop_capabilities": False},
    {"no_new_privileges": False, "seccomp_profile": "unconfined", "init": False},
    {"user": "0:0", "python": "/usr/bin/python3.11"},
    {"runtime": "runsc"},
    {"runtime": "runsc", "pids": 100, "memory": "16g", "tmp_noexec": False, "user": "0:0"},
    {"mounts": ["/srv/data:/data", "/srv/results:/mnt/results"]},
    {"extra_env": {"A": "1", "B": "two words", "EMPTY": ""}},
    {"workspace_max_size": "10m", "controller_timeout": 30.0},
]


@pytest.mark.parametrize("settings", CONTAINER_SETTINGS, ids=lambda s: ",".join(s) or "default")
@pytest.mark.parametrize(
    "request_kind",
    [
        {"role": "kernel", "claim_timeout": 60.0},
        {"role": "spare", "claim_timeout": 600.0, "warm_delay": 3.0},
        {"role": "spare", "claim_timeout": 900.0, "extra_labels": {"sandbox-kernel.expires": "9"}},
    ],
    ids=["kernel", "spare", "prestarted"],
)
def test_the_create_body_is_the_sdks_translation_of_the_settings(
    settings: dict[str, object], request_kind: dict[str, object]
) -> None:
    """spec.create_body builds the engine's JSON without the SDK (the kernel reaches
    ready without importing it); a docker-py release that translates an option
    differently, or a new option spec.py passes, fails here by its field."""
    import docker.types  # noqa: F401  (the SDK's translation is the reference)

    from sandbox_kernel import engine_address, spec
    from sandbox_kernel.config import SandboxConfig

    config = SandboxConfig(**settings)
    image_id = "sha256:" + "ab" * 32
    kwargs = {"version": engine_address.API_VERSION, "fingerprint_": "f" * 32, **request_kind}
    ours = spec.create_body(config, image_id, **kwargs)  # type: ignore[arg-type]
    sdks = _sdk_body(config, image_id, **kwargs)
    # The created label's second may tick between the two.
    ours["Labels"].pop(spec.LABEL_CREATED)
    sdks["Labels"].pop(spec.LABEL_CREATED)  # type: ignore[attr-defined]
    assert set(ours) == set(sdks)
    for field in sdks:
        assert ours[field] == sdks[field], field


def test_the_mounts_and_limits_are_the_sdks_types() -> None:
    """The engine-API dicts spec.py and gvisor.py build are what docker.types build."""
    import docker.types

    from sandbox_kernel import gvisor, spec
    from sandbox_kernel.config import SandboxConfig

    config = SandboxConfig(mounts=["/srv/data:/data"], runtime="runsc")
    host = spec.container_options(config)["host_config"]
    assert host["mounts"][-1] == docker.types.Mount(
        target="/data", source="/srv/data", type="bind", read_only=True
    )
    assert spec.ulimit("core", 0) == docker.types.Ulimit(name="core", soft=0, hard=0)
    assert host["log_config"] == docker.types.LogConfig(type="none")
    volume = gvisor.tmpfs_volume("/x", size=1, inodes=2, noexec=True, mode="1777", owner="1:1")
    assert volume == docker.types.Mount(
        target="/x",
        source=None,
        type="volume",
        no_copy=True,
        labels={gvisor.VOLUME_LABEL: "1"},
        driver_config=docker.types.DriverConfig(
            "local", volume["VolumeOptions"]["DriverConfig"]["Options"]
        ),
    )


def test_the_fingerprint_did_not_change_with_the_sdk_free_builder() -> None:
    """Spares made before (SDK types in container_options) stay claimable: the
    fingerprint hashes the options as JSON, and the same options made of docker.types
    objects (as before 33a6ce3) give the same JSON."""
    import docker.types

    from sandbox_kernel import spec
    from sandbox_kernel.config import SandboxConfig

    for config in (SandboxConfig(), SandboxConfig(runtime="runsc", mounts=["/a:/b"])):
        options = spec.container_options(config)
        host = dict(options["host_config"])
        host["mounts"] = [docker.types.Mount(**_mount_kwargs(m)) for m in host["mounts"]]
        host["ulimits"] = [
            docker.types.Ulimit(name=u["Name"], soft=u["Soft"], hard=u["Hard"])
            for u in host["ulimits"]
        ]
        host["log_config"] = docker.types.LogConfig(type=host["log_config"]["Type"])
        typed = {**options, "host_config": host}
        assert json.dumps(typed, sort_keys=True) == json.dumps(options, sort_keys=True)


def _mount_kwargs(mount: dict[str, Any]) -> dict[str, Any]:
    """docker.types.Mount's arguments for an engine-API mount dict."""
    import docker.types

    volume = mount.get("VolumeOptions") or {}
    driver = volume.get("DriverConfig")
    kwargs: dict[str, Any] = {
        "target": mount["Target"],
        "source": mount.get("Source"),
        "type": mount["Type"],
        "read_only": mount.get("ReadOnly", False),
    }
    if "NoCopy" in volume:
        kwargs["no_copy"] = volume["NoCopy"]
    if "Labels" in volume:
        kwargs["labels"] = volume["Labels"]
    if driver is not None:
        kwargs["driver_config"] = docker.types.DriverConfig(driver["Name"], driver.get("Options"))
    if "TmpfsOptions" in mount:
        tmpfs = mount["TmpfsOptions"]
        kwargs["tmpfs_size"] = tmpfs.get("SizeBytes")
        kwargs["tmpfs_mode"] = tmpfs.get("Mode")
    return kwargs
