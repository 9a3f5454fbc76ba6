"""What an image built by ``sandbox-kernel image build`` records in its labels.

Apart from image.py (which builds images with the Docker SDK) so that a kernel's start
can read them without importing the SDK (see engine.py).
"""

from __future__ import annotations

#: Label with the image's exact Python packages, ``name==version`` separated by commas
#: (also in the image as image.PACKAGES_FILE, which finalize.sh writes).
PACKAGES_LABEL = "sandbox-kernel.packages"


def image_packages(labels: dict[str, str] | None) -> list[str]:
    """The ``name==version`` list an image records in its labels ([] when it has none)."""
    text = (labels or {}).get(PACKAGES_LABEL, "")
    return [p for p in text.split(",") if p]
