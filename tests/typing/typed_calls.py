"""Static expectations of the typed API, checked by ``mypy --strict`` (in ``.ci/run`` and by
``tests/test_typed_api.py``): what a user's checker sees for calls, handlers, KV and events
when they name surfaces by the contract's specs."""

from __future__ import annotations

from typing import Any, assert_type

from examples.inventory.contract import (
    GET_ITEM,
    ITEM_CREATED,
    ITEMS,
    GetItem,
    Item,
    ItemCreated,
    ItemNotFound,
)

from trellis import Err, Ok, Result, TrellisClient, TrellisError, TrellisService
from trellis.events import EventMessage
from trellis.service import KvHandle, RequestContext


async def calls(client: TrellisClient) -> None:
    typed = await client.call(GET_ITEM, GetItem(id="1"))
    assert_type(typed, Result[Item, ItemNotFound | TrellisError])
    match typed:
        case Ok(item):
            assert_type(item, Item)
        case Err(ItemNotFound() as missing):
            assert_type(missing, ItemNotFound)
        case Err(error):
            assert_type(error, ItemNotFound | TrellisError)

    from_mapping = await client.call(GET_ITEM, {"id": "1"})
    assert_type(from_mapping, Result[Item, ItemNotFound | TrellisError])

    dynamic = await client.call("Items.Get", {"id": "1"})
    assert_type(dynamic, Result[Any, TrellisError])


def handlers(service: TrellisService) -> None:
    @service.rpc(GET_ITEM)
    async def get_item(req: GetItem, ctx: RequestContext) -> Result[Item, ItemNotFound]:
        assert_type(req, GetItem)
        return Err(ItemNotFound(item_id=req.id))

    assert_type(service.kv[ITEMS], KvHandle[Item])
    assert_type(service.kv["items"], KvHandle[Any])


async def events(client: TrellisClient, service: TrellisService) -> None:
    async def on_created(event: EventMessage[ItemCreated]) -> None:
        assert_type(event.payload, ItemCreated)

    await client.subscribe(ITEM_CREATED, on_created)
    published = await service.publish(
        ITEM_CREATED, ItemCreated(id="1", name="Dune", category="books")
    )
    assert_type(published, Result[str, TrellisError])
