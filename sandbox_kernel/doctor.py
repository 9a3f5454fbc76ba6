"""``sandbox-kernel doctor``: is this machine ready to run sandboxes, and if not, why.

Each check prints one line: ``ok``, ``warn`` or ``FAIL``, what was found, and for
problems the command that fixes them.
"""

from __future__ import annotations

import asyncio
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
    from .session import connect, engine_address, image_reference, resolve_image

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
    runtimes = info.get("Runtimes") or {}
    if config.runtime and config.runtime not in runtimes:
        report.fail(
            "runtime",
            f"{config.runtime!r} is not configured in the engine (have: {', '.join(runtimes)})",
        )
    elif "runsc" in runtimes:
        report.ok("runtime", "gVisor (runsc) available; select it with --runtime runsc")
    else:
        report.ok("runtime", f"{config.runtime or info.get('DefaultRuntime', 'runc')}")
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
    try:
        from .seccomp import load_profile

        load_profile(config.seccomp_profile)
        report.ok("seccomp profile", config.seccomp_profile)
    except SandboxError as err:
        report.fail("seccomp profile", str(err))
    profile = config.validation_profile or "notebook"  # the kernel's default
    report.ok("validation", f"{config.validation}, profile {profile}")
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    if "sandbox" in specs:
        report.ok("kernelspec", f"sandbox at {specs['sandbox']}")
    else:
        report.warn("kernelspec", "not installed; run `sandbox-kernel install --user`")
    if try_kernel and not report.failed:
        _try_kernel(config, report)
    out("all good" if not report.failed else "some checks failed: see FAIL lines above")
    return 1 if report.failed else 0


def _try_kernel(config: SandboxConfig, report: _Report) -> None:
    from .sandbox import Sandbox

    patches: dict[str, str] = {}

    async def attempt() -> str:
        async with Sandbox(config) as sandbox:
            patches.update(sandbox.inner_patches)
            result = await sandbox.execute("import sys; print(sys.version.split()[0])")
            return result.stdout.strip() or (result.error.evalue if result.error else "")

    try:
        report.ok("kernel", f"ran a cell with Python {asyncio.run(attempt())}")
    except SandboxError as err:
        report.fail("kernel", str(err))
        return
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
