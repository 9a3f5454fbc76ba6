#!/usr/bin/env bash
# Set up a fresh Debian machine and run the main job: the example backtest notebook
# through the "Python 3 (sandbox)" kernel.
#
#   1. the Docker engine (Debian's docker.io) and debootstrap, when missing;
#   2. dockerd, when not running;
#   3. a virtualenv in .venv with this project and its test tools;
#   4. the sandbox image (sandbox-kernel image build: no registry needed);
#   5. the kernelspec, into the virtualenv (sandbox-kernel install --sys-prefix);
#   6. examples/backtest.ipynb, executed through the sandbox kernel.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# docker.io: the engine; debootstrap: the image without a registry; openssh-server:
# the tests reach the engine over ssh:// too.
if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1 \
    || ! [ -x /usr/sbin/sshd ]; then
    log "installing docker.io, debootstrap and openssh-server from Debian"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        docker.io debootstrap openssh-server >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
        as_root systemctl start docker
    else
        as_root sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
    fi
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
fi

log "python environment in .venv"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

log "sandbox image"
.venv/bin/sandbox-kernel image build

log "kernelspec"
.venv/bin/sandbox-kernel install --sys-prefix

log "sandbox-kernel doctor"
.venv/bin/sandbox-kernel doctor

log "example: examples/backtest.ipynb through the sandbox kernel"
.venv/bin/python examples/run_example.py
