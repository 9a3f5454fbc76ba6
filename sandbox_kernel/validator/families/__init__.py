"""The capability families: one module per family, each owning its tables and checks.

Importing this package registers every family's checks (see :mod:`..registry`), in
the order below; :func:`build_tables` applies a policy to every family's tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import scopes  # noqa: F401  (first: bindings are known before the names are read)
from . import (
    byname,
    data,
    dyncode,
    environment,
    introspection,
    ipython,
    modules,
    names,
    network,
    unicode,
)

if TYPE_CHECKING:
    from ..policy import Tables

#: The families in the order their checks run on a node.
FAMILIES = (
    modules, network, environment, introspection, dyncode, byname, data, ipython, names, unicode
)  # fmt: skip


def build_tables(t: Tables) -> None:
    """Add every family's tables, with the policy applied, to ``t``."""
    for family in FAMILIES:
        build = getattr(family, "build_tables", None)
        if build is not None:
            build(t)
