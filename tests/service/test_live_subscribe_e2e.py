"""Live subscriptions as a user writes them: filters by param name, and a subscription NATS
refuses raises at once with what to change (instead of an async error nobody sees)."""

from __future__ import annotations

import pytest

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
