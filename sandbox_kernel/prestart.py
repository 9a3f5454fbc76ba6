"""Sandboxes started before a class: ``sandbox-kernel prestart N --ttl 1h``.

A class starts twenty kernels in the same minute; each one's start is two
interpreters (the outer kernel on the host, the inner one in its container) on a
machine with a few cores. A warm spare takes the inner start off a kernel's start,
but there is one spare per configuration (see :func:`.containers.launch_spare`), so in
a class only one kernel gets one. A teacher who knows the class is coming pre-starts
N sandboxes of the class's configuration: N more spares, the bounded exception to the
one-spare rule. They are spares in every other way: the next N kernel starts with the
same configuration claim them (one each, see ``ContainerSession._claim_spare``); one
that nobody claims exits by itself after ``ttl`` seconds and the engine removes it;
``sandbox-kernel cleanup`` removes them at once; ``doctor`` counts them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import docker

from . import spec
from .config import SandboxConfig
from .containers import create_container, list_containers, resolve_image
from .errors import ConfigError

#: Longest a pre-started sandbox may wait to be claimed: a class, not a standing pool.
MAX_TTL = 12 * 3600.0

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")
_UNIT = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_ttl(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``45m`` or ``2h``, at most :data:`MAX_TTL`.

    Raises:
        ConfigError: not a duration, zero, or longer than MAX_TTL.
    """
    found = _DURATION.match(text)
    if not found:
        raise ConfigError(f"--ttl {text!r} is not a duration; write e.g. 90s, 45m or 2h.")
    seconds = float(found[1]) * _UNIT[found[2]]
    if not 0 < seconds <= MAX_TTL:
        raise ConfigError(
            f"--ttl {text!r} is out of range; pre-started sandboxes wait between a second "
            f"and {MAX_TTL / 3600:.0f} hours."
        )
    return seconds


def kernelspec_settings(argv: Sequence[str]) -> list[str]:
    """The ``--SandboxConfig.*`` flags of a sandbox kernelspec's argv.

    Raises:
        ConfigError: the kernelspec does not run this kernel.
    """
    from .install import LAUNCH

    ours = LAUNCH in argv or "sandbox_kernel" in argv  # older kernelspecs: python -m
    if not ours and not any(a.endswith("sandbox-kernel") for a in argv):
        raise ConfigError(
            "That kernelspec does not run sandbox-kernel; name a sandbox kernel with --kernel."
        )
    return [arg for arg in argv if arg.startswith("--SandboxConfig.")]


@dataclass
class Prestarted:
    """What one ``prestart`` did."""

    fingerprint: str
    started: list[str] = field(default_factory=list)  # names of the new ones
    waiting_before: int = 0  # unclaimed spares of this configuration already there
    expires: float = 0.0  # when the new ones exit unless claimed (epoch seconds)
    settled: bool = False  # their kernels finished starting (CPU went quiet)


def waiting(client: docker.DockerClient, fingerprint: str) -> list[dict[str, Any]]:
    """Unclaimed spares (the warm one and pre-started ones) of one configuration."""
    return list_containers(
        client, role="spare", fingerprint=fingerprint, status="running", unclaimed=True
    )


def prestart(
    client: docker.DockerClient,
    config: SandboxConfig,
    count: int,
    ttl: float,
    *,
    wait: bool = True,
    out: Callable[[str], None] = lambda _: None,
) -> Prestarted:
    """Make ``count`` spares of this configuration wait, counting those already there.

    Raises:
        ConfigError: count is not between 1 and ``prestart_limit``.
        SandboxError: the engine, the image or a container failed.
    """
    if not 1 <= count <= config.prestart_limit:
        raise ConfigError(
            f"Pre-start between 1 and {config.prestart_limit} sandboxes "
            f"(the prestart_limit setting), not {count}."
        )
    image = resolve_image(client, config.image)
    fingerprint = spec.fingerprint(config, image.id)
    result = Prestarted(fingerprint, waiting_before=len(waiting(client, fingerprint)))
    result.expires = time.time() + ttl
    expires_label = {spec.LABEL_EXPIRES: str(int(result.expires))}
    for _ in range(count - result.waiting_before):
        name = spec.prestart_name(fingerprint)
        container_id = create_container(
            client,
            config,
            image.id,
            role="spare",
            fingerprint=fingerprint,
            claim_timeout=ttl,
            name=name,
            extra_labels=expires_label,
        )
        client.api.start(container_id)
        result.started.append(name)
        out(f"started {name}")
    if wait and result.started:
        result.settled = _wait_settled(client, result.started, config.startup_timeout)
    return result


def _wait_settled(client: docker.DockerClient, names: list[str], timeout: float) -> bool:
    """Wait until the new sandboxes' kernels have started: their CPU goes quiet.

    The relay says nothing until a kernel claims the sandbox, so from outside the one
    sign is the CPU the containers use, read from the engine (any engine, remote too).
    """
    deadline = time.monotonic() + timeout
    last = _cpu_seconds(client, names)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = _cpu_seconds(client, names)
        # Idle relays and kernels use about a millisecond a second each.
        if now - last < 0.01 * len(names):
            return True
        last = now
    return False


def _cpu_seconds(client: docker.DockerClient, names: list[str]) -> float:
    total = 0
    for name in names:
        try:
            stats = client.api.stats(name, stream=False, one_shot=True)
            total += int(stats["cpu_stats"]["cpu_usage"]["total_usage"])
        except (docker.errors.DockerException, KeyError, TypeError, ValueError):
            continue  # gone (claimed and renamed, or failed): nothing more to wait for
    return total / 1e9


def describe_waiting(client: docker.DockerClient, fingerprint: str) -> str:
    """One line for ``doctor``: how many spares of this configuration wait, till when."""
    found = waiting(client, fingerprint)
    if not found:
        return "none waiting for this configuration"
    expiries = [
        int(label)
        for c in found
        if (label := (c.get("Labels") or {}).get(spec.LABEL_EXPIRES, "")).isdigit()
    ]
    text = f"{len(found)} waiting for this configuration"
    if expiries:
        when = time.strftime("%H:%M", time.localtime(max(expiries)))
        text += f" ({len(expiries)} pre-started, the last expires at {when})"
    return text
