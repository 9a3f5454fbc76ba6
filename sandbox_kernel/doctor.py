"""``sandbox-kernel doctor``: is this machine ready to run sandboxes, and if not, why.

Each check prints one line: ``ok``, ``warn`` or ``FAIL``, what was found, and for
problems the command that fixes them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from .config import SandboxConfig
from .errors import SandboxError


class _Report:
    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.failed = False

    def ok(self, what: str, detail: str) -> None:
        self.out(f"  ok    {what}: {detail}")

    def warn(self, what: str, detail: str) -> None:
        self.out(f"  warn  {what}: {detail}")

    def fail(self, what: str, detail: str) -> None:
        self.failed = True
        self.out(f"  FAIL  {what}: {detail}")


def run_doctor(
    config: SandboxConfig, *, try_kernel: bool = False, out: Callable[[str], None] = print
) -> int:
    """Run every check; 0 when the sandbox can run, 1 when something is missing."""
    from .containers import image_reference, resolve_image
    from .engine_address import connect, engine_address

    report = _Report(out)
    out("sandbox-kernel doctor")
    for key, value in config.summary().items():
        out(f"  setting {key} = {value}")
    try:
        client = connect(config)
    except SandboxError as err:
        report.fail("docker engine", str(err))
        return 1
    info: dict[str, Any] = client.info()
    version = client.version().get("Version", "?")
    address = engine_address(config).get("base_url", client.api.base_url)
    report.ok("docker engine", f"{version} at {address}")
    cgroup = str(info.get("CgroupVersion", "?"))
    report.ok("cgroups", f"v{cgroup} ({info.get('CgroupDriver', '?')} driver)")
    if not info.get("MemoryLimit", True):
        report.fail(
            "memory limits", "the engine cannot enforce memory limits; enable the memory cgroup"
        )
    if not info.get("PidsLimit", True):
        report.fail("pids limits", "the engine cannot enforce pids limits; enable the pids cgroup")
    if info.get("SwapLimit") is False:
        report.warn(
            "swap limit", "swap is not limited (memswap_limit ignored): enable swap accounting"
        )
    security = " ".join(info.get("SecurityOptions") or [])
    if "seccomp" in security:
        report.ok("seccomp", "supported by the engine")
    else:
        report.fail(
            "seccomp", "the engine has no seccomp support; install a docker built with libseccomp"
        )
    _check_runtime(config, info, report)
    try:
        image = resolve_image(client, config.image)
    except SandboxError as err:
        report.fail("image", str(err))
    else:
        label = (image.labels or {}).get("sandbox-kernel.recipe")
        report.ok(
            "image",
            f"{config.image} = {image_reference(image)}"
            + (f" (recipe {label[:12]})" if label else ""),
        )
        from .image import image_packages

        packages = image_packages(image.labels)
        if packages:
            report.ok("packages", f"{len(packages)}: {' '.join(packages)}")
        else:
            report.warn("packages", "the image does not record its package list")
        from . import spec
        from .prestart import describe_waiting

        with contextlib.suppress(SandboxError):  # a bad setting is reported below
            fingerprint = spec.fingerprint(config, image.id)
            report.ok("spares", describe_waiting(client, fingerprint))
    try:
        from .runtime import is_gvisor
        from .seccomp import load_profile

        load_profile(config.seccomp_profile, config.runtime)
        variant = (
            " (its gVisor variant)"
            if config.seccomp_profile == "builtin" and is_gvisor(config.runtime)
            else ""
        )
        report.ok("seccomp profile", config.seccomp_profile + variant)
    except SandboxError as err:
        report.fail("seccomp profile", str(err))
    profile = config.validation_profile or "notebook"  # the kernel's default
    report.ok("validation", f"{config.validation}, profile {profile}")
    from jupyter_client.kernelspec import KernelSpecManager

    manager = KernelSpecManager()
    specs = manager.find_kernel_specs()
    if "sandbox" in specs:
        report.ok("kernelspec", f"sandbox at {specs['sandbox']}")
    else:
        report.warn("kernelspec", "not installed; run `sandbox-kernel install --user`")
    _check_launches(manager, report)
    if try_kernel and not report.failed:
        _try_kernel(config, report)
    out("all good" if not report.failed else "some checks failed: see FAIL lines above")
    return 1 if report.failed else 0


def _check_launches(manager: Any, report: _Report) -> None:
    """Kernelspecs that start this kernel with ``python -m`` (see install.LAUNCH)."""
    from .install import UNSAFE_LAUNCH_WARNING, unsafe_launch

    for name, found in sorted(manager.get_all_specs().items()):
        argv = found.get("spec", {}).get("argv") or []
        if isinstance(argv, list) and unsafe_launch([str(a) for a in argv]):
            report.fail("kernelspec " + name, UNSAFE_LAUNCH_WARNING.replace("this kernelspec ", ""))


def _check_runtime(config: SandboxConfig, info: dict[str, Any], report: _Report) -> None:
    """The runtime the sandbox will use, and whether gVisor is there and safe to select."""
    from .runtime import engine_runtimes, runtime_problem

    runtimes = engine_runtimes(info)
    problem = runtime_problem(info, config)
    chosen = runtimes.get(config.runtime) if config.runtime else None
    if problem is not None:
        report.fail("runtime", problem)
    elif chosen is not None:
        report.ok("runtime", f"{chosen.describe()}; the seccomp profile will be in force")
    else:
        report.ok("runtime", f"{info.get('DefaultRuntime', 'runc')} (the engine's default)")
    for runtime in runtimes.values():
        if not runtime.gvisor or runtime is chosen:
            continue
        if runtime.missing_args:
            report.warn(
                "gvisor",
                f"{runtime.describe()} lacks {' '.join(runtime.missing_args)}"
                + ("" if runtime.applies_seccomp else ": the seccomp profile would NOT be in force")
                + "; bash scripts/engine.sh registers it with the options the sandbox needs",
            )
        else:
            report.ok(
                "gvisor",
                f"{runtime.describe()}; the seccomp profile will be in force; select it "
                f"with --runtime {runtime.name}",
            )
    if not any(runtime.gvisor for runtime in runtimes.values()):
        report.ok("gvisor", "not registered (optional: bash scripts/engine.sh installs runsc)")


#: Run in the sandbox by ``doctor --run``: the Python version, the seccomp mode of the
#: kernel's process, what socket(AF_INET) does, and which kernel answers (gVisor's
#: Sentry reports itself as Linux 4.4.0).
_PROBE = """
import errno, socket, sys
status = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
    inet = 'allowed'
