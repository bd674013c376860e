"""Service lifecycle against a real nats-server and the real runtime: disable/enable,
runtime and nats-server restarts, upgrades and dependency checks."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import nats
from examples.inventory.contract import inventory
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from pydantic import BaseModel

from tests.runtime.support import (
    Price,
    PriceQuery,
    billing,
    decisions,
    eventually,
    expect_violation,
    pricing,
    refused,
)
from trellis.auth import SessionKey, connect_token
from trellis.contracts import Contract, event, rpc
from trellis.contracts.builtin import DeploymentError
from trellis.nats import settle
from trellis.testing import LocalDeployment, local_deployment

DISCONNECT_BOUND = 2.0  # the requirement: a disabled service is gone within 2 s


async def _serve_items(nc: NatsClient) -> None:
    async def answer(msg: Msg) -> None:
        await msg.respond(json.dumps({"served": json.loads(msg.data)["id"]}).encode())

    await nc.subscribe("rpc.v1.Items.Get", queue="inventory@v1", cb=answer)
    await settle(nc)


async def _ask_items(observer: NatsClient, item: str) -> Any:
    reply = await observer.request("rpc.v1.Items.Get", json.dumps({"id": item}).encode(), timeout=2)
    return json.loads(reply.data)


async def _served_again(observer: NatsClient, *, within: float = 5.0, item: str = "again") -> None:
    """Retry a request to the service until it answers (it may still be reconnecting)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            assert await _ask_items(observer, item) == {"served": item}
            return
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def _control_plane_snapshot(stack: LocalDeployment, keys: list[str]) -> dict[str, Any]:
    admin = await stack.admin()
    deployments = (await admin.call("Auth.Deployments.List", {})).unwrap()
    catalog = (await admin.call("Trellis.Catalog", {})).unwrap()
    cp = stack.runtime.cp
    assert cp is not None
    bindings = {d.name: await cp.bindings.get(d.name) for d in deployments.deployments}
    principals = {k: await cp.principals.get(k) for k in keys}
    await admin.close()
    return {
        "deployments": [d.model_dump() for d in deployments.deployments],
        "catalog": sorted((c.id, c.digest) for c in catalog.contracts),
        "bindings": {n: b.model_dump() if b else None for n, b in bindings.items()},
        "principals": {k: p.model_dump() if p else None for k, p in principals.items()},
    }


# --------------------------------------------------------------------------- disable


async def test_disabling_a_service_disconnects_it_within_2_s_and_refuses_it(
    tmp_path: Path,
) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        key = SessionKey.generate()
        await stack.install(inventory, "inventory", key)
        admin = await stack.admin()
        observer = await stack.raw_runtime()
        # a service that keeps trying to come back, as a real one would
        service = await stack.raw_participant(key, inventory.digest, max_reconnect_attempts=-1)
        await _serve_items(service)
        # rarely (about 1 run in 12 under load) the first request right after the subscribe
        # saw no responders; what is tested here is the disable, so wait until it is served
        await _served_again(observer, item="a")

        loop = asyncio.get_running_loop()
        started = loop.time()
        disabled = await admin.call("Auth.Deployments.Disable", {"name": "inventory"})
        assert disabled.unwrap().deployment.disabled
        await eventually(
            lambda: not service.is_connected, within=DISCONNECT_BOUND, what="disconnect"
        )
        assert loop.time() - started <= DISCONNECT_BOUND
        # its own reconnect attempts are refused by the callout
        await eventually(
            lambda: decisions(stack).get("service_disabled", 0) >= 1, what="refused reconnect"
        )
        assert not service.is_connected
        # as is a brand-new connection with a perfectly valid token
        await refused(
            stack, connect_token(key, inventory.digest, int(time.time())), "service_disabled"
        )
        # and nobody serves its subjects any more
        try:
            await observer.request("rpc.v1.Items.Get", b'{"id":"b"}', timeout=0.5)
            raise AssertionError("a disabled service still answered")
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            pass

        # enabling lets it back in: the reconnecting client returns by itself
        enabled = await admin.call("Auth.Deployments.Enable", {"name": "inventory"})
        assert not enabled.unwrap().deployment.disabled
        await eventually(lambda: service.is_connected, what="automatic reconnect")
        await _served_again(observer)
        fresh = await stack.raw_participant(key, inventory.digest)
        assert fresh.is_connected


