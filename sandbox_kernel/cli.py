"""The ``sandbox-kernel`` command (also ``python -m sandbox_kernel``).

Subcommands: ``kernel`` (what the kernelspec runs), ``install``, ``image build``,
``doctor``, ``cleanup``, ``prestart``, ``validate``, ``usage`` and ``reproduce``. Settings come, in rising priority, from the
trait defaults, ``sandbox_kernel_config.py`` in a Jupyter config folder, and
``--SandboxConfig.NAME=VALUE`` or the named options on the command line.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import Any

from traitlets.config import Application

from . import __version__
from .config import SandboxConfig
from .errors import ConfigError, SandboxError

#: install options that are plain SandboxConfig traits, with their types.
_SETTING_OPTIONS: dict[str, tuple[type, str]] = {
    "image": (str, "the sandbox image"),
    "memory": (str, "memory limit, e.g. 2g"),
    "cpus": (float, "CPU quota, in CPUs"),
    "pids": (int, "process/thread limit"),
    "timeout": (float, "per-cell timeout in seconds (0: none)"),
    "runtime": (str, "OCI runtime, e.g. runsc for gVisor"),
    "docker_host": (str, "Docker engine address"),
}


class _SettingsApp(Application):
    """Loads sandbox_kernel_config.py and --SandboxConfig.* flags, like the kernel does."""

    name = "sandbox-kernel"
    classes = [SandboxConfig]


def load_settings(overrides: Sequence[str] = ()) -> SandboxConfig:
    """The effective settings: config files, then ``--SandboxConfig.X=Y`` overrides."""
    from jupyter_core.paths import jupyter_config_path

    app = _SettingsApp()
    for path in reversed(jupyter_config_path()):
        app.load_config_file("sandbox_kernel_config", path=path)
    app.parse_command_line(list(overrides))
    return SandboxConfig(config=app.config)


def _add_setting_options(parser: argparse.ArgumentParser) -> None:
    for name, (kind, help_text) in _SETTING_OPTIONS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, help=help_text)
    parser.add_argument("--validation", choices=["block", "warn", "off"], help="validator policy")
    parser.add_argument(
        "--validation-profile",
        dest="validation_profile",
        choices=["notebook", "strict"],
        help="what the validator refuses (notebook: capabilities; strict: also any os use)",
    )
    parser.add_argument(
        "--mount",
        dest="mounts",
        action="append",
        metavar="HOST_DIR[:CONTAINER_DIR]",
        help="mount a host folder read-only (repeatable)",
    )


def _cmd_install(args: argparse.Namespace, extra: list[str]) -> int:
    from .install import install

    settings: dict[str, Any] = {
        name: getattr(args, name)
        for name in [*_SETTING_OPTIONS, "validation", "validation_profile", "mounts"]
        if getattr(args, name, None) is not None
    }
    for flag in extra:  # --SandboxConfig.NAME=VALUE passes through as is
        name, _, value = flag.removeprefix("--SandboxConfig.").partition("=")
        settings[name] = value
    from .install import settings_argv

    load_settings(settings_argv(settings))  # a bad value fails here, not at kernel start
    prefix = sys.prefix if args.sys_prefix else args.prefix
    if args.display_name is None:
        from .install import display_name_for

        args.display_name = display_name_for(settings.get("image"))
    where = install(
        user=args.user,
        prefix=prefix,
        kernel_name=args.name,
        display_name=args.display_name,
        settings=settings,
    )
    print(f"Installed kernelspec {args.name!r} ({args.display_name}) in {where}")
    return 0


def _cmd_image(args: argparse.Namespace, extra: list[str]) -> int:
    from .engine_address import connect
    from .image import build_image

    config = load_settings(extra)
    client = connect(config)
    if args.add or args.requirements:
        return _derive(args, config, client)
    name = args.name or config.image
    image_id = build_image(client, name, method=args.method, force=args.force)
    print(f"{name}: {image_id}")
    return 0


def _derive(args: argparse.Namespace, config: SandboxConfig, client: Any) -> int:
    """``image build --add/--requirements``: a derived image, and how to use it."""
    from pathlib import Path

    from .derive import build_derived

    derived = build_derived(
        client,
        args.base or config.image,
        requirements=Path(args.requirements) if args.requirements else None,
        add=args.add or (),
        wheelhouse=Path(args.wheelhouse) if args.wheelhouse else None,
        name=args.name,
        force=args.force,
        user=config.user,
    )
    print(f"{derived.name}: {derived.image_id}")
    print(f"added: {' '.join(derived.added)}")
    wanted = [
        re.split(r"[^A-Za-z0-9_.-]", line, maxsplit=1)[0].lower() for line in derived.requested
    ]
    wanted = [w for w in wanted if w][:2] or ["extra"]
    kernel = "sandbox-" + "-".join(wanted)
    label = f"Python 3 (sandbox + {', '.join(wanted)})"
    print("Make it a kernel in the launcher with:")
    print(
        f"  sandbox-kernel install --user --image {derived.name} --name {kernel} "
        f"--display-name '{label}'"
    )
    return 0


def _cmd_doctor(args: argparse.Namespace, extra: list[str]) -> int:
    from .doctor import run_doctor

    return run_doctor(load_settings(extra), try_kernel=args.run)


def _cmd_cleanup(args: argparse.Namespace, extra: list[str]) -> int:
    from .containers import list_containers, remove_dangling_volumes, remove_orphans
    from .engine_address import connect

    client = connect(load_settings(extra))
    if args.all:
        names = []
        for container in list_containers(client):
            client.api.remove_container(container["Id"], force=True, v=True)
            names.append((container.get("Names") or [container["Id"][:12]])[0].lstrip("/"))
    else:
        names = remove_orphans(client)
    for name in names:
        print(f"removed {name}")
    volumes = remove_dangling_volumes(client)
    print(
        f"{len(names)} container(s) removed" + (f", {volumes} unused volume(s)" if volumes else "")
    )
    return 0


def _cmd_prestart(args: argparse.Namespace, extra: list[str]) -> int:
    from .engine_address import connect
    from .prestart import kernelspec_settings, parse_ttl, prestart

    ttl = parse_ttl(args.ttl)
    overrides: list[str] = []
    if args.kernel:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

        try:
            kernelspec = KernelSpecManager().get_kernel_spec(args.kernel)
        except NoSuchKernel as err:
            raise ConfigError(
                f"No kernelspec named {args.kernel!r}; install it (`sandbox-kernel install`) "
                "or name another with --kernel."
            ) from err
        overrides = kernelspec_settings(kernelspec.argv)
    config = load_settings([*overrides, *extra])
    done = prestart(connect(config), config, args.count, ttl, wait=not args.no_wait, out=print)
    import time

    print(
        f"{done.waiting_before + len(done.started)} sandbox(es) wait for the next kernels of "
        f"{args.kernel or 'these settings'} ({len(done.started)} started now); unclaimed, the "
        f"new ones exit at {time.strftime('%H:%M', time.localtime(done.expires))}"
        + ("" if done.settled or not done.started or args.no_wait else " (still starting)")
    )
    return 0


def _cmd_validate(args: argparse.Namespace, extra: list[str]) -> int:
    from . import validate_cli

    return validate_cli.run(args)


def _cmd_usage(args: argparse.Namespace, extra: list[str]) -> int:
    from . import usage_cli

    return usage_cli.run(args)


def _cmd_reproduce(args: argparse.Namespace, extra: list[str]) -> int:
    from . import reproduce

    return reproduce.run(args, extra)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sandbox-kernel",
        description="A Jupyter kernel that runs every cell in a locked-down Docker container.",
    )
    parser.add_argument("--version", action="version", version=f"sandbox-kernel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("kernel", help="run the kernel (what the kernelspec starts)", add_help=False)

    install = sub.add_parser("install", help="install the Jupyter kernelspec")
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for this user")
    where.add_argument("--sys-prefix", action="store_true", help="install into sys.prefix")
    where.add_argument("--prefix", help="install into PREFIX/share/jupyter/kernels")
    install.add_argument("--name", default="sandbox", help="kernelspec name (default: sandbox)")
    install.add_argument(
        "--display-name",
        help="the launcher's label (default: 'Python 3 (sandbox)', naming the image when "
        "--image is another one)",
    )
    _add_setting_options(install)
    install.set_defaults(handler=_cmd_install)

    image = sub.add_parser("image", help="manage the sandbox image")
    image_sub = image.add_subparsers(dest="image_command", required=True)
    build = image_sub.add_parser("build", help="build the default image (no registry needed)")
    build.add_argument("--name", help="image name (default: the image setting)")
    build.add_argument("--method", choices=["auto", "rootfs", "dockerfile"], default="auto")
    build.add_argument("--force", action="store_true", help="rebuild even if up to date")
    build.add_argument(
        "--add",
        nargs="+",
        metavar="PKG",
        help="build a derived image: the sandbox image plus these packages (pip requirement "
        "specifiers), tagged by the hash of its inputs",
    )
    build.add_argument(
        "--requirements", metavar="FILE", help="build a derived image with this requirements file"
    )
    build.add_argument(
        "--wheelhouse",
        metavar="DIR",
        help="install the added packages offline from this folder of wheels (pip --no-index "
        "--require-hashes; the hashes are the files' own unless FILE has --hash pins)",
    )
    build.add_argument(
        "--base",
        metavar="IMG",
        help="the image a derived image builds on (default: the image setting)",
    )
    build.set_defaults(handler=_cmd_image)

    doctor = sub.add_parser("doctor", help="check the engine, image, cgroups and seccomp")
    doctor.add_argument("--run", action="store_true", help="also start a sandbox and run a cell")
    doctor.set_defaults(handler=_cmd_doctor)

    cleanup = sub.add_parser("cleanup", help="remove sandbox containers left behind")
    cleanup.add_argument("--all", action="store_true", help="remove every sandbox container")
    cleanup.set_defaults(handler=_cmd_cleanup)

    pre = sub.add_parser(
        "prestart",
        help="start N sandboxes before a class; the next N kernels claim them",
    )
    pre.add_argument(
        "count",
        type=int,
        help="how many sandboxes should wait (at most the "
        "prestart_limit setting, 40 by default), counting those already waiting",
    )
    pre.add_argument(
        "--ttl",
        default="1h",
        help="unclaimed, they exit after this long (90s, 45m, 2h; at most 12h)",
    )
    pre.add_argument(
        "--kernel",
        default="sandbox",
        help="the kernelspec whose settings the class uses (default: sandbox; '' for the "
        "config files and --SandboxConfig flags alone)",
    )
    pre.add_argument(
        "--no-wait", action="store_true", help="return once started, before their kernels are up"
    )
    pre.set_defaults(handler=_cmd_prestart)

    validate = sub.add_parser("validate", help="judge .py files and notebooks like the kernel")
    from . import validate_cli

    validate_cli.add_arguments(validate)
    validate.set_defaults(handler=_cmd_validate)

    usage = sub.add_parser("usage", help="what a saved notebook cost, from its usage records")
    from . import usage_cli

    usage_cli.add_arguments(usage)
    usage.set_defaults(handler=_cmd_usage)

    reproduce = sub.add_parser(
        "reproduce", help="re-run a notebook in the environment it records and compare outputs"
    )
    from . import reproduce as reproduce_cli

    reproduce_cli.add_arguments(reproduce)
    reproduce.set_defaults(handler=_cmd_reproduce)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["kernel"]:
        from . import prelaunch

        # The container starts while the kernel imports ipykernel (see prelaunch.py).
        prelaunch.begin(args_list[1:])
        from .dockersdk import hide_ssh

        hide_ssh()  # the SDK, if imported at all, comes without paramiko (see dockersdk.py)
        from .kernelapp import main as kernel_main

        kernel_main(args_list[1:])
        return 0
    parser = build_parser()
    # --SandboxConfig.NAME=VALUE flags are traitlets', not argparse's.
    extra = [a for a in args_list if a.startswith("--SandboxConfig.")]
    args = parser.parse_args([a for a in args_list if not a.startswith("--SandboxConfig.")])
    try:
        return int(args.handler(args, extra))
    except SandboxError as err:
        print(f"sandbox-kernel: {err}", file=sys.stderr)
        return 2
