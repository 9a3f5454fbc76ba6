#!/usr/bin/env bash
# The host side overrides private ipykernel API (sandbox_kernel/seams.py): test the
# lowest and the highest ipykernel of the range pyproject.toml pins, each in a venv
# of its own, with the seam tests and the protocol tests that exercise them.
#   scripts/ipykernel_range.sh [extra pytest args]
# IPYKERNEL_VERSIONS overrides the versions (default: the range's lowest, and the
# newest release inside it that pip finds).
set -euo pipefail
cd "$(dirname "$0")/.."
lowest=$(python3 -c 'import re,tomllib;d=tomllib.load(open("pyproject.toml","rb"));print(re.search(r"ipykernel>=([\d.]+)",str(d["project"]["dependencies"])).group(1))')
upper=$(python3 -c 'import re,tomllib;d=tomllib.load(open("pyproject.toml","rb"));print(re.search(r"ipykernel>=[\d.]+,<([\d.]+)",str(d["project"]["dependencies"])).group(1))')
versions=${IPYKERNEL_VERSIONS:-"$lowest latest"}
for version in $versions; do
    venv=$(mktemp -d)/venv
    python3 -m venv "$venv"
    if [ "$version" = latest ]; then
        "$venv/bin/pip" install -q -e '.[test]' "ipykernel<$upper"
    else
        "$venv/bin/pip" install -q -e '.[test]' "ipykernel==$version"
    fi
    echo "== ipykernel $("$venv/bin/python" -c 'import ipykernel; print(ipykernel.__version__)')"
    "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_seams.py tests/test_protocol.py "$@"
    rm -rf "$(dirname "$venv")"
done
