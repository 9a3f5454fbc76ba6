"""The image recipe's digest and what an image built by ``sandbox-kernel image build``
records in its labels.

Apart from image.py (which builds images with the Docker SDK) so that a kernel can
read them (its kernel_info's environment record) without importing the SDK (see
engine.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import SandboxError

#: Version of the build steps written in image.py and rootfs.py (image config, rootfs
#: preparation, pip options). Bump it whenever a change there changes what lands in the
#: image, so that existing images stop matching the recipe and get rebuilt.
BUILD_STEPS_VERSION = "2"

#: Label whose value is the :func:`recipe_digest` an image was built from.
RECIPE_LABEL = "sandbox-kernel.recipe"

RECIPE_DIR = Path(__file__).with_name("recipe")

#: Every file of the recipe; all of them go into the digest, and all of them are the
#: Dockerfile's build context.
RECIPE_FILES = (
    "Dockerfile",
    "_sandbox_kernel_mplcache.py",
    "finalize.sh",
    "requirements.txt",
    "rootfs.json",
    "sandbox_kernel_mplcache.pth",
)


class ImageBuildError(SandboxError):
    """The sandbox image could not be built."""


#: Label with the image's exact Python packages, ``name==version`` separated by commas
#: (also in the image as image.PACKAGES_FILE, which finalize.sh writes).
PACKAGES_LABEL = "sandbox-kernel.packages"


def image_packages(labels: dict[str, str] | None) -> list[str]:
    """The ``name==version`` list an image records in its labels ([] when it has none)."""
    text = (labels or {}).get(PACKAGES_LABEL, "")
    return [p for p in text.split(",") if p]


def recipe_digest() -> str:
    """The sha256 (hex) of the image recipe: its files and :data:`BUILD_STEPS_VERSION`.

    Each file enters with its name and length, so moving text between files changes
    the digest too.

    Raises:
        ImageBuildError: when a recipe file is missing (a broken installation).
    """
    h = hashlib.sha256()
    h.update(f"sandbox-kernel-image-build-steps={BUILD_STEPS_VERSION}\0".encode())
    for name in RECIPE_FILES:
        data = recipe_bytes(name)
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def recipe_bytes(file_name: str) -> bytes:
    try:
        return (RECIPE_DIR / file_name).read_bytes()
    except OSError as exc:
        raise ImageBuildError(
            f"the image recipe file {file_name} is missing from {RECIPE_DIR}; reinstall sandbox-kernel"
        ) from exc
