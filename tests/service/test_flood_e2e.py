"""One user cannot knock a service off NATS (issue 11 item 4).

A flood of signed requests with 900 KB headers once slowed a service's read loop (nats-py
parsed every header block) until nats-server cut it off as a slow consumer; the requests it
held then died with the connection's reply rights.  Now a header block beyond 16 KiB is not
parsed (the request is dropped unanswered), and a service whose connection is cut comes
back with its reply rights and serves again."""

from __future__ import annotations

import time

from examples.inventory.contract import GetItem, Item
from nats.aio.msg import Msg

from tests.runtime.support import eventually
from tests.service.conftest import READ, Inventory
from trellis.ids import RequestIds
from trellis.nats.headers import MAX_HEADER_BLOCK
from trellis.result import Err, Ok
from trellis.service import RequestContext
from trellis.wire import request_headers

SUBJECT = "rpc.v1.Items.Get"
BODY = b'{"id":"x"}'


async def test_a_signed_request_with_a_huge_header_block_is_dropped_unparsed(
    inv: Inventory,
) -> None:
    service = await inv.service()
    _, key = await inv.user([READ])
    nc = (await inv.connect(key)).nc  # the attacker speaks raw NATS with its valid session
    answers: list[Msg] = []

    async def collect(msg: Msg) -> None:
        answers.append(msg)

    await nc.subscribe(f"{key.inbox_prefix}.probe.*", cb=collect)
    ids = RequestIds()

    def signed(pad: int) -> dict[str, str]:
        headers = request_headers(key, SUBJECT, BODY, int(time.time()), ids.next(), None)
        if pad:
            headers["x-pad"] = "p" * pad
        return headers

    dropped = service._server.dropped
    huge = signed(900_000)
    await nc.publish(SUBJECT, BODY, reply=f"{key.inbox_prefix}.probe.huge", headers=huge)
    # positive evidence: a later, ordinary request is answered; the huge one never is
    small = signed(MAX_HEADER_BLOCK // 2)
    await nc.publish(SUBJECT, BODY, reply=f"{key.inbox_prefix}.probe.small", headers=small)
    await eventually(lambda: len(answers) == 1, what="the ordinary request answered")
    assert answers[0].subject.endswith(".small")
    assert service._server.dropped == dropped + 1


async def test_a_service_cut_off_by_nats_comes_back_and_serves(inv: Inventory) -> None:
    service = await inv.service(handlers=False, start=False)

    @service.rpc("Items.Get")
    async def get(req: GetItem, ctx: RequestContext) -> Ok[Item]:
        return Ok(Item(id=req.id, name="back", category="books", quantity=1))

    await service.start()
    client = await inv.client([READ])
    assert isinstance(await client.call("Items.Get", {"id": "before"}), Ok)
    assert inv.dep.runtime.tracker is not None
    kicked = await inv.dep.runtime.tracker.kick(inv.key.public_key)
    assert kicked == 1
    await eventually(lambda: service.nc.stats["reconnects"] == 1, what="the service reconnected")
    # the new connection has its own reply rights: new requests are answered
    answer = await client.call("Items.Get", {"id": "after"}, timeout=10)
    assert answer == Ok(Item(id="after", name="back", category="books", quantity=1))
    assert not isinstance(answer, Err)
