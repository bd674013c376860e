"""An upgrade drops the connections still on the old contract digest (issue 11 item 8): an
instance running the old code was left connected, serving the old contract with grants
derived from it, until it happened to reconnect.  Now it is kicked, its reconnect with the
old digest is refused (``contract_changed``), and an instance on the new digest keeps
serving.  A real nats-server and runtime (trellis.testing)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from nats.aio.client import Client as NatsClient

from tests.runtime.support import decisions, eventually, pricing
from tests.runtime.test_lifecycle import _pricing_with_list
from trellis.auth import SessionKey
from trellis.nats import settle
from trellis.nats.callout import AuthorizationRequest
from trellis.runtime.connections import ConnectionTracker
from trellis.runtime.state import Connection
from trellis.testing import LocalDeployment, local_deployment


async def _served(observer: NatsClient, subject: str) -> bool:
    """Whether someone answers ``subject``."""
    try:
        await observer.request(subject, b"{}", timeout=2)
    except Exception:
        return False
    return True


async def _serve(nc: NatsClient, subject: str) -> None:
    async def answer(msg: object) -> None:
        await msg.respond(b"{}")  # type: ignore[attr-defined]

    await nc.subscribe(subject, queue="pricing@v1", cb=answer)
    await settle(nc)


def _tracker(stack: LocalDeployment) -> ConnectionTracker:
    assert stack.runtime.tracker is not None
    return stack.runtime.tracker


async def _only_record(stack: LocalDeployment, key: SessionKey) -> Connection:
    records = await _tracker(stack).list(key.public_key)
    assert len(records) == 1, records
    return records[0]


async def test_an_upgrade_drops_instances_still_on_the_old_digest(tmp_path: Path) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        old_key, new_key = SessionKey.generate(), SessionKey.generate()
        await stack.install(pricing, "pricing", old_key)
        admin = await stack.admin()
        observer = await stack.raw_runtime()
        # the old code, which keeps trying to come back as a real service would
        old = await stack.raw_participant(old_key, pricing.digest, max_reconnect_attempts=-1)
        await _serve(old, "rpc.v1.Prices.Get")
        assert await _served(observer, "rpc.v1.Prices.Get")
        assert (await _only_record(stack, old_key)).contract_digest == pricing.digest

        newer = _pricing_with_list()
        upgraded = await admin.call(
            "Auth.Deployments.Upgrade",
            {"name": "pricing", "contract": newer.manifest, "publicKey": new_key.public_key},
        )
        assert upgraded.unwrap().deployment.contract_digest == newer.digest

        # the old-digest instance is dropped, and its reconnect is refused
        await eventually(lambda: not old.is_connected, what="old instance dropped")
        await eventually(
            lambda: decisions(stack).get("contract_changed", 0) >= 1, what="refused reconnect"
        )
        assert not old.is_connected

        # instances on the new digest (a new key, and the old key with the new code) serve
        fresh = await stack.raw_participant(new_key, newer.digest)
        await _serve(fresh, "rpc.v1.Prices.List")
        restarted = await stack.raw_participant(old_key, newer.digest)
        await _serve(restarted, "rpc.v1.Prices.Get")
        # another pass over the deployment's keys (as a second upgrade of the same digest
        # makes) spares them: only the old digest is kicked, not the session key
        tracker = _tracker(stack)
        assert await tracker.kick_stale([old_key.public_key, new_key.public_key], newer.digest) == 0
        again = await admin.call(
            "Auth.Deployments.Upgrade",
            {"name": "pricing", "contract": newer.manifest, "publicKey": new_key.public_key},
        )
        assert again.is_ok(), again
        assert await _served(observer, "rpc.v1.Prices.List")
        assert await _served(observer, "rpc.v1.Prices.Get")
        assert fresh.is_connected and restarted.is_connected
        # a kick deletes the record: theirs are there, with the digest they came with
        assert (await _only_record(stack, old_key)).contract_digest == newer.digest
        assert (await _only_record(stack, new_key)).contract_digest == newer.digest


async def test_a_connection_admitted_while_an_upgrade_lands_is_dropped(tmp_path: Path) -> None:
    """The callout read the old principal and recorded the connection only after the
    upgrade's kick pass had listed the records: the record's own check drops it."""
    async with local_deployment(tmp_path / "b") as stack:
        key = SessionKey.generate()
        await stack.install(pricing, "pricing", key)
        tracker = _tracker(stack)
        cp = stack.runtime.cp
        assert cp is not None
        late = await stack.raw_participant(key, pricing.digest)
        record = await _only_record(stack, key)
        old_principal = await cp.principals.get(key.public_key)
        assert old_principal is not None and old_principal.contract_digest == pricing.digest
        # the upgrade's kick pass sees no record yet
        await cp.connections.delete(f"{key.public_key}.{record.server_id}.{record.client_id}")
        admin = await stack.admin()
        newer = _pricing_with_list()
        upgraded = await admin.call(
            "Auth.Deployments.Upgrade",
            {"name": "pricing", "contract": newer.manifest, "publicKey": key.public_key},
        )
        assert upgraded.is_ok(), upgraded
        assert late.is_connected  # nothing knew of it

        # then the callout records what it admitted on the principal it had read
        request = AuthorizationRequest(
            user_nkey=record.user_nkey,
            server_id=record.server_id,
            server_name=None,
            server_xkey=None,
            account=None,
            client_info={"id": record.client_id},
            connect_opts={},
            auth_token=None,
            issuer=record.server_id,
            expires_at=None,
        )
        await tracker.opened(request, old_principal)
        await eventually(lambda: not late.is_connected, what="late old-digest connection dropped")
        assert await tracker.list(key.public_key) == []

        # a connection admitted on the current principal stays
        current = await stack.raw_participant(key, newer.digest)
        record = await _only_record(stack, key)
        principal = await cp.principals.get(key.public_key)
        assert principal is not None
        await tracker.opened(
            dataclasses.replace(request, client_info={"id": record.client_id}), principal
        )
        assert len(await tracker.list(key.public_key)) == 1  # a kick deletes the record
        assert current.is_connected
