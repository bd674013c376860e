"""``TrellisService``: what a Python engineer writes a service with.

``connect_service`` bootstraps over HTTP (server time, NATS URLs, sentinel credentials,
resource bindings), connects through the auth callout with a fresh connect token on every
(re)connect, and exposes the contract's surfaces by logical name:

- ``@service.rpc("Items.Get")`` mounts a handler (served in a queue group, see ``rpc.py``);
- ``service.kv.<alias>`` typed KV handles; ``service.streams.<alias>`` stream resources;
- ``await service.publish("Items.Created", payload)``;
- ``@service.on_event("group")`` durable handlers of a declared consumer group;
- ``await service.call(...)`` for the RPCs its contract ``uses``;
- a ``Health.Heartbeat`` every 30 s, signed with the session key (headers ``session-key``
  and ``proof``), so the runtime records it only for the instance that sent it.

``await service.run()`` serves until SIGTERM/SIGINT, then drains in-flight work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, overload

from nats.aio.client import Client as NatsClient
from pydantic import BaseModel

from trellis.auth import SessionKey, heartbeat_proof
from trellis.bootstrap import BootstrapInfo, load_session_key, start_session
from trellis.contracts import Contract
from trellis.contracts.authoring import RpcSpec
from trellis.discovery import resolve_trellis_url
from trellis.events import EventConsumer, EventHandler, publish_event
from trellis.ids import now_iso, ulid
from trellis.participant import NotInContract, Participant
from trellis.principals import PrincipalCache
from trellis.result import AuthError, Err, Ok, Result, TrellisError
from trellis.service.handlers import check_handler
from trellis.service.kv import KvHandle, KvNamespace
from trellis.service.rpc import Handler, RequestContext, RpcServer
from trellis.service.streams import StreamHandle, StreamNamespace
from trellis.signals import wait_for_shutdown
from trellis.wire import HEADER_PROOF, HEADER_SESSION_KEY

__all__ = ["HEARTBEAT_INTERVAL", "TrellisService", "connect_service"]

log = logging.getLogger("trellis.service")

HEARTBEAT_INTERVAL = 30.0

I = TypeVar("I", bound=BaseModel)  # noqa: E741
O = TypeVar("O", bound=BaseModel)  # noqa: E741

#: a handler for an RPC taking ``I`` and answering ``O``: ``Ok(O)``, ``Err(declared error)``
TypedHandler = Callable[[I, RequestContext], Awaitable[Ok[O] | Err[TrellisError]]]


class TrellisService(Participant):
    """An installed service: mounts handlers for its contract's RPCs and consumer groups,
    owns its resources, and calls/publishes/subscribes like every participant."""

    def __init__(
        self,
        contract: Contract,
        key: SessionKey,
        nc: NatsClient,
        info: BootstrapInfo,
        *,
        max_concurrency: int = 64,
        max_pending: int | None = None,
        max_pending_per_caller: int | None = None,
    ) -> None:
        super().__init__(contract, key, nc, info.clock())
        self.info = info
        self.name = info.deployment
        self.principals = PrincipalCache()
        self._server = RpcServer(
            nc,
            contract,
            self.principals,
            queue=contract.id,
            max_concurrency=max_concurrency,
            max_pending=max_pending,
            max_pending_per_caller=max_pending_per_caller,
            clock=self.clock,
        )
        self._consumers: dict[str, EventConsumer] = {}
        self._consumer_handlers: dict[str, EventHandler] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._started_at = now_iso()
        self._checks: dict[str, Callable[[], Awaitable[bool]]] = {}
        self._mounted: set[str] = set()
        self.kv = KvNamespace({})
        self.streams = StreamNamespace({})

    # -- declaring handlers -------------------------------------------------------------

    @overload
    def rpc(
        self, rpc: RpcSpec[I, O, Any]
    ) -> Callable[[TypedHandler[I, O]], TypedHandler[I, O]]: ...

    @overload
    def rpc(self, rpc: str) -> Callable[[Handler], Handler]: ...

    def rpc(self, rpc: RpcSpec[Any, Any, Any] | str) -> Callable[[Handler], Handler]:
        """Decorator mounting ``async def handler(input, ctx) -> Ok(output) | Err(error)``.

        ``rpc`` is the spec from this service's contract (the handler is then type-checked
        against it) or the RPC's logical name.  A handler whose annotations contradict the
        contract (input, output or an undeclared error) is refused with ``HandlerMismatch``.
        """
        name = rpc if isinstance(rpc, str) else rpc.name
        spec = self.contract.rpc.get(name)
        if spec is None or (not isinstance(rpc, str) and rpc is not spec):
            raise NotInContract(self.contract.id, "RPC to serve", name, self.contract.rpc)

        def mount(func: Handler) -> Handler:
            check_handler(name, spec, func)
            self._server.handler(name)(func)
            self._mounted.add(name)
            return func

        return mount

    def on_event(self, group: str) -> Callable[[EventHandler], EventHandler]:
        """Decorator: durable handler for a declared ``eventConsumers`` group."""
        if group not in self.contract.event_consumers:
            raise NotInContract(
                self.contract.id, "event consumer group", group, self.contract.event_consumers
            )

        def mount(func: EventHandler) -> EventHandler:
            self._consumer_handlers[group] = func
            return func

        return mount

    def health_check(
        self, name: str
    ) -> Callable[[Callable[[], Awaitable[bool]]], Callable[[], Awaitable[bool]]]:
        def mount(func: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
            self._checks[name] = func
            return func

        return mount

    # -- lifecycle ----------------------------------------------------------------------

    async def _open_resources(self) -> None:
        resources = self.info.resources
        handles: dict[str, KvHandle[Any]] = {}
        for alias, kv in resources.kv.items():
            spec = self.contract.kv.get(alias)
            if spec is not None:
                handles[alias] = KvHandle(
                    alias,
                    await self.js.key_value(kv.bucket),
                    spec.model,
                    max_value_bytes=kv.max_value_bytes,
                )
        self.kv = KvNamespace(handles)
        self.streams = StreamNamespace(
            {
                alias: StreamHandle(alias, self.js, stream.stream, stream.subjects)
                for alias, stream in resources.streams.items()
            }
        )

    def _build_consumers(self) -> None:
        """One pull loop per declared group that has a handler (mounted before ``start``)."""
        for group, binding in self.info.resources.event_consumers.items():
            handler = self._consumer_handlers.get(group)
            if handler is None:
                continue
            group_spec = self.contract.event_consumers[group]
            self._consumers[group] = EventConsumer(
                self.js,
                group,
                binding.stream,
                binding.consumer_name,
                list(self._events.values()),
                handler,
                concurrency=group_spec.concurrency,
                backoff_ms=tuple(group_spec.backoff_ms or (1000, 5000, 30000)),
            )
        missing = set(self._consumer_handlers) - set(self._consumers)
        if missing:
            log.warning(
                "no consumer provisioned for group(s) %s; reinstall the service", sorted(missing)
            )

    async def start(self) -> None:
        """Start serving RPCs, consumer groups and heartbeats."""
        unserved = sorted(set(self.contract.rpc) - self._mounted)
        if unserved:
            log.warning(
                "%s declares RPCs with no handler: %s (callers get no reply until one is "
                "mounted with @service.rpc)",
                self.contract.id,
                ", ".join(unserved),
            )
        self._build_consumers()
        await self.principals.start(self.js, read_only=True)
        await self._server.start()
        for consumer in self._consumers.values():
            await consumer.start()
        self._heartbeat = asyncio.create_task(self._heartbeats(), name="trellis-heartbeat")
        log.info("service %s (%s) serving", self.name, self.contract.id)

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop taking work, let in-flight requests finish, then close the connection."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self._server.stop(drain_timeout)
        for consumer in self._consumers.values():
            await consumer.stop()
        await self.principals.stop()
        await self.close()

    async def run(self) -> None:
        """Start, serve until SIGINT/SIGTERM, then stop gracefully."""
        await self.start()
        try:
            await wait_for_shutdown()
        finally:
            await self.stop()

    async def heartbeat(self) -> Result[str, TrellisError]:
        """Publish one ``Health.Heartbeat`` now (also sent every 30 s while running)."""
        checks = []
        healthy = True
        for name, check in self._checks.items():
            started = time.perf_counter()
            try:
                ok = await check()
                error = None
            except Exception as exc:
                ok, error = False, str(exc)
            healthy = healthy and ok
            entry: dict[str, Any] = {
                "name": name,
                "status": "ok" if ok else "failed",
                "latencyMs": round((time.perf_counter() - started) * 1000, 3),
            }
            if error:
                entry["error"] = error
            checks.append(entry)
        payload = {
            "header": {"id": ulid(), "time": now_iso()},
            "service": {
                "name": self.name,
                "kind": "service",
                "instanceId": self.key.public_key[:16],
                "contractId": self.contract.id,
                "contractDigest": self.contract.digest,
                "startedAt": self._started_at,
                "publishIntervalMs": int(HEARTBEAT_INTERVAL * 1000),
                "runtime": "python",
                "runtimeVersion": platform.python_version(),
                "info": {"inflight": self._server.inflight, "pid": os.getpid()},
            },
            "status": "healthy" if healthy else "unhealthy",
            "checks": checks,
        }
        if "Health.Heartbeat" not in self._events:
            return Err(
                AuthError("the contract does not use trellis.health@v1", reason="not_in_contract")
            )
        key = self.key

        def sign(body: bytes) -> dict[str, str]:
            return {HEADER_SESSION_KEY: key.public_key, HEADER_PROOF: heartbeat_proof(key, body)}

        return await publish_event(
            self.js, self._event("Health.Heartbeat", "publish"), payload, sign=sign
        )

    async def _heartbeats(self) -> None:
        while True:
            result = await self.heartbeat()
            if isinstance(result, Err):
                log.warning("heartbeat not published: %s", result.error)
            await asyncio.sleep(HEARTBEAT_INTERVAL)


async def connect_service(
    contract: Contract,
    *,
    session_key: SessionKey | str | Path,
    trellis_url: str | None = None,
    max_concurrency: int = 64,
    max_pending: int | None = None,
    max_pending_per_caller: int | None = None,
) -> TrellisService:
    """Bootstrap and connect an installed service; raises ``ConnectError`` if refused.

    ``session_key`` is a ``SessionKey``, a seed file path, or ``env:VAR`` naming an
    environment variable that holds the seed; ``trellis_url`` defaults as
    ``resolve_trellis_url`` says (``TRELLIS_URL``, then ``$TRELLIS_HOME/runtime.json``).
    At most ``max_concurrency`` handlers run at once and ``max_pending`` requests (default
    4 x ``max_concurrency``) are held, waiting plus running, at most
    ``max_pending_per_caller`` (default a quarter of them) for one session key; beyond
    that a request is answered at once with ``TransportError(trellis.request.unavailable)``.
    """
    key = load_session_key(session_key)
    info, nc, relay = await start_session(
        resolve_trellis_url(trellis_url), key, contract.digest, service_contract=contract.id
    )
    service = TrellisService(
        contract,
        key,
        nc,
        info,
        max_concurrency=max_concurrency,
        max_pending=max_pending,
        max_pending_per_caller=max_pending_per_caller,
    )
    relay.client = service._rpc
    await service._open_resources()
    return service
