"""``TrellisClient``: calling services from CLIs, scripts and apps.

``connect_client`` bootstraps over HTTP (``POST /bootstrap/client``, signed with the
``bootstrap-client`` domain over ``iat``), then connects through the auth callout like a
service does.  The session key must have been registered by an operator
(``trellis user add``) with this contract; calls go by logical name and return ``Result``s.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client as NatsClient
from nats.aio.subscription import Subscription
from pydantic import BaseModel

from trellis.auth import DOMAIN_BOOTSTRAP_CLIENT, SessionKey
from trellis.client.rpc import DEFAULT_TIMEOUT, RpcClient, rpc_targets
from trellis.connection import ServerClock, connect_participant
from trellis.contracts import Contract
from trellis.result import AuthError, Result, TransportError, TrellisError
from trellis.service.core import ServiceConnectError, event_definitions
from trellis.service.events import EventHandler, live_subscribe

__all__ = ["ClientConnectError", "TrellisClient", "connect_client"]

ClientConnectError = ServiceConnectError


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
    trellis_url: str,
    timeout: float = 10.0,
) -> TrellisClient:
    """Connect a registered ``cli``/``app``/``agent`` session; raises ``ClientConnectError``."""
    key = session if isinstance(session, SessionKey) else SessionKey.load(session)
    async with httpx.AsyncClient(base_url=trellis_url.rstrip("/"), timeout=timeout) as http:
        offset = 0.0
        for _attempt in range(2):
            iat = int(time.time() + offset)
            body = {
                "sessionKey": key.public_key,
                "contractDigest": contract.digest,
                "iat": iat,
                "sig": key.sign_domain(DOMAIN_BOOTSTRAP_CLIENT, str(iat)),
            }
            sent = time.time()
            try:
                response = await http.post("/bootstrap/client", json=body)
                data = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise ClientConnectError(
                    TransportError(
                        f"cannot bootstrap at {trellis_url}: {exc}",
                        code="trellis.request.unavailable",
                    )
                ) from None
            if isinstance(data.get("serverNow"), int):
                offset = ServerClock.from_server_now(data["serverNow"], sent, time.time()).offset
            if response.status_code == 200 and data.get("status") == "ready":
                break
            if data.get("reason") != "iat_out_of_range":
                raise ClientConnectError(
                    AuthError(data.get("message", "refused"), reason=data.get("reason", "refused"))
                )
        else:
            raise ClientConnectError(
                AuthError("clock too far from the runtime's", reason="iat_out_of_range")
            )
    info = data["connectInfo"]
    clock = ServerClock(offset)
    holder: dict[str, RpcClient] = {}

    def on_error(text: str) -> None:
        if "client" in holder:
            holder["client"].on_nats_error(text)

    try:
        nc = await connect_participant(
            info["transports"]["native"]["natsServers"],
            key,
            contract.digest,
            sentinel=(info["transport"]["sentinel"]["jwt"], info["transport"]["sentinel"]["seed"]),
            clock=clock,
            on_error=on_error,
        )
    except Exception as exc:
        raise ClientConnectError(
            TransportError(f"cannot connect to NATS: {exc}", code="trellis.request.denied")
        ) from exc
    client = TrellisClient(contract, key, nc, clock)
    holder["client"] = client._rpc
    return client
