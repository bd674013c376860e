"""Upstream's wire shapes as JSON Schemas (``shared/conformance/upstream-wire``, generated
from upstream's own definitions) and one real deployment for the module that uses them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from examples.inventory.contract import inventory, inventory_cli

from tests.conftest import CONFORMANCE
from trellis.auth import SessionKey
from trellis.testing import LocalDeployment, local_deployment

UPSTREAM_WIRE = CONFORMANCE / "upstream-wire"
READ = "inventory::items.read"
WRITE = "inventory::items.write"


def check(schema: str, instance: Any) -> None:
    """Fail with every violation of upstream's ``schema`` (a file name without
    ``.schema.json``); skip cleanly when the shared schemas are absent."""
    jsonschema = pytest.importorskip("jsonschema")
    path = UPSTREAM_WIRE / f"{schema}.schema.json"
    if not path.is_file():
        pytest.skip(f"upstream wire schemas not present: {path}")
    validator_class = jsonschema.Draft202012Validator
    validator = validator_class(
        json.loads(path.read_text(encoding="utf-8")),
        format_checker=validator_class.FORMAT_CHECKER,
    )
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]
    assert not errors, f"{schema}: {errors}\n{json.dumps(instance, indent=1)[:3000]}"


class Deployment:
    """The inventory example installed, its service serving, and a registered user."""

    def __init__(self, dep: LocalDeployment, service_key: SessionKey, user_key: SessionKey):
        self.dep = dep
        self.service_key = service_key
        self.user_key = user_key


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deployment(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    from examples.inventory.service import mount

    async with local_deployment(tmp_path_factory.mktemp("interop")) as dep:
        service_key = await dep.install(inventory)
        service = await dep.connect_service(inventory, service_key)
        mount(service)
        await service.start()
        user_key = await dep.user("reader", inventory_cli, [READ, WRITE])
        yield Deployment(dep, service_key, user_key)
