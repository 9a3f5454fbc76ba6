"""Pure functions of the container spec: names and labels that orphan cleanup reads."""

from __future__ import annotations

import os

import pytest

from sandbox_kernel import spec


def test_a_claimed_spare_has_the_one_name_its_id_gives() -> None:
    # Every claimer of one spare renames it to the same name: the engine lets one do it.
    container = "0123456789abcdef0123456789abcdef"
    assert spec.claimed_name(container) == spec.claimed_name(container)
    assert spec.claimed_name(container) != spec.claimed_name("f" + container[1:])
    claimed = spec.claimed_name(container)
    # Its maker's label no longer says who controls it (it ends with its controller).
    made_by_another = {spec.LABEL_CONTROLLER: "elsewhere:1"}
    assert spec.controller_of(claimed, made_by_another) == ""
    # The engine lists names with a leading slash.
    assert spec.controller_of("/" + claimed, made_by_another) == ""
    assert spec.controller_id().endswith(f":{os.getpid()}")


@pytest.mark.parametrize(
    "name",
    ["sandbox-kernel-kernel-0123456789ab", "sandbox-kernel-spare-0123456789ab", "odd--x--12"],
)
def test_other_containers_are_controlled_by_their_maker(name: str) -> None:
    assert spec.controller_of(name, {spec.LABEL_CONTROLLER: "h:7"}) == "h:7"
    assert spec.controller_of(name, {}) == ""


def test_a_host_name_becomes_a_valid_container_name() -> None:
    assert spec._name_safe("my host/with:odd*chars.example") == "my-host-with-odd-chars.example"


def test_under_gvisor_the_pids_setting_is_rlimit_nproc_and_the_cgroup_a_budget() -> None:
    from sandbox_kernel.config import SandboxConfig

    per_task, base = spec.GVISOR_HOST_PIDS_PER_TASK, spec.GVISOR_HOST_PIDS_BASE
    runc = spec.container_options(SandboxConfig(pids=100))["host_config"]
    assert runc["pids_limit"] == 100
    assert not [u for u in runc["ulimits"] if u["Name"] == "nproc"]  # counts host-wide
    gvisor = spec.container_options(SandboxConfig(pids=100, runtime="runsc"))["host_config"]
    assert gvisor["pids_limit"] == 100 * per_task + base
    [nproc] = [u for u in gvisor["ulimits"] if u["Name"] == "nproc"]
    assert nproc["Soft"] == nproc["Hard"] == 100
