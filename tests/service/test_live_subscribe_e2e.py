"""Live subscriptions as a user writes them: filters by param name, and a subscription NATS
refuses raises at once with what to change (instead of an async error nobody sees)."""

from __future__ import annotations

import pytest

from tests.runtime.support import eventually
from tests.service.conftest import READ, WRITE, Inventory
from trellis.events import (
    EventDefinition,
    SubscriptionRefused,
    filter_subject,
    live_subscribe,
)
from trellis.service import EventMessage

TAGGED = EventDefinition(
    "Job.Done", "work@v1", "events.v1.Job.Done.{/tag}.{/meta/zone}", ("/tag", "/meta/zone"), None
)


async def _ignore(event: EventMessage) -> None:
    return None


def test_filters_name_params_by_pointer_or_by_name() -> None:
    assert filter_subject(TAGGED, {"tag": "work"}) == "events.v1.Job.Done.work.*"
    assert filter_subject(TAGGED, {"/tag": "work"}) == "events.v1.Job.Done.work.*"
    assert filter_subject(TAGGED, {"zone": "eu"}) == "events.v1.Job.Done.*.eu"
    assert filter_subject(TAGGED, {"meta/zone": "eu", "tag": "a"}) == "events.v1.Job.Done.a.eu"
    with pytest.raises(ValueError, match=r"no param 'tga'; its params are: 'tag' \(/tag\)"):
        filter_subject(TAGGED, {"tga": "work"})
    with pytest.raises(ValueError, match="filtered twice"):
        filter_subject(TAGGED, {"tag": "a", "/tag": "b"})


async def test_a_filter_by_param_name_selects_the_matching_events(inv: Inventory) -> None:
    await inv.service()
    client = await inv.client()
    books: list[EventMessage] = []
    everything: list[EventMessage] = []

    async def on_books(event: EventMessage) -> None:
        books.append(event)

    async def on_any(event: EventMessage) -> None:
        everything.append(event)

    await client.subscribe("Items.Created", on_books, filters={"category": "books"})
    await client.subscribe("Items.Created", on_any)
    for item_id, category in (("g1", "games"), ("b1", "books")):
        created = await client.call(
            "Items.Create", {"id": item_id, "name": item_id, "category": category}
        )
        assert created.is_ok(), created
    await eventually(lambda: len(everything) == 2, within=10.0, what="both events")
    await eventually(lambda: len(books) == 1, within=10.0, what="the books event")
    assert [e.subject for e in books] == ["events.v1.Items.Created.books"]


async def test_a_refused_subscription_raises_naming_the_subject_and_capability(
    inv: Inventory,
) -> None:
    await inv.service()
    writer = await inv.client([WRITE])  # the contract uses Items.Created; the user lacks READ
    with pytest.raises(SubscriptionRefused) as refused:
        await writer.subscribe("Items.Created", _ignore)
    assert refused.value.subject == "events.v1.Items.Created.*"
    assert refused.value.capabilities == (READ,)
    assert "events.v1.Items.Created.*" in str(refused.value)
    assert READ in str(refused.value) and "trellis user grant" in str(refused.value)

    # by raw subject: an event the client's contract does not use at all
    heartbeat = EventDefinition(
        "Health.Heartbeat", "trellis.health@v1", "events.v1.Health.Heartbeat", (), None
    )
    with pytest.raises(SubscriptionRefused, match=r"Health\.Heartbeat"):
        await live_subscribe(writer.nc, heartbeat, _ignore)
    # the connection is still usable, and an allowed call still works
    created = await writer.call("Items.Create", {"id": "w1", "name": "w1", "category": "x"})
    assert created.is_ok(), created
