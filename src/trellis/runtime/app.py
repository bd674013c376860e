"""The Trellis runtime process: callout, control plane, Trellis-owned RPCs and HTTP.

It holds three NATS connections, each with the least it needs: the callout user (AUTH
account, answers ``$SYS.REQ.USER.AUTH``), the runtime user (TRELLIS account: control-plane
KV, provisioning, Trellis RPCs) and a SYS user (disconnect advisories, kicks).  All state
lives in JetStream KV, so any number of replicas can run side by side and a restart loses
nothing.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from nats import connect
from nats.aio.client import Client as NatsClient

from trellis.contracts import builtin
from trellis.nats.server import PortInUseError, check_port_free
from trellis.principals import Principal, PrincipalCache
from trellis.runtime.bundle import Bundle
from trellis.runtime.callout import CalloutService
from trellis.runtime.connections import ConnectionTracker
from trellis.runtime.health import HealthMonitor
from trellis.runtime.http_server import HttpServer
from trellis.runtime.install import Installer
from trellis.runtime.permissions import required_user_capabilities
from trellis.runtime.rpcs import mount_auth, mount_core, mount_users
from trellis.runtime.state import ControlPlane
from trellis.runtime.users import Users
from trellis.service.rpc import RpcServer

__all__ = ["RUNTIME_CONTRACTS", "Runtime"]

log = logging.getLogger("trellis.runtime")

#: Trellis-owned contracts the runtime implements (and so activates at start)
RUNTIME_CONTRACTS = (builtin.trellis_core, builtin.trellis_auth, builtin.trellis_health)
ADMIN_NAME = "admin"


class Runtime:
    def __init__(
        self,
        bundle: Bundle,
        *,
        serve_http: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bundle = bundle
        self._serve_http = serve_http
        self._clock = clock
        self._ready = False
        self._connections: list[NatsClient] = []
        self._servers: list[RpcServer] = []
        self.http: HttpServer | None = None
        self.principals = PrincipalCache()
        self.callout: CalloutService | None = None
        self.cp: ControlPlane | None = None
        self.installer: Installer | None = None
        self.tracker: ConnectionTracker | None = None
        self.health: HealthMonitor | None = None

    @property
    def ready(self) -> bool:
        return self._ready

    async def _connect(self, creds: Any, name: str) -> NatsClient:
        async def error_cb(error: Exception) -> None:
            log.warning("%s connection: %s", name, error)

        nc = await connect(
            self.bundle.config.nats.servers,
            user_credentials=str(creds),
            name=f"trellis-runtime-{name}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=error_cb,
        )
        self._connections.append(nc)
        return nc

    async def start(self) -> None:
        config = self.bundle.config
        if self._serve_http:
            try:
                check_port_free(config.http.host, config.http.port)
            except PortInUseError as exc:
                raise PortInUseError(config.http.host, config.http.port) from exc
        nc = await self._connect(self.bundle.runtime_creds, "trellis")
        js = nc.jetstream()
        self.cp = cp = await ControlPlane.open(js, replicas=config.replicas)
        self.installer = installer = Installer(cp, js, replicas=config.replicas)
        await installer.ensure_events_stream()
        for contract in RUNTIME_CONTRACTS:
            await installer.activate_contract(contract.manifest, owner="trellis")
        await self._ensure_admin(installer, cp)
        await self.principals.start(js)

        system = await self._connect(self.bundle.system_creds, "system")
        self.tracker = tracker = ConnectionTracker(cp, nc, system, config.trellis.public_key)
        await tracker.start()

        core, auth = (
            RpcServer(nc, contract, self.principals, queue="trellis", clock=self._clock)
            for contract in (builtin.trellis_core, builtin.trellis_auth)
        )
        mount_core(core, cp)
        self.health = HealthMonitor(cp, nc, clock=self._clock)
        await self.health.start()
        mount_auth(auth, cp, installer, tracker, self.principals.get, self.health, self._clock)
        mount_users(auth, Users(cp, installer), tracker)
        for server in (core, auth):
            await server.start()
            self._servers.append(server)

        callout_nc = await self._connect(self.bundle.callout_creds, "callout")
        self.callout = CalloutService(self.bundle, cp, on_connect=tracker.opened, clock=self._clock)
        await self.callout.start(callout_nc)

        if self._serve_http:
            self.http = HttpServer(self.bundle, clock=self._clock, ready=lambda: self._ready)
            await self.http.start()
        self._ready = True
        log.info("runtime ready: nats %s, http %s", config.nats.servers[0], config.http.url)

    async def _ensure_admin(self, installer: Installer, cp: ControlPlane) -> None:
        """The local operator's CLI key: a ``trellis.cli@v1`` participant holding ``admin``."""
        cli = builtin.trellis_cli
        digest = await installer.activate_contract(cli.manifest)
        needed = required_user_capabilities(cli.model, await cp.active_manifests())
        key = self.bundle.config.admin_public_key
        await cp.principals.put(
            key,
            Principal(
                session_key=key,
                kind="user",
                name=ADMIN_NAME,
                contract_id=cli.id,
                contract_digest=digest,
                capabilities=tuple(sorted({"admin", *needed})),
            ),
        )

    async def stop(self) -> None:
        self._ready = False
        if self.callout is not None:
            await self.callout.stop()
        for server in self._servers:
            await server.stop(drain_timeout=5)
        self._servers.clear()
        if self.http is not None:
            await self.http.stop()
        if self.tracker is not None:
            await self.tracker.stop()
        if self.health is not None:
            await self.health.stop()
        await self.principals.stop()
        for nc in reversed(self._connections):
            with contextlib.suppress(Exception):
                await nc.drain()
        self._connections.clear()
        log.info("runtime stopped")

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
