"""Connection tracking: a record per live connection, gone when the connection closes.

Disconnect advisories name a callout-admitted connection by server and client id (their
``user`` field is the JWT's name, not the user nkey); records used to pile up because the
tracker matched on the nkey.  A real nats-server and runtime (trellis.testing)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from examples.inventory.contract import inventory, inventory_cli

from trellis.runtime.connections import ConnectionTracker
from trellis.testing import local_deployment


async def _live(tracker: ConnectionTracker, *keys: str) -> int:
    return sum([len(await tracker.list(key)) for key in keys])


async def _settles_at(tracker: ConnectionTracker, keys: tuple[str, ...], expected: int) -> int:
    """The number of records for ``keys`` once it reaches ``expected`` (or after 10 s)."""
    deadline = time.monotonic() + 10
    for _ in range(200):
        found = await _live(tracker, *keys)
        if found == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    return found


async def test_closed_connections_leave_no_record_behind(tmp_path: Path) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        tracker = stack.runtime.tracker
        assert tracker is not None
        service_key = await stack.install(inventory)
        user_key = await stack.user("dana", inventory_cli, ["inventory::items.read"])
        keys = (service_key.public_key, user_key.public_key)
        others = len(await tracker.list())  # the test kit's admin session

        for _ in range(3):  # connect and close, repeatedly: nothing may accumulate
            service_nc = await stack.raw_participant(service_key, inventory.digest)
            user_nc = await stack.raw_participant(user_key, inventory_cli.digest)
            assert await _settles_at(tracker, keys, 2) == 2
            await service_nc.close()
            assert await _settles_at(tracker, keys, 1) == 1
            await user_nc.close()
            assert await _settles_at(tracker, keys, 0) == 0

        assert len(await tracker.list()) == others
        # a listing filter is a session key, never a wildcard
        assert await tracker.list("*") == [] and await tracker.list(">") == []
