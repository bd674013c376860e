"""Requests without the proof headers (docs/protocol.md, "Requests without a proof"): a
caller on a valid session gets upstream's typed ``AuthError`` in its own inbox, and nothing
is ever published to a reply subject outside every session's inbox."""

from __future__ import annotations

import json

import pytest
from examples.inventory.contract import inventory_cli

from tests.runtime.support import Collector, eventually
from tests.service.conftest import READ, Inventory
from trellis.nats import settle
from trellis.result import AuthError, TrellisError
from trellis.wire import HEADER_SESSION_KEY, HEADER_STATUS, STATUS_ERROR

SUBJECT = "rpc.v1.Items.Get"
BODY = b'{"id":"dune"}'


def _auth_reason(reply_headers: dict[str, str] | None, data: bytes) -> str:
    """Decode a reply as RpcClient does for an error reply; the AuthError's reason."""
    assert reply_headers is not None and reply_headers.get(HEADER_STATUS) == STATUS_ERROR
    error = TrellisError.from_wire(json.loads(data), {})
    assert isinstance(error, AuthError), error
    return error.reason


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (None, "missing_session_key"),
        ("key only", "missing_proof"),
    ],
)
async def test_a_request_without_proof_headers_gets_the_typed_auth_error(
    inv: Inventory, headers: str | None, reason: str
) -> None:
    await inv.service()
    _, key = await inv.user([READ])
    # a bare nats-py connection on a valid session: its inbox is the session's
    nc = await inv.dep.raw_participant(key, inventory_cli.digest)
    sent = {HEADER_SESSION_KEY: key.public_key} if headers else None

    reply = await nc.request(SUBJECT, BODY, timeout=5, headers=sent)

    assert _auth_reason(reply.headers, reply.data) == reason


async def test_a_request_without_a_session_key_is_answered_only_into_an_inbox(
    inv: Inventory,
) -> None:
    """Without a key nothing ties the reply subject to the caller: only a subject inside
    some session's inbox is answered (only that session can read it), never KV, events or
    any other subject the service may answer once (docs/protocol.md)."""
    await inv.service()
    observer = await inv.dep.raw_runtime()
    everything = Collector()
    await observer.subscribe(">", cb=everything.add)
    await settle(observer)
    _, key = await inv.user([READ])
    nc = await inv.dep.raw_participant(key, inventory_cli.digest)
    targets = (
        "$KV.trellis_principals.victim",
        "events.v1.Items.Created",
        "_INBOX.short.reply",  # not a session inbox: 5 key characters, not 16
        "_INBOX",
    )
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await settle(nc)
    for reply in targets:
        await nc.publish(SUBJECT, BODY, reply=reply)
    # answered: the same request with the caller's own inbox as reply, sent last; the
    # service answers in order, so the observer sees any reply to a probe before this one
    await nc.publish(SUBJECT, BODY, reply=inbox)
    answered = await sub.next_msg(timeout=5)
    assert _auth_reason(answered.headers, answered.data) == "missing_session_key"
    await eventually(lambda: inbox in everything.subjects, what="the answer, seen by NATS")
    assert not set(targets) & set(everything.subjects), everything.subjects
