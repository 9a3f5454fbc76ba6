"""What notebook code does, run under a seccomp profile: every step must work.

Runs inside the sandbox image (``python3 -c <this source>``), as uid 1000 with a
read-only root and /tmp as the only writable place. Prints one ``ok <step>`` line per
step and ``ALL OK`` at the end; any failure raises and exits non-zero.
"""

import asyncio
import concurrent.futures
import ctypes
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time


def step(name):
    def run(func):
        start = time.perf_counter()
        func()
        print(f"ok {name} {time.perf_counter() - start:.2f}s", flush=True)
        return func

    return run


def square(x):
    return x * x


@step("numpy BLAS matmul (2 OpenBLAS threads)")
def _():
    import numpy as np

    assert os.environ.get("OPENBLAS_NUM_THREADS") == "2"
    rng = np.random.default_rng(0)
    a = rng.standard_normal((600, 600))
    b = a @ a.T
    assert b.shape == (600, 600) and np.allclose(b, b.T)


@step("pandas groupby and rolling")
def _():
    import numpy as np
    import pandas as pd

    df = pd.DataFrame({"k": np.arange(1000) % 7, "v": np.arange(1000.0)})
    assert len(df.groupby("k")["v"].mean()) == 7
    assert df["v"].rolling(10).mean().iloc[-1] == 994.5


@step("scipy optimize and linalg")
def _():
    import numpy as np
    import scipy.linalg
    import scipy.optimize

    res = scipy.optimize.minimize(scipy.optimize.rosen, np.zeros(5), method="BFGS")
    assert res.success and np.allclose(res.x, 1, atol=1e-3)
    m = np.random.default_rng(1).standard_normal((200, 200))
    w = scipy.linalg.eigvalsh(m @ m.T)
    assert (w > -1e-8).all()
    x = scipy.linalg.solve(m, np.ones(200))
    assert np.allclose(m @ x, 1)


@step("matplotlib Agg savefig to /tmp")
def _():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [1, 4, 9])
    fig.savefig("/tmp/probe.png")
    assert os.path.getsize("/tmp/probe.png") > 1000


@step("8 threads")
def _():
    out = []
    threads = [threading.Thread(target=lambda i=i: out.append(i * i)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(out) == [i * i for i in range(8)]


@step("multiprocessing pools (fork and spawn)")
def _():
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(square, range(10)) == [x * x for x in range(10)]
    # A spawned child cannot import the functions of a `python -c` script: use a builtin.
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        assert pool.map(abs, range(-3, 0)) == [3, 2, 1]
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        assert list(pool.map(abs, range(-3, 0))) == [3, 2, 1]


@step("subprocess")
def _():
    out = subprocess.run(["id", "-u"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1000"


@step("ctypes callback (libffi closure)")
def _():
    libc = ctypes.CDLL(None)
    cmp_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)
    )
    values = (ctypes.c_int * 5)(5, 1, 4, 2, 3)
    libc.qsort(values, 5, ctypes.sizeof(ctypes.c_int), cmp_type(lambda a, b: a[0] - b[0]))
    assert list(values) == [1, 2, 3, 4, 5]


@step("asyncio loop")
def _():
    async def main():
        await asyncio.sleep(0.01)
        return 42

    assert asyncio.run(main()) == 42


@step("zmq ipc bind/connect in /tmp")
def _():
    import zmq

    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    rep.bind("ipc:///tmp/probe.ipc")
    req = ctx.socket(zmq.REQ)
    req.connect("ipc:///tmp/probe.ipc")
    req.send(b"ping")
    assert rep.recv() == b"ping"
    rep.send(b"pong")
    assert req.recv() == b"pong"
    req.close(0)
    rep.close(0)
    ctx.term()


@step("tqdm and ipywidgets")
def _():
    import ipywidgets
    import tqdm

    assert sum(1 for _ in tqdm.tqdm(range(3), disable=True)) == 3
    ipywidgets.IntSlider(value=3)


@step("ipykernel_launcher with an ipc connection file")
def _():
    from jupyter_client import BlockingKernelClient

    os.makedirs(os.environ["HOME"], exist_ok=True)
    conn = {
        "transport": "ipc",
        "ip": "/tmp/kernel-ipc",
        "shell_port": 1,
        "iopub_port": 2,
        "stdin_port": 3,
        "control_port": 4,
        "hb_port": 5,
        "key": "probe-key",
        "signature_scheme": "hmac-sha256",
        "kernel_name": "python3",
    }
    with open("/tmp/kernel.json", "w") as f:
        json.dump(conn, f)
    kernel = subprocess.Popen(
        [sys.executable, "-m", "ipykernel_launcher", "-f", "/tmp/kernel.json"]
    )
    client = BlockingKernelClient()
    client.load_connection_file("/tmp/kernel.json")
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        code = (
            "import numpy, multiprocessing\n"
            "print(int(numpy.arange(4).sum()))\n"
            "p = multiprocessing.Process(target=print, args=('from a child',))\n"
            "p.start(); p.join()\n"
        )
        msg_id = client.execute(code)
        output = ""
        while True:
            msg = client.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                output += msg["content"]["text"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert output.startswith("6\n"), output
        print("kernel output:", repr(output))
        client.shutdown()
        kernel.wait(timeout=30)
    finally:
        client.stop_channels()
        if kernel.poll() is None:
            kernel.kill()


print("ALL OK", flush=True)
