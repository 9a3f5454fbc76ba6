"""Replies from the sandbox that come while nobody waits for them (no engine needed).

The end-of-cell probe goes out with the cell (cellflow.py), so its reply can arrive
before the host asks for it; a cell can also send replies of its own, as many as it
likes. The inner kernel's client keeps replies to its own requests until they are
claimed, bounded, and no reply to a request it never sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sandbox_kernel import replies
from sandbox_kernel.config import SandboxConfig
from sandbox_kernel.engine_raw import RawEngine
from sandbox_kernel.inner import InnerKernel
from sandbox_kernel.wire import Kind


def _reply(parent: str, status: str = "ok") -> dict[str, Any]:
    return {
        "header": {"msg_type": "execute_reply"},
        "parent_header": {"msg_id": parent},
        "content": {"status": status},
    }


def _client() -> InnerKernel:
    # An engine never asked: these tests feed replies in by hand.
    engine = RawEngine("/nonexistent/docker.sock", SandboxConfig())
    kernel = InnerKernel(SandboxConfig(), engine, print, print, print)
    kernel._loop = kernel._replies.loop = asyncio.new_event_loop()
    return kernel


def test_a_reply_that_comes_first_is_there_when_asked_for() -> None:
    kernel = _client()
    kernel._replies._asked["probe"] = None  # as send() records it
    kernel._inbox._dispatch(Kind.SHELL, _reply("probe"))
    future = kernel.reply_future("probe")
    assert future.done() and future.result()["parent_header"]["msg_id"] == "probe"


def test_a_second_reply_is_kept_the_latest_and_forgotten_on_request() -> None:
    kernel = _client()
    kernel._replies._asked["cell"] = None
    first = kernel.reply_future("cell")
    kernel._inbox._dispatch(Kind.SHELL, _reply("cell", "forged"))
    kernel._inbox._dispatch(Kind.SHELL, _reply("cell", "also forged"))
    kernel._inbox._dispatch(Kind.SHELL, _reply("cell", "real"))
    assert first.result()["content"]["status"] == "forged"
    assert kernel.unclaimed_reply("cell")["content"]["status"] == "real"  # type: ignore[index]
    kernel._inbox._dispatch(Kind.SHELL, _reply("cell"))
    kernel.forget_reply("cell")
    kernel._inbox._dispatch(Kind.SHELL, _reply("cell"))
    assert kernel.unclaimed_reply("cell") is None  # forgotten: no more kept


def test_replies_to_requests_never_sent_are_not_kept() -> None:
    kernel = _client()
    for number in range(1000):
        kernel._inbox._dispatch(Kind.SHELL, _reply(f"made-up-{number}"))
    assert not kernel._replies._unclaimed


def test_what_is_kept_is_bounded() -> None:
    kernel = _client()
    for number in range(1000):
        kernel._replies._asked[f"mine-{number}"] = None
        kernel._inbox._dispatch(Kind.SHELL, _reply(f"mine-{number}"))
    assert len(kernel._replies._unclaimed) == replies._UNCLAIMED_KEPT


def test_a_storm_of_input_replies_does_not_push_out_a_waiting_request() -> None:
    """A cell that floods input_requests gets each refused with an input_reply; those
    are replies, not requests: the end-of-cell proof asked before them is still kept
    when its answer comes first (tests/test_escape_host.py has the real storm)."""
    from jupyter_client.session import Session

    kernel = _client()
    kernel.session = Session(key=b"")
    kernel.container = object()  # type: ignore[assignment]  # _pack only checks it is there
    probe = kernel.new_request_id()
    for _ in range(1000):
        kernel._pack("stdin", "input_reply", {"value": "\x04"}, None, None, None, None)
    kernel._inbox._dispatch(Kind.SHELL, _reply(probe))
    assert kernel.reply_future(probe).done()
