"""What a notebook's recorded environment may change when ``reproduce`` runs it again.

The record (``language_info.sandbox``, see :mod:`.record`) is data in a file that may
come from anyone: a paper's repository, a colleague, a student. It names the image to
run and the limits the notebook was run with, but it is a claim, not a configuration.
So the run starts from this machine's settings (config files, then the user's own
``--SandboxConfig.X=Y`` flags) and takes from the record only what cannot loosen them:

* the image (it must already be on the engine; every image runs as hardened as any);
* a limit that is tighter than this machine's (less memory, fewer CPUs or processes, a
  shorter timeout), so a notebook that records ``memory: 64g`` does not get 64 GiB;
* a validation mode or profile that is stricter, and gVisor where runc is configured.

The network and everything else are never taken from the record. A recorded value that
would have loosened the sandbox is listed in the report, with the flag that asks for it;
a setting the user passed on the command line is the user's choice and wins.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import SandboxConfig, format_size, parse_size
from .errors import ConfigError

#: Validation modes and profiles, least strict first.
_MODES = ("off", "warn", "block")
_PROFILES = ("notebook", "strict")


@dataclass
class Replay:
    """Settings for the re-run, and the recorded values it did not use (one phrase each)."""

    settings: dict[str, Any]
    not_used: list[str] = field(default_factory=list)


def _size(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    try:
        size = parse_size(value)
    except ConfigError:
        return None
    return size if size > 0 else None


def _positive(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _limit(
    replay: Replay,
    trait: str,
    recorded: Any,
    configured: float,
    read: Callable[[Any], float | None],
    show: Callable[[float], str],
) -> None:
    """Take a recorded limit when it is tighter than the configured one (0: no limit)."""
    if recorded is None:
        return
    value = read(recorded)
    if value is None:
        replay.not_used.append(f"{trait} {str(recorded)[:40]!r}: not a valid value")
    elif configured == 0 or value < configured:
        replay.settings[trait] = recorded
    elif value > configured:
        replay.not_used.append(
            f"{trait} {show(value)} (this machine's {show(configured)} kept; "
            f"pass --SandboxConfig.{trait}={recorded} to use it)"
        )


def _stricter(
    replay: Replay, trait: str, recorded: Any, configured: str, order: tuple[str, ...]
) -> None:
    if recorded is None or recorded == configured:
        return
    if recorded in order and order.index(recorded) > order.index(configured):
        replay.settings[trait] = recorded
    else:
        # the flag that asks for the recorded value, when it is one the setting takes
        value = recorded if recorded in order else "|".join(order)
        replay.not_used.append(
            f"{trait} {str(recorded)[:40]!r} (this machine's {configured!r} kept; "
            f"pass --SandboxConfig.{trait}={value} to use it)"
        )


def replay_settings(
    environment: Mapping[str, Any],
    configured: SandboxConfig,
    *,
    image: str | None = None,
    explicit: Collection[str] = (),
) -> Replay:
    """The settings to re-run a notebook whose record is ``environment``.

    ``configured`` is this machine's effective configuration; ``explicit`` names the
    settings the user passed on the command line, which the record never touches.

    Raises:
        ConfigError: when neither the record nor ``image`` names an image.
    """
    ref = image or environment.get("image_ref") or environment.get("image_id")
    if not isinstance(ref, str) or not ref:
        raise ConfigError(
            "the notebook's environment record names no image; pass --image to choose one"
        )
    replay = Replay({"image": ref, "warm_spare": False})
    raw_limits = environment.get("limits")
    limits: Mapping[str, Any] = raw_limits if isinstance(raw_limits, Mapping) else {}

    def wanted(trait: str) -> bool:
        return trait not in explicit

    if wanted("memory"):
        _limit(
            replay,
            "memory",
            limits.get("memory"),
            parse_size(configured.memory),
            _size,
            format_size,
        )
    if wanted("cpus"):
        _limit(replay, "cpus", limits.get("cpus"), configured.cpus, _positive, "{:g}".format)
    if wanted("pids"):
        _limit(replay, "pids", limits.get("pids"), configured.pids, _positive, "{:g}".format)
    if wanted("timeout"):
        # a recorded 0 (no timeout) is never tighter: _positive refuses it
        recorded_timeout = limits.get("timeout") or None
        _limit(replay, "timeout", recorded_timeout, configured.timeout, _positive, "{:g} s".format)
    network = limits.get("network")
    if wanted("network_mode") and network is not None and network != configured.network_mode:
        replay.not_used.append(
            f"network {str(network)[:40]!r} (this machine's {configured.network_mode!r} kept)"
        )
    if wanted("validation"):
        _stricter(
            replay, "validation", environment.get("validation"), configured.validation, _MODES
        )
    if wanted("validation_profile"):
        _stricter(
            replay,
            "validation_profile",
            environment.get("validation_profile"),
            configured.validation_profile or "notebook",
            _PROFILES,
        )
    runtime = environment.get("runtime")
    if wanted("runtime") and runtime not in (None, "default", configured.runtime or "default"):
        if runtime == "runsc" and not configured.runtime:
            replay.settings["runtime"] = "runsc"  # gVisor where runc is configured: stricter
        else:
            replay.not_used.append(
                f"runtime {str(runtime)[:40]!r} (this machine's "
                f"{configured.runtime or 'default'!r} kept)"
            )
    return replay
