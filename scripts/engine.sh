#!/usr/bin/env bash
# The Docker engine this project needs, on a Debian machine where it may be absent:
# installs docker.io (plus debootstrap, which builds the image without a registry, and
# openssh-server, which the tests use to reach the engine over ssh://) when missing,
# then starts dockerd when it is not running and waits until it answers.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1 \
    || ! [ -x /usr/sbin/sshd ]; then
    echo "==> installing docker.io, debootstrap and openssh-server from Debian"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        docker.io debootstrap openssh-server >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    echo "==> starting dockerd"
    if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
        as_root systemctl start docker
    else
        as_root sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
    fi
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
fi

# gVisor (runsc), the second runtime the sandbox is tested under (`--runtime runsc`).
# Debian's package (release 2022-12-19, ptrace platform). Registered in daemon.json with
# the options this project needs, merged into whatever else the file holds:
#   --network=none  gVisor cannot start a container whose network is "none" in the
#                   host's root network namespace otherwise; the sandbox has no network
#                   anyway (loopback only, inside gVisor's own stack);
#   --oci-seccomp   without it gVisor ignores the container's seccomp profile, and the
#                   sandbox's profile would not be in force.
# A change is applied with SIGHUP (dockerd reloads its runtimes); never a restart, which
# would stop every other container on the engine.
if ! command -v runsc >/dev/null 2>&1; then
    echo "==> installing runsc (gVisor) from Debian"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runsc >/dev/null
fi
RUNSC_PATH=$(command -v runsc)
changed=$(as_root python3 - "$RUNSC_PATH" <<'PY'
import json, os, sys
path = "/etc/docker/daemon.json"
try:
    with open(path) as f:
        config = json.load(f) if os.path.getsize(path) else {}
except FileNotFoundError:
    config = {}
want = {"path": sys.argv[1], "runtimeArgs": ["--network=none", "--oci-seccomp"]}
if config.get("runtimes", {}).get("runsc") == want:
    print("no")
else:
    config.setdefault("runtimes", {})["runsc"] = want
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)
    print("yes")
PY
)
if [ "$changed" = yes ] && pidof dockerd >/dev/null 2>&1; then
    echo "==> registered runsc in /etc/docker/daemon.json; reloading dockerd (SIGHUP)"
    as_root kill -HUP "$(pidof dockerd)"
fi
for _ in $(seq 40); do
    docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"' && break
    sleep 0.25
done
docker info --format '{{json .Runtimes}}' | grep -q '"runsc"' \
    || { echo "dockerd did not pick up the runsc runtime; see /etc/docker/daemon.json" >&2; exit 1; }
