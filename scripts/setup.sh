#!/usr/bin/env bash
# Set up a fresh Debian machine and run the main job: the example backtest notebook
# through the "Python 3 (sandbox)" kernel.
#
#   1. the Docker engine (Debian's docker.io) and debootstrap, when missing (scripts/engine.sh);
#   2. dockerd, when not running;
#   3. a virtualenv in .venv with this project and its test tools;
#   4. the sandbox image (sandbox-kernel image build: no registry needed);
#   5. the kernelspec, into the virtualenv (sandbox-kernel install --sys-prefix);
#   6. examples/backtest.ipynb, executed through the sandbox kernel, then reproduced
#      from the saved copy (sandbox-kernel reproduce: every cell identical);
#   7. Debian's chromium, for the browser test (JupyterLab driven by Playwright).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

bash scripts/engine.sh

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
log "example: the saved notebook reproduces in the image it records"
.venv/bin/sandbox-kernel reproduce examples/backtest.executed.ipynb

if ! [ -x /usr/bin/chromium ]; then
    log "chromium for the browser test (Debian's; Playwright's own download is not used)"
    as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
