"""The escape suite, notebook-folder section: files in the folder the kernel starts in.

Jupyter starts a kernel in its notebook's folder, and that folder may be anyone's: a
cloned paper repository, a student's hand-in. Its files are copied into the sandbox;
none of them may run on the host. ``python -m`` puts the current folder first on
``sys.path``, so a ``json.py`` there would be imported by the host kernel process
itself. Each attack below is such a file; each is run against the installed kernel
(its kernelspec as ``sandbox-kernel install`` writes it) and, as the negative
control, against the same kernelspec started the old way (``python -m
sandbox_kernel``), where it must run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

from sandbox_kernel.install import get_kernel_dict

from harness import BASE_SETTINGS, KernelSpecs, python_m_argv, start_kernel

pytestmark = pytest.mark.docker

#: Files that shadow what the host process imports: a standard module imported after
#: start-up, a dependency, and our own package. (Modules Python freezes into the
#: interpreter, such as runpy since 3.11, cannot be shadowed.)
SHADOWS = [
    "json.py",
    "zmq.py",
    "sandbox_kernel/__init__.py",
]

#: Seconds the negative control waits for the hostile file to run.
CONTROL_WAIT = 60.0


def _hostile_folder(folder: Path, shadow: str, marker: Path) -> None:
    """A notebook folder whose ``shadow`` file, if the host imports it, leaves ``marker``."""
    target = folder / shadow
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        "import os\n"
        f"with open({str(marker)!r}, 'w') as f:\n"
        "    f.write(str(os.getpid()))\n"
        "raise ImportError('a notebook folder ran code on the host')\n"
    )
    (folder / "analysis.ipynb").write_text("{}")


def _kernelspec(specs: KernelSpecs, name: str) -> str:
    """A kernelspec as `sandbox-kernel install` writes it, but started with ``python -m
    sandbox_kernel`` as kernelspecs were before install.LAUNCH."""
    spec = get_kernel_dict(BASE_SETTINGS)
    spec["argv"] = python_m_argv(spec["argv"])
    (specs.root / "kernels" / name).mkdir(parents=True)
    (specs.root / "kernels" / name / "kernel.json").write_text(json.dumps(spec))
    return name


@pytest.mark.parametrize("shadow", SHADOWS)
def test_a_notebook_folder_cannot_run_code_in_the_host_process(
    shadow: str, tmp_path: Path, specs: KernelSpecs
) -> None:
    folder, marker = tmp_path / "notebook", tmp_path / "ran-on-the-host"
    _hostile_folder(folder, shadow, marker)
    with start_kernel(specs, cwd=folder) as kernel:
        # The kernel started in that folder: its files are the cell's.
        result = kernel.execute("import os\nsorted(os.listdir('.'))")
        assert result.status == "ok", result.error
        assert shadow.split("/")[0] in result.text
    assert not marker.exists(), f"{shadow} in the notebook's folder ran on the host"


@pytest.mark.parametrize("shadow", SHADOWS)
def test_a_notebook_folder_runs_code_on_the_host_under_python_m(
    shadow: str, tmp_path: Path, specs: KernelSpecs
) -> None:
    """Negative control: the same kernelspec with ``python -m sandbox_kernel``."""
    folder, marker = tmp_path / "notebook", tmp_path / "ran-on-the-host"
    _hostile_folder(folder, shadow, marker)
    name = _kernelspec(specs, "old-launch-" + shadow.replace("/", "-").replace(".", "-"))
    km = KernelManager(kernel_name=name, kernel_spec_manager=specs.manager)
    km.start_kernel(cwd=str(folder))
    try:
        deadline = time.monotonic() + CONTROL_WAIT
        while not marker.exists() and km.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)  # a process that died may have written it just before
        assert marker.exists(), f"{shadow} did not run: the control shows no hole"
    finally:
        km.shutdown_kernel(now=True)


#: Config files the host kernel process would execute, were they read from the folder.
CONFIG_FILES = ["sandbox_kernel_config.py", "ipython_config.py", "ipython_kernel_config.py"]


@pytest.mark.parametrize("in_config_dir", [False, True], ids=["folder", "control"])
def test_config_files_in_a_notebook_folder_are_not_run_on_the_host(
    in_config_dir: bool, tmp_path: Path, specs: KernelSpecs
) -> None:
    """Jupyter's and IPython's config folders are read, never the notebook's own.

    Control: the same files in the folder named by JUPYTER_CONFIG_DIR do run (so the
    test sees a config file that runs). Either way the kernel starts.
    """
    folder, marker = tmp_path / "notebook", tmp_path / "ran-on-the-host"
    folder.mkdir()
    for name in CONFIG_FILES:
        (folder / name).write_text(f"open({str(marker)!r}, 'a').write({name!r} + '\\n')\n")
    env = {"JUPYTER_CONFIG_DIR": str(folder)} if in_config_dir else {}
    with start_kernel(specs, cwd=folder, env=env) as kernel:
        assert kernel.execute("1 + 1").status == "ok"
    ran = marker.read_text().split() if marker.exists() else []
    if in_config_dir:
        assert "sandbox_kernel_config.py" in ran, "the control ran no config file"
    else:
        assert ran == [], f"{ran} in the notebook's folder ran on the host"


@pytest.mark.parametrize("old", [True, False], ids=["python-m", "control"])
def test_a_kernel_started_with_python_m_says_to_reinstall(
    old: bool, tmp_path: Path, specs: KernelSpecs
) -> None:
    """Kernelspecs written before LAUNCH still work, and say in the server's log what
    to do; one written now says nothing."""
    name = _kernelspec(specs, "launch-python-m") if old else specs.make()
    log = tmp_path / "kernel.log"
    with log.open("w") as out, start_kernel(specs, kernel_name=name, log=out) as kernel:
        assert kernel.execute("1 + 1").status == "ok"
    said = "starts the kernel with `python -m`" in log.read_text()
    assert said == old
