"""Importing the Docker SDK without paying for its SSH transport up front.

docker-py imports paramiko at import time whenever paramiko is installed, and paramiko
brings invoke, cryptography and unittest.mock with it: about 150 ms of every kernel
start, for a transport that only ``ssh://`` engines use. The kernel process imports
the SDK with paramiko hidden (:func:`import_without_ssh`); :func:`ensure_ssh_transport`
loads the transport when the configured engine is an ``ssh://`` one.
"""

from __future__ import annotations

import importlib
import sys

#: Whether this process imports the SDK without its SSH transport (see :func:`hide_ssh`).
_hidden = False


def hide_ssh() -> None:
    """Have :func:`import_sdk` leave the SSH transport out: the kernel process calls
    it at start, then imports the SDK only when first needed (often never before
    its kernel is ready: see engine.py)."""
    global _hidden
    _hidden = True


def import_sdk() -> None:
    """Import the Docker SDK as this process wants it (without SSH in the kernel)."""
    if _hidden:
        import_without_ssh()
    else:
        importlib.import_module("docker")



def import_without_ssh() -> None:
    """Import the Docker SDK, leaving its paramiko-based SSH transport unloaded.

    Only the kernel process does this, before anything else imports the SDK; a
    program that imports the SDK itself gets it whole.
    """
    if "docker" in sys.modules:
        return
    hidden = "paramiko" not in sys.modules
    if hidden:
        # A None entry makes `import paramiko` raise ImportError, which the SDK
        # treats as "no SSH support".
        sys.modules["paramiko"] = None  # type: ignore[assignment]
    try:
        importlib.import_module("docker")
    finally:
        if hidden and "paramiko" in sys.modules and sys.modules["paramiko"] is None:
            del sys.modules["paramiko"]


def ensure_ssh_transport() -> None:
    """Make ``ssh://`` engine addresses work, loading the SDK's SSH transport if needed.

    Without paramiko installed this does nothing, and the SDK itself says to
    install it when the client is made.
    """
    api_client = importlib.import_module("docker.api.client")
    if hasattr(api_client, "SSHHTTPAdapter"):
        return
    try:
        sshconn = importlib.import_module("docker.transport.sshconn")
    except ImportError:
        return
    # The SDK looks the adapter up by these names when it makes an ssh:// client.
    api_client.SSHHTTPAdapter = sshconn.SSHHTTPAdapter  # type: ignore[attr-defined]
    transport = importlib.import_module("docker.transport")
    transport.SSHHTTPAdapter = sshconn.SSHHTTPAdapter  # type: ignore[attr-defined]
