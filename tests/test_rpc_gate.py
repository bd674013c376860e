"""The RPC server's bounds: requests beyond the pending bound are refused before a task or
a verification."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from examples.inventory.contract import GetItem, Item, inventory

from tests.runtime.support import caller, eventually
from trellis.auth import SessionKey
from trellis.calls import RpcClient, rpc_targets
from trellis.nats import settle
from trellis.nats.server import NatsServer, free_ports
from trellis.principals import PrincipalCache
from trellis.result import Err, Ok, TransportError
from trellis.service.rpc import ReplayGuard, RequestContext, RpcServer


@pytest.fixture
async def server_url(tmp_path: Path) -> AsyncIterator[str]:
    """A real nats-server on a free loopback port."""
    (port,) = free_ports(1)
    conf = tmp_path / "nats.conf"
    conf.write_text(f'host: "127.0.0.1"\nport: {port}\n')
    async with NatsServer(conf, client_port=port) as server:
        yield server.url


def test_max_pending_defaults_to_four_times_the_concurrency_and_cannot_be_below_it() -> None:
    unused: Any = None  # nothing is started: no connection needed
    assert RpcServer(unused, inventory, PrincipalCache(), max_concurrency=3).max_pending == 12
    with pytest.raises(ValueError, match="at least max_concurrency"):
        RpcServer(unused, inventory, PrincipalCache(), max_concurrency=3, max_pending=2)
    with pytest.raises(ValueError, match="at least 1"):
        RpcServer(unused, inventory, PrincipalCache(), max_concurrency=0)


async def test_requests_beyond_the_bound_are_refused_before_a_task_or_a_verification(
    server_url: str,
) -> None:
    key = SessionKey.generate()
    principals = caller(key)
    snc = await nats.connect(server_url)
    cnc = await nats.connect(server_url, inbox_prefix=key.inbox_prefix)
    server = RpcServer(
        snc, inventory, principals, max_concurrency=1, max_pending=2, max_pending_per_caller=2
    )
    client = RpcClient(cnc, key, rpc_targets(inventory, include_own=True))
    release = asyncio.Event()

    @server.handler("Items.Get")
    async def held(req: GetItem, ctx: RequestContext) -> Ok[Item]:
        await release.wait()
        return Ok(Item(id=req.id, name="held", category="books", quantity=1))

    try:
        await server.start()
        calls = [
            asyncio.create_task(client.call("Items.Get", {"id": str(n)}, timeout=10))
            for n in range(5)
        ]
        await eventually(lambda: sum(c.done() for c in calls) == 3, what="3 refusals")
        for call in calls:
            if call.done():
                result = call.result()
                assert isinstance(result, Err) and isinstance(result.error, TransportError)
                assert result.error.reason == "trellis.request.unavailable"
        assert (server.inflight, server.peak_pending, server.refused) == (2, 2, 3)

        # full: a request with a bogus proof is refused as unavailable, so it was never
        # verified (a verification would answer AuthError) ...
        bogus = {
            "session-key": key.public_key,
            "proof": "A" * 86,
            "iat": "1",
            "request-id": "r",
        }
        reply = await cnc.request("rpc.v1.Items.Get", b"{}", headers=bogus, timeout=10)
        assert b"trellis.request.unavailable" in reply.data
        assert server.refused == 4
        # ... and one whose reply is not the caller's inbox is still dropped unanswered
        sub = await cnc.subscribe("elsewhere")
        await cnc.publish("rpc.v1.Items.Get", b"{}", reply="elsewhere", headers=bogus)
        # a refusal sent after it arrives on this connection after anything sent to it
        reply = await cnc.request("rpc.v1.Items.Get", b"{}", headers=bogus, timeout=10)
        assert b"trellis.request.unavailable" in reply.data
        assert sub.pending_msgs == 0
        assert server.refused == 5

        release.set()
        results = await asyncio.gather(*calls)
        assert sum(isinstance(r, Ok) for r in results) == 2
        assert await client.call("Items.Get", {"id": "after"}) == Ok(
            Item(id="after", name="held", category="books", quantity=1)
        )
    finally:
        release.set()
        await client.close()
        await server.stop(drain_timeout=1.0)
        await cnc.close()
        await snc.close()


async def test_a_malformed_session_key_is_dropped_like_a_foreign_reply(
    server_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # 43 characters, but dots and wildcards: no inbox prefix can be made from it
    headers = {"session-key": "*.>" * 14 + "A", "proof": "A" * 86, "iat": "1", "request-id": "r"}
    snc = await nats.connect(server_url)
    cnc = await nats.connect(server_url)
    server = RpcServer(snc, inventory, PrincipalCache())

    @server.handler("Items.Get")
    async def get(req: GetItem, ctx: RequestContext) -> Ok[Item]:
        return Ok(Item(id=req.id, name="x", category="books", quantity=1))

    try:
        await server.start()
        sub = await cnc.subscribe("_INBOX.replies.>")
        await cnc.publish("rpc.v1.Items.Get", b"{}", reply="_INBOX.replies.1", headers=headers)
        await settle(cnc)
        with pytest.raises(nats.errors.TimeoutError):
            await sub.next_msg(timeout=0.3)
        await eventually(lambda: "dropped a request" in caplog.text, what="the drop warning")
    finally:
        await server.stop(drain_timeout=1.0)
        await cnc.close()
        await snc.close()


async def test_requests_without_a_verifiable_proof_are_dropped_before_a_task(
    server_url: str,
) -> None:
    """Without a proof nothing shows the reply subject is the caller's (docs/protocol.md):
    such requests cost a header check each, get no answer, no task and no verification,
    and never count against the request bound; over-long headers likewise."""
    key = SessionKey.generate()
    principals = caller(key)
    snc = await nats.connect(server_url)
    cnc = await nats.connect(server_url, inbox_prefix=key.inbox_prefix)
    server = RpcServer(snc, inventory, principals, max_concurrency=1, max_pending=1)
    client = RpcClient(cnc, key, rpc_targets(inventory, include_own=True))

    @server.handler("Items.Get")
    async def get(req: GetItem, ctx: RequestContext) -> Ok[Item]:
        return Ok(Item(id=req.id, name="x", category="books", quantity=1))

    try:
        await server.start()
        probes = cnc.new_inbox()
        sub = await cnc.subscribe(probes + ".>")
        long_id = {"session-key": key.public_key, "proof": "A" * 86, "request-id": "r" * 129}
        for n, headers in enumerate(
            [None] * 5 + [{"session-key": key.public_key}] * 5 + [long_id] * 5
        ):
            await cnc.publish("rpc.v1.Items.Get", b"{}", reply=f"{probes}.{n}", headers=headers)
        # a signed call sent after them is answered: the service has read every probe, and
        # anything it had sent to this connection would have arrived first
        assert await client.call("Items.Get", {"id": "after"}) == Ok(
            Item(id="after", name="x", category="books", quantity=1)
        )
        assert sub.pending_msgs == 0
        assert (server.dropped, server.refused, server.peak_pending) == (15, 0, 1)
    finally:
        await client.close()
        await server.stop(drain_timeout=1.0)
        await cnc.close()
        await snc.close()


def test_the_replay_guard_refuses_a_repeat_until_its_window_has_passed() -> None:
    guard = ReplayGuard(window=60.0)
    key, other = "k" * 43, "o" * 43
    assert guard.first_use(key, "r1", now=1000.0)
    assert guard.first_use(other, "r1", now=1001.0)  # request ids are per session
    assert not guard.first_use(key, "r1", now=1059.0)
    assert guard.first_use(key, "r2", now=1059.5)
    # r1 of key expires at 1060, r1 of other at 1061: each is forgotten in turn
    assert guard.first_use(key, "r1", now=1060.5)
    assert not guard.first_use(other, "r1", now=1060.5)
    assert guard.first_use(other, "r1", now=1061.0)
    assert not guard.first_use(key, "r2", now=1100.0)  # r2 is remembered until 1119.5


def test_the_replay_guard_is_bounded_and_forgets_without_new_requests() -> None:
    guard = ReplayGuard(window=60.0, max_entries=3)
    for n in range(3):
        assert guard.first_use("k" * 43, f"r{n}", now=1000.0 + n)
    assert guard.full and len(guard) == 3  # the server refuses new requests now
    guard.prune(now=1061.5)  # what the server's timer does, with no request arriving
    assert len(guard) == 1 and not guard.full
    guard.prune(now=1062.0)
    assert len(guard) == 0
