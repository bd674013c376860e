"""NATS itself enforces contracts: what the callout grants, and what it refuses to admit.

Every test runs a real nats-server and the real runtime (trellis.testing).  A refusal is
asserted twice: the client sees NATS's own error (a permissions violation on the error
callback, or an authorization violation at connect), and a subscriber holding the runtime's
broad credentials proves the refused message never entered the system.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from examples.inventory.contract import inventory
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from tests.runtime.support import (
    Clock,
    Collector,
    Price,
    PriceQuery,
    billing,
    decisions,
    eventually,
    expect_violation,
    pricing,
    refused,
    token_dict,
)
from trellis.auth import SessionKey, connect_token
from trellis.calls import RpcClient, rpc_targets
from trellis.contracts import Contract, builtin, trellis_auth
from trellis.contracts.builtin import trellis_cli
from trellis.ids import ulid
from trellis.nats import settle
from trellis.principals import PRINCIPALS_BUCKET, PrincipalCache
from trellis.result import Err, Ok
from trellis.service.rpc import RequestContext, RpcServer
from trellis.testing import LocalDeployment, local_deployment
from trellis.wire import request_headers


async def _serve(
    stack: LocalDeployment, key: SessionKey, digest: str, subjects: list[str]
) -> Collector:
    """Connect a service and answer every request on ``subjects`` (queue group per contract)."""
    seen = Collector()
    nc = await stack.raw_participant(key, digest)

    async def answer(msg: Msg) -> None:
        await seen.add(msg)
        echo = {"subject": msg.subject, "echo": json.loads(msg.data or b"{}")}
        await msg.respond(json.dumps(echo).encode())

    for subject in subjects:
        await nc.subscribe(subject, queue="svc", cb=answer)
    await settle(nc)
    return seen


async def _control_marker(nc: NatsClient, collector: Collector, subject: str) -> None:
    """Publish an allowed marker after refused publishes and wait for it: NATS keeps a
    connection's messages in order, so anything refused earlier would have arrived first."""
    await nc.publish(subject, b"{}")
    await settle(nc)
    await eventually(lambda: subject in collector.subjects, what=f"marker on {subject}")


# --------------------------------------------------------------------------- grants


async def test_service_serves_its_own_subjects_and_nats_refuses_the_rest(tmp_path: Path) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        key = SessionKey.generate()
        await stack.install(inventory, "inventory", key)
        observer = await stack.raw_runtime()
        everything = Collector()
        await observer.subscribe(">", cb=everything.add)
        await settle(observer)

        errors: list[str] = []
        nc = await stack.raw_participant(key, inventory.digest, errors)

        # its own RPC subjects, in a queue group, answering through the response permission
        async def answer(msg: Msg) -> None:
            await msg.respond(b'{"id":"1","name":"hammer","category":"tools","quantity":1}')

        await nc.subscribe("rpc.v1.Items.Get", queue="inventory@v1", cb=answer)
        await nc.subscribe("rpc.v1.Items.Create", queue="inventory@v1", cb=answer)
        await settle(nc)
        reply = await observer.request("rpc.v1.Items.Get", b'{"id":"1"}', timeout=2)
        assert json.loads(reply.data)["name"] == "hammer"

        # its own event, any value of the {/category} token
        await nc.publish("events.v1.Items.Created.tools", b'{"id":"1"}')
        await settle(nc)
        await eventually(lambda: "events.v1.Items.Created.tools" in everything.subjects)
        assert errors == []

        # outside the contract: NATS refuses, the connection stays up
        for subject in ("rpc.v1.Auth.Deployments.List", "rpc.v1.Items.*", "events.v1.>"):
            await nc.subscribe(subject)
            await expect_violation(nc, errors, "subscribe", subject)
        forbidden = (
            "events.v1.Auth.Connections.Kicked",  # a runtime-owned event
            "rpc.v1.Auth.Deployments.Disable",  # an admin RPC
            "rpc.v1.Trellis.Contract.Get",  # a runtime RPC its contract does not use
            "events.v1.Items.Deleted.tools",  # an event the contract does not declare
        )
        for subject in forbidden:
            await nc.publish(subject, b'{"name":"admin"}')
            await expect_violation(nc, errors, "publish", subject)
        await _control_marker(nc, everything, "events.v1.Items.Created.marker")
        assert not set(forbidden) & set(everything.subjects)

        # still serving after all those refusals
        reply = await observer.request("rpc.v1.Items.Get", b'{"id":"1"}', timeout=2)
        assert json.loads(reply.data)["id"] == "1"

        # uses.core.rpc.call = [Trellis.Catalog]: installing granted its catalog.read gate
        await nc.publish("rpc.v1.Trellis.Catalog", b"{}")
        await _control_marker(nc, everything, "events.v1.Items.Created.marker2")
        assert "rpc.v1.Trellis.Catalog" in everything.subjects
        assert not [e for e in errors if "trellis.catalog" in e.lower()]


