"""Events through the real stack: durable consumer groups (at least once, across restarts,
redelivered after an ``Err``), token-filtered live subscriptions, validated publishing,
JetStream de-duplication and the service heartbeat."""

from __future__ import annotations

import asyncio
import json

import pytest
from examples.inventory.contract import ItemCreated
from nats.aio.msg import Msg

from tests.runtime.support import eventually
from tests.service.conftest import READ, Inventory
from trellis.ids import ulid
from trellis.nats import settle
from trellis.participant import NotInContract
from trellis.result import Err, Ok, Result, ValidationFailed
from trellis.runtime.install import EVENTS_STREAM
from trellis.service import EventMessage, TrellisService

WAIT = 10.0  # generous bound for an event to arrive; the tests finish as soon as it does


def _created(item_id: str, category: str = "books") -> dict[str, str]:
    return {"id": item_id, "name": item_id.title(), "category": category}


class Seen:
    """An event handler that records every delivery and answers ``Ok``."""

    def __init__(self) -> None:
        self.events: list[EventMessage] = []

    async def __call__(self, event: EventMessage) -> Result[None, None]:
        self.events.append(event)
        return Ok(None)

    def ids(self) -> list[str]:
        return [e.payload.id for e in self.events]


async def _consumer(inv: Inventory, handler: Seen) -> TrellisService:
    service = await inv.service(start=False)
    service.on_event("audit")(handler)
    await service.start()
    return service


async def test_a_durable_event_published_while_the_consumer_is_down_is_consumed_later(
    inv: Inventory,
) -> None:
    first = Seen()
    service = await _consumer(inv, first)
    assert (await service.publish("Items.Created", _created("live"))).is_ok()
    await eventually(lambda: first.ids() == ["live"], within=WAIT, what="first delivery")
    await service.stop()

    # nobody consumes the group now; a publisher-only instance emits an event
    publisher = await inv.service(handlers=False, start=False)
    published = await publisher.publish("Items.Created", _created("while-down", "games"))
    assert isinstance(published, Ok)
    await publisher.stop()

    # a new instance with the same key picks the group up where it was left
    second = Seen()
    await _consumer(inv, second)
    await eventually(lambda: second.ids() == ["while-down"], within=WAIT, what="catch-up")
    [event] = second.events
    assert event.name == "Items.Created"
    assert event.subject == "events.v1.Items.Created.games"
    assert isinstance(event.payload, ItemCreated)
    assert event.id == published.value
    assert first.ids() == ["live"]  # acked once, never delivered again


async def test_an_err_result_gets_the_event_redelivered(inv: Inventory) -> None:
    deliveries: list[int] = []

    async def flaky(event: EventMessage) -> Result[None, str]:
        deliveries.append(event.delivery)
        return Err("not yet") if event.delivery == 1 else Ok(None)

    service = await inv.service(start=False)
    service.on_event("audit")(flaky)
    await service.start()
    assert (await service.publish("Items.Created", _created("retry"))).is_ok()

    # the group's backoff delays the second delivery by its first step (1 s)
    await eventually(lambda: deliveries == [1, 2], within=WAIT, what="redelivery")
    # Ok acked it: the group's consumer holds nothing unacknowledged, so no third delivery
    js = (await inv.dep.raw_runtime()).jetstream()

    async def settled() -> bool:  # the ack reaches the server shortly after the handler
        [group] = await js.consumers_info(EVENTS_STREAM)
        return (
            group.num_ack_pending == 0 and group.ack_floor.stream_seq == group.delivered.stream_seq
        )

    for _ in range(int(WAIT / 0.02)):
        if await settled():
            break
        await asyncio.sleep(0.02)
    assert await settled()
    assert deliveries == [1, 2]


