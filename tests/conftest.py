"""Shared fixtures: a real Docker engine and real sandbox kernels, never mocks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import docker
import pytest

from harness import IMAGE, Kernel, KernelSpecs, start_kernel


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    """The engine; a missing engine fails the run (CI starts one), it never skips."""
    client = docker.from_env()
    client.ping()
    client.images.get(IMAGE)
    return client


@pytest.fixture(scope="session")
def specs() -> Iterator[KernelSpecs]:
    specs = KernelSpecs()
    yield specs
    specs.cleanup()


@pytest.fixture(scope="module")
def kernel(docker_client: docker.DockerClient, specs: KernelSpecs) -> Iterator[Kernel]:
    """One sandbox kernel shared by a test module (state persists between its tests)."""
    with start_kernel(specs) as k:
        yield k


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("SANDBOX_KERNEL_NO_DOCKER"):
        skip = pytest.mark.skip(reason="SANDBOX_KERNEL_NO_DOCKER is set")
        for item in items:
            if "docker" in item.keywords:
                item.add_marker(skip)