async def test_installing_a_service_never_grants_it_admin(tmp_path: Path) -> None:
    """A service may declare a use of an admin RPC; installing it accepts the other gates of
    its uses but never ``admin``, so NATS refuses the admin call."""
    sneaky = Contract(
        "sneaky@v1",
        kind="service",
        display_name="Sneaky",
        description="Wants admin RPCs.",
        uses={"auth": trellis_auth.use(rpc=["Auth.Deployments.List"])},
    )
    async with local_deployment(tmp_path / "b") as stack:
        key = SessionKey.generate()
        await stack.install(sneaky, "sneaky", key)
        admin = await stack.admin()
        [deployment] = [
            d
            for d in (await admin.call("Auth.Deployments.List", {})).unwrap().deployments
            if d.name == "sneaky"
        ]
        assert "admin" not in deployment.capabilities
        errors: list[str] = []
        nc = await stack.raw_participant(key, sneaky.digest, errors)
        await nc.publish("rpc.v1.Auth.Deployments.List", b"{}", reply=nc.new_inbox())
        await expect_violation(nc, errors, "publish", "rpc.v1.Auth.Deployments.List")


async def test_rpc_to_a_target_not_declared_in_uses_is_refused(tmp_path: Path) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        pricing_key, billing_key, inventory_key = (SessionKey.generate() for _ in range(3))
        await stack.install(pricing, "pricing", pricing_key)
        await stack.install(billing, "billing", billing_key)
        await stack.install(inventory, "inventory", inventory_key)
        prices_seen = await _serve(stack, pricing_key, pricing.digest, ["rpc.v1.Prices.Get"])
        items_seen = await _serve(stack, inventory_key, inventory.digest, ["rpc.v1.Items.Get"])

        # billing declared uses.pricing.rpc.call = [Prices.Get]: the call goes through
        billing_errors: list[str] = []
        billing_nc = await stack.raw_participant(billing_key, billing.digest, billing_errors)
        reply = await billing_nc.request("rpc.v1.Prices.Get", b'{"sku":"a"}', timeout=2)
        assert json.loads(reply.data) == {"subject": "rpc.v1.Prices.Get", "echo": {"sku": "a"}}
        assert len(prices_seen.messages) == 1

        # ... but it never declared inventory: NATS refuses the publish
        await billing_nc.publish("rpc.v1.Items.Get", b'{"id":"1"}', reply=billing_nc.new_inbox())
        await expect_violation(billing_nc, billing_errors, "publish", "rpc.v1.Items.Get")
        # and it cannot listen in on pricing's requests either
        await billing_nc.subscribe("rpc.v1.Prices.Get", queue="svc")
        await expect_violation(billing_nc, billing_errors, "subscribe", "rpc.v1.Prices.Get")

        # inventory declares no use of pricing: refused the same way
        inventory_errors: list[str] = []
        inventory_nc = await stack.raw_participant(
            inventory_key, inventory.digest, inventory_errors
        )
        await inventory_nc.publish("rpc.v1.Prices.Get", b'{"sku":"b"}', reply="_INBOX.x")
        await expect_violation(inventory_nc, inventory_errors, "publish", "rpc.v1.Prices.Get")

        # a request that pricing does receive proves the refused ones were never delivered
        await billing_nc.request("rpc.v1.Prices.Get", b'{"sku":"c"}', timeout=2)
        assert [json.loads(m.data)["sku"] for m in prices_seen.messages] == ["a", "c"]
        assert items_seen.messages == []


