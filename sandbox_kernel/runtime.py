"""The container runtime: the engine's default (runc) or gVisor's ``runsc``.

gVisor runs the sandbox's processes on its own user-space kernel (the Sentry), so a
bug in the host kernel's syscalls is out of reach. It changes three things this
package cares about, each handled where it matters:

- the seccomp profile is applied *by gVisor*, and only when runsc runs with
  ``--oci-seccomp`` (:func:`check_runtime` refuses a setup where it would be ignored;
  :mod:`.seccomp` picks the profile variant gVisor needs);
- runsc needs ``--network=none`` to start a container whose network is off;
- the cgroup figures are the sandbox's, not its processes' (see :mod:`.usage`).

A runtime counts as gVisor when its name or its binary is ``runsc`` (``runsc``,
``runsc-kvm``, ...); :func:`is_gvisor` decides from the setting alone, so the
container's options stay a pure function of the settings (:mod:`.spec`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .config import SandboxConfig
from .errors import ContainerStartError

#: runtimeArgs this package needs for runsc (``scripts/engine.sh`` registers them).
RUNSC_ARGS = ("--network=none", "--oci-seccomp")


def is_gvisor(runtime: str) -> bool:
    """Whether a runtime setting names gVisor (``runsc`` or ``runsc-…``)."""
    return runtime == "runsc" or runtime.startswith("runsc-")


@dataclass(frozen=True)
class EngineRuntime:
    """A runtime as the engine has it registered (``docker info`` → ``Runtimes``)."""

    name: str
    path: str
    args: tuple[str, ...]

    @property
    def gvisor(self) -> bool:
        return is_gvisor(self.name) or os.path.basename(self.path) == "runsc"

    @property
    def applies_seccomp(self) -> bool:
        """Whether a container's seccomp profile is in force under this runtime."""
        return not self.gvisor or "--oci-seccomp" in self.args

    @property
    def missing_args(self) -> list[str]:
        """The runtimeArgs this package needs that the registration lacks."""
        return [arg for arg in RUNSC_ARGS if arg not in self.args] if self.gvisor else []

    def describe(self) -> str:
        what = "gVisor " if self.gvisor and self.name != "runsc" else ""
        return f"{what}{self.name} ({' '.join([self.path, *self.args])})"


def engine_runtimes(info: dict[str, Any]) -> dict[str, EngineRuntime]:
    """Every runtime the engine knows, by name, from its ``info``."""
    found = {}
    for name, entry in (info.get("Runtimes") or {}).items():
        entry = entry if isinstance(entry, dict) else {}
        found[name] = EngineRuntime(
            name=name,
            path=str(entry.get("path") or name),
            args=tuple(str(arg) for arg in entry.get("runtimeArgs") or ()),
        )
    return found


def runtime_problem(info: dict[str, Any], config: SandboxConfig) -> str | None:
    """One sentence saying why the configured runtime cannot run the sandbox, or None."""
    if not config.runtime:
        return None
    runtimes = engine_runtimes(info)
    runtime = runtimes.get(config.runtime)
    if runtime is None:
        how = " (bash scripts/engine.sh does it for runsc)" if is_gvisor(config.runtime) else ""
        return (
            f"The Docker engine has no runtime {config.runtime!r} (it has "
            f'{", ".join(sorted(runtimes)) or "none"}); register it under "runtimes" in '
            f"/etc/docker/daemon.json and reload dockerd{how}, or leave the runtime "
            "setting empty."
        )
    if not runtime.applies_seccomp and config.seccomp_profile != "unconfined":
        return (
            f"The engine runs {config.runtime} without --oci-seccomp, so the sandbox's "
            'seccomp profile would not be in force; add "--oci-seccomp" to its '
            "runtimeArgs in /etc/docker/daemon.json and reload dockerd (bash "
            "scripts/engine.sh does both), or set seccomp_profile to 'unconfined'."
        )
    return None


def check_runtime(client: Any, config: SandboxConfig) -> None:
    """Refuse, in one sentence, a runtime the engine does not have or would run unsafely.

    A good answer is remembered per client (``docker info`` is not free); a bad one is
    asked again next time, so fixing the engine needs no kernel restart.

    Raises:
        ContainerStartError: the runtime is unknown, or gVisor would ignore the profile.
    """
    if not config.runtime:
        return
    good: set[tuple[str, str]] = client.__dict__.setdefault("_sandbox_runtimes_ok", set())
    key = (config.runtime, config.seccomp_profile)
    if key in good:
        return
    problem = runtime_problem(client.info(), config)
    if problem is not None:
        raise ContainerStartError(problem)
    good.add(key)
