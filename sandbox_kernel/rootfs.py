"""The rootfs path of :func:`.image.build_image`: the default image from a Debian root
filesystem, with no registry image at all (the steps are described there).

debootstrap's tree is cached per parameters, under a lock two builds share; each build
copies it, installs the pinned wheels with the host's pip, runs ``finalize.sh`` in a
chroot and imports the tree. The pip options also serve derived images (derive.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.utils
import requests.exceptions

from .image import BASE_IMAGE, PACKAGES_FILE, engine_error, image_id_of
from .imagerecipe import PACKAGES_LABEL, RECIPE_FILES, RECIPE_LABEL, ImageBuildError
from .imagerecipe import recipe_bytes as _recipe_bytes

DEFAULT_MIRROR = "http://deb.debian.org/debian"

#: Image settings of the rootfs path (the Dockerfile sets the same ones itself).
_IMAGE_CHANGES = (
    "USER 1000:1000",
    # The root filesystem is read-only at run time: never try to write .pyc files there.
    "ENV PYTHONDONTWRITEBYTECODE=1",
    "ENV LANG=C.UTF-8",
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "WORKDIR /tmp",
    'CMD ["python3"]',
)

# The debootstrap result is reused for every build with the same parameters; bump this
# when the way it is made changes.
_ROOTFS_CACHE_VERSION = "1"


def build_from_rootfs(
    client: docker.DockerClient,
    name: str,
    digest: str,
    mirror: str,
    cache_root: Path,
    log: Callable[[str], None],
) -> str:
    if os.geteuid() != 0:
        raise ImageBuildError(
            "building the image from a Debian root filesystem needs root (debootstrap "
            "and chroot); run the build as root, or use the dockerfile method where "
            f"{BASE_IMAGE} can be pulled"
        )
    for tool in ("debootstrap", "chroot", "tar"):
        if shutil.which(tool) is None:
            raise ImageBuildError(
                f"the rootfs build needs `{tool}`, which is not installed"
                + (" (apt-get install debootstrap)" if tool == "debootstrap" else "")
            )
    params = recipe_params()
    deb_arch, wheel_arch = _host_arch()
    cache_root.mkdir(parents=True, exist_ok=True)
    with _locked(cache_root / "build.lock"):
        base = _debootstrap(params, deb_arch, mirror, cache_root / "rootfs", log)
        work_parent = cache_root / "work"
        # Work trees of builds that were killed; no other build runs (we hold the lock).
        if work_parent.exists():
            _remove_tree(work_parent)
        work_parent.mkdir()
        work = Path(tempfile.mkdtemp(prefix="build-", dir=work_parent))
        try:
            root = work / "root"
            step = time.monotonic()
            _run(["cp", "-a", "--reflink=auto", str(base), str(root)], "copying the base tree")
            _install_wheels(root, params, wheel_arch, log)
            log(f"wheels installed in {time.monotonic() - step:.0f} s; finishing the tree")
            step = time.monotonic()
            _finalize(root)
            log(f"tree finished in {time.monotonic() - step:.0f} s; importing it")
            step = time.monotonic()
            packages = (root / PACKAGES_FILE.lstrip("/")).read_text().split()
            image_id = _import_tree(client, root, work / "rootfs.tar", name, digest, packages)
            log(f"imported in {time.monotonic() - step:.0f} s")
        finally:
            _remove_tree(work)
    return image_id


def _debootstrap(
    params: dict[str, Any], deb_arch: str, mirror: str, cache: Path, log: Callable[[str], None]
) -> Path:
    """The cached minimal Debian tree for these parameters, made first when missing."""
    key_source = json.dumps(
        {
            "version": _ROOTFS_CACHE_VERSION,
            "suite": params["suite"],
            "variant": params["variant"],
            "packages": sorted(params["packages"]),
            "arch": deb_arch,
            "mirror": mirror,
        },
        sort_keys=True,
    )
    key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
    target = cache / f"{params['suite']}-{deb_arch}-{key}"
    if (target / ".sandbox-kernel-complete").exists():
        log(f"reusing the cached Debian tree {target}")
        return target
    cache.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    for stale in (target, partial):
        if stale.exists():
            _remove_tree(stale)
    log(f"debootstrap {params['suite']} ({params['variant']}, {deb_arch}) from {mirror}")
    start = time.monotonic()
    _run(
        [
            "debootstrap",
            f"--variant={params['variant']}",
            f"--arch={deb_arch}",
            "--include=" + ",".join(params["packages"]),
            params["suite"],
            str(partial),
            mirror,
        ],
        "debootstrap",
    )
    # The host's name and resolver settings were copied in; the engine provides its own
    # at run time, so the image should not carry the build machine's.
    for leftover in ("etc/hostname", "etc/resolv.conf"):
        path = partial / leftover
        if path.exists() or path.is_symlink():
            path.unlink()
            path.write_text("")
    (partial / ".sandbox-kernel-complete").write_text(key_source + "\n")
    partial.rename(target)
    log(f"debootstrap done in {time.monotonic() - start:.0f} s (cached in {target})")
    return target


def _install_wheels(
    root: Path, params: dict[str, Any], wheel_arch: str, log: Callable[[str], None]
) -> None:
    """Install the pinned wheels for the image's Python with the host's pip."""
    pyver = str(params["python_version"])
    site = root / "usr" / "local" / "lib" / f"python{pyver}" / "dist-packages"
    site.mkdir(parents=True, exist_ok=True)
    log(f"installing wheels for Python {pyver} ({wheel_arch}) into the tree")
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_bytes(_recipe_bytes("requirements.txt"))
        _run(
            [*pip_install_args(site, params), "-r", str(requirements)],
            "pip install of the image's packages",
            env={**os.environ, "PIP_REQUIRE_VIRTUALENV": "0"},
        )


def recipe_params() -> dict[str, Any]:
    """The image's Python and glibc, as the recipe's rootfs.json says."""
    params: dict[str, Any] = json.loads(_recipe_bytes("rootfs.json"))
    return params


def pip_install_args(site: Path, params: dict[str, Any]) -> list[str]:
    """The host's pip, installing binary wheels for the image's Python into ``site``."""
    pyver = str(params["python_version"])
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--no-compile",  # compiled later by the image's own interpreter
        "--no-warn-script-location",
        "--target",
        str(site),
        "--python-version",
        pyver,
        "--implementation",
        "cp",
        "--abi",
        f"cp{pyver.replace('.', '')}",
        *pip_platform_args(params),
        "--only-binary=:all:",
    ]


def pip_platform_args(params: dict[str, Any]) -> list[str]:
    """pip's ``--platform`` options for wheels the image's glibc can load, on this host's CPU.

    pip matches --platform tags exactly, so every manylinux tag the image's glibc
    satisfies is named: a wheel tagged only manylinux_2_24 would otherwise be missed.
    """
    wheel_arch = _host_arch()[1]
    glibc_major, glibc_minor = (int(p) for p in str(params["glibc"]).split("."))
    platforms = [
        f"manylinux_{glibc_major}_{minor}_{wheel_arch}" for minor in range(glibc_minor, 4, -1)
    ]
    platforms += [f"manylinux2014_{wheel_arch}"]
    if wheel_arch == "x86_64":
        platforms += ["manylinux2010_x86_64", "manylinux1_x86_64"]
    return [arg for tag in platforms for arg in ("--platform", tag)]


def _finalize(root: Path) -> None:
    """Run finalize.sh inside the tree, as the image's own interpreter sees it."""
    inside = "/tmp/sandbox-kernel-recipe"
    recipe_copy = root / inside.lstrip("/")
    recipe_copy.mkdir(parents=True)
    for file_name in RECIPE_FILES:
        (recipe_copy / file_name).write_bytes(_recipe_bytes(file_name))
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
    }
    try:
        _run(
            ["chroot", str(root), "/bin/sh", f"{inside}/finalize.sh", inside],
            "finalize.sh",
            env=env,
        )
    finally:
        shutil.rmtree(recipe_copy, ignore_errors=True)


