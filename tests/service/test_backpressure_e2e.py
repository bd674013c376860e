"""Back-pressure through the real stack: a service holds at most ``max_pending`` requests
(waiting plus running) and refuses the rest at once with ``trellis.request.unavailable``."""

from __future__ import annotations

import asyncio

from examples.inventory.contract import GetItem, Item, inventory

from tests.runtime.support import eventually
from tests.service.conftest import Inventory
from trellis.result import Err, Ok, TransportError
from trellis.service import RequestContext

UNAVAILABLE = "trellis.request.unavailable"
HANG = 10.0


async def test_a_flood_beyond_the_bound_is_refused_at_once_and_others_are_served_after(
    inv: Inventory,
) -> None:
    service = await inv.dep.connect_service(
        inventory, inv.key, max_concurrency=2, max_pending=4, max_pending_per_caller=4
    )
    release = asyncio.Event()
    running = 0

    @service.rpc("Items.Get")
    async def blocked_get(req: GetItem, ctx: RequestContext) -> Ok[Item]:
        nonlocal running
        running += 1
        await release.wait()
        return Ok(Item(id=req.id, name="held", category="books", quantity=1))

    await service.start()
    server = service._server
    flooder, other = await inv.client(), await inv.client()

    calls = [
        asyncio.create_task(flooder.call("Items.Get", {"id": f"i{n}"}, timeout=HANG))
        for n in range(10 * server.max_pending)
    ]
    # every request beyond the bound is answered while the held ones are still blocked
    await eventually(
        lambda: sum(call.done() for call in calls) == len(calls) - 4,
        within=HANG,
        what="the excess callers answered",
    )
    assert not release.is_set() and running == 2  # two run, two wait for the gate
    refused = [call.result() for call in calls if call.done()]
    assert all(
        isinstance(r, Err) and isinstance(r.error, TransportError) and r.error.reason == UNAVAILABLE
        for r in refused
    ), refused
    # the server never held more than its bound: no task, no verification for the excess
    assert server.inflight == 4
    assert server.peak_pending == 4
    assert server.refused == len(refused) == 36

    # a different caller is refused too while the bound is full ...
    busy = await other.call("Items.Get", {"id": "other"}, timeout=HANG)
    assert isinstance(busy, Err) and busy.error.reason == UNAVAILABLE  # type: ignore[attr-defined]

    # ... and answered once the held requests are released
    release.set()
    held = await asyncio.wait_for(asyncio.gather(*calls), HANG)
    assert sum(isinstance(r, Ok) for r in held) == 4
    answered = await other.call("Items.Get", {"id": "other"}, timeout=HANG)
    assert answered == Ok(Item(id="other", name="held", category="books", quantity=1))
    await eventually(lambda: server.inflight == 0, what="the server idle again")
    assert server.peak_pending == 4


async def test_one_callers_flood_is_refused_while_another_caller_is_still_served(
    inv: Inventory,
) -> None:
    """Issue 11 item 4: one session key holds at most its share of the pending bound."""
    service = await inv.dep.connect_service(inventory, inv.key, max_concurrency=2, max_pending=8)
    release = asyncio.Event()

    @service.rpc("Items.Get")
    async def blocked_get(req: GetItem, ctx: RequestContext) -> Ok[Item]:
        if req.id.startswith("flood"):
            await release.wait()
        return Ok(Item(id=req.id, name="served", category="books", quantity=1))

    await service.start()
    server = service._server
    assert server.max_pending_per_caller == 2  # a quarter of the bound by default
    flooder, other = await inv.client(), await inv.client()
    calls = [
        asyncio.create_task(flooder.call("Items.Get", {"id": f"flood{n}"}, timeout=HANG))
        for n in range(20)
    ]
    await eventually(
        lambda: sum(call.done() for call in calls) == 18, within=HANG, what="the flood refused"
    )
    assert all(
        isinstance(c.result(), Err) and c.result().error.reason == UNAVAILABLE  # type: ignore[union-attr]
        for c in calls
        if c.done()
    )
    assert server.inflight == 2  # the flooder's share: both running, blocking the gate

    # the other caller is not refused: it waits for the gate and is served once it opens
    answer = asyncio.create_task(other.call("Items.Get", {"id": "other"}, timeout=HANG))
    await eventually(lambda: server.inflight == 3, what="the other caller's request held")
    release.set()
    assert await answer == Ok(Item(id="other", name="served", category="books", quantity=1))
    assert sum(isinstance(r, Ok) for r in await asyncio.gather(*calls)) == 2
