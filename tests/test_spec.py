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
    # (16g: the memory limit bounds the forks too, see the next test.)
    gvisor = spec.container_options(SandboxConfig(pids=100, runtime="runsc", memory="16g"))[
        "host_config"
    ]
    assert gvisor["pids_limit"] == 100 * per_task + base
    [nproc] = [u for u in gvisor["ulimits"] if u["Name"] == "nproc"]
    assert nproc["Soft"] == nproc["Hard"] == 100


def test_under_gvisor_nproc_is_also_bounded_by_the_forks_the_memory_holds() -> None:
    from sandbox_kernel import gvisor
    from sandbox_kernel.config import SandboxConfig

    def nproc(**settings: object) -> int:
        host = spec.container_options(SandboxConfig(runtime="runsc", **settings))["host_config"]
        [limit] = [u for u in host["ulimits"] if u["Name"] == "nproc"]
        assert limit["Soft"] == limit["Hard"]
        return int(limit["Soft"])

    assert nproc(memory="2g") == 2 * 1024**3 // gvisor.FORK_BYTES == 64
    assert nproc(memory="16g", pids=256) == 256


def test_under_gvisor_tmp_and_dev_shm_are_host_tmpfs_volumes_with_the_limits() -> None:
    from sandbox_kernel.config import SandboxConfig

    runc = spec.container_options(SandboxConfig())["host_config"]
    assert "/tmp" in runc["tmpfs"]
    assert [m["Target"] for m in runc["mounts"]] == ["/tmp/work"]
    config = SandboxConfig(runtime="runsc", tmp_size="100m", tmp_inodes=1000, shm_size="8m")
    host = spec.container_options(config)["host_config"]
    assert host["tmpfs"] == {}
    volumes = {m["Target"]: m for m in host["mounts"]}
    assert list(volumes) == ["/tmp", "/dev/shm", "/tmp/work"]
    for target, size in (("/tmp", 100 * 1024**2), ("/dev/shm", 8 * 1024**2)):
        volume = volumes[target]
        assert volume["Type"] == "volume" and volume["Source"] is None  # anonymous: AutoRemove
        driver = volume["VolumeOptions"]["DriverConfig"]
        assert driver["Name"] == "local" and driver["Options"]["type"] == "tmpfs"
        options = driver["Options"]["o"].split(",")
        assert {f"size={size}", "nr_inodes=1000", "noexec", "nosuid", "nodev"} <= set(options)
    loose = spec.container_options(SandboxConfig(runtime="runsc", tmp_noexec=False))
    tmp = loose["host_config"]["mounts"][0]["VolumeOptions"]["DriverConfig"]["Options"]["o"]
    assert "exec" in tmp.split(",") and "noexec" not in tmp.split(",")


def test_under_gvisor_the_relay_takes_a_uid_of_its_own_and_runc_is_unchanged() -> None:
    from sandbox_kernel import gvisor
    from sandbox_kernel.config import SandboxConfig

    runc = SandboxConfig()
    options = spec.container_options(runc)
    assert options["container"]["user"] == "1000:1000"
    assert "cap_add" not in options["host_config"]
    assert not [a for a in spec.relay_command(runc, claim_timeout=0) if a.startswith("--kernel-")]

    config = SandboxConfig(runtime="runsc")
    options = spec.container_options(config)
    # Root with the three capabilities of the switch only; the relay drops them at once.
    assert options["container"]["user"] == "0:0"
    assert options["host_config"]["cap_drop"] == ["ALL"]
    assert options["host_config"]["cap_add"] == ["SETUID", "SETGID", "SETPCAP"]
    command = spec.relay_command(config, claim_timeout=0)
    assert "--kernel-user=1000:1000" in command
    assert f"--relay-uid={gvisor.RELAY_UID}" in command
    # A root kernel (some negative controls) or one on the relay's uid: no switch.
    for user in ("0:0", f"{gvisor.RELAY_UID}:{gvisor.RELAY_UID}"):
        other = SandboxConfig(runtime="runsc", user=user)
        assert spec.container_options(other)["container"]["user"] == user
        assert not [
            a for a in spec.relay_command(other, claim_timeout=0) if a.startswith("--kernel-")
        ]