def _import_tree(
    client: docker.DockerClient,
    root: Path,
    tar_path: Path,
    name: str,
    digest: str,
    packages: list[str],
) -> str:
    """Import the tree as a one-layer image named ``name`` and return its id."""
    # The engine mounts its own /dev, /proc and /sys; device nodes debootstrap made do
    # not belong in an image. Extended attributes are left out on purpose, so no file
    # capability (setcap) can reach the image.
    _run(
        [
            "tar",
            "--numeric-owner",
            "--exclude=./dev/*",
            "--exclude=./proc/*",
            "--exclude=./sys/*",
            "--exclude=./tmp/*",
            "-C",
            str(root),
            "-cf",
            str(tar_path),
            ".",
        ],
        "packing the tree",
    )
    repository, tag = docker.utils.parse_repository_tag(name)
    changes = [
        *_IMAGE_CHANGES,
        f"LABEL {RECIPE_LABEL}={digest}",
        f"LABEL {PACKAGES_LABEL}={','.join(packages)}",
    ]
    try:
        client.api.import_image_from_file(
            str(tar_path), repository=repository, tag=tag or "latest", changes=changes
        )
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise engine_error(exc, f"docker import of {name} failed") from exc
    return image_id_of(client, name)


def default_mirror() -> str:
    """The Debian mirror: $SANDBOX_KERNEL_DEBIAN_MIRROR, the host's apt sources, or the CDN."""
    configured = os.environ.get("SANDBOX_KERNEL_DEBIAN_MIRROR")
    if configured:
        return configured
    return mirror_from_sources() or DEFAULT_MIRROR