async def test_removing_a_service_kicks_it_and_forgets_its_key(tmp_path: Path) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        key = SessionKey.generate()
        await stack.install(inventory, "inventory", key)
        admin = await stack.admin()
        service = await stack.raw_participant(key, inventory.digest, max_reconnect_attempts=-1)
        assert (await admin.call("Auth.Deployments.Remove", {"name": "inventory"})).is_ok()
        await eventually(lambda: not service.is_connected, within=DISCONNECT_BOUND)
        await eventually(
            lambda: decisions(stack).get("session_not_found", 0) >= 1, what="refused reconnect"
        )
        catalog = (await admin.call("Trellis.Catalog", {})).unwrap()
        assert "inventory@v1" not in {c.id for c in catalog.contracts}


# --------------------------------------------------------------------------- restarts


async def test_a_runtime_restart_loses_nothing_and_services_return_unaided(
    tmp_path: Path,
) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        inventory_key, pricing_key, billing_key = (SessionKey.generate() for _ in range(3))
        await stack.install(inventory, "inventory", inventory_key)
        await stack.install(pricing, "pricing", pricing_key)
        await stack.install(billing, "billing", billing_key)
        admin_key = stack.bundle.admin_key().public_key
        keys = [inventory_key.public_key, pricing_key.public_key, billing_key.public_key, admin_key]
        before = await _control_plane_snapshot(stack, keys)
        assert before["bindings"]["inventory"]["kv"]  # something real was provisioned
        assert all(before["principals"].values())

        service = await stack.raw_participant(
            inventory_key, inventory.digest, max_reconnect_attempts=-1
        )
        await _serve_items(service)
        observer = await stack.raw_runtime()
        assert stack.runtime.tracker is not None
        [connection] = await stack.runtime.tracker.list(inventory_key.public_key)

        await stack.runtime.stop()
        # while no runtime runs, the service loses its connection (kicked by the server
        # operator); its reconnects cannot be admitted until a runtime answers the callout
        system = await nats.connect(stack.nats_url, user_credentials=str(stack.bundle.system_creds))
        try:
            await system.request(
                f"$SYS.REQ.SERVER.{connection.server_id}.KICK",
                json.dumps({"cid": connection.client_id}).encode(),
                timeout=2,
            )
        finally:
            await system.close()
        await eventually(lambda: not service.is_connected, what="kick while runtime is down")

        await stack.start_new_runtime()
        after = await _control_plane_snapshot(stack, keys)
        assert after == before
        # no operator action: the service's own reconnect loop gets it admitted and served
        await eventually(lambda: service.is_connected, within=10, what="service reconnect")
        assert decisions(stack).get("ok", 0) >= 1
        await _served_again(observer)
        # its grants are the ones derived from the surviving state
        errors: list[str] = []
        billing_nc = await stack.raw_participant(billing_key, billing.digest, errors)
        await billing_nc.publish("rpc.v1.Items.Get", b"{}")
        await expect_violation(billing_nc, errors, "publish", "rpc.v1.Items.Get")


async def test_a_nats_server_restart_keeps_the_state_and_everyone_reconnects(
    tmp_path: Path,
) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        key = SessionKey.generate()
        await stack.install(inventory, "inventory", key)
        keys = [key.public_key, stack.bundle.admin_key().public_key]
        before = await _control_plane_snapshot(stack, keys)
        service = await stack.raw_participant(key, inventory.digest, max_reconnect_attempts=-1)
        await _serve_items(service)

        ok_before = decisions(stack).get("ok", 0)
        await stack.server.astop()
        await eventually(lambda: not service.is_connected, what="server gone")
        await stack.server.astart(ready_within=15)

        # the runtime's own connections and the service reconnect by themselves; the
        # service is admitted again by the callout (a fresh decision after the restart)
        await eventually(lambda: service.is_connected, within=15, what="service reconnect")
        assert decisions(stack).get("ok", 0) > ok_before
        observer = await stack.raw_runtime()
        await _served_again(observer, within=10)
        after = await _control_plane_snapshot(stack, keys)
        assert after == before


