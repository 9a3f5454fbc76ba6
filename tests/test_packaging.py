"""The wheel carries what `pip install` users need: kernelspec, profile, recipe."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from sandbox_kernel.install import get_kernel_dict

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_registers_the_kernel_and_ships_its_data(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    spec_path = "sandbox_kernel-0.1.0.data/data/share/jupyter/kernels/sandbox/kernel.json"
    assert spec_path in names
    spec = json.loads(zipfile.ZipFile(wheel).read(spec_path))
    assert spec["display_name"] == "Python 3 (sandbox)"
    # The same command `sandbox-kernel install` writes (see install.LAUNCH: not -m).
    assert spec["argv"] == get_kernel_dict(python="python")["argv"]
    assert spec["interrupt_mode"] == "message"
    for needed in (
        "sandbox_kernel/_data/seccomp/profile.json",
        "sandbox_kernel/relay.py",
        "sandbox_kernel/recipe/requirements.txt",
        "sandbox_kernel/recipe/Dockerfile",
    ):
        assert needed in names, needed

    # The installed package finds its profile without the checkout next to it.
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(wheel).extractall(unpacked)
    probe = (
        "import json, sandbox_kernel.seccomp as s, sandbox_kernel.spec as sp\n"
        f"assert s.__file__.startswith({str(unpacked)!r})\n"
        "profile = json.loads(s.load_profile('builtin'))\n"
        "assert profile['defaultAction'] == 'SCMP_ACT_ERRNO'\n"
        "assert 'ipykernel' in sp.relay_source()\n"
    )
    subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(unpacked)}, check=True
    )