async def test_a_cli_participant_cannot_serve_or_spy_on_service_subjects(tmp_path: Path) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        key = SessionKey.generate()
        await stack.install(inventory, "inventory", key)
        await _serve(stack, key, inventory.digest, ["rpc.v1.Items.Get"])
        errors: list[str] = []
        admin_key = stack.bundle.admin_key()
        nc = await stack.raw_participant(admin_key, trellis_cli.digest, errors)
        for subject in (
            "rpc.v1.Items.Get",  # a service's RPC
            "rpc.v1.Auth.Deployments.Create",  # the runtime's own RPC
            ">",
            "_INBOX.>",
            "events.v1.Items.Created.*",  # not in trellis.cli@v1's uses
        ):
            await nc.subscribe(subject, queue="svc")
            await expect_violation(nc, errors, "subscribe", subject)
        await nc.publish("events.v1.Items.Created.tools", b"{}")
        await expect_violation(nc, errors, "publish", "events.v1.Items.Created.tools")
        # while what it does declare keeps working on the same connection
        admin = RpcClient(nc, admin_key, rpc_targets(trellis_cli))
        listed = (await admin.call("Auth.Deployments.List", {})).unwrap()
        assert [d.name for d in listed.deployments] == ["inventory"]


# --------------------------------------------------------------------------- refusals


async def test_connection_refusals_carry_reason_codes_and_spare_legitimate_sessions(
    tmp_path: Path,
) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        key = SessionKey.generate()
        await stack.install(inventory, "inventory", key)
        await stack.install(pricing, "pricing", SessionKey.generate())
        await _serve(stack, key, inventory.digest, ["rpc.v1.Items.Get"])
        observer = await stack.raw_runtime()
        admin = await stack.admin()
        ok_before = decisions(stack)["ok"]

        calls: list[bool] = []
        stop = asyncio.Event()

        async def legitimate_traffic() -> None:
            while not stop.is_set():
                listed = await admin.call("Auth.Deployments.List", {}, timeout=2)
                served = await observer.request("rpc.v1.Items.Get", b'{"id":"x"}', timeout=2)
                calls.append(listed.is_ok() and b'"echo"' in served.data)
                await asyncio.sleep(0.01)

        traffic = asyncio.create_task(legitimate_traffic())
        await eventually(lambda: len(calls) >= 3, what="traffic before the attacks")
        during_start = len(calls)

        now = int(time.time())
        attacker = SessionKey.generate()
        good = token_dict(connect_token(key, inventory.digest, now))

        # forged: the installed service's key, signed by someone else
        forged = token_dict(connect_token(attacker, inventory.digest, now))
        forged["sessionKey"] = key.public_key
        await refused(stack, json.dumps(forged), "invalid_signature")
        # a genuine signature over another iat than the one presented
        await refused(stack, json.dumps({**good, "iat": now - 1}), "invalid_signature")
        # stale and future tokens (31 s outside the window), correctly signed
        await refused(stack, connect_token(key, inventory.digest, now - 31), "iat_out_of_range")
        # ahead of the runtime's clock: computed afresh, with margin, since time passes here
        ahead = int(time.time()) + 35
        await refused(stack, connect_token(key, inventory.digest, ahead), "iat_out_of_range")
        # a well-formed token from a key nobody installed
        await refused(stack, connect_token(attacker, inventory.digest, now), "session_not_found")
        # correctly signed, but for a digest that is not the installed one
        await refused(stack, connect_token(key, pricing.digest, now), "contract_changed")
        # malformed
        for bad in (
            "not json",
            "[]",
            "null",
            json.dumps({**good, "iat": str(now)}),
            json.dumps({**good, "sessionKey": 12345}),
            json.dumps({**good, "v": 2}),
            json.dumps({**good, "admin": True}),
            json.dumps({k: v for k, v in good.items() if k != "sig"}),
            json.dumps({**good, "contractDigest": "x" * 2500}),
        ):
            await refused(stack, bad, "invalid_auth_token")
        # no token at all
        await refused(stack, None, "auth_token_required")

        during_end = len(calls)
        await eventually(lambda: len(calls) >= during_end + 3, what="traffic after the attacks")
        stop.set()
        await traffic
        assert all(calls), calls
        assert during_end > during_start  # traffic kept flowing while refusals were answered
        assert decisions(stack)["ok"] == ok_before  # nothing refused above was admitted
        # and the installed service still connects (a fresh token bound to its connection)
        nc = await stack.raw_participant(key, inventory.digest)
        assert nc.is_connected


