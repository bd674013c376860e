"""Typed KV handles through the real stack: the service only knows the alias, the bucket is
the one the runtime provisioned, values are the declared model, and expected failures come
back as ``Err(KVError)``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from examples.inventory.contract import Item
from pydantic import ValidationError as PydanticValidationError

from tests.service.conftest import Inventory
from trellis.result import Err, KVError, Ok
from trellis.service import KvEntry

WAIT = 10.0


def _item(item_id: str, quantity: int = 1) -> Item:
    return Item(id=item_id, name=item_id.title(), category="books", quantity=quantity)


async def test_a_kv_round_trip_with_the_model(inv: Inventory) -> None:
    service = await inv.service(handlers=False, start=False)
    items = service.kv.items
    assert items.model is Item
    assert await items.get("dune") is None
    assert await items.keys() == []

    revision = await items.put("dune", _item("dune"))
    entry = await items.get("dune")
    assert entry == KvEntry("dune", _item("dune"), revision)
    assert isinstance(entry.value, Item)

    # a mapping is validated into the model; an invalid one is refused before writing
    await items.put("hyperion", {"id": "hyperion", "name": "H", "category": "books", "quantity": 2})
    with pytest.raises(PydanticValidationError):
        await items.put("bad", {"id": "bad"})

    exists = await items.create("dune", _item("dune", 9))
    assert isinstance(exists, Err)
    assert isinstance(exists.error, KVError)
    assert exists.error.reason == "exists"
    assert exists.error.key == "dune"

    stale = await items.update("dune", _item("dune", 5), revision + 100)
    assert isinstance(stale, Err)
    assert stale.error.reason == "wrong_revision"
    updated = await items.update("dune", _item("dune", 5), revision)
    assert isinstance(updated, Ok)
    assert updated.value > revision
    again = await items.update("dune", _item("dune", 6), revision)  # the old revision is gone
    assert isinstance(again, Err) and again.error.reason == "wrong_revision"
    current = await items.get("dune")
    assert current is not None and current.value.quantity == 5

    assert sorted(await items.keys()) == ["dune", "hyperion"]
    await items.delete("dune")
    await items.delete("never-there")  # deleting a missing key is not an error
    assert await items.get("dune") is None
    assert await items.keys() == ["hyperion"]
    created = await items.create("dune", _item("dune", 7))  # a deleted key can be created
    assert isinstance(created, Ok)

    with pytest.raises(AttributeError):
        service.kv.undeclared  # noqa: B018


async def test_watch_yields_current_values_then_changes(inv: Inventory) -> None:
    service = await inv.service(handlers=False, start=False)
    items = service.kv.items
    await items.put("a", _item("a"))
    await items.put("b", _item("b"))
    await items.put("a", _item("a", 2))  # only the latest value of a key is current

    updates: asyncio.Queue[KvEntry[Item] | None] = asyncio.Queue()

    async def watch(stream: AsyncIterator[KvEntry[Item] | None]) -> None:
        async for entry in stream:
            await updates.put(entry)

    stream = items.watch()
    task = asyncio.create_task(watch(stream))
    try:
        initial = [await asyncio.wait_for(updates.get(), WAIT) for _ in range(2)]
        assert {(e.key, e.value.quantity) for e in initial if e} == {("a", 2), ("b", 1)}
        assert await asyncio.wait_for(updates.get(), WAIT) is None  # the current values end

        await items.put("c", _item("c", 3))
        await items.delete("b")  # a deletion yields nothing
        await items.put("a", _item("a", 4))
        changes = [await asyncio.wait_for(updates.get(), WAIT) for _ in range(2)]
        assert [(e.key, e.value.quantity) for e in changes if e] == [("c", 3), ("a", 4)]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await stream.aclose()  # type: ignore[attr-defined]

    # neither the watch nor keys() leaves a consumer behind on the bucket
    bucket = service.info.resources.kv["items"].bucket
    js = (await inv.dep.raw_runtime()).jetstream()
    assert sorted(await items.keys()) == ["a", "c"]
    assert (await js.stream_info(f"KV_{bucket}")).state.consumer_count == 0
