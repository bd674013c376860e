"""A whole local Trellis deployment for integration tests: real nats-server + real runtime."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import nats
from nats.aio.client import Client as NatsClient

from trellis.auth import SessionKey
from trellis.calls import RpcClient, rpc_targets
from trellis.connection import connect_participant
from trellis.contracts import Contract
from trellis.contracts.builtin import trellis_cli
from trellis.nats.server import NatsServer
from trellis.runtime.app import Runtime
from trellis.runtime.bundle import Bundle, init_bundle


class Stack:
    def __init__(
        self,
        bundle: Bundle,
        server: NatsServer,
        runtime: Runtime,
        runtime_clock: Callable[[], float] = time.time,
    ) -> None:
        self.bundle = bundle
        self.server = server
        self.runtime = runtime
        self.runtime_clock = runtime_clock
        self._clients: list[NatsClient] = []

    @property
    def url(self) -> str:
        return self.bundle.nats_url

    async def participant(
        self, key: SessionKey, digest: str, errors: list[str] | None = None, **kwargs: object
    ) -> NatsClient:
        nc = await connect_participant(
            [self.url],
            key,
            digest,
            sentinel_creds=self.bundle.sentinel_creds,
            on_error=errors.append if errors is not None else None,
            max_reconnect_attempts=kwargs.pop("max_reconnect_attempts", 0),  # type: ignore[arg-type]
            **kwargs,  # type: ignore[arg-type]
        )
        self._clients.append(nc)
        return nc

    async def admin(self) -> RpcClient:
        key = self.bundle.admin_key()
        nc = await self.participant(key, trellis_cli.digest)
        return RpcClient(nc, key, rpc_targets(trellis_cli))

    async def install(self, contract: Contract, name: str, key: SessionKey) -> None:
        admin = await self.admin()
        result = await admin.call(
            "Auth.Deployments.Create",
            {"name": name, "contract": contract.manifest, "publicKey": key.public_key},
        )
        assert result.is_ok(), result

    async def connect_with_token(self, token: str | None) -> NatsClient:
        """Connect as the sentinel presenting ``token`` verbatim (``None``: no token at all)."""
        nc = await nats.connect(
            self.url,
            user_credentials=str(self.bundle.sentinel_creds),
            token=token,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=5,
        )
        self._clients.append(nc)
        return nc

    async def start_new_runtime(self) -> Runtime:
        """Start a fresh runtime on the same bundle and nats-server (after ``runtime.stop()``)."""
        self.runtime = Runtime(self.bundle, clock=self.runtime_clock)
        await self.runtime.start()
        return self.runtime

    async def runtime_nc(self) -> NatsClient:
        nc = await nats.connect(self.url, user_credentials=str(self.bundle.runtime_creds))
        self._clients.append(nc)
        return nc

    async def close_clients(self) -> None:
        for nc in self._clients:
            if not nc.is_closed:
                with contextlib.suppress(Exception):
                    await nc.close()
        self._clients.clear()


@asynccontextmanager
async def running_stack(
    directory: Path, *, clock: Callable[[], float] = time.time
) -> AsyncIterator[Stack]:
    """``clock`` is the runtime's clock (callout ``iat`` checks, RPC proof windows)."""
    bundle = init_bundle(directory)
    server = bundle.nats_server()
    await server.astart(ready_within=15)
    runtime = Runtime(bundle, clock=clock)
    stack = Stack(bundle, server, runtime, clock)
    try:
        await runtime.start()
        yield stack
    finally:
        await stack.close_clients()
        await stack.runtime.stop()
        await server.astop()