async def test_a_captured_token_is_refused_once_31_s_old(tmp_path: Path) -> None:
    clock = Clock()
    async with local_deployment(tmp_path / "b", clock=clock) as stack:
        key = SessionKey.generate()
        await stack.install(inventory, "inventory", key)
        captured = connect_token(key, inventory.digest, int(clock()))
        first = await stack.raw_sentinel(captured)
        assert first.is_connected
        clock.offset = 31.0  # the runtime now lives 31 s later
        try:
            await refused(stack, captured, "iat_out_of_range")
            # the key holder simply signs a fresh one
            fresh = await stack.raw_sentinel(connect_token(key, inventory.digest, int(clock())))
            assert fresh.is_connected
        finally:
            clock.offset = 0.0


async def test_a_captured_connect_token_cannot_open_a_second_connection(tmp_path: Path) -> None:
    """Issue 11 item 8: a token signs only its ``iat`` and digest; within the 30 s window a
    copy used to open any number of connections as its session key."""
    async with local_deployment(tmp_path / "b") as stack:
        key = SessionKey.generate()
        await stack.install(inventory, "inventory", key)
        callout = stack.runtime.callout
        assert callout is not None
        now = int(time.time())

        # upstream's form (no nonceSig): admitted once, refused when it comes again
        plain = connect_token(key, inventory.digest, now - 2)
        first = await stack.raw_sentinel(plain)
        assert first.is_connected
        await refused(stack, plain, "token_replayed")
        assert first.is_connected  # the refusal spares the connection that used it

        # our form, bound to the nonce of the connection it was made for: never valid on
        # another connection (each gets a fresh nonce) ...
        bound = connect_token(key, inventory.digest, now - 1, nonce="captured-connection-nonce")
        await refused(stack, bound, "invalid_signature")
        decision = await callout.decide(bound, nonce="captured-connection-nonce")
        assert decision.reason is None
        # ... nor once its nonceSig is stripped (the plain token it contains was used)
        stripped = token_dict(bound)
        del stripped["nonceSig"]
        await refused(stack, json.dumps(stripped), "token_replayed")

        # the key holder's own connections never collide, even several in one second
        connections = [await stack.raw_participant(key, inventory.digest) for _ in range(3)]
        assert all(nc.is_connected for nc in connections)


# --------------------------------------------------------------------------- escapes


