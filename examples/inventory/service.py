"""The inventory service: handlers for the inventory contract.

Run it against a running deployment (``trellis dev``) once installed::

    trellis keys new --out inventory.seed
    trellis service install examples.inventory.contract:inventory --name inventory \\
        --public-key "$(trellis keys show inventory.seed)"
    python -m examples.inventory.service --seed inventory.seed --trellis http://127.0.0.1:PORT

Add ``--processes N`` to serve it from N processes in the RPC queue group (or run
``trellis serve examples.inventory.service:serve --processes N --seed ... --trellis ...``).
"""

from __future__ import annotations

import argparse
import logging

from examples.inventory.contract import (
    AUDIT,
    CREATE_ITEM,
    GET_ITEM,
    ITEM_CREATED,
    ITEMS,
    AuditEntry,
    GetItem,
    Item,
    ItemCreated,
    ItemExists,
    ItemNotFound,
    NewItem,
    inventory,
)
from trellis import Err, Ok, Result, run
from trellis.cli.serve import supervise
from trellis.ids import now_iso
from trellis.service import EventMessage, RequestContext, TrellisService, connect_service

log = logging.getLogger("inventory")


def mount(service: TrellisService) -> None:
    """Attach the handlers; kept apart from ``main`` so tests and the demo reuse it."""

    items = service.kv[ITEMS]  # a KvHandle[Item]

    @service.rpc(GET_ITEM)
    async def get_item(req: GetItem, ctx: RequestContext) -> Result[Item, ItemNotFound]:
        entry = await items.get(req.id)
        return Ok(entry.value) if entry else Err(ItemNotFound(item_id=req.id))

    @service.rpc(CREATE_ITEM)
    async def create_item(req: NewItem, ctx: RequestContext) -> Result[Item, ItemExists]:
        item = Item(**req.model_dump())
        created = await items.create(item.id, item)
        if isinstance(created, Err):
            if created.error.reason != "exists":  # a limit: not a declared error of Items.Create
                raise created.error
            return Err(ItemExists(item_id=item.id))
        published = await service.publish(
            ITEM_CREATED, ItemCreated(id=item.id, name=item.name, category=item.category)
        )
        if isinstance(published, Err):
            log.warning("Items.Created for %s not published: %s", item.id, published.error)
        return Ok(item)

    @service.on_event("audit")
    async def audit(event: EventMessage[ItemCreated]) -> Result[None, None]:
        await service.kv[AUDIT].put(
            event.id or event.subject,
            AuditEntry(
                event=event.name,
                item_id=event.payload.id,
                category=event.payload.category,
                seen_at=now_iso(),
            ),
        )
        return Ok(None)


async def serve(session_key: str, trellis_url: str) -> None:
    """The entry point ``trellis serve`` runs in every process: connect, mount, serve."""
    logging.basicConfig(level=logging.INFO)
    service = await connect_service(inventory, session_key=session_key, trellis_url=trellis_url)
    mount(service)
    await service.run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", required=True, help="seed file (or env:VAR)")
    parser.add_argument("--trellis", required=True, help="the runtime's HTTP URL")
    parser.add_argument("--processes", type=int, default=1, help="service processes to run")
    args = parser.parse_args()
    if args.processes > 1:
        return supervise(
            "examples.inventory.service:serve", args.processes, args.seed, args.trellis
        )
    run(serve(args.seed, args.trellis))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
