"""The default sandbox image: its recipe, whether an image is up to date, and how to build it.

The recipe lives in ``sandbox_kernel/recipe/``: the pinned Python packages
(``requirements.txt``), the Debian root filesystem parameters (``rootfs.json``), a
``Dockerfile`` and ``finalize.sh``, the last steps both build paths share. The built
image carries the label ``sandbox-kernel.recipe=<digest of the recipe>``, so
:func:`build_image` rebuilds only when the recipe changed.

There are two ways to build it:

``dockerfile``
    ``FROM python:3.11-slim-bookworm``, built by the engine. Needs that base image,
    so a registry or a local copy.
``rootfs``
    Needs no registry image at all: ``debootstrap`` makes a minimal Debian bookworm
    with its ``python3`` (3.11), the host's pip installs wheels for that Python into
    it, ``finalize.sh`` runs in a chroot, and the tree is imported with ``docker
    import``. Needs root, ``debootstrap`` and a Debian mirror. The debootstrap result
    is cached, so a rebuild after a requirements change takes only the wheel and
    import steps. That path is :mod:`.rootfs`.

No extra system library is installed for the scientific stack: the numpy, scipy,
pandas, matplotlib and pillow wheels bundle their own (OpenBLAS, gfortran runtime,
freetype, ...), and Docker's ``init=True`` provides tini, so the image needs none.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import docker
import docker.errors
import docker.utils
import requests.exceptions

from .config import DEFAULT_IMAGE
from .errors import DockerUnavailableError, SandboxError
from .imagerecipe import (
    BUILD_STEPS_VERSION,
    PACKAGES_LABEL,
    RECIPE_FILES,
    RECIPE_LABEL,
    ImageBuildError,
    recipe_digest,
)
from .imagerecipe import image_packages as image_packages
from .imagerecipe import recipe_bytes as _recipe_bytes

PACKAGES_FILE = "/usr/local/share/sandbox-kernel/packages.txt"

#: Base image of the Dockerfile path.
BASE_IMAGE = "python:3.11-slim-bookworm"

__all__ = [
    "BASE_IMAGE",
    "BUILD_STEPS_VERSION",
    "PACKAGES_LABEL",
    "RECIPE_LABEL",
    "ImageBuildError",
    "ImageStatus",
    "build_image",
    "image_status",
    "recipe_digest",
]

# How long the `auto` method waits for a pull of the base image before it falls back to
# the rootfs path. Without a registry the engine fails at once (DNS), so this only
# matters for a registry that is slow; a real pull streams progress well within it.
_PULL_TIMEOUT = 20

_Method = Literal["auto", "rootfs", "dockerfile"]


@dataclass(frozen=True)
class ImageStatus:
    """What the engine has under an image name, compared with the current recipe.

    Attributes:
        name: the image name that was asked about.
        exists: whether the engine has an image of that name.
        current: whether that image was built from the current recipe (its
            ``sandbox-kernel.recipe`` label equals :func:`recipe_digest`).
        recipe: the image's recipe label, ``None`` without image or label.
        id: the image id (``sha256:...``), ``None`` without image.
        reference: what a notebook should record to name exactly this image: its
            first repo digest when it has been pushed or pulled, else its id.
        size: the image size in bytes, ``None`` without image.
    """

    name: str
    exists: bool
    current: bool
    recipe: str | None = None
    id: str | None = None
    reference: str | None = None
    size: int | None = None


def image_status(client: docker.DockerClient, name: str = DEFAULT_IMAGE) -> ImageStatus:
    """Tell whether the engine has ``name`` and whether it matches the current recipe.

    Args:
        client: a Docker client.
        name: image name, such as ``"sandbox-kernel:latest"``.

    Raises:
        DockerUnavailableError: when the engine cannot be reached.
        SandboxError: when the engine refuses the question.
    """
    try:
        image = client.images.get(name)
    except docker.errors.ImageNotFound:
        return ImageStatus(name=name, exists=False, current=False)
    except docker.errors.DockerException as exc:
        raise engine_error(exc, f"could not look up image {name}") from exc
    except requests.exceptions.RequestException as exc:
        raise engine_error(exc, f"could not look up image {name}") from exc
    attrs: dict[str, Any] = image.attrs
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    recipe = labels.get(RECIPE_LABEL)
    repo_digests = attrs.get("RepoDigests") or []
    return ImageStatus(
        name=name,
        exists=True,
        current=recipe == recipe_digest(),
        recipe=recipe,
        id=image.id,
        reference=repo_digests[0] if repo_digests else image.id,
        size=attrs.get("Size"),
    )


def build_image(
    client: docker.DockerClient,
    name: str = DEFAULT_IMAGE,
    *,
    method: _Method = "auto",
    force: bool = False,
    log: Callable[[str], None] = print,
    mirror: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Build the default sandbox image, unless an image of the current recipe exists.

    Args:
        client: a Docker client.
        name: the image name to build, such as ``"sandbox-kernel:latest"``.
        method: ``"dockerfile"`` (from ``python:3.11-slim-bookworm``), ``"rootfs"``
            (debootstrap, no registry needed, needs root) or ``"auto"``: the
            Dockerfile when its base image is present or can be pulled at once, else
            the rootfs path.
        force: build even when the existing image matches the recipe.
        log: receives one line per build step.
        mirror: Debian mirror of the rootfs path. Default: the
            ``SANDBOX_KERNEL_DEBIAN_MIRROR`` environment variable, else the host's own
            apt sources, else ``http://deb.debian.org/debian``.
        cache_dir: where the rootfs path keeps its debootstrap result and work trees.
            Default: ``$XDG_CACHE_HOME/sandbox-kernel`` or ``~/.cache/sandbox-kernel``.

    Returns:
        The image id (``sha256:...``).

    Raises:
        ImageBuildError: when a build step fails (its last output is in the message)
            or the rootfs path is used without root or without debootstrap.
        DockerUnavailableError: when the engine cannot be reached.
        SandboxError: when the engine refuses a request.
    """
    if method not in ("auto", "rootfs", "dockerfile"):
        raise ImageBuildError(f"unknown build method {method!r}; use auto, rootfs or dockerfile")
    digest = recipe_digest()
    before = image_status(client, name)
    if before.current and not force and before.id is not None:
        log(f"{name} is up to date (recipe {digest[:12]}); nothing to build")
        return before.id

    if method == "auto":
        method = "dockerfile" if _base_image_available(client, log) else "rootfs"
    start = time.monotonic()
    log(f"building {name} with the {method} method (recipe {digest[:12]})")
    if method == "dockerfile":
        image_id = _build_from_dockerfile(client, name, digest, force, log)
    else:
        # Imported here: the rootfs path builds on this module's engine helpers.
        from .rootfs import build_from_rootfs, cache_folder, default_mirror

        image_id = build_from_rootfs(
            client, name, digest, mirror or default_mirror(), cache_folder(cache_dir), log
        )
    log(f"built {name} ({image_id[:19]}) in {time.monotonic() - start:.0f} s")

    if before.id is not None and before.id != image_id:
        _remove_replaced(client, before.id, log)
    return image_id


