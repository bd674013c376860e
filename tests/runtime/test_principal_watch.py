"""A service cannot blind the runtime or other services to revocations (issue 11 item 2):
services held ``$JS.API.CONSUMER.DELETE`` on the principals bucket, and deleting the others'
watch consumers kept a revoked user's calls accepted for 12 s per deletion.  A real
nats-server and runtime (trellis.testing)."""

from __future__ import annotations

from pathlib import Path

from examples.inventory.contract import inventory, inventory_cli

from tests.runtime.support import eventually, expect_violation
from trellis.principals import PRINCIPALS_BUCKET, Principal
from trellis.testing import local_deployment

STREAM = f"KV_{PRINCIPALS_BUCKET}"


async def test_a_service_cannot_delete_the_principal_watches_of_others(tmp_path: Path) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        key = await stack.install(inventory)
        js = (await stack.raw_runtime()).jetstream()
        watches = {c.name for c in await js.consumers_info(STREAM)}
        assert watches  # the runtime's own watch, at least
        errors: list[str] = []
        nc = await stack.raw_participant(key, inventory.digest, errors)
        for name in watches:
            # neither delete it nor redefine it (a create naming it would update its config,
            # e.g. send its deliveries elsewhere): services create unnamed consumers only
            for subject in (
                f"$JS.API.CONSUMER.DELETE.{STREAM}.{name}",
                f"$JS.API.CONSUMER.CREATE.{STREAM}.{name}",
                f"$JS.API.CONSUMER.CREATE.{STREAM}.{name}.$KV.{PRINCIPALS_BUCKET}.>",
            ):
                await nc.publish(subject, b"{}")
                await expect_violation(nc, errors, "publish", subject)
        assert watches <= {c.name for c in await js.consumers_info(STREAM)}


async def test_a_lost_principal_watch_is_recreated_and_sees_later_changes(
    tmp_path: Path,
) -> None:
    """Whoever may delete the runtime's watch consumer (the operator, a server restart), the
    watch comes back by itself (nats-py recreates an ordered consumer after two missed
    heartbeats, 1 s apart) and the cache sees changes made after the loss."""
    async with local_deployment(tmp_path / "b") as stack:
        await stack.install(inventory)
        js = (await stack.raw_runtime()).jetstream()
        for consumer in await js.consumers_info(STREAM):
            await js.delete_consumer(STREAM, consumer.name)
        key = await stack.user("fay", inventory_cli, ["inventory::items.read"])
        # written straight to the bucket, not through the runtime (which updates its own
        # cache for its own writes): only the watch can bring this change in
        kv = await js.key_value(PRINCIPALS_BUCKET)
        entry = await kv.get(key.public_key)
        record = Principal.model_validate_json(entry.value or b"")
        revoked_record = record.model_copy(update={"capabilities": ()})
        await kv.put(key.public_key, revoked_record.model_dump_json(by_alias=True).encode())

        def revoked() -> bool:
            principal = stack.runtime.principals.get(key.public_key)
            return principal is not None and principal.capabilities == ()

        await eventually(revoked, within=15, what="the revocation, seen by a recreated watch")
