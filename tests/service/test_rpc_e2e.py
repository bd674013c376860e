"""RPCs through the real stack: a service connected through the auth callout, a registered
CLI client, signed requests, typed results — and what a caller sees when the service is
gone, dies mid-request, runs as two instances or shuts down gracefully."""

from __future__ import annotations

import asyncio

from examples.inventory.contract import GetItem, Item, ItemExists, ItemNotFound, NewItem

from tests.runtime.support import eventually
from tests.service.conftest import Inventory
from trellis.calls import RpcClient, RpcTarget
from trellis.result import Err, Ok, TransportError, ValidationFailed
from trellis.service import RequestContext, TrellisService

#: every call below passes an explicit timeout; a test waits at most this much longer
#: before declaring the call hung
HANG = 5.0

FAILED = "trellis.request.failed"
UNAVAILABLE = "trellis.request.unavailable"


def _item(item_id: str, category: str = "books") -> dict[str, object]:
    return {"id": item_id, "name": item_id.title(), "category": category, "quantity": 2}


async def _gated_get(service: TrellisService) -> tuple[asyncio.Event, asyncio.Event]:
    """Mount an ``Items.Get`` that signals when it starts and waits for ``release``."""
    entered, release = asyncio.Event(), asyncio.Event()

    @service.rpc("Items.Get")
    async def slow_get(req: GetItem, ctx: RequestContext) -> Ok[Item]:
        entered.set()
        await release.wait()
        return Ok(Item(id=req.id, name="slow", category="books", quantity=1))

    await service.start()
    return entered, release


async def test_a_call_returns_the_output_model(inv: Inventory) -> None:
    await inv.service()
    client = await inv.client()

    created = await client.call("Items.Create", NewItem(id="dune", name="Dune", category="books"))
    assert created == Ok(Item(id="dune", name="Dune", category="books", quantity=0))

    got = await client.call("Items.Get", {"id": "dune"})
    assert isinstance(got, Ok)
    assert isinstance(got.value, Item)
    assert got.value == created.value


async def test_a_declared_error_arrives_as_its_own_type(inv: Inventory) -> None:
    await inv.service()
    client = await inv.client()

    missing = await client.call("Items.Get", {"id": "no-such-item"})
    assert isinstance(missing, Err)
    assert isinstance(missing.error, ItemNotFound)
    assert missing.error.item_id == "no-such-item"

    assert (await client.call("Items.Create", _item("twice"))).is_ok()
    again = await client.call("Items.Create", _item("twice"))
    assert isinstance(again, Err)
    assert isinstance(again.error, ItemExists)
    assert again.error.item_id == "twice"


async def test_validation_errors_name_every_bad_field(inv: Inventory) -> None:
    await inv.service()
    client = await inv.client()
    bad = {"id": "x y", "name": "", "category": "Not A Category", "quantity": -1}
    wanted = {"/id", "/name", "/category", "/quantity"}

    # the client validates against the contract's input model before sending
    local = await client.call("Items.Create", bad)
    assert isinstance(local, Err)
    assert isinstance(local.error, ValidationFailed)
    assert {issue.path for issue in local.error.issues} == wanted

    # and the service validates what it receives: send the same body unchecked
    target = RpcTarget("Items.Create", "inventory@v1", "rpc.v1.Items.Create", None, Item, {})
    raw = RpcClient(client.nc, client.key, {"Items.Create": target}, clock=client.clock)
    try:
        remote = await raw.call("Items.Create", bad)
    finally:
        await raw.close()
    assert isinstance(remote, Err)
    assert isinstance(remote.error, ValidationFailed)
    assert {issue.path for issue in remote.error.issues} == wanted
    assert all(issue.message for issue in remote.error.issues)


async def test_calling_a_stopped_service_fails_with_a_typed_error_not_a_hang(
    inv: Inventory,
) -> None:
    service = await inv.service()
    client = await inv.client()
    assert (await client.call("Items.Create", _item("before"))).is_ok()

    await service.stop()
    result = await asyncio.wait_for(
        client.call("Items.Get", {"id": "before"}, timeout=2.0), 2.0 + HANG
    )
    assert isinstance(result, Err)
    assert isinstance(result.error, TransportError)
    # no responders is retried for up to 1 s, then reported as such
    assert result.error.reason == UNAVAILABLE, result.error


async def test_a_service_killed_mid_request_gives_the_caller_a_transport_error(
    inv: Inventory,
) -> None:
    service = await inv.service(handlers=False, start=False)
    entered, release = await _gated_get(service)
    client = await inv.client()

    call = asyncio.create_task(client.call("Items.Get", {"id": "doomed"}, timeout=1.5))
    await asyncio.wait_for(entered.wait(), HANG)
    await service.nc.close()  # the process "dies": its connection goes, no reply is sent

    result = await asyncio.wait_for(call, 1.5 + HANG)
    release.set()
    assert isinstance(result, Err)
    assert isinstance(result.error, TransportError)
    assert result.error.reason == FAILED, result.error


async def test_the_surviving_instance_keeps_answering_when_the_other_stops(
    inv: Inventory,
) -> None:
    from trellis.auth import SessionKey

    second = SessionKey.generate()
    provisioned = await inv.admin.call(
        "Auth.ServiceInstances.Provision",
        {"name": "inventory", "instanceKey": second.public_key},
    )
    assert provisioned.is_ok(), provisioned

    served_by: list[str] = []
    instances: list[TrellisService] = []
    for key in (inv.key, second):
        service = await inv.service(key, start=False)
        instance = key.public_key

        @service.rpc("Items.Get")
        async def get(req: GetItem, ctx: RequestContext, instance: str = instance) -> Ok[Item]:
            served_by.append(instance)
            return Ok(Item(id=req.id, name=instance, category="books", quantity=0))

        await service.start()
        instances.append(service)
    client = await inv.client()

    # a queue group: both instances take requests
    for n in range(40):
        assert (await client.call("Items.Get", {"id": f"i{n}"})).is_ok()
        if set(served_by) == {inv.key.public_key, second.public_key}:
            break
    assert set(served_by) == {inv.key.public_key, second.public_key}

    await instances[0].stop()
    served_by.clear()
    for n in range(20):
        result = await client.call("Items.Get", {"id": f"after{n}"}, timeout=2.0)
        assert isinstance(result, Ok), result
    assert set(served_by) == {second.public_key}


async def test_stop_lets_an_in_flight_request_finish(inv: Inventory) -> None:
    service = await inv.service(handlers=False, start=False)
    entered, release = await _gated_get(service)
    client = await inv.client()

    call = asyncio.create_task(client.call("Items.Get", {"id": "in-flight"}, timeout=4.0))
    await asyncio.wait_for(entered.wait(), HANG)
    stopping = asyncio.create_task(service.stop(drain_timeout=4.0))
    await eventually(lambda: not service._server._subs, what="unsubscribed")
    # while it drains, the service takes no new request; the one in flight goes on
    late = await client.call("Items.Get", {"id": "late"}, timeout=0.5)
    assert isinstance(late, Err)
    assert isinstance(late.error, TransportError)
    assert not stopping.done()
    assert service._server.inflight == 1
    release.set()

    result = await asyncio.wait_for(call, 4.0 + HANG)
    assert result == Ok(Item(id="in-flight", name="slow", category="books", quantity=1))
    await asyncio.wait_for(stopping, HANG)
    assert service.nc.is_closed or service.nc.is_draining
