"""A service's RPC path on a real nats-server, fed arbitrary requests.

One module-scoped nats-server, ``RpcServer`` serving the inventory's ``Items.Get`` and one
registered caller.  For every example, arbitrary headers (each the right shape, signed,
stale, oversized or anything at all), an arbitrary body and a reply subject in the caller's
inbox, a victim's inbox or elsewhere: the request is answered only when its proof verifies
for a reply subject in the inbox of the key it names, always answered when it was signed
properly, and the service answers a valid call afterwards.  Positive evidence, no sleeps:
after the valid call is answered and the service holds no request, both connections are
settled and every answer the fuzzed request got is in the watcher's queue.

The caller's side too: a responder answering with arbitrary bodies and headers makes the
client's ``call`` return ``Ok`` or a ``TrellisError``, never raise.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
from examples.inventory.contract import GetItem, Item, ItemNotFound, inventory
from hypothesis import event, example, given
from hypothesis import strategies as st
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from tests.fuzz.conftest import fuzz
from tests.fuzz.strategies import DEEP_ARRAY, json_text, json_values
from trellis.auth import SessionKey, rpc_proof, verify_rpc_proof
from trellis.auth.keys import KeyFormatError, inbox_prefix
from trellis.calls import RpcClient, RpcTarget, rpc_targets
from trellis.ids import ulid
from trellis.nats import settle
from trellis.nats.server import NatsServer, free_ports
from trellis.principals import Principal, PrincipalCache
from trellis.result import Err, Ok, TrellisError
from trellis.service.rpc import RequestContext, RpcServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

SUBJECT = "rpc.v1.Items.Get"
READ = "inventory::items.read"
CALLER, VICTIM, STRANGER = SessionKey.generate(), SessionKey.generate(), SessionKey.generate()
_serial = itertools.count()


@dataclass
class Stack:
    server: RpcServer
    service_nc: NatsClient
    caller_nc: NatsClient
    watcher_nc: NatsClient
    watcher: Subscription
    client: RpcClient
    responder_nc: NatsClient
    url: str
    #: what the misbehaving responder answers next: (body, headers)
    answer: tuple[bytes, dict[str, str] | None] = (b"{}", None)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    (port,) = free_ports(1)
    conf = Path(tmp_path_factory.mktemp("nats")) / "nats.conf"
    conf.write_text(f'host: "127.0.0.1"\nport: {port}\n')
    async with NatsServer(conf, client_port=port) as nats_server:
        principals = PrincipalCache()
        principals.put(
            Principal(
                session_key=CALLER.public_key,
                kind="user",
                name="caller",
                contract_id="caller@v1",
                contract_digest="caller",
                capabilities=(READ,),
            )
        )
        service_nc = await nats.connect(nats_server.url)
        caller_nc = await nats.connect(nats_server.url, inbox_prefix=CALLER.inbox_prefix)
        watcher_nc = await nats.connect(nats_server.url)
        responder_nc = await nats.connect(nats_server.url)
        server = RpcServer(service_nc, inventory, principals)

        @server.handler("Items.Get")
        async def get(req: GetItem, ctx: RequestContext) -> Ok[Item]:
            return Ok(Item(id=req.id, name="served", category="books", quantity=1))

        await server.start()
        watcher = await watcher_nc.subscribe(">")  # every reply subject a request may name
        await settle(watcher_nc)
        targets = dict(rpc_targets(inventory, include_own=True))
        for name, output in (("Fake.Typed", Item), ("Fake.Untyped", None)):
            targets[name] = RpcTarget(
                name,
                "fake@v1",
                f"rpc.v1.{name}",
                GetItem if output else None,
                output,
                {ItemNotFound.type: ItemNotFound},
            )
        client = RpcClient(caller_nc, CALLER, targets)
        stack = Stack(
            server,
            service_nc,
            caller_nc,
            watcher_nc,
            watcher,
            client,
            responder_nc,
            nats_server.url,
        )

        async def misbehave(msg: Msg) -> None:
            await responder_nc.publish(msg.reply, stack.answer[0], headers=stack.answer[1])

        await responder_nc.subscribe("rpc.v1.Fake.*", cb=misbehave)
        await settle(responder_nc)
        try:
            yield stack
        finally:
            await client.close()
            await server.stop(drain_timeout=1.0)
            for nc in (caller_nc, watcher_nc, responder_nc, service_nc):
                await nc.close()


# ------------------------------------------------------------------ requests


#: header values nats-py can carry: no CR or LF (the protocol's line breaks)
_value = st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=40).map(str.strip)
_long = st.integers(1, 3000).map(lambda n: "x" * n)


@dataclass(frozen=True)
class Request:
    headers: dict[str, str]
    body: bytes
    reply: str
    signed: bool  # built as a properly signed request to the caller's own inbox


@st.composite
def requests(draw: st.DrawFn) -> Request:
    body = draw(
        st.one_of(
            st.builds(
                lambda i: GetItem(id=i).model_dump_json().encode(), st.text(min_size=1, max_size=20)
            ),
            json_values.map(lambda v: json_text(v).encode()),
            st.binary(max_size=200),
            st.just(DEEP_ARRAY.encode()),
        )
    )
    signer = draw(st.sampled_from([CALLER, VICTIM, STRANGER]))
    iat = int(time.time()) + draw(st.sampled_from([0, 0, 0, -31, 31, 10**12]))
    rid = ulid()
    proof = rpc_proof(signer, SUBJECT, body, iat, rid)
    headers = {
        "session-key": signer.public_key,
        "proof": proof,
        "iat": str(iat),
        "request-id": rid,
    }
    signed = signer is CALLER
    # change, drop or add headers; each change may leave the proof valid or not
    for name in draw(
        st.lists(
            st.sampled_from(
                ["session-key", "proof", "iat", "request-id", "traceparent", "x-extra"]
            ),
            max_size=3,
        )
    ):
        change = draw(st.sampled_from(["drop", "value", "long", "other-key"]))
        if change == "drop":
            headers.pop(name, None)
        elif change == "value":
            headers[name] = draw(_value)
        elif change == "long":
            headers[name] = draw(_long)
        else:
            headers[name] = draw(st.sampled_from([VICTIM, STRANGER, CALLER])).public_key
        kept = name in ("traceparent", "x-extra") and len(headers.get(name, "")) <= 128
        signed = signed and kept
    where = draw(st.sampled_from(["own", "own", "victim", "elsewhere"]))
    owner = {"own": CALLER, "victim": VICTIM}.get(where)
    reply = f"{owner.inbox_prefix}.fuzz.{next(_serial)}" if owner else f"reply.fuzz.{next(_serial)}"
    return Request(headers, body, reply, signed and where == "own")


def _verifies(req: Request) -> bool:
    """Whether the request's proof verifies for a reply subject in its key's inbox: the
    only requests a service may answer (bounds aside)."""
    h = req.headers
    key, proof, rid = h.get("session-key", ""), h.get("proof", ""), h.get("request-id", "")
    try:
        iat = int(h.get("iat", ""))
        prefix = inbox_prefix(key)
    except (ValueError, KeyFormatError):
        return False
    return req.reply.startswith(prefix + ".") and verify_rpc_proof(
        key, proof, SUBJECT, req.body, iat, rid
    )


async def _answers_to(stack: Stack, reply: str) -> list[Msg]:
    """Every message that reached ``reply`` once the service is done with what it holds."""
    for _ in range(10_000):  # a bounded wait on the service's own state, not on time
        if stack.server.inflight == 0:
            break
        await asyncio.sleep(0)
    assert stack.server.inflight == 0
    await settle(stack.service_nc)
    await settle(stack.watcher_nc)
    got = []
    while stack.watcher.pending_msgs:
        msg = stack.watcher._pending_queue.get_nowait()
        stack.watcher._pending_queue.task_done()
        stack.watcher._pending_size -= len(msg.data)
        if msg.subject == reply:
            got.append(msg)
    return got


@fuzz(1.5)
@given(requests())
@example(Request({"session-key": CALLER.public_key, "proof": "x"}, b"{}", "_INBOX.x.y", False))
async def test_a_request_is_answered_only_when_its_proof_verifies(
    stack: Stack, req: Request
) -> None:
    dropped = stack.server.dropped
    await stack.caller_nc.publish(SUBJECT, req.body, reply=req.reply, headers=req.headers)
    # the service keeps answering: a valid call after the fuzzed one
    assert await stack.client.call("Items.Get", GetItem(id="after")) == Ok(
        Item(id="after", name="served", category="books", quantity=1)
    )
    answers = await _answers_to(stack, req.reply)
    event("answered" if answers else "dropped")
    if answers:
        assert _verifies(req), (req, answers[0].data)
        assert len(answers) == 1
    else:
        assert stack.server.dropped == dropped + 1
    if req.signed:
        assert len(answers) == 1, req


# ------------------------------------------------------------------ raw protocol bytes


async def _raw_hpub(url: str, header: bytes, body: bytes, reply: str) -> None:
    """Publish ``header`` verbatim (nats-py would refuse to build it) over a bare socket."""
    host, port = url.removeprefix("nats://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        await reader.readline()  # INFO
        writer.write(b'CONNECT {"verbose":false,"headers":true,"pedantic":false}\r\n')
        writer.write(
            b"HPUB %s %s %d %d\r\n"
            % (SUBJECT.encode(), reply.encode(), len(header), len(header) + len(body))
        )
        writer.write(header + body + b"\r\nPING\r\n")
        await writer.drain()
        while (line := await reader.readline()) and not line.startswith((b"PONG", b"-ERR")):
            pass
    finally:
        writer.close()


_header_line = st.binary(max_size=40).filter(lambda b: b"\r\n" not in b)


@fuzz(0.5)
@given(
    st.one_of(
        st.lists(_header_line, max_size=4).map(
            lambda ls: b"NATS/1.0\r\n" + b"".join(line + b"\r\n" for line in ls) + b"\r\n"
        ),
        _header_line.map(lambda s: b"NATS/1.0 " + s + b"\r\n\r\n"),
        st.binary(min_size=12, max_size=80).map(lambda b: b"NATS/1.0" + b + b"\r\n\r\n"),
    ),
    st.binary(max_size=64),
)
@example(b"NATS/1.0 \xff\xfe\r\n\r\n", b"{}")
@example(b"NATS/1.0\r\nsession-key: \xff\r\nproof: \xfe\r\n\r\n", b"{}")
async def test_raw_header_bytes_never_stop_the_service(
    stack: Stack, header: bytes, body: bytes
) -> None:
    reply = f"{VICTIM.inbox_prefix}.raw.{next(_serial)}"
    await _raw_hpub(stack.url, header, body, reply)
    assert await stack.client.call("Items.Get", GetItem(id="after")) == Ok(
        Item(id="after", name="served", category="books", quantity=1)
    )
    assert await _answers_to(stack, reply) == []
    assert stack.service_nc.is_connected


# ------------------------------------------------------------------ replies


@fuzz()
@given(
    st.sampled_from(["Fake.Typed", "Fake.Untyped"]),
    st.one_of(
        json_values.map(lambda v: json_text(v).encode()),
        st.binary(max_size=100),
        st.just(DEEP_ARRAY.encode()),
        st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "message",
                    "id",
                    "self",
                    "trace_id",
                    "context",
                    "reason",
                    "issues",
                    "itemId",
                    "data",
                ]
            ),
            json_values,
            max_size=5,
        ).map(lambda d: json_text(d).encode()),
    ),
    st.sampled_from([None, {"status": "error"}, {"status": "ok"}]),
)
@example("Fake.Typed", DEEP_ARRAY.encode(), {"status": "error"})
@example("Fake.Untyped", DEEP_ARRAY.encode(), None)
@example("Fake.Typed", b'{"type":"AuthError","self":1}', {"status": "error"})
async def test_any_reply_is_ok_or_a_typed_error(
    stack: Stack, name: str, body: bytes, headers: dict[str, str] | None
) -> None:
    stack.answer = (body, headers)
    result: Any = await stack.client.call(name, {"id": "1"})
    assert isinstance(result, Ok) or (
        isinstance(result, Err) and isinstance(result.error, TrellisError)
    ), result
