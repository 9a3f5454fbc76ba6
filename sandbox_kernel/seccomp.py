"""Seccomp profiles of the sandbox: find one by name or path and hand its text to Docker.

The Docker API takes a seccomp profile as its JSON *contents* in the container's
``security_opt`` (``"seccomp=<json text>"``), never as a path: the engine may run on
another machine. :func:`load_profile` turns the ``seccomp_profile`` setting into that
text. The builtin profile is Docker's default with the denials documented in
``seccomp/README.md`` of the source tree; under gVisor (``runsc``) its variant
``profile-runsc.json``, derived from it with the reason for every difference.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .datafiles import data_path
from .errors import ConfigError
from .runtime import is_gvisor

__all__ = ["BUILTIN", "DOCKER_DEFAULT", "UNCONFINED", "builtin_profile_path", "load_profile"]

BUILTIN = "builtin"
DOCKER_DEFAULT = "docker-default"
UNCONFINED = "unconfined"

_PROFILE_NAME = "profile.json"
_PROFILE_NAME_RUNSC = "profile-runsc.json"


def builtin_profile_path(runtime: str = "") -> Path:
    """Where this installation keeps the builtin profile for a runtime setting.

    gVisor gets its variant (see ``seccomp/derive.py``: runsc answers EPERM for every
    errno rule, which the plain profile's clone3 rule cannot survive).

    The wheel's package data, or the checkout's ``seccomp/`` folder (see
    :mod:`.datafiles`).

    Raises:
        ConfigError: when neither place has it (a broken installation).
    """
    path = data_path("seccomp", _PROFILE_NAME_RUNSC if is_gvisor(runtime) else _PROFILE_NAME)
    if path.is_file():
        return path
    raise ConfigError(
        "the builtin seccomp profile is missing from this installation; reinstall "
        "sandbox-kernel, or set seccomp_profile to 'docker-default' or a profile path"
    )


def load_profile(name_or_path: str, runtime: str = "") -> str | None:
    """The ``seccomp=`` value for Docker's ``security_opt`` for a ``seccomp_profile`` setting.

    Args:
        runtime: the ``runtime`` setting; it chooses the builtin profile's variant.
        name_or_path: ``"builtin"`` (this package's profile), ``"docker-default"``
            (the engine's own default), ``"unconfined"`` (no seccomp filter at all) or
            the path of a JSON profile in Docker's format.

    Returns:
        The profile as compact JSON text; ``None`` for ``"docker-default"``, where no
        option should be passed; ``"unconfined"`` for ``"unconfined"``.

    Raises:
        ConfigError: when the profile file is missing, unreadable, not JSON, or not
            shaped like a Docker seccomp profile.
    """
    if name_or_path == DOCKER_DEFAULT:
        return None
    if name_or_path == UNCONFINED:
        return UNCONFINED
    if not name_or_path.strip():
        raise ConfigError(
            "the seccomp profile setting is empty; use 'builtin', 'docker-default', "
            "'unconfined' or the path of a JSON profile"
        )
    path = (
        builtin_profile_path(runtime)
        if name_or_path == BUILTIN
        else Path(os.path.expanduser(name_or_path))
    )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"seccomp profile {path} does not exist; use 'builtin', 'docker-default', "
            "'unconfined' or the path of a JSON profile"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"seccomp profile {path} cannot be read: {exc}") from exc
    try:
        profile = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"seccomp profile {path} is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}"
        ) from None
    _check_shape(profile, path)
    # Compact: the text travels inside every container-create request and shows up in
    # `docker inspect`; the indentation of the file is of no use there.
    return json.dumps(profile, separators=(",", ":"))


def _check_shape(profile: Any, path: Path) -> None:
    """Reject what the engine would reject, with a message that names the problem."""
    if not isinstance(profile, dict):
        raise ConfigError(f"seccomp profile {path} must be a JSON object")
    if not isinstance(profile.get("defaultAction"), str):
        raise ConfigError(f"seccomp profile {path} has no defaultAction (such as SCMP_ACT_ERRNO)")
    syscalls = profile.get("syscalls", [])
    if not isinstance(syscalls, list):
        raise ConfigError(f"seccomp profile {path}: 'syscalls' must be a list of rules")
    for number, rule in enumerate(syscalls, start=1):
        if not isinstance(rule, dict) or not isinstance(rule.get("action"), str):
            raise ConfigError(f"seccomp profile {path}: rule {number} has no action")
        names = rule.get("names", [rule["name"]] if "name" in rule else None)
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"seccomp profile {path}: rule {number} names no syscall")
