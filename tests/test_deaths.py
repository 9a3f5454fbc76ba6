"""Why the sandbox died, as the host explains it (no engine needed): deaths.explain_death
is a function of the exit status, the reason the channel closed and the limits; the
kernel tests (test_lifecycle.py, test_escape.py) end real sandboxes each of these ways."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox_kernel.deaths import explain_death
from sandbox_kernel.errors import SandboxDiedError

MiB = 1024 * 1024


def _explain(
    reason: str = "eof",
    status: dict[str, Any] | None = None,
    *,
    stopping: bool = False,
    oom: bool = False,
) -> SandboxDiedError:
    return explain_death(
        reason, status, stopping=stopping, memory_bytes=512 * MiB, oom_killed=lambda: oom
    )


@pytest.mark.parametrize(
    ("reason", "status", "oom", "expected", "words"),
    [
        ("eof", None, True, "oom", "memory limit (512 MiB)"),
        ("unresponsive", None, False, "lost", "stopped responding for 10 s"),
        ("connection lost: reset", None, False, "lost", "(connection lost: reset)"),
        ("protocol error: bad frame", None, False, "lost", "connection to the sandbox broke"),
        ("internal error: boom", None, False, "lost", "connection to the sandbox broke"),
        ("eof", None, False, "killed", "stopped from outside"),
        ("kernel exited", {"returncode": -9, "oom_kills": 1}, False, "oom", "memory limit"),
        ("kernel exited", {"returncode": -9}, False, "killed", "killed by SIGKILL"),
        ("kernel exited", {"returncode": -200}, False, "killed", "killed by signal 200"),
        ("kernel exited", {"returncode": 3}, False, "exited", "on its own (exit code 3)"),
        ("kernel exited", {}, False, "exited", "(exit code 0)"),
    ],
)
def test_each_way_to_die_has_its_reason_and_sentence(
    reason: str, status: dict[str, Any] | None, oom: bool, expected: str, words: str
) -> None:
    error = _explain(reason, status, oom=oom)
    assert error.reason == expected
    assert words in str(error)
    assert str(error).endswith("; the sandbox was restarted and its state is lost.")


def test_our_own_teardown_is_no_accident() -> None:
    error = _explain("kernel exited", {"returncode": -9, "oom_kills": 1}, stopping=True, oom=True)
    assert error.reason == "stopped"
    assert str(error) == "The kernel was shut down or restarted while this cell ran."


def test_the_engine_is_asked_about_memory_only_without_an_exit_status() -> None:
    asked: list[bool] = []

    def oom_killed() -> bool:
        asked.append(True)
        return True

    error = explain_death(
        "kernel exited", {"returncode": 1}, stopping=False, memory_bytes=MiB, oom_killed=oom_killed
    )
    assert error.reason == "exited" and not asked


def test_every_reason_is_one_errors_py_lists() -> None:
    documented = SandboxDiedError.__doc__ or ""
    cases = [
        _explain(stopping=True),
        _explain(oom=True),
        _explain("unresponsive"),
        _explain(),
        _explain("kernel exited", {"returncode": 0}),
    ]
    for error in cases:
        assert f'``"{error.reason}"``' in documented
