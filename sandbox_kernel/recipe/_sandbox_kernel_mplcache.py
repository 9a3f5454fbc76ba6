"""Seed matplotlib's font cache from the copy built into the sandbox image.

Why this exists: matplotlib keeps its font list (``fontlist-v*.json``) in its cache
folder and builds it on the first ``import matplotlib.pyplot`` when it is missing
(measured in the image: 235 ms to build it, 1 ms to read it). The sandbox's root
filesystem is read-only, so the cache folder (``MPLCONFIGDIR``, or
``~/.cache/matplotlib``) is on the fresh /tmp tmpfs of each kernel, and matplotlib
refuses to use a read-only cache folder (it would make a temporary one and warn). So
the image holds a font list built at build time, and this hook, run from a ``.pth``
file at interpreter start, copies it into the writable cache folder when it is not
there yet. The font paths inside are the image's own, so the copy is exactly what
matplotlib would have built. It costs a few ``stat`` calls per start and never
raises: a failure only means matplotlib builds the list itself, as without it.
"""

import os


def _seed() -> None:
    seed = "/usr/local/share/sandbox-kernel/matplotlib"
    target = os.environ.get("MPLCONFIGDIR")
    if not target:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        target = os.path.join(cache, "matplotlib")
    try:
        names = [n for n in os.listdir(seed) if n.startswith("fontlist-")]
        for name in names:
            dest = os.path.join(target, name)
            if os.path.exists(dest):
                continue
            os.makedirs(target, mode=0o700, exist_ok=True)
            with open(os.path.join(seed, name), "rb") as src:
                data = src.read()
            tmp = f"{dest}.{os.getpid()}.tmp"
            with open(tmp, "wb") as out:
                out.write(data)
            os.replace(tmp, dest)
    except Exception:
        pass


_seed()
