"""What every Trellis participant shares: a contract, a session key, a NATS connection
admitted by the auth callout, and the surfaces its contract declares or ``uses``.

Services (``trellis.service``), clients (``trellis.client``) and the ``trellis`` command's
admin session are all a :class:`Participant`; they differ only in how they start (HTTP
bootstrap for services and clients, the bundle's sentinel credentials for the admin) and in
what services add on top (handlers, resources, heartbeats).

Surfaces are named either by a typed spec from the contract (``GET_ITEM = rpc(...)``,
``ITEM_CREATED = event(...)``): results and payloads are then typed for the user's checker —
or by their logical name as a string, for dynamic use.
"""

from __future__ import annotations

import contextlib
import difflib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar, overload

from nats.aio.client import Client as NatsClient
from nats.aio.subscription import Subscription
from pydantic import BaseModel

from trellis.auth import SessionKey
from trellis.bootstrap import connect_nats
from trellis.calls import DEFAULT_TIMEOUT, RpcClient, rpc_targets
from trellis.contracts import Contract
from trellis.contracts.authoring import BUILTIN_REGISTRY, EventSpec, RpcSpec
from trellis.events import EventDefinition, EventMessage, live_subscribe, publish_event
from trellis.result import Result, TrellisError

__all__ = ["NotInContract", "Participant", "connect_with_credentials", "event_definitions"]

I = TypeVar("I", bound=BaseModel)  # noqa: E741
O = TypeVar("O", bound=BaseModel)  # noqa: E741
E = TypeVar("E", bound=TrellisError)
M = TypeVar("M", bound=BaseModel)

EventHandler = Callable[[EventMessage[Any]], Awaitable[object]]


def event_definitions(contract: Contract) -> dict[str, EventDefinition]:
    """Own events and every event the contract uses, by logical name."""
    defs: dict[str, EventDefinition] = {}
    sources: list[tuple[Contract, list[str]]] = [(contract, list(contract.events))]
    for use in contract.uses.values():
        target = use.target or BUILTIN_REGISTRY.get(use.contract)
        if target is not None:
            sources.append((target, [*use.publish, *use.subscribe]))
    for owner, names in sources:
        for name in names:
            surface = owner.model.events[name]
            defs[name] = EventDefinition(
                name,
                owner.id,
                surface.subject,
                tuple(surface.params),
                owner.events[name].model,
                tuple(surface.capabilities.subscribe),
            )
    return defs


class NotInContract(LookupError):
    """A surface name the contract does not declare or use: a programming error, raised the
    same way by callers (``call``, ``publish``, ``subscribe``) and by services (``rpc``,
    ``on_event``), with the names that would work."""

    def __init__(self, contract_id: str, kind: str, name: str, known: Iterable[str]) -> None:
        names = sorted(known)
        hint = difflib.get_close_matches(name, names, n=1)
        message = f"{contract_id} has no {kind} {name!r}"
        if hint:
            message += f" (did you mean {hint[0]!r}?)"
        message += f"; it can use: {', '.join(names) if names else 'none'}"
        super().__init__(message)
        self.contract_id = contract_id
        self.kind = kind
        self.name = name


def _surface_name(surface: RpcSpec[Any, Any, Any] | EventSpec[Any] | str) -> str:
    return surface if isinstance(surface, str) else surface.name


