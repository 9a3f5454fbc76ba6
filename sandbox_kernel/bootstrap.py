"""How the inner kernel starts inside the container: ipykernel, patched.

Like relay.py, this file is not imported inside the container: the relay runs its
source text (``python3 -c <this file> <iopub pipe> -f <connection file> ...``), so
it keeps to the standard library, pyzmq and ipykernel, and runs on any Python 3 that
ipykernel supports. It is linted and type-checked with the package, and
tests/test_seams.py applies every patch to the host's ipykernel.

Each patch is a named function that either patches or says why not. ipykernel
differs between images, so a patch that does not fit is skipped and reported:
before the kernel starts, one line (:data:`REPORT_PREFIX` + JSON ``{name: "applied"
or the reason}``) goes to the kernel's stdout, which the relay reads and announces in
its HELLO frame, and ``sandbox-kernel doctor --run`` shows.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any

#: Marks the patch report, the first line the kernel process writes (see relay.py).
REPORT_PREFIX = "\x00sandbox-kernel-patches "

#: Characters of printed output after which they are sent rather than buffered (see
#: send_while_printing): measured with 20 MB printed, 256 KiB spent more on messages
#: than it gained, 1 and 2 MiB overlapped less.
SEND_EVERY = 1 << 19

#: The OS name of the kernel's Python threads (see name_python_threads).
THREAD_NAME = "sk-py-thread"

#: The execute_request content key that asks for an end marker (see end_marker).
END_MARKER_KEY = "sandbox_end_marker"


def iopub_pipe_over_ipc(pipe: str) -> None:
    """Move ipykernel's IOPub pipe (the channel of forked children's output, e.g.
    multiprocessing workers) from tcp://127.0.0.1 to an ipc:// socket in the tmpfs.

    The seccomp profile allows only AF_UNIX sockets, so the TCP pipe cannot exist
    here. Without this patch only forked children's output is lost.
    """
    import zmq
    from ipykernel import iostream
    from zmq.eventloop.zmqstream import ZMQStream

    thread: Any = iostream.IOPubThread
    missing = [
        n
        for n in ("_setup_pipe_in", "_setup_pipe_out", "_handle_pipe_msg")
        if not hasattr(thread, n)
    ]
    if missing:
        raise AttributeError("IOPubThread has no " + ", ".join(missing))
    address = "ipc://" + pipe

    def _setup_pipe_in(self: Any) -> None:
        self._pipe_uuid = os.urandom(16)
        pipe_in = self.socket.context.socket(zmq.PULL)
        pipe_in.linger = 0
        pipe_in.bind(address)
        self._pipe_port = 0
        self._pipe_in = ZMQStream(pipe_in, self.io_loop)
        self._pipe_in.on_recv(self._handle_pipe_msg)

    def _setup_pipe_out(self: Any) -> Any:
        ctx = zmq.Context()
        pipe_out = ctx.socket(zmq.PUSH)
        pipe_out.linger = 3000
        pipe_out.connect(address)
        return ctx, pipe_out

    thread._setup_pipe_in = _setup_pipe_in
    thread._setup_pipe_out = _setup_pipe_out


def no_debugger() -> None:
    """The sandbox has no debugger: debugpy needs TCP, which the seccomp profile
    refuses. ipykernel loads it at start anyway (0.1 s, 8 MB), and pydevd then warns
    on stderr, which lands in a cell. ipykernel records it as unavailable once; a
    cell may still import debugpy itself."""
    sys.modules["debugpy"] = None  # type: ignore[assignment]
    try:
        import ipykernel.debugger  # noqa: F401
    finally:
        del sys.modules["debugpy"]


def no_busy_or_execute_input() -> None:
    """Only the outer kernel talks to frontends; it publishes its own busy status and
    execute_input. The inner kernel's copies would be built, sent and dropped.
    (Idle is kept: it marks a request's last output.)"""
    from ipykernel import kernelbase

    kernel: Any = kernelbase.Kernel
    publish_status = kernel._publish_status
    kernel._publish_execute_input  # noqa: B018 (fails here when it is gone)

    def _publish_status(self: Any, status: str, channel: str, parent: Any = None) -> None:
        if status != "busy":
            publish_status(self, status, channel, parent)

    def _publish_execute_input(self: Any, *args: Any, **kwargs: Any) -> None:
        return None

    kernel._publish_status = _publish_status
    kernel._publish_execute_input = _publish_execute_input


def no_shell_channel_thread() -> None:
    """The outer kernel never advertises subshells, so the inner one needs no shell
    channel thread: one thread hop less for every request."""
    from ipykernel import kernelapp

    app: Any = kernelapp.IPKernelApp
    if "shell_channel_thread" not in app.class_trait_names():
        raise AttributeError("this ipykernel has no shell channel thread")
    init_sockets = app.init_sockets

    def _init_sockets(self: Any) -> None:
        init_sockets(self)
        self.shell_channel_thread = None

    app.init_sockets = _init_sockets


def quiet_debug_log() -> None:
    """traitlets leaves the app's logger at DEBUG and filters in its handler, so
    every log.debug on ipykernel's per-message path builds a record only to drop it."""
    from ipykernel import kernelapp

    app: Any = kernelapp.IPKernelApp
    initialize = app.initialize

    def _initialize(self: Any, argv: Any = None) -> None:
        initialize(self, argv)
        levels = [handler.level for handler in self.log.handlers]
        self.log.setLevel(min(levels) if levels else self.log_level)

    app.initialize = _initialize


def flush_only_when_written() -> None:
    """ipykernel flushes stdout and stderr after every request and every result, each
    a wait for a round trip through the IOPub thread; with nothing written since the
    last flush there is nothing to wait for."""
    from ipykernel import iostream

    stream: Any = iostream.OutStream
    missing = [n for n in ("_flush_buffers", "_flush") if not hasattr(stream, n)]
    if missing:
        raise AttributeError("OutStream has no " + ", ".join(missing))
    flush = stream.flush
    send = stream._flush

    def _send(self: Any) -> None:
        # A send under way on the IOPub thread has taken the buffers but not yet
        # queued its message: a flush now must still wait behind it, or the
        # request's idle status overtakes the output (the frontend drops it).
        self._sk_sending = True
        try:
            send(self)
        finally:
            self._sk_sending = False

    def _flush(self: Any) -> None:
        # _flush_pending is read before _sk_sending: a send clears the first only
        # after setting the second.
        if (
            self.__dict__.get("_buffers", True)
            or getattr(self, "_flush_pending", True)
            or self.__dict__.get("_sk_sending", False)
            or getattr(self, "_subprocess_flush_pending", True)
            or getattr(self, "echo", None) is not None
        ):
            flush(self)

    stream._flush = _send
    stream.flush = _flush


def send_while_printing() -> None:
    """ipykernel sends printed output 0.2 s after the first write, from its IOPub
    thread, which a printing thread starves of the GIL: 20 MB printed left in one or
    two messages at the cell's end, and each stage on the way (the relay, the engine,
    the host, the frontend) waited for the whole before it could start. Here a write
    that brings the text not yet sent past :data:`SEND_EVERY` characters flushes, as
    ``sys.stdout.flush()`` does: it waits while the IOPub thread sends, so the send
    does not compete for the GIL and each piece leaves at once, and those stages work
    alongside the printing. Frontends join consecutive stream messages, and ipykernel
    splits a stream wherever its timer falls anyway: the text shown is the same."""
    from ipykernel import iostream

    stream: Any = iostream.OutStream
    missing = [n for n in ("flush", "_is_master_process") if not hasattr(stream, n)]
    if missing:
        raise AttributeError("OutStream has no " + ", ".join(missing))
    write = stream.write

    def _write(self: Any, string: str) -> Any:
        written = write(self, string)
        unsent = self.__dict__.get("_sk_unsent", 0) + len(string)
        if unsent >= SEND_EVERY and self._is_master_process():
            unsent = 0
            self.flush()
        self._sk_unsent = unsent
        return written

    stream.write = _write


def cache_signature_checks() -> None:
    """ipykernel reads run_cell's signature with inspect on every execute_request."""
    from ipykernel import ipkernel

    module: Any = ipkernel
    accepts = module._accepts_parameters
    accepted: dict[Any, Any] = {}

    def _accepts_parameters(meth: Any, param_names: Any) -> Any:
        key = (getattr(meth, "__func__", meth), tuple(param_names))
        if key not in accepted:
            accepted[key] = accepts(meth, param_names)
        return dict(accepted[key])

    module._accepts_parameters = _accepts_parameters


def outer_cell_numbers() -> None:
    """The frontend shows the outer kernel's cell numbers, and some cells never come
    here (blocked by the validator, %sandbox). Each cell brings its number, so that
    Out[n], _n and In[n] are the cell shown as [n]; skipped inputs are ""."""
    from ipykernel import kernelbase

    kernel: Any = kernelbase.Kernel
    execute_request = kernel.execute_request

    async def _execute_request(self: Any, stream: Any, ident: Any, parent: Any) -> Any:
        count = parent.get("content", {}).get("sandbox_execution_count")
        shell = getattr(self, "shell", None)
        if type(count) is int and shell is not None and count > shell.execution_count:
            history = shell.history_manager
            for inputs in (history.input_hist_parsed, history.input_hist_raw):
                while len(inputs) < count:
                    inputs.append("")
            shell.execution_count = count
        return await execute_request(self, stream, ident, parent)

    kernel.execute_request = _execute_request


def end_marker() -> None:
    """The host proves a cell's end with a reply that only ipykernel's own handler
    sends, once it has returned (so after the cell's real execute_reply): an empty
    comm_info_reply to the id the request brought under :data:`END_MARKER_KEY`. The
    id is taken out of the request before the cell runs, so the cell never sees it in
    ``get_parent()``. Without this patch the host sends a second request behind the
    cell for the same proof, which costs the kernel another dispatch and idle status
    after every cell (see ``CellFlow._settled_reply``)."""
    from ipykernel import kernelbase

    kernel: Any = kernelbase.Kernel
    execute_request = kernel.execute_request

    async def _execute_request(self: Any, stream: Any, ident: Any, parent: Any) -> Any:
        content = parent.get("content")
        marker = content.pop(END_MARKER_KEY, None) if isinstance(content, dict) else None
        try:
            return await execute_request(self, stream, ident, parent)
        finally:
            if type(marker) is str:
                header = {**parent["header"], "msg_id": marker, "msg_type": "comm_info_request"}
                self.session.send(
                    stream, "comm_info_reply", {"status": "ok", "comms": {}}, header, ident=ident
                )

    kernel.execute_request = _execute_request


def name_python_threads() -> None:
    """Name every Python thread :data:`THREAD_NAME` for the OS (``/proc/<tid>/comm``).

    The host tells a thread an earlier cell left running from the cell that runs now
    by its CPU (sandbox_kernel/attribution.py); to tell it from a native thread pool
    (BLAS, OpenMP: working for whichever cell calls it) it needs to know which threads
    are Python's. The name is a hint, as anything from inside: code in the sandbox can
    rename a thread, and at most moves its own CPU to the background part of the line.
    """
    import threading

    thread: Any = threading.Thread
    if not hasattr(thread, "_bootstrap_inner"):
        raise AttributeError("threading.Thread has no _bootstrap_inner")
    bootstrap_inner = thread._bootstrap_inner
    name = THREAD_NAME.encode()

    def _bootstrap_inner(self: Any) -> None:
        try:
            with open("/proc/thread-self/comm", "wb") as comm:
                comm.write(name)
        except OSError:
            pass
        bootstrap_inner(self)

    thread._bootstrap_inner = _bootstrap_inner


#: matplotlib backends whose figures are drawn by script in the browser
#: (application/javascript and the "matplotlib" comm), which the host never lets through.
SCRIPT_BACKENDS = frozenset({"notebook", "nbagg"})

#: Said once when a notebook asks for one of them.
INLINE_NOTICE = (
    "[sandbox-kernel: %matplotlib {gui} draws figures with script in the browser, which the "
    "sandbox does not let through; figures show inline, as images]\n"
)


def inline_for_script_backends() -> None:
    """``%matplotlib notebook`` (or ``nbagg``, and ``%pylab notebook``) would leave a
    notebook with no figures at all: its output is script and a comm that the host's
    output guard refuses (outputs/). Such a request gets the inline backend instead,
    so every figure still shows, as an image, and the cell says why once. An IPython
    patch: ``enable_matplotlib`` is public API, the method both magics call."""
    from IPython.core.interactiveshell import InteractiveShell

    enable: Callable[..., Any] = InteractiveShell.enable_matplotlib
    told: list[str] = []

    def enable_matplotlib(self: Any, gui: Any = None) -> Any:
        if isinstance(gui, str) and gui in SCRIPT_BACKENDS:
            if not told:
                told.append(gui)
                sys.stderr.write(INLINE_NOTICE.format(gui=gui))
            gui = "inline"
        return enable(self, gui)

    InteractiveShell.enable_matplotlib = enable_matplotlib  # type: ignore[method-assign]


#: What follows a magic's name on a line that Python reads as an expression or a
#: statement: a call, an index, an annotation, an assignment (``run(strategy)``,
#: ``time[0]``, ``history += [1]``, ``ls = []``). See :func:`reads_as_python`.
_PYTHON_AFTER_NAME = re.compile(r"^(?:[=,(\[:]|[-+*/%&|^@<>]*=)")


def reads_as_python(rest: str) -> bool:
    """Whether a one-line cell ``NAME rest``, NAME a magic's, stays Python.

    IPython's automagic would make ``run(strategy)`` ``%run (strategy)`` whenever no
    variable named ``run`` exists; here such a line is always Python, and only a line
    like ``ls -n data/``, ``timeit f(x)`` or ``pwd`` becomes its magic. The validator
    judges a first line with this same function (validator/families/ipython.py), so
    what it judged as a magic is what runs as one."""
    return bool(_PYTHON_AFTER_NAME.match(rest.strip()))


def automagic_for_shell_like_lines() -> None:
    """A plain kernel runs ``ls -n data/``, ``timeit f(x)`` or ``pwd`` typed without
    ``%``; the inner kernel starts with automagic off (relay.py), and this patch turns
    it on, for lines :func:`reads_as_python` leaves to the magics. If IPython's
    checker moved, the patch fails before the switch and automagic stays off."""
    from IPython.core.prefilter import AutoMagicChecker

    check: Callable[..., Any] = AutoMagicChecker.check

    def checked(self: Any, line_info: Any) -> Any:
        if reads_as_python(str(line_info.the_rest)):
            return None
        return check(self, line_info)

    AutoMagicChecker.check = checked  # type: ignore[method-assign]
    sys.argv.append("--InteractiveShell.automagic=True")  # the command line wins


def apply_patches(pipe: str) -> dict[str, str]:
    """Apply every patch; ``{name: "applied" or why not}``."""
    patches: list[tuple[str, Callable[[], None]]] = [
        ("iopub_pipe_over_ipc", lambda: iopub_pipe_over_ipc(pipe)),
        ("no_debugger", no_debugger),
        ("no_busy_or_execute_input", no_busy_or_execute_input),
        ("no_shell_channel_thread", no_shell_channel_thread),
        ("quiet_debug_log", quiet_debug_log),
        ("flush_only_when_written", flush_only_when_written),
        ("send_while_printing", send_while_printing),
        ("cache_signature_checks", cache_signature_checks),
        ("outer_cell_numbers", outer_cell_numbers),
        ("name_python_threads", name_python_threads),
        ("end_marker", end_marker),
        ("inline_for_script_backends", inline_for_script_backends),
        ("automagic_for_shell_like_lines", automagic_for_shell_like_lines),
    ]
    report: dict[str, str] = {}
    for name, patch in patches:
        try:
            patch()
            report[name] = "applied"
        except Exception as err:  # an image's ipykernel differs: skip it, and say so
            report[name] = f"{type(err).__name__}: {err}"
    return report


#: Added to a failed name lookup when the sandbox has no network.
NO_NETWORK = (
    "the sandbox has no network (sandbox-kernel: network_mode='none'); download the file "
    "on the host into the notebook's folder and read it from there"
)


def explain_no_network() -> None:
    """Without a network, ``pd.read_csv(url)`` or ``urlopen`` fails with "Temporary
    failure in name resolution", which reads like a passing outage of the host's
    network. Every download resolves a name first (``socket.create_connection`` and
    urllib3 look ``getaddrinfo`` up on the socket module), so the failure says what
    it is there. Standard library only; not an ipykernel patch."""
    import socket

    if os.environ.get("SANDBOX_NETWORK") != "none":
        return
    getaddrinfo = socket.getaddrinfo

    def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return getaddrinfo(host, *args, **kwargs)
        except socket.gaierror as err:
            raise socket.gaierror(err.errno, f"{err.strerror}: {NO_NETWORK}") from None

    socket.getaddrinfo = _getaddrinfo


def main() -> None:
    pipe = sys.argv.pop(1)
    report = apply_patches(pipe)
    with contextlib.suppress(Exception):  # only a clearer message would be lost
        explain_no_network()
    sys.stdout.write(REPORT_PREFIX + json.dumps(report) + "\n")
    sys.stdout.flush()
    from ipykernel import kernelapp

    launch: Any = kernelapp.launch_new_instance
    launch()


if __name__ == "__main__":
    main()
