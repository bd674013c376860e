"""Fixtures for the service/client integration tests: a real nats-server, the real runtime,
the inventory example installed, and helpers to start services and register clients."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from examples.inventory.contract import inventory, inventory_cli
from examples.inventory.service import mount

from tests.stack import Stack, running_stack
from trellis.auth import SessionKey
from trellis.calls import RpcClient
from trellis.client import TrellisClient, connect_client
from trellis.contracts import Contract
from trellis.result import Ok
from trellis.service import TrellisService, connect_service

READ = "inventory::items.read"
WRITE = "inventory::items.write"


@dataclass
class Inventory:
    """The inventory example installed on a running stack."""

    stack: Stack
    admin: RpcClient
    key: SessionKey
    services: list[TrellisService] = field(default_factory=list)
    clients: list[TrellisClient] = field(default_factory=list)
    _users: int = 0

    @property
    def url(self) -> str:
        return self.stack.bundle.config.http.url

    async def service(
        self,
        key: SessionKey | None = None,
        *,
        handlers: bool = True,
        start: bool = True,
        contract: Contract = inventory,
    ) -> TrellisService:
        """Connect an inventory instance (the example's handlers mounted unless told not)."""
        service = await connect_service(contract, session_key=key or self.key, trellis_url=self.url)
        self.services.append(service)
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
        key = SessionKey.generate()
        created = await self.admin.call(
            "Auth.Users.Create",
            {
                "id": user_id,
                "sessionKey": key.public_key,
                "contract": contract.manifest,
                "capabilities": capabilities,
            },
        )
        assert isinstance(created, Ok), created
        return user_id, key

    async def client(
        self, capabilities: list[str] | None = None, contract: Contract = inventory_cli
    ) -> TrellisClient:
        """A connected CLI client of the inventory (read and write by default)."""
        _, key = await self.user([READ, WRITE] if capabilities is None else capabilities, contract)
        return await self.connect(key, contract)

    async def connect(self, key: SessionKey, contract: Contract = inventory_cli) -> TrellisClient:
        client = await connect_client(contract, session=key, trellis_url=self.url)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()
        for service in self.services:  # stopping twice, or after its connection died, is fine
            with contextlib.suppress(Exception):
                await service.stop(drain_timeout=1.0)
        await self.admin.close()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path / "bundle") as running:
        yield running


@pytest.fixture
async def inv(stack: Stack) -> AsyncIterator[Inventory]:
    key = SessionKey.generate()
    await stack.install(inventory, "inventory", key)
    installed = Inventory(stack, await stack.admin(), key)
    try:
        yield installed
    finally:
        await installed.close()