# --------------------------------------------------------------------------- upgrades


class PriceList(BaseModel):
    prices: list[Price]


class Empty(BaseModel):
    pass


def _pricing_with_list() -> Contract:
    """pricing@v1 plus one RPC: a compatible change."""
    return Contract(
        "pricing@v1",
        kind="service",
        display_name="Pricing",
        description="Answers prices.",
        rpc={
            "Prices.Get": rpc(PriceQuery, Price, call=["service"]),
            "Prices.List": rpc(Empty, PriceList, call=["service"]),
        },
        events={"Prices.Changed": event(Price, params=["/sku"])},
    )


def _pricing_with_numeric_sku() -> Contract:
    """pricing@v1 whose ``Prices.Get`` input changed a field's type: incompatible."""

    class PriceQuery(BaseModel):  # same schema name, different shape
        sku: int

    return Contract(
        "pricing@v1",
        kind="service",
        display_name="Pricing",
        description="Answers prices.",
        rpc={"Prices.Get": rpc(PriceQuery, Price, call=["service"])},
        events={"Prices.Changed": event(Price, params=["/sku"])},
    )


def _refusal(result: Any) -> DeploymentError:
    assert result.is_err(), result
    error = result.error
    assert isinstance(error, DeploymentError), error
    return error


async def test_upgrades_must_be_compatible_and_dependencies_installed(tmp_path: Path) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        admin = await stack.admin()
        pricing_key, billing_key = SessionKey.generate(), SessionKey.generate()

        # billing requires pricing, which is not installed yet
        missing = await admin.call(
            "Auth.Deployments.Create",
            {"name": "billing", "contract": billing.manifest, "publicKey": billing_key.public_key},
        )
        assert _refusal(missing).reason == "missing_dependency"
        assert (await admin.call("Auth.Deployments.List", {})).unwrap().deployments == []
        await refused(
            stack, connect_token(billing_key, billing.digest, int(time.time())), "session_not_found"
        )

        await stack.install(pricing, "pricing", pricing_key)
        await stack.install(billing, "billing", billing_key)

        # a compatible change (one more RPC) upgrades in place
        newer = _pricing_with_list()
        assert newer.digest != pricing.digest
        upgraded = await admin.call(
            "Auth.Deployments.Upgrade",
            {"name": "pricing", "contract": newer.manifest, "publicKey": pricing_key.public_key},
        )
        assert upgraded.unwrap().deployment.contract_digest == newer.digest
        catalog = (await admin.call("Trellis.Catalog", {})).unwrap()
        assert ("pricing@v1", newer.digest) in {(c.id, c.digest) for c in catalog.contracts}
        # the service now connects with the new digest and serves the new RPC; the old
        # digest is refused
        await refused(
            stack, connect_token(pricing_key, pricing.digest, int(time.time())), "contract_changed"
        )
        errors: list[str] = []
        nc = await stack.raw_participant(pricing_key, newer.digest, errors)
        await nc.subscribe("rpc.v1.Prices.List", queue="pricing@v1")
        await settle(nc)
        await asyncio.sleep(0.05)
        assert errors == []

        # an incompatible change (input field type) is refused and changes nothing
        breaking = _pricing_with_numeric_sku()
        incompatible = await admin.call(
            "Auth.Deployments.Upgrade",
            {
                "name": "pricing",
                "contract": breaking.manifest,
                "publicKey": pricing_key.public_key,
            },
        )
        error = _refusal(incompatible)
        assert error.reason == "incompatible", error
        assert error.problems
        deployment = (await admin.call("Auth.Deployments.Get", {"name": "pricing"})).unwrap()
        assert deployment.deployment.contract_digest == newer.digest
        await refused(
            stack,
            connect_token(pricing_key, breaking.digest, int(time.time())),
            "contract_changed",
        )