# -- the Dockerfile path ---------------------------------------------------------------


def _base_image_available(client: docker.DockerClient, log: Callable[[str], None]) -> bool:
    """Whether BASE_IMAGE is local or pulls now; a failed pull is not an error here."""
    try:
        client.images.get(BASE_IMAGE)
        return True
    except docker.errors.ImageNotFound:
        pass
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise engine_error(exc, f"could not look up image {BASE_IMAGE}") from exc
    repository, tag = docker.utils.parse_repository_tag(BASE_IMAGE)
    # A short timeout for this one request: a registry that does not answer must not
    # stall the build when the rootfs path needs no registry at all.
    saved_timeout = client.api.timeout
    client.api.timeout = _PULL_TIMEOUT
    try:
        client.images.pull(repository, tag=tag)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        log(f"{BASE_IMAGE} is not available ({_first_line(exc)}); using the rootfs method")
        return False
    finally:
        client.api.timeout = saved_timeout
    return True


def _build_from_dockerfile(
    client: docker.DockerClient,
    name: str,
    digest: str,
    force: bool,
    log: Callable[[str], None],
) -> str:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for file_name in RECIPE_FILES:
            data = _recipe_bytes(file_name)
            info = tarfile.TarInfo(file_name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    return engine_build(client, context, name, log, labels={RECIPE_LABEL: digest}, nocache=force)


def engine_build(
    client: docker.DockerClient,
    context: io.BytesIO,
    name: str,
    log: Callable[[str], None],
    **options: Any,
) -> str:
    """Build the tar ``context`` as ``name`` on the engine; its image id.

    Raises:
        ImageBuildError: a build step failed (the last lines of its output are in the
            message).
        SandboxError: the engine failed.
    """
    tail: list[str] = []
    image_id: str | None = None
    try:
        for chunk in client.api.build(
            fileobj=context,
            custom_context=True,
            tag=name,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            **options,
        ):
            if "error" in chunk:
                tail.append(str(chunk["error"]).strip())
                raise ImageBuildError(f"docker build of {name} failed: {' | '.join(tail[-5:])}")
            text = str(chunk.get("stream", "")).rstrip()
            if text:
                tail = [*tail[-19:], text]
                log(text)
            aux = chunk.get("aux")
            if isinstance(aux, dict) and "ID" in aux:
                image_id = str(aux["ID"])
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise engine_error(exc, f"docker build of {name} failed") from exc
    if image_id is None:
        image_id = image_id_of(client, name)
    return image_id


# -- helpers ---------------------------------------------------------------------------


def image_id_of(client: docker.DockerClient, name: str) -> str:
    """The id of the image just built or imported as ``name``."""
    try:
        return str(client.images.get(name).id)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise engine_error(exc, f"the new image {name} cannot be found") from exc


def _remove_replaced(
    client: docker.DockerClient, image_id: str, log: Callable[[str], None]
) -> None:
    """Remove the image the new build replaced; keep it while containers still use it."""
    try:
        client.images.remove(image_id, noprune=False)
        log(f"removed the replaced image {image_id[:19]}")
    except docker.errors.ImageNotFound:
        pass
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        log(f"kept the replaced image {image_id[:19]} ({_first_line(exc)})")


def _first_line(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def engine_error(exc: BaseException, what: str) -> SandboxError:
    """One readable sentence for a Docker or transport error."""
    if isinstance(exc, requests.exceptions.ConnectionError) or (
        isinstance(exc, docker.errors.DockerException)
        and not isinstance(exc, docker.errors.APIError)
        and "Connection" in str(exc)
    ):
        return DockerUnavailableError(
            f"{what}: the Docker engine cannot be reached ({_first_line(exc)})"
        )
    return SandboxError(f"{what}: {_first_line(exc)}")
