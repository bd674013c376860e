"""Hypothesis profiles for the fuzz suite.

``fuzz-ci`` (the default) bounds every property to a fixed example count and a fixed
database-free, derandomized run, so CI time is predictable; ``fuzz-deep`` is for a person
hunting bugs locally: ``TRELLIS_FUZZ=deep pytest tests/fuzz``.  Each test scales the count by
its cost through :func:`fuzz` (a network round trip per example costs more than a parse).

The profiles are applied per test, never loaded globally: the other suites' hypothesis
settings stay their own.  ``deployed`` is a real deployment per module (nats-server and
runtime), for the fuzz modules that need the runtime's state behind a decoder.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from examples.inventory.contract import inventory, inventory_cli
from hypothesis import HealthCheck, settings

from trellis.auth import SessionKey
from trellis.testing import LocalDeployment, local_deployment

_COMMON = {
    "deadline": None,  # no timing thresholds: a shared 2-core machine is slow at times
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    "database": None,
}
settings.register_profile("fuzz-ci", max_examples=200, derandomize=True, **_COMMON)
settings.register_profile("fuzz-deep", max_examples=20_000, **_COMMON)

PROFILE = "fuzz-deep" if os.environ.get("TRELLIS_FUZZ") == "deep" else "fuzz-ci"


def fuzz(scale: float = 1.0) -> settings:
    """The active profile with its example count scaled by ``scale`` (at least 10)."""
    base = settings.get_profile(PROFILE)
    return settings(base, max_examples=max(10, int(base.max_examples * scale)))


@dataclass
class Deployed:
    """A module's real deployment with the inventory installed and one registered user."""

    dep: LocalDeployment
    service_key: SessionKey
    user_key: SessionKey


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deployed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployed]:
    async with local_deployment(tmp_path_factory.mktemp("trellis")) as dep:
        service_key = await dep.install(inventory)
        user_key = await dep.user("fuzz-user", inventory_cli, ["inventory::items.read"])
        yield Deployed(dep, service_key, user_key)
