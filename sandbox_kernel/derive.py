"""Derived images: the sandbox image plus the packages a notebook needs.

``sandbox-kernel image build --add PKG...`` / ``--requirements FILE`` makes an image
``FROM`` the sandbox image (the ``image`` setting, or ``--base``) with one more layer:
the added packages, installed for the image's Python by the host's pip (wheels only,
no compiler, and nothing runs in the sandbox: it has no network), byte-compiled,
without setuid bits, and with the image's package list (file and label) extended.

Tagged by the content hash of its inputs (the base image id, the requirement lines,
the wheelhouse's files, the build steps), ``sandbox-kernel:<hash>`` unless ``--name``
is given; rebuilt only when they change.

Offline: ``--wheelhouse DIR`` installs from a local folder of wheels only
(``pip --no-index --find-links DIR --require-hashes``): each requirement is pinned to
a wheel of the folder and to that file's sha256, computed here, so a wheel that
changed after it was chosen is refused. A requirements file may carry its own
``--hash`` options (``pip-compile --generate-hashes``); then those are checked.
Packages the base image already has at the same version are not installed again; a
different version of one of them is refused (two versions in one ``site-packages``
would mix their files).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests.exceptions

from .image import (
    PACKAGES_FILE,
    PACKAGES_LABEL,
    ImageBuildError,
    engine_build,
    image_packages,
)
from .rootfs import pip_install_args, recipe_params

#: Bump when the steps here change what lands in a derived image.
DERIVE_STEPS_VERSION = "1"

#: Label with the content hash of a derived image's inputs.
INPUTS_LABEL = "sandbox-kernel.inputs"
#: Label naming the image a derived one was built on.
BASE_LABEL = "sandbox-kernel.base"

#: The repository of hash-tagged derived images.
REPOSITORY = "sandbox-kernel"

_WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")

# The layer's own steps, as root; they run with the network off.
_DOCKERFILE = """\
FROM {base}
USER root
COPY site/ /tmp/sandbox-kernel-add/
COPY packages.txt {packages_file}
RUN SITE=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \\
    && cp -a /tmp/sandbox-kernel-add/. "$SITE"/ \\
    && rm -rf /tmp/sandbox-kernel-add "$SITE/bin" \\
    && (python3 -m compileall -q -j0 "$SITE" >/dev/null || true) \\
    && chmod a+r {packages_file} \\
    && find / -xdev -perm /6000 -exec chmod ug-s {{}} +
USER {user}
"""


@dataclass(frozen=True)
class Derived:
    """A derived image: its name, id, and the packages it added."""

    name: str
    image_id: str
    added: list[str]  # every package the layer added, dependencies included
    requested: list[str]  # the requirement lines asked for
    built: bool


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheelhouse_pins(wheelhouse: Path) -> dict[str, tuple[str, str, str]]:
    """Every wheel of the folder: canonical name -> (name, version, sha256).

    Raises:
        ImageBuildError: the folder has no wheel, or two versions of one package.
    """
    pins: dict[str, tuple[str, str, str]] = {}
    for path in sorted(wheelhouse.glob("*.whl")):
        match = _WHEEL_NAME.match(path.name)
        if not match:
            continue
        key = canonical(match["name"])
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if key in pins and pins[key][1] != match["version"]:
            raise ImageBuildError(
                f"the wheelhouse {wheelhouse} has two versions of {match['name']}; keep one"
            )
        pins[key] = (match["name"], match["version"], digest)
    if not pins:
        raise ImageBuildError(f"the wheelhouse {wheelhouse} has no wheel (.whl) files")
    return pins


def inputs_digest(base_id: str, lines: list[str], wheelhouse: Path | None) -> str:
    """The content hash of everything a derived image is made from."""
    h = hashlib.sha256()
    h.update(f"derive-steps={DERIVE_STEPS_VERSION}\0base={base_id}\0".encode())
    for line in lines:
        h.update(line.encode() + b"\0")
    if wheelhouse is not None:
        for key, (_, version, digest) in sorted(wheelhouse_pins(wheelhouse).items()):
            h.update(f"{key}=={version}:{digest}\0".encode())
    return h.hexdigest()


def requirement_lines(requirements: Path | None, add: Iterable[str]) -> list[str]:
    """The requirement lines of the file and the ``--add`` packages, in order.

    Raises:
        ImageBuildError: the file cannot be read.
    """
    lines: list[str] = []
    if requirements is not None:
        try:
            text = requirements.read_text(encoding="utf-8")
        except OSError as err:
            raise ImageBuildError(f"cannot read {requirements}: {err.strerror}") from err
        joined = re.sub(r"\\\n", " ", text)
        lines += [
            line.split("#", 1)[0].strip()
            for line in joined.splitlines()
            if line.split("#", 1)[0].strip()
        ]
    lines += [a.strip() for a in add if a.strip()]
    if not lines:
        raise ImageBuildError("nothing to add: give --add PKG... or --requirements FILE")
    for line in lines:
        _check_requirement(line)
    return lines


#: The file name endings pip takes for archives (pip._internal.utils.filetypes).
_ARCHIVES = (
    ".zip",
    ".whl",
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz",
    ".tar.xz",
    ".txz",
    ".tlz",
    ".tar.lz",
    ".tar.lzma",
)


def _check_requirement(line: str) -> None:
    """Refuse what would make the host's pip run code or leave the package index.

    A requirements file comes with a notebook's repository, which may be anyone's. pip
    builds a local folder, an archive or a VCS checkout from source on the host, running
    its build code, whatever ``--only-binary`` says; ``--no-binary``, ``-r``/``-c`` and
    index options in the file change what the command line chose. So a line is a
    package by name (PEP 508: extras, versions, markers) and may carry ``--hash=``
    options (``pip-compile --generate-hashes``); nothing else.

    Raises:
        ImageBuildError: the line is something else, named in the message.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    words = line.split()
    options = [w for w in words if w.startswith("-")]
    text = " ".join(w for w in words if not w.startswith("-"))
    refused = [o for o in options if not o.startswith("--hash=")]
    try:
        requirement = Requirement(text) if text else None
    except InvalidRequirement:
        requirement = None
    # pip takes a name that ends like an archive for a file, if one is there.
    archive = requirement is not None and requirement.name.lower().endswith(_ARCHIVES)
    if refused or requirement is None or requirement.url or archive:
        raise ImageBuildError(
            f"{line!r} is not a package by name: requirement lines may name packages "
            "(with versions, extras, markers and --hash=), not files, folders, URLs, "
            "VCS checkouts or pip options, which pip would build from source on this "
            "machine or fetch from elsewhere; for a package of your own, build its wheel "
            "(`pip wheel --no-deps -w DIR PATH`) and add it with --wheelhouse DIR"
        )


