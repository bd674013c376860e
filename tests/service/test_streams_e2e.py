"""Stream resources (our ``resources.streams`` extension) through the real stack."""

from __future__ import annotations

from pydantic import BaseModel

from trellis import Contract, stream
from trellis.result import Err, Ok
from trellis.testing import LocalDeployment


class Placeholder(BaseModel):
    id: str


orders = Contract(
    "orders@v1",
    kind="service",
    display_name="Orders",
    description="Keeps an order log in a work-queue stream.",
    streams={
        "log": stream(purpose="Order log", subjects=["orders.*"], retention="workqueue"),
    },
)


async def test_stream_resource_round_trip_with_logical_subjects_only(
    trellis_deployment: LocalDeployment,
) -> None:
    key = await trellis_deployment.install(orders)
    service = await trellis_deployment.connect_service(orders, key)
    try:
        handle = service.streams.log
        assert handle.subjects == ["orders.*"]
        first = await handle.publish("orders.created", {"id": "o-1"}, msg_id="o-1")
        again = await handle.publish("orders.created", {"id": "o-1"}, msg_id="o-1")
        second = await handle.publish("orders.paid", Placeholder(id="o-1"))
        assert isinstance(first, Ok) and isinstance(second, Ok)
        assert isinstance(again, Ok) and again.value == first.value  # de-duplicated
        outside = await handle.publish("invoices.created", {"id": "x"})
        assert isinstance(outside, Err) and outside.error.type == "ValidationError"
        wildcard = await handle.publish("orders.*", {"id": "x"})
        assert isinstance(wildcard, Err)

        messages = await handle.fetch("worker", batch=10, wait=2.0)
        assert [m.subject for m in messages] == ["orders.created", "orders.paid"]
        assert messages[0].data == b'{"id":"o-1"}'
        for message in messages:
            await message.ack()
        assert await handle.fetch("worker", batch=10, wait=0.3) == []
    finally:
        await service.stop(drain_timeout=1.0)