async def test_subject_escape_probes_are_refused_by_nats(tmp_path: Path) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        key, other = SessionKey.generate(), SessionKey.generate()
        await stack.install(inventory, "inventory", key)
        await stack.install(pricing, "pricing", other)
        admin_key = stack.bundle.admin_key()
        observer = await stack.raw_runtime()
        everything = Collector()
        await observer.subscribe(">", cb=everything.add)
        await settle(observer)
        errors: list[str] = []
        nc = await stack.raw_participant(key, inventory.digest, errors)

        # its own inbox is fine
        await nc.subscribe(f"{key.inbox_prefix}.>")
        await settle(nc)
        for subject in (
            ">",
            "_INBOX.>",
            f"{other.inbox_prefix}.>",  # another service's replies
            f"{admin_key.inbox_prefix}.>",  # the operator's replies
            "$SYS.>",
            "$JS.API.>",
            f"$KV.{PRINCIPALS_BUCKET}.>",
            "$KV.trellis_deployments.>",
            "events.>",
            "rpc.>",
        ):
            await nc.subscribe(subject)
            await expect_violation(nc, errors, "subscribe", subject)
        forbidden = (
            f"$KV.{PRINCIPALS_BUCKET}.{key.public_key}",  # rewrite its own principal
            f"$JS.API.STREAM.DELETE.KV_{PRINCIPALS_BUCKET}",
            "$JS.API.STREAM.CREATE.mine",
            "$SYS.REQ.SERVER.PING",
            f"{admin_key.inbox_prefix}.spoofed",  # an unsolicited "reply" to the operator
            "$SYS.REQ.USER.AUTH",  # pose as the server towards the callout
        )
        for subject in forbidden:
            await nc.publish(subject, b'{"kind":"user","capabilities":["admin"]}')
            await expect_violation(nc, errors, "publish", subject)
        await _control_marker(nc, everything, "events.v1.Items.Created.marker")
        assert not set(forbidden) & set(everything.subjects)
        assert errors == [e for e in errors if "permissions violation" in e]

        # the control plane is untouched and the operator still gets in
        assert stack.runtime.cp is not None
        principal = await stack.runtime.cp.principals.get(key.public_key)
        assert principal is not None
        assert principal.capabilities == ("service", "trellis.core::catalog.read")
        admin = await stack.admin()
        assert (await admin.call("Auth.Deployments.List", {})).is_ok()


async def test_the_runtime_never_answers_outside_the_callers_inbox(tmp_path: Path) -> None:
    """Every service may publish ``rpc.v1.Auth.Requests.Validate``.  NATS checks the
    publisher's right to the subject, not to the reply subject, and lets the responder
    answer once to whatever reply it received.  The runtime must therefore refuse to answer
    to a reply subject outside the caller's inbox, or any service could make it write
    ``$KV.trellis_principals.<operator>`` (locking the operator out) or forge events."""
    async with local_deployment(tmp_path / "b") as stack:
        key = SessionKey.generate()
        await stack.install(inventory, "inventory", key)
        admin_key = stack.bundle.admin_key()
        observer = await stack.raw_runtime()
        everything = Collector()
        await observer.subscribe(">", cb=everything.add)
        await settle(observer)
        nc = await stack.raw_participant(key, inventory.digest)

        targets = (
            f"$KV.{PRINCIPALS_BUCKET}.{admin_key.public_key}",
            "events.v1.Auth.Sessions.Revoked",
            "victim.subject",
            "_INBOX.someone_else_16.reply",
        )
        validate = rpc_targets(builtin.trellis_auth, include_own=True)["Auth.Requests.Validate"]
        client = RpcClient(nc, key, {"Auth.Requests.Validate": validate})
        for reply in targets:
            # no headers at all, and a correctly signed request with a foreign reply subject
            await nc.publish(validate.subject, b"{}", reply=reply)
            body = b'{"sessionKey":"x","subject":"y","payloadHash":"z","iat":0,"requestId":"r"}'
            headers = request_headers(key, validate.subject, body, int(time.time()), ulid(), None)
            await nc.publish(validate.subject, body, reply=reply, headers=headers)
        await settle(nc)

        # a proper call from the same service is answered (a bad proof is refused as
        # upstream does, with AuthError): the runtime was listening
        answered = await client.call(
            "Auth.Requests.Validate",
            {
                "sessionKey": key.public_key,
                "subject": "rpc.v1.Items.Get",
                "payloadHash": "A" * 43,
                "iat": int(time.time()),
                "requestId": "r1",
                "proof": "A" * 86,
                "capabilities": [],
            },
        )
        assert isinstance(answered, Err) and answered.error.reason == "invalid_signature", answered
        # the runtime answered that call after reading every probe (one subscription, in
        # order): once the observer has seen that answer, any reply to a probe is there too
        await eventually(
            lambda: any(s.startswith(key.inbox_prefix + ".") for s in everything.subjects),
            what="the runtime's answer, seen by the observer",
        )
        assert not set(targets) & set(everything.subjects), everything.subjects

        assert stack.runtime.cp is not None
        principal = await stack.runtime.cp.principals.get(admin_key.public_key)
        assert principal is not None and "admin" in principal.capabilities
        admin = await stack.admin()
        assert (await admin.call("Auth.Deployments.List", {})).is_ok()


