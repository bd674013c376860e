"""``TrellisClient``: calling services from CLIs, scripts and apps.

``connect_client`` bootstraps over HTTP (``POST /bootstrap/client``, signed with the
``bootstrap-client`` domain over ``iat``), then connects through the auth callout like a
service does.  The session key must have been registered by an operator
(``trellis user add``) with this contract; calls go by logical name and return ``Result``s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.subscription import Subscription
from pydantic import BaseModel

from trellis.auth import SessionKey
from trellis.client.rpc import DEFAULT_TIMEOUT, RpcClient, rpc_targets
from trellis.connection import ServerClock
from trellis.contracts import Contract
from trellis.discovery import resolve_trellis_url
from trellis.result import Err, Result, TrellisError
from trellis.service.bootstrap import BootstrapError, bootstrap_client, connect_bootstrapped
from trellis.service.core import event_definitions
from trellis.service.events import EventHandler, live_subscribe

__all__ = ["ClientConnectError", "TrellisClient", "connect_client"]

ClientConnectError = BootstrapError


class TrellisClient:
    def __init__(
        self, contract: Contract, key: SessionKey, nc: NatsClient, clock: ServerClock
    ) -> None:
        self.contract = contract
        self.key = key
        self.nc = nc
        self.clock = clock
        self._rpc = RpcClient(nc, key, rpc_targets(contract), clock=clock)
        self._events = event_definitions(contract)
        self._subs: list[Subscription] = []

    async def call(
        self,
        name: str,
        payload: BaseModel | Mapping[str, Any] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Result[Any, TrellisError]:
        """Call an RPC the contract uses: ``Ok(output)`` or a typed ``Err``."""
        return await self._rpc.call(name, payload, timeout=timeout)

    async def subscribe(
        self, name: str, handler: EventHandler, filters: Mapping[str, Any] | None = None
    ) -> None:
        """Live events the contract subscribes to, optionally filtered by param tokens."""
        definition = self._events.get(name)
        if definition is None or not any(name in u.subscribe for u in self.contract.uses.values()):
            raise KeyError(f"{self.contract.id} does not subscribe to {name!r}")
        self._subs.append(await live_subscribe(self.nc, definition, handler, filters))

    async def close(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        await self._rpc.close()
        with contextlib.suppress(Exception):
            await self.nc.drain()

    async def __aenter__(self) -> TrellisClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def connect_client(
    contract: Contract,
    *,
    session: SessionKey | str | Path,
    trellis_url: str | None = None,
    timeout: float = 10.0,
) -> TrellisClient:
    """Connect a registered ``cli``/``app``/``agent`` session; raises ``ClientConnectError``.

    ``trellis_url`` defaults as ``resolve_trellis_url`` says (``TRELLIS_URL``, then
    ``$TRELLIS_HOME/runtime.json``)."""
    key = session if isinstance(session, SessionKey) else SessionKey.load(session)
    booted = await bootstrap_client(
        resolve_trellis_url(trellis_url), key, contract.digest, timeout=timeout
    )
    if isinstance(booted, Err):
        raise ClientConnectError(booted.error)
    info = booted.value
    nc, relay = await connect_bootstrapped(info, key, contract.digest)
    client = TrellisClient(contract, key, nc, info.clock())
    relay.client = client._rpc
    return client
