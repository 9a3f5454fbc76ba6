"""Every place the host side leans on ipykernel's or jupyter_client's private API.

ipykernel's public surface (``do_execute`` and friends) is not enough for a kernel
that relays another kernel: a few private methods are overridden and a few private
attributes read. They are all here, each with its reason, so that a new ipykernel
release breaks one module and ``tests/test_seams.py`` says which seam moved (it
checks every name, signature and behaviour used below against the installed
ipykernel). The tested range is pinned in pyproject.toml (``TESTED_IPYKERNEL``).

The inner kernel's patches, applied inside the container to whatever ipykernel the
image has, are in :mod:`.bootstrap`; they report which applied in the HELLO frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import zmq
from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel
from ipykernel.utils import _async_in_context
from jupyter_client.session import Session
from traitlets import Float

#: The ipykernel releases the host side is tested with (pyproject's dependency).
TESTED_IPYKERNEL = (">=7.1", "<8")

#: Seconds an execute_reply waits for the IOPub thread to send the cell's outputs
#: (ipykernel's own flush waits up to ten).
IOPUB_FLUSH_TIMEOUT = 2.0

#: ipykernel's marker message that ends aborting ("stop aborting", see ``shell_main``).
STOP_ABORTING = b"stop aborting"

Message = dict[str, Any]


class KernelSeams(Kernel):
    """The overrides of ipykernel's private ``Kernel`` API, with their reasons."""

    # ipykernel sleeps 0.5 ms before each execute_reply to let output flush; our
    # outputs are already published when the inner kernel reports idle.
    _execute_sleep = Float(0.0).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._held: list[Callable[[], None]] = []
        self._stop_aborting: asyncio.Future[Any] | None = None

    # -- Run All stops at an error ----------------------------------------------------
    def _abort_queues(self, subshell_id: str | None = None) -> None:
        """After a failed cell, abort the execute_requests already sent ("Run All").

        ipykernel 7 without a shell-channel thread (see :class:`KernelAppSeams`) ends
        the abort on the next loop turn, before most queued requests have run, so "Run
        All" would go on past a failing cell. End it as its threaded path does: with
        its "stop aborting" marker, queued the way a request is, behind every request
        received so far.
        """
        if (
            subshell_id is not None
            or self.shell_channel_thread is not None
            or self.shell_stream is None
        ):
            super()._abort_queues(subshell_id)
            return
        self._aborting = True
        self.shell_stream.flush()  # requests waiting in the socket join the queue first
        marker = _async_in_context(partial(self.shell_main, None))
        self._stop_aborting = asyncio.ensure_future(marker([zmq.Frame(STOP_ABORTING)]))

    # -- busy and execute_input held back ---------------------------------------------
    # An execute_request's busy status and execute_input are held back until the cell
    # is on its way to the sandbox, so they are sent while it runs there instead of
    # before: the frontend sees them in the same order, and a cell is done sooner.
    # Anything else this kernel publishes, and its idle status, sends them first.
    def _publish_status(self, status: str, channel: str, parent: Message | None = None) -> None:
        parent = parent or self.get_parent(channel)
        if status == "busy" and parent.get("header", {}).get("msg_type") == "execute_request":
            self._held.append(partial(Kernel._publish_status, self, status, channel, parent))
            return
        self._release_held()
        super()._publish_status(status, channel, parent)

    def _publish_execute_input(self, code: str, parent: Message, execution_count: int) -> None:
        self._held.append(
            partial(Kernel._publish_execute_input, self, code, parent, execution_count)
        )

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for publish in held:
            publish()

    # -- private state read ------------------------------------------------------------
    def _shell_ident(self) -> Any:
        """The ZMQ identity of the shell request being handled (to answer on stdin)."""
        return self._get_shell_context_var(self._shell_parent_ident)

    def _uncount_unstored_cell(self, silent: bool, store_history: bool) -> None:
        """As IPython numbers cells: one kept out of the history takes no number.

        ipykernel's ``execute_request`` counts every non-silent request before it
        calls ``do_execute``, whatever ``store_history`` says.
        """
        if not silent and not store_history:
            self.execution_count -= 1

    def _flush_iopub(self) -> None:
        """Let ipykernel's IOPub thread send what was queued before going on.

        The reply goes out on shell from this thread, the cell's outputs through the
        IOPub thread: a plain kernel gets this order from flushing its sys.stdout.
        """
        io_thread = getattr(self.iopub_socket, "io_thread", None)
        if io_thread is None:
            return
        sent = threading.Event()
        io_thread.schedule(sent.set)
        sent.wait(IOPUB_FLUSH_TIMEOUT)


class KernelAppSeams(IPKernelApp):
    """The overrides of ipykernel's ``IPKernelApp``, with their reasons."""

    def initialize(self, argv: Any = None) -> None:
        super().initialize(argv)
        # traitlets leaves the app's logger at DEBUG and filters in its handler, so
        # every log.debug on ipykernel's per-message path would build a record only to
        # drop it. The logger's own level follows the handlers' (--debug still works).
        levels = [handler.level for handler in self.log.handlers]
        self.log.setLevel(min(levels) if levels else self.log_level)

    def init_sockets(self) -> None:
        super().init_sockets()
        # No subshells (the kernel does not advertise them): shell messages are
        # handled on the main loop directly, one thread hop less per request.
        self.shell_channel_thread = None


def stop_control_thread(app: IPKernelApp) -> None:
    """Stop ipykernel's control thread after the app's loop ended.

    It may still be sending the idle status that follows a shutdown_reply;
    ipykernel's own close() shuts IOPub before it stops that thread.
    """
    control = getattr(app, "control_thread", None)
    if control is not None and control.is_alive():
        with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
            control.stop()
        control.join(timeout=2)


def unsigned_session(signature_scheme: str, username: str) -> Session:
    """A jupyter_client Session that neither signs nor checks (the inner channel).

    ``Session.__init__`` logs "Message signing is disabled. This is insecure" for an
    empty key, which reads like a security hole in every kernel start. Here no key
    is by design (see relay.py and inner.py: a signature made inside the container
    proves nothing). Setting the empty key after construction takes the same path
    as loading it from a connection file (``_key_changed``), without the warning.
    """
    session = Session(key=b"unused", signature_scheme=signature_scheme, username=username)
    session.key = b""
    return session