def mirror_from_sources(
    sources_file: str | os.PathLike[str] = "/etc/apt/sources.list.d/debian.sources",
    list_file: str | os.PathLike[str] = "/etc/apt/sources.list",
) -> str | None:
    """The first Debian main-archive URI in the host's apt sources, if there is one.

    Reads the deb822 ``debian.sources`` first, then the one-line ``sources.list``.
    Security and update suites are skipped: debootstrap needs the main archive.
    """
    with contextlib.suppress(OSError):
        text = Path(sources_file).read_text()
        for stanza in text.split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            suites = fields.get("suites", "").split()
            if "deb" in fields.get("types", "").split() and any(
                "-" not in suite for suite in suites
            ):
                uris = fields.get("uris", "").split()
                if uris:
                    return uris[0].rstrip("/")
    with contextlib.suppress(OSError):
        for line in Path(list_file).read_text().splitlines():
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            words = words[1:]
            if words and words[0].startswith("["):
                while words and not words[0].endswith("]"):
                    words = words[1:]
                words = words[1:]
            if len(words) >= 2 and "-" not in words[1]:
                return words[0].rstrip("/")
    return None


def _host_arch() -> tuple[str, str]:
    """(Debian architecture, wheel platform architecture) of this machine."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "amd64", "x86_64"
    if machine in ("aarch64", "arm64"):
        return "arm64", "aarch64"
    raise ImageBuildError(f"the rootfs build supports x86_64 and aarch64 hosts, not {machine}")


def cache_folder(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sandbox-kernel"


def _remove_tree(path: Path) -> None:
    """Delete a build tree, unmounting first what a killed debootstrap left mounted in it.

    debootstrap mounts /proc and /sys into its target while it installs; deleting
    through such a mount would try to delete the host's /sys.
    """
    prefix = str(path.resolve()) + "/"
    with contextlib.suppress(OSError):
        mounts = [
            line.split()[1].replace("\\040", " ")
            for line in Path("/proc/self/mounts").read_text().splitlines()
        ]
        for mount in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``: two builds must not share a cache at once."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    """Run a build command; on failure raise with the end of its output."""
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        )
    except OSError as exc:
        raise ImageBuildError(f"{what} could not start: {exc}") from exc
    if proc.returncode != 0:
        output = proc.stdout.decode(errors="replace").strip().splitlines()
        tail = " | ".join(line.strip() for line in output[-8:])
        raise ImageBuildError(f"{what} failed with exit code {proc.returncode}: {tail}")
