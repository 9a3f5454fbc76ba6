#!/usr/bin/env bash
# The test suite: static checks, then every test against the real kernel and engine;
# then, when the engine has gVisor (scripts/engine.sh registers it), the security, usage
# and core protocol suites once more with every test kernel under runsc.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check sandbox_kernel tests bench examples
.venv/bin/mypy sandbox_kernel
if [ $# -gt 0 ]; then
    exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
fi
.venv/bin/python -m pytest -q -p no:cacheprovider
if docker info --format '{{json .Runtimes}}' | grep -q '"runsc"'; then
    echo "==> the same security, usage and protocol suites under gVisor (runsc)"
    SANDBOX_KERNEL_TEST_RUNTIME=runsc exec .venv/bin/python -m pytest -q -p no:cacheprovider \
        tests/test_escape.py tests/test_seccomp.py tests/test_usage.py tests/test_usage_docker.py \
        tests/test_usage_kernel.py tests/test_protocol.py tests/test_kernel.py \
        tests/test_remote_engine.py tests/test_stream_pieces.py \
        tests/test_workspace.py::test_the_working_directory_volume_goes_with_its_container
else
    echo "==> no runsc on the engine: the gVisor lane is skipped (bash scripts/engine.sh adds it)"
fi
