"""Each check a service makes on a request (PROTOCOL §6), proven by an attack it refuses.

A real nats-server and the library's ``RpcServer``; callers are resolved from an in-memory
``PrincipalCache`` so that each test sets exactly the principal it needs.  Every test also
shows the same request shape accepted when the attacked property is sound, so that a check
deleted from ``service/rpc.py`` turns a refusal into a success and fails the test.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from examples.inventory.contract import GetItem, Item, inventory
from nats.aio.client import Client as NatsClient

from tests.runtime.support import caller, caller_principal
from trellis.auth import SessionKey
from trellis.calls import RpcClient, rpc_targets
from trellis.ids import ulid
from trellis.nats import settle
from trellis.nats.server import NatsServer, free_ports
from trellis.principals import PrincipalCache
from trellis.result import AuthError, Err, Ok, Result, TrellisError
from trellis.service.rpc import RequestContext, RpcServer
from trellis.wire import HEADER_STATUS, STATUS_ERROR, request_headers

READ = "inventory::items.read"
SUBJECT = "rpc.v1.Items.Get"


@dataclass
class Served:
    """A served inventory ``Items.Get`` and one registered caller."""

    key: SessionKey
    principals: PrincipalCache
    caller: NatsClient
    client: RpcClient

    async def raw_call(self, headers: dict[str, str], body: bytes) -> Result[Item, TrellisError]:
        """Send exactly these headers and body from the caller's connection, to a fresh
        reply subject in its inbox."""
        reply = await self.caller.request(SUBJECT, body, headers=headers, timeout=5)
        if (reply.headers or {}).get(HEADER_STATUS) == STATUS_ERROR:
            return Err(TrellisError.from_wire(json.loads(reply.data)))
        return Ok(Item.model_validate_json(reply.data))


@pytest.fixture
async def nats_url(tmp_path: Path) -> AsyncIterator[str]:
    (port,) = free_ports(1)
    conf = tmp_path / "nats.conf"
    conf.write_text(f'host: "127.0.0.1"\nport: {port}\n')
    async with NatsServer(conf, client_port=port) as server:
        yield server.url


@asynccontextmanager
async def serving(nats_url: str, clock: Callable[[], float] = time.time) -> AsyncIterator[Served]:
    """``Items.Get`` served on a service running on ``clock``, and its registered caller."""
    key = SessionKey.generate()
    principals = caller(key)
    snc = await nats.connect(nats_url)
    cnc = await nats.connect(nats_url, inbox_prefix=key.inbox_prefix)
    server = RpcServer(snc, inventory, principals, clock=clock)

    @server.handler("Items.Get")
    async def get(req: GetItem, ctx: RequestContext) -> Ok[Item]:
        return Ok(Item(id=req.id, name="served", category="books", quantity=1))

    client = RpcClient(cnc, key, rpc_targets(inventory, include_own=True))
    await server.start()
    await settle(cnc)
    try:
        yield Served(key, principals, cnc, client)
    finally:
        await client.close()
        await server.stop(drain_timeout=1.0)
        await cnc.close()
        await snc.close()


def _refused(result: Result[Item, TrellisError], reason: str) -> None:
    assert isinstance(result, Err), result
    assert isinstance(result.error, AuthError), result.error
    assert result.error.reason == reason, result.error


SERVED = Ok(Item(id="1", name="served", category="books", quantity=1))


@pytest.mark.parametrize("skew", [-31.0, 31.0], ids=["service-clock-behind", "service-clock-ahead"])
async def test_a_request_31_s_off_the_services_own_clock_is_refused(
    nats_url: str, skew: float
) -> None:
    """The caller signs with its true clock; the service judges ``iat`` by its own."""
    async with serving(nats_url, clock=lambda: time.time() + skew) as served:
        _refused(await served.client.call("Items.Get", GetItem(id="1")), "iat_out_of_range")
    async with serving(nats_url) as served:
        assert await served.client.call("Items.Get", GetItem(id="1")) == SERVED


@pytest.mark.parametrize("offset", [-31, 31], ids=["stale", "future"])
async def test_a_correctly_signed_request_with_a_stale_or_future_iat_is_refused(
    nats_url: str, offset: int
) -> None:
    async with serving(nats_url) as served:
        body = GetItem(id="1").model_dump_json().encode()
        for delta, reason in ((offset, "iat_out_of_range"), (0, None)):
            iat = int(time.time()) + delta
            headers = request_headers(served.key, SUBJECT, body, iat, ulid(), None)
            result = await served.raw_call(headers, body)
            if reason is None:
                assert result == SERVED
            else:
                _refused(result, reason)


async def test_a_captured_request_replayed_within_the_window_is_refused(
    nats_url: str,
) -> None:
    """Someone who saw a request (headers and body) sends it again, to a new reply subject
    in the same inbox: the proof still verifies, the request id gives it away."""
    async with serving(nats_url) as served:
        body = GetItem(id="1").model_dump_json().encode()
        captured = request_headers(served.key, SUBJECT, body, int(time.time()), ulid(), None)
        assert await served.raw_call(dict(captured), body) == SERVED
        _refused(await served.raw_call(dict(captured), body), "invalid_signature")
        # a new request id from the same session is still served
        fresh = request_headers(served.key, SUBJECT, body, int(time.time()), ulid(), None)
        assert await served.raw_call(fresh, body) == SERVED


async def test_a_disabled_callers_next_call_is_refused_as_an_unknown_session(
    nats_url: str,
) -> None:
    async with serving(nats_url) as served:
        assert await served.client.call("Items.Get", GetItem(id="1")) == SERVED
        served.principals.put(caller_principal(served.key, disabled=True))
        _refused(await served.client.call("Items.Get", GetItem(id="1")), "session_not_found")
        served.principals.put(caller_principal(served.key))
        assert await served.client.call("Items.Get", GetItem(id="1")) == SERVED