@asynccontextmanager
async def _pricing_service(stack: LocalDeployment, key: SessionKey) -> AsyncIterator[None]:
    """pricing served by the library's RpcServer, resolving callers from the principals
    bucket through its own (callout-granted, read-only) access."""
    nc = await stack.raw_participant(key, pricing.digest)
    principals = PrincipalCache()
    await principals.start(nc.jetstream(), read_only=True)
    server = RpcServer(nc, pricing, principals)

    @server.handler("Prices.Get")
    async def get(req: PriceQuery, ctx: RequestContext) -> Ok[Price]:
        return Ok(Price(sku=req.sku, cents=100))

    await server.start()
    try:
        yield
    finally:
        await server.stop()
        await principals.stop()


async def test_a_service_resolves_callers_from_the_principals_bucket(tmp_path: Path) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        pricing_key, billing_key = SessionKey.generate(), SessionKey.generate()
        await stack.install(pricing, "pricing", pricing_key)
        await stack.install(billing, "billing", billing_key)
        async with _pricing_service(stack, pricing_key):
            billing_nc = await stack.raw_participant(billing_key, billing.digest)
            client = RpcClient(billing_nc, billing_key, rpc_targets(billing))
            price = (await client.call("Prices.Get", {"sku": "a"})).unwrap()
            assert price == Price(sku="a", cents=100)


async def test_a_service_never_answers_outside_the_callers_inbox(tmp_path: Path) -> None:
    """The same reflection through an ordinary service: a service's response permission
    lets it publish once to any reply subject it receives, so billing could make pricing
    overwrite the operator's principal record unless pricing refuses foreign replies."""
    async with local_deployment(tmp_path / "b") as stack:
        pricing_key, billing_key = SessionKey.generate(), SessionKey.generate()
        await stack.install(pricing, "pricing", pricing_key)
        await stack.install(billing, "billing", billing_key)
        async with _pricing_service(stack, pricing_key):
            billing_nc = await stack.raw_participant(billing_key, billing.digest)
            admin_key = stack.bundle.admin_key().public_key
            body = b'{"sku":"a"}'
            subject = "rpc.v1.Prices.Get"
            headers = request_headers(billing_key, subject, body, int(time.time()), ulid(), None)
            target = f"$KV.{PRINCIPALS_BUCKET}.{admin_key}"
            await billing_nc.publish(subject, body, reply=target, headers=headers)
            # a proper request after it is answered: pricing has read the probe by then
            later = request_headers(billing_key, subject, body, int(time.time()), ulid(), None)
            answered = await billing_nc.request(subject, body, headers=later, timeout=5)
            assert b'"cents"' in answered.data, answered.data
            assert stack.runtime.cp is not None
            entry = await stack.runtime.cp.principals.kv.get(admin_key)
            assert b'"admin"' in (entry.value or b""), entry.value
