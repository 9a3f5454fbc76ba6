"""Printed output leaves the sandbox in pieces while the cell prints, and the pieces join
into exactly the text a plain kernel shows.

The inner kernel sends what a cell printed every ``bootstrap.SEND_EVERY`` characters
(bootstrap.send_while_printing) instead of in one message at the end, so that the
relay, the engine, the host and the frontend work while the cell still prints.
Frontends join consecutive stream messages of one name (JupyterLab's output model,
nbclient's ``coalesce_streams``, ``sandbox-kernel reproduce``), and a plain ipykernel
splits a stream wherever its 0.2 s timer falls: the split is not the cell's doing, the
text is. These tests compare the joined text with a plain ipykernel's, byte for byte,
through jupyter_client and nbclient, with the pieces' edges placed inside what a
careless splitter would break (a multi-byte character, ``\\r\\n``, an ANSI escape).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from sandbox_kernel import bootstrap
from sandbox_kernel.compare import Tolerance, comparable

from harness import Kernel, KernelSpecs, execute_notebook, start_kernel

pytestmark = pytest.mark.docker

EVERY = bootstrap.SEND_EVERY

#: Each write below that ends a piece brings the text not yet sent to exactly EVERY
#: characters (the kernel is fresh: nothing was written before), so a piece ends
#: right after it: inside an escape, between two characters of several bytes, between
#: \r and \n. Each stream is flushed before the other is written (as print(...,
#: flush=True) and logging's handler do), so a plain kernel's order is fixed too.
CELL = f"""
import sys
out, err = sys.stdout, sys.stderr
E = {EVERY}
for head, tail, rest in [
    ("a", "\\x1b[", "31mred\\x1b[0m\\n"),
    ("é", "é", "è\\n"),
    ("b", "\\r", "\\nnext line\\n"),
    ("😀", "😀", "€\\n"),
]:
    out.write(head * (E - len(tail)))
    out.write(tail)
    out.write(rest)
    out.flush()
    err.write("warning: " + rest)
    err.flush()
    out.write("after the warning\\n" + "f" * (E - len(rest) - 18))
line = "ünïcode line with a tab\\t and a \\x1b[1mbold\\x1b[0m word\\r\\n"
for _ in range(60_000):
    out.write(line)
out.flush()
err.write("done\\n")
"""


def joined(messages: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Consecutive pieces of one stream joined, as frontends show them."""
    out: list[tuple[str, str]] = []
    for name, text in messages:
        if out and out[-1][0] == name:
            out[-1] = (name, out[-1][1] + text)
        else:
            out.append((name, text))
    return out


def pieces(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (m["content"]["name"], m["content"]["text"]) for m in messages if m["msg_type"] == "stream"
    ]


@pytest.fixture(scope="module")
def specs() -> Iterator[KernelSpecs]:
    specs = KernelSpecs()
    plain = specs.root / "kernels" / "plain"
    plain.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (plain / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "plain", "language": "python"})
    )
    yield specs
    specs.cleanup()


@pytest.fixture(scope="module")
def plain_pieces(specs: KernelSpecs) -> list[tuple[str, str]]:
    with start_kernel(specs, kernel_name="plain") as plain:
        cell = plain.execute(CELL, timeout=120)
    assert cell.status == "ok", cell.error
    return pieces(cell.messages)


def test_the_pieces_join_into_the_plain_kernels_text(
    specs: KernelSpecs, plain_pieces: list[tuple[str, str]]
) -> None:
    with start_kernel(specs) as sandbox:  # fresh: the cell's first write starts a piece
        cell = sandbox.execute(CELL, timeout=120)
    assert cell.status == "ok", cell.error
    got = pieces(cell.messages)
    assert joined(got) == joined(plain_pieces)
    # The pieces did end where a careless splitter breaks text (else this test proves
    # nothing about those edges)...
    stdout = [text for name, text in got if name == "stdout"]
    for edge in ("\x1b[", "é", "\r", "😀"):
        assert any(text.endswith(edge) for text in stdout), edge
    # ... and none is larger than a write past the mark.
    assert max(len(text) for _, text in got) <= EVERY + len(CELL)


def test_a_write_loop_leaves_in_pieces_while_it_prints(kernel: Kernel) -> None:
    # sys.stdout.write in a tight loop starved ipykernel's IOPub thread of the GIL: its
    # sends waited until the loop ended, and 8 MB left in one or two messages.
    cell = kernel.execute(
        "import sys\nline = 'z' * 999 + '\\n'\nfor _ in range(8 * 1024):\n    sys.stdout.write(line)"
    )
    assert cell.stdout == ("z" * 999 + "\n") * (8 * 1024)
    sizes = [len(m["content"]["text"]) for m in cell.of_type("stream")]
    assert max(sizes) < EVERY + 1000, sizes


def test_a_saved_notebook_shows_the_plain_kernels_text(specs: KernelSpecs) -> None:
    """nbclient (papermill, ``jupyter execute``) keeps one output per message unless
    told to coalesce: the saved notebook may hold more stream outputs than a plain
    kernel's, whose text joined is the same, which is how JupyterLab shows and saves
    them and how ``sandbox-kernel reproduce`` compares them."""

    def run(notebook: Any) -> list[Any]:
        return list(notebook.cells[0].outputs)

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    km = KernelManager(kernel_name="plain", kernel_spec_manager=specs.manager)
    plain = run(NotebookClient(nbformat.from_dict(notebook), km=km, timeout=120).execute())
    sandbox = run(execute_notebook(nbformat.from_dict(notebook), specs))
    as_pieces = [
        [(o["name"], o["text"]) for o in outs if o["output_type"] == "stream"]
        for outs in (plain, sandbox)
    ]
    assert as_pieces[0] and joined(as_pieces[0]) == joined(as_pieces[1])
    # Besides the streams, only the sandbox's usage line, which reproduce sets aside.
    assert comparable(plain, Tolerance()).items == comparable(sandbox, Tolerance()).items
    assert len(comparable(sandbox, Tolerance()).usage) == 1