def build_derived(
    client: docker.DockerClient,
    base: str,
    *,
    requirements: Path | None = None,
    add: Iterable[str] = (),
    wheelhouse: Path | None = None,
    name: str | None = None,
    force: bool = False,
    user: str = "1000:1000",
    log: Callable[[str], None] = print,
) -> Derived:
    """Build (or find) the image ``base`` + these packages.

    Raises:
        ImageBuildError: the base is missing, pip failed, or a package conflicts.
        SandboxError: the engine failed.
    """
    lines = requirement_lines(requirements, add)
    try:
        base_image = client.images.get(base)
    except docker.errors.ImageNotFound as err:
        raise ImageBuildError(
            f"the base image {base} is not on the engine; build it with `sandbox-kernel image build`"
        ) from err
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise ImageBuildError(f"could not look up {base}: {err}") from err
    base_packages = image_packages(base_image.labels)
    if not base_packages:
        raise ImageBuildError(
            f"{base} does not record its packages (label {PACKAGES_LABEL}); rebuild it with "
            "this version's `sandbox-kernel image build`"
        )
    digest = inputs_digest(str(base_image.id), lines, wheelhouse)
    target = name or f"{REPOSITORY}:{digest[:12]}"
    existing = _labels(client, target)
    if existing is not None and existing.get(INPUTS_LABEL) == digest and not force:
        log(f"{target} is up to date (inputs {digest[:12]}); nothing to build")
        added = _added(base_packages, image_packages(existing))
        return Derived(target, str(client.images.get(target).id), added, lines, built=False)

    start = time.monotonic()
    log(f"building {target} on {base} with: {' '.join(lines)}")
    with tempfile.TemporaryDirectory(prefix="sandbox-kernel-derive-") as tmp:
        work = Path(tmp)
        site = work / "site"
        _pip_install(work, site, lines, base_packages, wheelhouse, log)
        added = _drop_base_packages(site, base_packages)
        if not added:
            raise ImageBuildError(f"{base} already has every package asked for: {' '.join(lines)}")
        packages = sorted({*base_packages, *added}, key=str.lower)
        (work / "packages.txt").write_text("\n".join(packages) + "\n")
        dockerfile = _DOCKERFILE.format(base=base_image.id, packages_file=PACKAGES_FILE, user=user)
        (work / "Dockerfile").write_text(dockerfile)
        labels = {
            INPUTS_LABEL: digest,
            BASE_LABEL: f"{base}@{base_image.id}",
            PACKAGES_LABEL: ",".join(packages),
        }
        image_id = _docker_build(client, work, target, labels, log)
    log(f"built {target} ({image_id[:19]}) in {time.monotonic() - start:.0f} s")
    return Derived(target, image_id, added, lines, built=True)


def _labels(client: docker.DockerClient, name: str) -> dict[str, str] | None:
    try:
        return dict(client.images.get(name).labels or {})
    except docker.errors.ImageNotFound:
        return None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise ImageBuildError(f"could not look up {name}: {err}") from err


def _added(base: list[str], packages: list[str]) -> list[str]:
    have = set(base)
    return [p for p in packages if p not in have]


