"""The modules family: modules and the process, network and native-code APIs (SK101-SK103)."""

from __future__ import annotations

import pytest

from sandbox_kernel.validator import validate

from validator_checks import NOTEBOOK, STRICT, blocked, passes_in_notebook, rule_ids


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("import os", "SK101"),
        ("import os.path", "SK101"),
        ("import os.path as osp", "SK101"),
        ("from os import path", "SK101"),
        ("from subprocess import *", "SK101"),
        ("import ctypes.util", "SK101"),
        ("import IPython", "SK101"),
        ("from IPython.core import getipython", "SK101"),
        ("import numpy.ctypeslib", "SK101"),
        ("from numpy import os", "SK102"),
        ("np.os.system('id')", "SK102"),
        ("pd.io.common.os", "SK102"),
        ("os.getcwd()", "SK102"),
        ("x.popen('id')", "SK103"),
        ("lib = ctypes_like.CDLL(None)", "SK103"),
    ],
)
def test_rule_fires_in_strict(source: str, rule: str) -> None:
    assert rule in rule_ids(source, STRICT), validate(source, STRICT).format_report()


@pytest.mark.parametrize(
    "source",
    [
        "import os\nos.path.join('data', 'x.csv')",
        "import os\nos.makedirs('results', exist_ok=True)\nos.listdir('data')",
        "import os\nos.getcwd()\nos.getenv('HOME')\nos.environ['MPLBACKEND'] = 'Agg'",
        "import shutil\nshutil.copy('a.csv', 'b.csv')\nshutil.move('b.csv', 'c.csv')",
        "from pandas.io.common import os as helper\nhelper.path.exists('x')",
        "import inspect\ninspect.getsource(f)\ninspect.signature(f)",
        "import gc\ngc.collect()",
        "import asyncio\nawait asyncio.sleep(0)",
        "from urllib.parse import urlencode",
        "import IPython\nIPython.display.display(1)",
        "socket = {'host': 'x'}\nprint(socket['host'])",
        "def f(socket):\n    return socket['port']",
    ],
)
def test_everyday_module_use_passes_in_notebook(source: str) -> None:
    assert passes_in_notebook(source), validate(source, NOTEBOOK).format_report()
    assert blocked(source, STRICT)  # the control: strict refuses every one


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("import subprocess", "SK101"),
        ("import socket", "SK101"),
        ("import urllib.request\nurllib.request.build_opener()", "SK102"),
        ("import requests\nrequests.post(url, data=secret)", "SK102"),
        ("from requests import Session", "SK101"),
        ("import ctypes", "SK101"),
        ("from IPython import parallel", "SK101"),
        ("import Cython", "SK101"),
        ("import os\nos.system('id')", "SK103"),
        ("import os\nos.popen('date')", "SK103"),
        ("import os\nos.execv('/bin/sh', ['sh'])", "SK103"),
        ("import os\nos.kill(os.getpid(), 9)", "SK103"),
        ("import os\nos._exit(0)", "SK103"),
        ("from os import kill", "SK103"),
        ("import inspect\ninspect.currentframe()", "SK103"),
        ("import inspect as ins\nins.stack()", "SK103"),
        ("import gc\ngc.get_referrers(x)", "SK103"),
        ("import asyncio\nawait asyncio.create_subprocess_shell('id')", "SK103"),
        ("import asyncio\nawait asyncio.open_connection('h', 80)", "SK103"),
        ("import IPython\nIPython.embed_kernel()", "SK103"),
        ("print(subprocess.run)", "SK102"),
        ("np.ctypeslib.load_library('x', '.')", "SK102"),
    ],
)
def test_capabilities_are_refused_in_notebook(source: str, rule: str) -> None:
    assert rule in rule_ids(source, NOTEBOOK), validate(source, NOTEBOOK).format_report()
    assert blocked(source, NOTEBOOK) and blocked(source, STRICT)


def test_a_variable_named_like_a_module_is_still_judged_in_strict() -> None:
    # the control: strict keeps the original, name-based reading
    assert blocked("socket = 1\nprint(socket)", STRICT)
    assert not blocked("socket = 1\nprint(socket)", NOTEBOOK)
    assert blocked("print(socket)", NOTEBOOK)  # never bound here: the module


def test_variables_named_like_modules_follow_pythons_scopes() -> None:
    assert passes_in_notebook("def f(socket):\n    return socket['port']")
    assert passes_in_notebook("with open('x') as pickle:\n    pickle.read()")
    # a parameter is a variable only inside its function
    assert blocked("def f(subprocess):\n    return 1\n\nsubprocess.run(['id'])", NOTEBOOK)
    # defaults and annotations are evaluated outside the function
    assert blocked("def f(subprocess=subprocess):\n    return subprocess", NOTEBOOK)
    # a local assignment does not rebind the module-level name
    assert blocked("def f():\n    subprocess = 1\n\nsubprocess.run(['id'])", NOTEBOOK)
    # a class attribute is not seen by methods; global reaches the module-level name
    assert blocked(
        "class A:\n    subprocess = 1\n\n    def m(self):\n        return subprocess", NOTEBOOK
    )
    assert blocked(
        "def f(subprocess):\n    def g():\n        global subprocess\n        return subprocess\n"
        "    return g",
        NOTEBOOK,
    )
    # rebinding to the module again does not count
    assert blocked("subprocess = subprocess\nsubprocess.run(['id'])", NOTEBOOK)
    assert blocked("subprocess = getattr(m, 'x')\nsubprocess.run(['id'])", NOTEBOOK)