class Participant:
    """A connected session: calls the RPCs its contract uses, publishes and subscribes to
    the events it declares or uses, and closes cleanly (``async with`` works)."""

    def __init__(
        self, contract: Contract, key: SessionKey, nc: NatsClient, clock: Callable[[], float]
    ) -> None:
        self.contract = contract
        self.key = key
        self.nc = nc
        self.js = nc.jetstream()
        self.clock = clock
        self._rpc = RpcClient(nc, key, rpc_targets(contract), clock=clock)
        self._events = event_definitions(contract)
        #: per action ("publish", "subscribe"): its own events and those its uses list
        self._allowed_events = {
            action: {
                name
                for name, definition in self._events.items()
                if definition.contract_id == contract.id
                or any(name in getattr(use, action) for use in contract.uses.values())
            }
            for action in ("publish", "subscribe")
        }
        self._subscriptions: list[Subscription] = []

    # -- RPCs ---------------------------------------------------------------------------

    @overload
    async def call(
        self,
        rpc: RpcSpec[I, O, E],
        payload: I | Mapping[str, Any] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Result[O, E | TrellisError]: ...

    @overload
    async def call(
        self,
        rpc: str,
        payload: BaseModel | Mapping[str, Any] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Result[Any, TrellisError]: ...

    async def call(
        self,
        rpc: RpcSpec[Any, Any, Any] | str,
        payload: BaseModel | Mapping[str, Any] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Result[Any, TrellisError]:
        """Call an RPC the contract uses: ``Ok(output)`` or a typed ``Err``; a failed call
        never raises, a name the contract does not use raises ``NotInContract``.

        ``rpc`` is the spec from the target contract (typed result) or its logical name.
        """
        name = _surface_name(rpc)
        target = self._rpc.targets.get(name)
        if target is None or (isinstance(rpc, RpcSpec) and target.contract_id != rpc.contract_id):
            raise NotInContract(self.contract.id, "RPC to call", name, self._rpc.targets)
        spec = rpc if isinstance(rpc, RpcSpec) else None
        return await self._rpc.call(name, payload, timeout=timeout, spec=spec)

    # -- events -------------------------------------------------------------------------

    async def publish(
        self, event: EventSpec[M] | str, payload: M | Mapping[str, Any]
    ) -> Result[str, TrellisError]:
        """Publish an event the contract declares or ``uses`` for publishing; ``Ok(event id)``."""
        definition = self._event(event, "publish")
        return await publish_event(self.js, definition, payload)

    async def subscribe(
        self,
        event: EventSpec[M] | str,
        handler: Callable[[EventMessage[M]], Awaitable[object]],
        filters: Mapping[str, Any] | None = None,
    ) -> None:
        """Live events (no durability) the contract declares or subscribes to through
        ``uses``; ``filters`` fix param tokens, e.g. ``{"/category": "books"}``."""
        definition = self._event(event, "subscribe")
        self._subscriptions.append(await live_subscribe(self.nc, definition, handler, filters))

    def _event(self, event: EventSpec[Any] | str, action: str) -> EventDefinition:
        """The definition of an event this contract declares, or uses for ``action``."""
        allowed = self._allowed_events[action]
        name = _surface_name(event)
        if name not in allowed:
            raise NotInContract(self.contract.id, f"event to {action}", name, allowed)
        return self._events[name]

    # -- lifecycle ----------------------------------------------------------------------

    async def close(self) -> None:
        """Unsubscribe, then drain and close the NATS connection."""
        for sub in self._subscriptions:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await sub.unsubscribe()
        self._subscriptions.clear()
        await self._rpc.close()
        with contextlib.suppress(Exception):
            await self.nc.drain()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def connect_with_credentials(
    contract: Contract,
    key: SessionKey,
    servers: list[str],
    *,
    sentinel_creds: Path | str,
    name: str | None = None,
    reconnect: bool = True,
    connect_timeout: float = 5.0,
) -> Participant:
    """A participant started from a sentinel credentials file instead of the HTTP
    bootstrap: how the ``trellis`` command's admin session connects on the deployment's own
    machine.  Raises ``ConnectError``."""
    nc, relay = await connect_nats(
        servers,
        key,
        contract.digest,
        sentinel_creds=sentinel_creds,
        name=name,
        reconnect=reconnect,
        connect_timeout=connect_timeout,
    )
    participant = Participant(contract, key, nc, time.time)
    relay.client = participant._rpc
    return participant
