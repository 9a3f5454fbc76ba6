"""The sandbox's image and containers on the engine, outside any one session.

The image a sandbox runs (looked up, named), a container created from spec.py's
request, warm spares (made, woken), the sandbox's containers listed, and what a
crashed or killed controller left behind (orphan containers, dangling volumes)
removed. One session's container is :class:`~.session.ContainerSession`'s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

from . import spec
from .config import SandboxConfig
from .engine import Engine, EngineError, Image, as_engine
from .engine_address import API_VERSION
from .errors import ContainerStartError, DockerUnavailableError, ImageNotFoundError

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

#: Seconds a new warm spare waits before starting its kernel (unless claimed first),
#: so that booting it does not slow the session that just made it.
SPARE_WARM_DELAY = 3.0


def resolve_image(client: Engine | docker.DockerClient, image: str) -> Image:
    """The image (its id, attrs and labels), or a clear error naming the build command.

    Raises:
        ImageNotFoundError: the engine does not have the image.
        DockerUnavailableError: the engine failed while looking.
    """
    try:
        return as_engine(client).image(image)
    except EngineError as err:
        if err.status == 404:
            raise ImageNotFoundError(
                f"The sandbox image {image!r} is not on the Docker engine; "
                "build it with `sandbox-kernel image build`."
            ) from err
        raise DockerUnavailableError(f"The Docker engine failed: {err.reason}.") from err


def image_reference(image: Any) -> str:
    """``name@sha256:...`` when the image has a registry digest, else its content id."""
    digests = image.attrs.get("RepoDigests") or []
    return str(digests[0]) if digests else str(image.id)


def create_container(
    client: Engine | docker.DockerClient,
    config: SandboxConfig,
    image_id: str,
    *,
    role: str,
    fingerprint: str,
    claim_timeout: float,
    warm_delay: float = 0.0,
    name: str | None = None,
    extra_labels: dict[str, str] | None = None,
    sent: dict[str, Any] | None = None,
) -> str:
    """Create (not start) a sandbox container and return its id.

    ``sent``, when given, receives the request: ``name`` and ``body`` (see
    spec.create_body), which the kernel process caches for its next cold start.

    Raises:
        ContainerStartError: the engine refused the container.
    """
    if name is None:
        name = (
            spec.spare_name(fingerprint)
            if role == "spare"
            else f"sandbox-kernel-{role}-{uuid.uuid4().hex[:12]}"
        )
    body = spec.create_body(
        config,
        image_id,
        version=API_VERSION,
        role=role,
        fingerprint_=fingerprint,
        claim_timeout=claim_timeout,
        warm_delay=warm_delay,
        extra_labels=extra_labels,
    )
    try:
        created = as_engine(client).create(body, name)
    except EngineError as err:
        raise ContainerStartError(
            f"The engine refused to create the sandbox container: {err.reason}."
        ) from err
    if sent is not None:
        sent.update(name=name, body=body)
    return created


def launch_spare(
    client: Engine | docker.DockerClient, config: SandboxConfig, image_id: str
) -> None:
    """Start a warm spare for this configuration unless one is already waiting.

    The spare starts its kernel and waits, unattached, for a claim; it exits by
    itself after ``spare_idle_timeout`` seconds. Errors are logged, never raised:
    a spare is an optimisation.
    """
    try:
        engine = as_engine(client)
        fp = spec.fingerprint(config, image_id)
        if list_containers(engine, role="spare", fingerprint=fp, status="running", unclaimed=True):
            return
        container_id = create_container(
            engine,
            config,
            image_id,
            role="spare",
            fingerprint=fp,
            claim_timeout=config.spare_idle_timeout,
            warm_delay=SPARE_WARM_DELAY,
        )
        engine.start(container_id)
    except ContainerStartError as err:
        cause = err.__cause__
        if isinstance(cause, EngineError) and cause.status == 409:
            log.debug("a spare of this configuration is already there (made meanwhile)")
        else:
            log.info("no warm spare: %s", err)
    except Exception as err:
        log.info("no warm spare: %s", err)


def wake_spare(client: Engine | docker.DockerClient, fingerprint: str) -> None:
    """Have this configuration's unclaimed spare start its kernel now, not after its
    warm delay: a kernel restarting calls it on its way out, for its successor (see
    the relay's ``wait_warm``). Never raises: a spare is an optimisation."""
    with contextlib.suppress(Exception):
        as_engine(client).kill(spec.spare_name(fingerprint), "SIGUSR1")


def list_containers(
    client: Engine | docker.DockerClient,
    *,
    role: str | None = None,
    fingerprint: str | None = None,
    status: str | None = None,
    unclaimed: bool = False,
) -> list[dict[str, Any]]:
    """Sandbox containers on the engine, filtered by our labels."""
    label_filters = [spec.LABEL]
    if role:
        label_filters.append(f"{spec.LABEL_ROLE}={role}")
    if fingerprint:
        label_filters.append(f"{spec.LABEL_FINGERPRINT}={fingerprint}")
    filters: dict[str, Any] = {"label": label_filters}
    if status:
        filters["status"] = status
    found = as_engine(client).containers(filters)
    if unclaimed:
        found = [c for c in found if any("-spare-" in n for n in c.get("Names", []))]
    return list(found)


def remove_dangling_volumes(client: docker.DockerClient) -> int:
    """Remove the sandbox's tmpfs volumes that no container uses; how many went.

    ``AutoRemove`` and every removal here take a container's volumes with it, but a
    container removed by hand (``docker rm -f`` without ``-v``) or lost with a crashed
    engine leaves its anonymous volumes behind. They hold nothing (tmpfs, whose memory
    went with the mount), only their names.
    """
    from .gvisor import VOLUME_LABEL

    removed = 0
    try:
        volumes = client.api.volumes(filters={"label": VOLUME_LABEL, "dangling": True})
    except Exception:
        return 0
    for volume in (volumes or {}).get("Volumes") or []:
        with contextlib.suppress(Exception):  # taken by a container since: it stays
            client.api.remove_volume(volume["Name"])
            removed += 1
    return removed


def remove_orphans(
    client: Engine | docker.DockerClient,
    *,
    include_spares: bool = True,
    grace: float = 60.0,
    fingerprint: str | None = None,
) -> list[str]:
    """Remove sandbox containers whose controller is gone. Returns their names.

    A container is an orphan when its controller was a process on this host that no
    longer exists, or when it has not been running for ``grace`` seconds since it
    was made (a controller on another host, or one killed between create and start).
    Unclaimed warm spares go too, unless ``include_spares`` is false (they expire by
    themselves anyway). Pre-started ones (see prestart.py) are unclaimed spares too.
    ``fingerprint`` limits it to one configuration.
    """
    host = spec.controller_host()
    now = time.time()
    removed = []
    engine = as_engine(client)
    for container in list_containers(engine, fingerprint=fingerprint):
        labels = container.get("Labels") or {}
        names = container.get("Names") or [container["Id"][:12]]
        ctl_host, _, ctl_pid = spec.controller_of(names[0], labels).rpartition(":")
        unclaimed_spare = labels.get(spec.LABEL_ROLE) == "spare" and not any(
            "-claimed-" in n for n in names
        )
        controller_dead = ctl_host == host and ctl_pid.isdigit() and not _pid_alive(int(ctl_pid))
        stale = container.get("State") != "running" and now - container.get("Created", now) > grace
        orphan = include_spares if unclaimed_spare else controller_dead or stale
        if not orphan:
            continue
        with contextlib.suppress(Exception):
            engine.remove(container["Id"])
            removed.append(names[0].lstrip("/"))
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