def _pip_install(
    work: Path,
    site: Path,
    lines: list[str],
    base_packages: list[str],
    wheelhouse: Path | None,
    log: Callable[[str], None],
) -> None:
    """Install the requirements for the image's Python into ``site`` with the host's pip."""
    constraints = work / "constraints.txt"
    # The base's own versions: a new package must use the numpy the image has.
    constraints.write_text("\n".join(base_packages) + "\n")
    requirements = work / "requirements.txt"
    args = [*pip_install_args(site, recipe_params()), "-r", str(requirements)]
    env = {**os.environ, "PIP_REQUIRE_VIRTUALENV": "0"}
    if wheelhouse is None:
        requirements.write_text("\n".join(lines) + "\n")
        args += ["-c", str(constraints)]
        log("installing from the package index")
    else:
        requirements.write_text(_hashed_requirements(lines, base_packages, wheelhouse))
        args += [
            "--no-index",
            "--find-links",
            str(wheelhouse.resolve()),
            "--require-hashes",
            "--no-deps",
        ]
        # Only the folder: no index, no find-links or constraints of the host's pip config.
        env = {
            k: v
            for k, v in env.items()
            if not k.startswith("PIP_") or k == "PIP_REQUIRE_VIRTUALENV"
        }
        env["PIP_CONFIG_FILE"] = os.devnull
        log(f"installing offline from {wheelhouse} (hashes required)")
    proc = subprocess.run(
        args,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=work,  # not the notebook's folder: no name there can be taken for a file
    )
    if proc.returncode != 0:
        tail = " | ".join(line.strip() for line in proc.stderr.strip().splitlines()[-6:])
        raise ImageBuildError(f"pip could not install {' '.join(lines)}: {tail}")


def _hashed_requirements(lines: list[str], base_packages: list[str], wheelhouse: Path) -> str:
    """Pins for an offline install: every wheel of the folder the base does not have.

    A requirements file that carries ``--hash`` already is used as it is.

    Raises:
        ImageBuildError: a requirement has no wheel in the folder, or a wheel would
            replace a package of the base at another version.
    """
    if any("--hash" in line for line in lines):
        return "\n".join(lines) + "\n"
    pins = wheelhouse_pins(wheelhouse)
    base = {canonical(p.split("==")[0]): p.split("==")[1] for p in base_packages if "==" in p}
    for line in lines:
        wanted = canonical(re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0])
        if wanted not in pins and wanted not in base:
            raise ImageBuildError(
                f"{line!r} has no wheel in {wheelhouse}; download it with "
                f"`pip download --only-binary=:all: -d {wheelhouse} {line}`"
            )
    out = []
    for key, (dist, version, digest) in sorted(pins.items()):
        if key in base:
            if base[key] != version:
                raise ImageBuildError(
                    f"the wheelhouse has {dist} {version} but the image has {base[key]}; "
                    "download with the image's versions as constraints (`pip download -c`)"
                )
            continue
        out.append(f"{dist}=={version} --hash=sha256:{digest}")
    return "\n".join(out) + "\n"


def _drop_base_packages(site: Path, base_packages: list[str]) -> list[str]:
    """Remove from ``site`` what the base has at the same version; the rest as name==version.

    Raises:
        ImageBuildError: a package of the base came at another version.
    """
    base = {canonical(p.split("==")[0]): p.split("==")[1] for p in base_packages if "==" in p}
    added = []
    for info in sorted(site.glob("*.dist-info")):
        metadata = (info / "METADATA").read_text(encoding="utf-8", errors="replace")
        name = re.search(r"^Name: (.+)$", metadata, re.M)
        version = re.search(r"^Version: (.+)$", metadata, re.M)
        if not name or not version:
            continue
        dist, ver = name[1].strip(), version[1].strip()
        key = canonical(dist)
        if key not in base:
            added.append(f"{dist}=={ver}")
            continue
        if base[key] != ver:
            raise ImageBuildError(
                f"{dist} {ver} would replace the image's {base[key]}; pin {dist}=={base[key]}"
            )
        record = info / "RECORD"
        if record.exists():
            for row in record.read_text(encoding="utf-8").splitlines():
                path = (site / row.split(",", 1)[0]).resolve()
                if path.is_relative_to(site.resolve()) and path.is_file():
                    path.unlink()
        shutil.rmtree(info, ignore_errors=True)
    # Folders the removal emptied.
    for folder in sorted((p for p in site.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return added


def _docker_build(
    client: docker.DockerClient,
    work: Path,
    name: str,
    labels: dict[str, str],
    log: Callable[[str], None],
) -> str:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for item in ("Dockerfile", "packages.txt", "site"):
            tar.add(work / item, arcname=item)
    context.seek(0)
    # The layer's steps need no network; a quiet build log (the steps are ours).
    return engine_build(
        client, context, name, lambda line: None, labels=labels, network_mode="none"
    )
