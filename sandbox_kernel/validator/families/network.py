"""Family: downloads written in Python, answered in the ``notebook`` profile.

A sandbox without a network cannot download anything. In ``notebook`` the import of
an HTTP client (``urllib.request``, ``requests``, ``httpx``) and its fetching calls
(``urlretrieve``, ``urlopen``, ``requests.get``) are answered like ``!wget URL``
(SK608, wording in :func:`..results.download_answer`): the cell runs nothing and ends
with the sentence saying where the files go instead. A cell is answered only when
nothing else in it is refused, so code that downloads and then runs what it fetched
(``exec``, ``pickle.loads``, ``subprocess``, ``%run``) stays refused for that. The
clients' other APIs (``requests.post``, sessions, openers, ``Request`` objects) send
data or configure the network and stay refused as network use (SK102). ``strict``
refuses every use of these modules, as before (``modules`` family).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ..registry import register

if TYPE_CHECKING:
    from ..walker import Walker

#: HTTP client modules and their calls that only fetch a URL.
FETCH_APIS: dict[str, frozenset[str]] = {
    "urllib.request": frozenset({"urlretrieve", "urlopen"}),
    "requests": frozenset({"get", "head"}),
    "httpx": frozenset({"get", "head"}),
}
#: Imports answered along with the clients: ``import urllib`` is how
#: ``urllib.request.urlopen(...)`` is usually reached.
_IMPORTS = frozenset({*FETCH_APIS, "urllib"})


def _client(dotted: str) -> tuple[str, str] | None:
    """(client module, first name after it) for ``requests.get.x`` -> ("requests", "get")."""
    for module in FETCH_APIS:
        if dotted.startswith(module + "."):
            return module, dotted[len(module) + 1 :].partition(".")[0]
    return None


def _decided_by_administrator(w: Walker, module: str) -> bool:
    names = w.t.allowed_modules | w.t.banned_modules
    return module in names or module.partition(".")[0] in names


def answers_import(w: Walker, node: ast.AST, dotted: str) -> bool:
    """In ``notebook``: answer the import of an HTTP client or of one of its fetching
    calls (``from urllib.request import urlretrieve``) and return True."""
    if not w.notebook or _decided_by_administrator(w, dotted):
        return False
    found = _client(dotted)
    if dotted not in _IMPORTS and (found is None or found[1] not in FETCH_APIS[found[0]]):
        return False
    _answer(w, node, dotted, f"import of '{dotted}'")
    return True


def _answer(w: Walker, node: ast.AST, source: str, what: str) -> None:
    from ..results import download_answer

    found = w.analysis.downloads
    if source not in found:
        found.append(source)
    w.emit("SK608", node, f"{what} downloads — " + download_answer([source]))


#: Parts of ``urllib`` that open nothing (``urllib.parse.quote``), whose module the
#: ``notebook`` profile passes: reached through ``urllib`` they pass too.
_OFFLINE_PARTS = ("urllib.parse.", "urllib.error.")


def _mark_chain(w: Walker, node: ast.Attribute) -> None:
    """The chain is judged at its outermost attribute: its inner names are not again."""
    inner: ast.expr = node.value
    while isinstance(inner, ast.Attribute):
        w.handled.add(id(inner))
        inner = inner.value
    w.handled.add(id(inner))


def _variable_chain(w: Walker, node: ast.Attribute) -> bool:
    """Whether the chain starts at a variable (``requests = []`` then
    ``requests.append(x)``), not at the module of that name."""
    base: ast.expr = node
    while isinstance(base, ast.Attribute):
        base = base.value
    return isinstance(base, ast.Name) and w.is_variable(base)


@register(ast.Attribute)
def check_attribute(w: Walker, node: ast.Attribute) -> None:
    if not w.notebook or id(node) in w.handled:
        return
    dotted = w.resolve(node)
    if dotted is None or _variable_chain(w, node):
        return
    if dotted.startswith(_OFFLINE_PARTS) and not _decided_by_administrator(w, "urllib"):
        _mark_chain(w, node)
        return
    found = _client(dotted)
    if found is None or _decided_by_administrator(w, found[0]):
        return
    module, name = found
    _mark_chain(w, node)
    if name in FETCH_APIS[module]:
        _answer(w, node, f"{module}.{name}", f"{module}.{name}()")
    else:
        w.emit(
            "SK102",
            node,
            f"{module}.{name} — '{module}' opens network connections (only plain "
            "downloads are answered)",
        )
