"""What a recorded environment may change in a re-run (pure: no engine)."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox_kernel.config import SandboxConfig
from sandbox_kernel.errors import ConfigError
from sandbox_kernel.replay import replay_settings

MACHINE = SandboxConfig(memory="2g", cpus=2.0, pids=256, timeout=60.0)


def _record(**limits: Any) -> dict[str, Any]:
    return {"image_ref": "img@sha256:" + "a" * 64, "limits": limits}


def test_tighter_limits_are_taken() -> None:
    replay = replay_settings(_record(memory="512m", cpus=1, pids=64, timeout=30), MACHINE)
    assert replay.settings == {
        "image": "img@sha256:" + "a" * 64,
        "warm_spare": False,
        "memory": "512m",
        "cpus": 1,
        "pids": 64,
        "timeout": 30,
    }
    assert replay.not_used == []


def test_looser_limits_are_reported_not_used() -> None:
    replay = replay_settings(_record(memory="64g", cpus=64, pids=10**6, timeout=0), MACHINE)
    assert set(replay.settings) == {"image", "warm_spare"}
    kept = "\n".join(replay.not_used)
    assert "memory 64 GiB (this machine's 2 GiB kept; pass --SandboxConfig.memory=64g" in kept
    assert "cpus 64" in kept and "pids 1e+06" in kept
    assert "timeout" not in kept  # a recorded 0 (no timeout) is not a value to take


def test_the_network_is_never_taken() -> None:
    for network in ("host", "bridge", "container:other"):
        replay = replay_settings(_record(network=network), MACHINE)
        assert "network_mode" not in replay.settings
        assert replay.not_used == [f"network {network!r} (this machine's 'none' kept)"]


@pytest.mark.parametrize(
    "bad",
    [
        {"memory": "lots"},
        {"memory": -5},
        {"memory": True},
        {"cpus": float("nan")},
        {"cpus": "2"},
        {"pids": [1]},
        {"timeout": float("inf")},
        {"memory": {"a": 1}},
    ],
)
def test_unreadable_values_are_not_used(bad: dict[str, Any]) -> None:
    replay = replay_settings(_record(**bad), MACHINE)
    assert set(replay.settings) == {"image", "warm_spare"}
    assert len(replay.not_used) == 1 and "not a valid value" in replay.not_used[0]


def test_validation_and_runtime_only_get_stricter() -> None:
    looser = {**_record(), "validation": "off", "validation_profile": "notebook", "runtime": "runc"}
    replay = replay_settings(looser, SandboxConfig(validation="warn", validation_profile="strict"))
    assert set(replay.settings) == {"image", "warm_spare"}
    assert len(replay.not_used) == 3
    stricter = {
        **_record(),
        "validation": "block",
        "validation_profile": "strict",
        "runtime": "runsc",
    }
    replay = replay_settings(stricter, SandboxConfig(validation="warn"))
    assert replay.settings["validation"] == "block"
    assert replay.settings["validation_profile"] == "strict"
    assert replay.settings["runtime"] == "runsc"
    # an unknown mode is not a stricter one
    odd = replay_settings({**_record(), "validation": "paranoid"}, MACHINE)
    assert "validation" not in odd.settings and odd.not_used


def test_the_users_own_flags_are_not_touched() -> None:
    replay = replay_settings(
        _record(memory="512m", network="host"), MACHINE, explicit={"memory", "network_mode"}
    )
    assert "memory" not in replay.settings and replay.not_used == []


def test_an_image_is_needed() -> None:
    with pytest.raises(ConfigError, match="names no image"):
        replay_settings({"limits": {}}, MACHINE)
    assert replay_settings({}, MACHINE, image="mine:1").settings["image"] == "mine:1"
    assert replay_settings({"limits": "junk"}, MACHINE, image="x").not_used == []
