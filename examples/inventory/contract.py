"""The inventory contract: RPCs, a declared error, an event with a param token, a KV bucket,
a job queue and a dependency on ``trellis.core@v1``.

Build it with ``trellis contract build examples.inventory.contract:inventory``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from trellis import Contract, TrellisError, consumer, event, job, kv, rpc
from trellis.contracts import trellis_core


class GetItem(BaseModel):
    id: str = Field(min_length=1, max_length=64)


class NewItem(BaseModel):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1)
    category: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    quantity: int = Field(default=0, ge=0)


class Item(BaseModel):
    id: str
    name: str
    category: str
    quantity: int


class ItemCreated(BaseModel):
    id: str
    name: str
    category: str


class AuditEntry(BaseModel):
    event: str
    item_id: str
    category: str
    seen_at: str


class Reindex(BaseModel):
    category: str


class ReindexResult(BaseModel):
    items: int


class ItemNotFound(TrellisError):
    """No item has this id."""

    item_id: str


class ItemExists(TrellisError):
    """An item with this id already exists."""

    item_id: str


# Typed references: pass these to ``call``, ``service.rpc``, ``publish``, ``subscribe`` and
# ``service.kv[...]`` and the type checker knows every payload, result and error.
GET_ITEM = rpc(GetItem, Item, errors=[ItemNotFound], call=["items.read"])
CREATE_ITEM = rpc(NewItem, Item, errors=[ItemExists], call=["items.write"])
ITEM_CREATED = event(ItemCreated, params=["/category"], subscribe=["items.read"])
ITEMS = kv(Item, purpose="Item records by id")
AUDIT = kv(AuditEntry, purpose="What the audit consumer saw, by event id", history=1)

inventory = Contract(
    "inventory@v1",
    kind="service",
    display_name="Inventory",
    description="Owns item records.",
    capabilities={
        "items.read": "Read items",
        "items.write": "Create and change items",
    },
    rpc={"Items.Get": GET_ITEM, "Items.Create": CREATE_ITEM},
    events={"Items.Created": ITEM_CREATED},
    kv={"items": ITEMS, "audit": AUDIT},
    jobs={"reindex": job(Reindex, ReindexResult, max_deliver=5)},
    event_consumers={"audit": consumer(self_events=["Items.Created"])},
    uses={"core": trellis_core.use(rpc=["Trellis.Catalog"])},
)

#: the contract of a command-line client of the inventory (an ``agent`` participant: the
#: kind upstream runtimes accept for command-line tools)
inventory_cli = Contract(
    "inventory-cli@v1",
    kind="agent",
    display_name="Inventory CLI",
    description="A command-line client that reads and creates items.",
    uses={
        "inventory": inventory.use(rpc=["Items.Get", "Items.Create"], subscribe=["Items.Created"]),
    },
)