except OSError as e:
    inet = 'refused (' + errno.errorcode.get(e.errno, str(e.errno)) + ')'
print(sys.version.split()[0], status.get('Seccomp', '?').strip(), inet, sep='|')
print(open('/proc/version').read().strip())
"""


def _try_kernel(config: SandboxConfig, report: _Report) -> None:
    from .runtime import is_gvisor
    from .sandbox import Sandbox

    # The probe opens /proc and a socket, which the validator rightly refuses in cells.
    settings = {name: getattr(config, name) for name in config.trait_names(config=True)}
    probe_config = SandboxConfig(**{**settings, "validation": "off", "warm_spare": False})
    patches: dict[str, str] = {}

    async def attempt() -> str:
        async with Sandbox(probe_config) as sandbox:
            patches.update(sandbox.inner_patches)
            result = await sandbox.execute(_PROBE)
            if result.error:
                raise SandboxError(f"{result.error.ename}: {result.error.evalue}")
            return result.stdout

    try:
        first, kernel_version = asyncio.run(attempt()).strip().splitlines()[:2]
    except (SandboxError, ValueError) as err:
        report.fail("kernel", str(err))
        return
    python, seccomp, inet = first.split("|")
    report.ok("kernel", f"ran a cell with Python {python}")
    confined = config.seccomp_profile != "unconfined"
    proof = f"Seccomp: {seccomp} in /proc/self/status, socket(AF_INET) {inet}"
    if not confined:
        report.warn("seccomp in the sandbox", f"{proof} (seccomp_profile is 'unconfined')")
    elif seccomp == "2" and inet.startswith("refused"):
        report.ok("seccomp in the sandbox", proof)
    else:
        report.fail("seccomp in the sandbox", f"{proof}: the profile is not in force")
    gvisor = "4.4.0" in kernel_version.split()[:3]
    if is_gvisor(config.runtime) and not gvisor:
        report.fail("runtime in the sandbox", f"not gVisor: {kernel_version[:80]}")
    else:
        where = "gVisor's kernel" if gvisor else "the host's kernel"
        report.ok("runtime in the sandbox", f"{where} answers ({kernel_version[:60]})")
    # The inner kernel's patches (bootstrap.py): a skipped one costs speed or a
    # feature (forked children's output), never safety.
    skipped = {name: why for name, why in patches.items() if why != "applied"}
    applied = len(patches) - len(skipped)
    if skipped:
        report.warn(
            "inner patches",
            f"{applied} of {len(patches)} applied; skipped: "
            + "; ".join(f"{name} ({why})" for name, why in sorted(skipped.items())),
        )
    else:
        report.ok("inner patches", f"all {applied} applied: {', '.join(sorted(patches))}")
