"""Requests without a verifiable proof get no answer (docs/protocol.md, "Requests without
a proof"): not into the caller's own inbox, and never into someone else's (issue 11 item 7:
a failed proof made the service publish an ``AuthError`` into the victim's inbox)."""

from __future__ import annotations

import time

import pytest
from examples.inventory.contract import GetItem, inventory_cli

from tests.runtime.support import Collector, eventually
from tests.service.conftest import READ, Inventory
from trellis.auth import SessionKey
from trellis.ids import ulid
from trellis.nats import settle
from trellis.wire import HEADER_SESSION_KEY, request_headers

SUBJECT = "rpc.v1.Items.Get"
BODY = b'{"id":"dune"}'


@pytest.mark.parametrize("headers", ["none", "key only"])
async def test_a_request_without_proof_headers_gets_no_answer(inv: Inventory, headers: str) -> None:
    await inv.service()
    _, key = await inv.user([READ])
    client = await inv.client([READ])
    nc = await inv.dep.raw_participant(key, inventory_cli.digest)  # a bare connection
    probe = nc.new_inbox()
    sub = await nc.subscribe(probe)
    await settle(nc)
    sent = {HEADER_SESSION_KEY: key.public_key} if headers == "key only" else None
    await nc.publish(SUBJECT, BODY, reply=probe, headers=sent)
    # a signed request from the same connection, after it, is answered: the service read
    # the probe first, and an answer to it would have reached this connection first
    later = request_headers(key, SUBJECT, BODY, int(time.time()), ulid(), None)
    answered = await nc.request(SUBJECT, BODY, headers=later, timeout=5)
    assert b'"dune"' in answered.data or b"ItemNotFound" in answered.data, answered.data
    assert sub.pending_msgs == 0
    assert (await client.call("Items.Get", GetItem(id="x"))).is_err()  # still serving


async def test_a_forged_proof_is_never_answered_into_the_victims_inbox(inv: Inventory) -> None:
    """The attacker names the victim's key and the victim's inbox as reply subject: the
    proof cannot verify, so nothing is published there (it used to get an AuthError)."""
    await inv.service()
    _, victim = await inv.user([READ])
    _, attacker = await inv.user([READ])
    observer = await inv.dep.raw_runtime()
    everything = Collector()
    await observer.subscribe(">", cb=everything.add)
    await settle(observer)
    nc = await inv.dep.raw_participant(attacker, inventory_cli.digest)

    target = f"{victim.inbox_prefix}.stolen"
    forged = request_headers(SessionKey.generate(), SUBJECT, BODY, int(time.time()), ulid(), None)
    forged[HEADER_SESSION_KEY] = victim.public_key
    stale = request_headers(victim, SUBJECT, BODY, int(time.time()), ulid(), None)
    stale["proof"] = "A" * 86
    for headers in (forged, stale):
        await nc.publish(SUBJECT, BODY, reply=target, headers=headers)
    # the attacker's own signed request, after them, is answered into its own inbox
    mine = request_headers(attacker, SUBJECT, BODY, int(time.time()), ulid(), None)
    answered = await nc.request(SUBJECT, BODY, headers=mine, timeout=5)
    await eventually(lambda: answered.subject in everything.subjects, what="the answer")
    assert target not in everything.subjects