@pytest.mark.parametrize("param", ["/category", "category"])  # by pointer or by name
async def test_a_live_subscription_filtered_by_a_token_sees_only_matching_events(
    inv: Inventory, param: str
) -> None:
    await inv.service()
    client = await inv.client([READ, "inventory::items.write"])
    books: list[EventMessage] = []
    everything: list[EventMessage] = []

    async def on_books(event: EventMessage) -> None:
        books.append(event)

    async def on_any(event: EventMessage) -> None:
        everything.append(event)

    await client.subscribe("Items.Created", on_books, filters={param: "books"})
    await client.subscribe("Items.Created", on_any)

    for item_id, category in (("g1", "games"), ("b1", "books"), ("g2", "games"), ("b2", "books")):
        created = await client.call(
            "Items.Create", {"id": item_id, "name": item_id, "category": category}
        )
        assert created.is_ok(), created

    await eventually(lambda: len(everything) == 4, within=WAIT, what="all four events")
    await eventually(lambda: len(books) == 2, within=WAIT, what="the two books events")
    assert [e.subject for e in books] == [
        "events.v1.Items.Created.books",
        "events.v1.Items.Created.books",
    ]
    assert [e.payload.id for e in books] == ["b1", "b2"]
    assert {e.payload.category for e in everything} == {"books", "games"}


async def test_publishing_validates_the_payload(inv: Inventory) -> None:
    service = await inv.service(handlers=False, start=False)

    missing = await service.publish("Items.Created", {"id": "x"})
    assert isinstance(missing, Err)
    assert isinstance(missing.error, ValidationFailed)
    assert {i.path for i in missing.error.issues} == {"/name", "/category"}

    # valid for the model, but the value cannot be a subject token
    unsafe = await service.publish("Items.Created", _created("x", category="a.b"))
    assert isinstance(unsafe, Err)
    assert isinstance(unsafe.error, ValidationFailed)

    # an event this contract neither declares nor uses is refused before NATS, the same
    # way as a misspelled RPC
    with pytest.raises(NotInContract, match=r"no event to publish 'Auth\.Connections\.Opened'"):
        await service.publish("Auth.Connections.Opened", {})


async def test_the_same_event_id_is_stored_once(inv: Inventory) -> None:
    service = await inv.service(handlers=False, start=False)
    observer = await inv.dep.raw_runtime()
    js = observer.jetstream()
    before = (await js.stream_info("trellis")).state.messages

    event_id = ulid()
    payload = {**_created("dup"), "header": {"id": event_id, "time": "2030-01-01T00:00:00Z"}}
    first = await service.publish("Items.Created", payload)
    again = await service.publish("Items.Created", payload)  # e.g. a retry after a lost ack
    assert first == Ok(event_id)
    assert again == Ok(event_id)
    other = await service.publish("Items.Created", _created("other"))
    assert isinstance(other, Ok) and other.value != event_id

    info = await js.stream_info("trellis")
    assert info.state.messages == before + 2
    stored = await js.get_last_msg("trellis", "events.v1.Items.Created.books")
    assert json.loads(stored.data or b"")["header"]["id"] == other.value


async def test_a_heartbeat_is_a_health_event_describing_the_instance(inv: Inventory) -> None:
    service = await inv.service(handlers=False, start=False)

    @service.health_check("kv")
    async def kv_ok() -> bool:
        return True

    observer = await inv.dep.raw_runtime()
    seen: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_heartbeat(msg: Msg) -> None:
        await seen.put(msg)

    await observer.subscribe("events.v1.Health.Heartbeat", cb=on_heartbeat)
    await settle(observer)

    published = await service.heartbeat()
    assert isinstance(published, Ok)
    msg = await asyncio.wait_for(seen.get(), WAIT)
    body = json.loads(msg.data)
    assert body["header"]["id"] == published.value
    assert body["status"] == "healthy"
    assert [c["name"] for c in body["checks"]] == ["kv"]
    assert body["checks"][0]["status"] == "ok"
    info = body["service"]
    assert info["name"] == "inventory"
    assert info["kind"] == "service"
    assert info["contractId"] == "inventory@v1"
    assert info["contractDigest"] == service.contract.digest
    assert info["runtime"] == "python"
    assert info["instanceId"] == inv.key.public_key[:16]
    assert info["publishIntervalMs"] == 30_000
