"""The inventory example installed on the test kit's deployment, with its handlers mounted
on demand: what most service/client tests start from."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from examples.inventory.contract import inventory, inventory_cli
from examples.inventory.service import mount

from trellis.auth import SessionKey
from trellis.client import TrellisClient
from trellis.contracts import Contract
from trellis.service import TrellisService
from trellis.testing import LocalDeployment

READ = "inventory::items.read"
WRITE = "inventory::items.write"


@dataclass
class Inventory:
    """The inventory example installed on a running deployment."""

    dep: LocalDeployment
    admin: TrellisClient
    key: SessionKey
    _users: int = 0

    async def service(
        self,
        key: SessionKey | None = None,
        *,
        handlers: bool = True,
        start: bool = True,
        contract: Contract = inventory,
    ) -> TrellisService:
        """Connect an inventory instance (the example's handlers mounted unless told not)."""
        service = await self.dep.connect_service(contract, key or self.key)
        if handlers:
            mount(service)
        if start:
            await service.start()
        return service

    async def user(
        self, capabilities: list[str], contract: Contract = inventory_cli
    ) -> tuple[str, SessionKey]:
        """Register a CLI session holding ``capabilities``; returns its user id and key."""
        self._users += 1
        user_id = f"user-{self._users}"
        return user_id, await self.dep.user(user_id, contract, capabilities)

    async def client(
        self, capabilities: list[str] | None = None, contract: Contract = inventory_cli
    ) -> TrellisClient:
        """A connected CLI client of the inventory (read and write by default)."""
        _, key = await self.user([READ, WRITE] if capabilities is None else capabilities, contract)
        return await self.connect(key, contract)

    async def connect(self, key: SessionKey, contract: Contract = inventory_cli) -> TrellisClient:
        return await self.dep.connect_client(contract, key)


@pytest.fixture
async def inv(trellis_deployment: LocalDeployment) -> Inventory:
    key = await trellis_deployment.install(inventory)
    return Inventory(trellis_deployment, await trellis_deployment.admin(), key)
