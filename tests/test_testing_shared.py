"""The module-scoped deployment the ``trellis_deployment`` docstring describes: one
deployment for every test of a module, on one event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from trellis.testing import LocalDeployment, local_deployment

pytestmark = pytest.mark.asyncio(loop_scope="module")

seen: list[LocalDeployment] = []


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deployment(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalDeployment]:
    async with local_deployment(tmp_path_factory.mktemp("trellis")) as dep:
        yield dep


@pytest.mark.parametrize("test", ["first", "second"])
async def test_every_test_of_the_module_uses_one_live_deployment(
    deployment: LocalDeployment, test: str
) -> None:
    seen.append(deployment)
    assert all(d is deployment for d in seen), test
    # its connections work from this test's loop: the fixture and tests share one
    admin = await deployment.admin()
    assert (await admin.call("Trellis.Catalog", {})).is_ok()
