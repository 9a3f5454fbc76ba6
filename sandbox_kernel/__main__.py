"""``python -m sandbox_kernel``: the same as the ``sandbox-kernel`` command."""

import sys

if __name__ == "__main__" and sys.argv[1:2] == ["kernel"]:
    # What the kernelspec runs: the container's first engine request leaves before
    # the CLI's own imports (see prelaunch.py).
    from . import prelaunch

    prelaunch.begin(sys.argv[2:])

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
