"""The escape suite's attacks: what a notebook cell tries, and how to tell it failed.

Each :class:`Attack` is cell source that defines ``attack()`` returning
``(escaped, detail)``; the prelude prints one verdict line, ``RESULT: blocked <detail>``
or ``RESULT: escaped <detail>`` (``RESULT: error ...`` when the attack itself broke,
which neither check accepts). A few attacks (resource exhaustion, timeouts, killing
the kernel) are judged by what the notebook sees instead: the announced restart error
or the truncated output.

Every attack names the setting(s) that stop it and ``weakened``: the settings that,
changed from the hardened configuration, let it succeed (the negative control). Where
two independent protections both stop an attack, the control drops both and a comment
says so. ``no_control`` explains the few attacks no setting can let through (Docker
itself stops them whatever the sandbox settings, short of ``--privileged``).

The table is kept by family, one module each: :mod:`.files` (writes, dropped files,
the host's files and environment), :mod:`.network` (sockets, network),
:mod:`.kernel_surface` (syscalls, privileges, kernel control files) and
:mod:`.resources` (exhaustion, killing what runs the sandbox); :mod:`.core` holds the
prelude every cell starts with, the checks and the :class:`Attack` record.

Placeholders ``@NAME@`` are filled from the host bait (tests/escape/host.py) and the
kernel's own connection key (``@KEY@``).

Safety of the negative controls: network attacks never send a packet to a non-loopback
address, not even in a weakened sandbox — they stop at socket creation and report it;
only the host's 127.0.0.1 listener is ever connected to. Resource attacks are bounded
(a few hundred processes, 2.5 GiB, 700 MiB). Dangerous kernel files (sysrq-trigger,
/proc/sys, cgroup files) are opened for writing but never written.
"""

from __future__ import annotations

from . import files, kernel_surface, network, resources
from .core import RESTART_ENAMES, Attack, announced, is_blocked, is_escaped

__all__ = ["ATTACKS", "BY_ID", "RESTART_ENAMES", "Attack", "announced", "is_blocked", "is_escaped"]

#: Every attack, family by family.
ATTACKS: list[Attack] = [
    *files.ATTACKS,
    *network.ATTACKS,
    *kernel_surface.ATTACKS,
    *resources.ATTACKS,
]

BY_ID = {attack.id: attack for attack in ATTACKS}
assert len(BY_ID) == len(ATTACKS), "duplicate attack ids"
