#!/usr/bin/env bash
# The test suite: static checks, then every test against the real kernel and engine.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check sandbox_kernel tests bench examples
.venv/bin/mypy sandbox_kernel
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
