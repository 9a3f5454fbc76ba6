"""Files shipped with the package: the kernelspec and the seccomp profile.

An installed wheel has them as package data under ``sandbox_kernel/_data/`` (put
there by pyproject's force-include); an editable checkout has only the repository's
top-level ``kernelspec/`` and ``seccomp/`` folders.
"""

from __future__ import annotations

from pathlib import Path


def data_path(*parts: str) -> Path:
    """A shipped file: the wheel's copy when there is one, else the checkout's."""
    packaged = Path(__file__).with_name("_data").joinpath(*parts)
    if packaged.exists():
        return packaged
    return Path(__file__).resolve().parent.parent.joinpath(*parts)
