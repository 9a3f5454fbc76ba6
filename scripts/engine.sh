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
