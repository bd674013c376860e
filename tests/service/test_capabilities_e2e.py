"""What a contract and a user's grants allow, enforced by the library, by the service's
handler and by NATS itself — and grant changes that apply to the next call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.runtime.support import Price, PriceQuery, billing, eventually, pricing, violation
from tests.service.conftest import READ, WRITE, Inventory
from trellis.auth import SessionKey
from trellis.calls import RpcTarget
from trellis.client import TrellisClient
from trellis.nats import settle
from trellis.participant import NotInContract
from trellis.result import AuthError, Err, Ok, Result, TransportError, TrellisError
from trellis.service import RequestContext

WAIT = 5.0  # a grant reaches the service's principal cache through a KV watch


async def _until(
    attempt: Callable[[], Awaitable[Result[Any, TrellisError]]],
    accept: Callable[[Result[Any, TrellisError]], bool],
    what: str,
) -> Result[Any, TrellisError]:
    """Repeat ``attempt`` until ``accept`` holds (the grant change is still propagating)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not accept(result := await attempt()):
        if loop.time() > deadline:
            pytest.fail(f"{what} not seen within {WAIT} s: last result {result!r}")
        await asyncio.sleep(0.02)
    return result


def _denied(result: Result[Any, TrellisError]) -> bool:
    return (
        isinstance(result, Err)
        and isinstance(result.error, AuthError)
        and result.error.reason == "insufficient_permissions"
    )


async def test_a_service_cannot_call_an_rpc_its_contract_does_not_use(
    inv: Inventory, caplog: pytest.LogCaptureFixture
) -> None:
    # billing@v1 declares it calls pricing's Prices.Get, and nothing of inventory
    pricing_key, billing_key = SessionKey.generate(), SessionKey.generate()
    await inv.dep.install(pricing, "pricing", pricing_key)
    await inv.dep.install(billing, "billing", billing_key)
    prices = await inv.service(pricing_key, handlers=False, start=False, contract=pricing)

    @prices.rpc("Prices.Get")
    async def get_price(req: PriceQuery, ctx: RequestContext) -> Ok[Price]:
        return Ok(Price(sku=req.sku, cents=250))

    await prices.start()
    await inv.service()  # inventory is served too: a refused call is not "no responders"
    service = await inv.service(billing_key, handlers=False, contract=billing)

    # declared in ``uses``: allowed
    price = await service.call("Prices.Get", {"sku": "tea"})
    assert price == Ok(Price(sku="tea", cents=250))

    # not declared: refused by the library before anything is sent, naming what it can call
    with pytest.raises(NotInContract, match=r"no RPC to call 'Items.Get'.*Prices.Get"):
        await service.call("Items.Get", {"id": "x"})

    # and by NATS: the connection was never granted the subject. A raw publish is reported
    # as a permissions violation (inventory, which serves it, never sees it) ...
    caplog.set_level(logging.WARNING, logger="trellis.connection")
    await service.nc.publish("rpc.v1.Items.Get", b'{"id":"x"}')
    await settle(service.nc)
    expected = violation("publish", "rpc.v1.Items.Get")
    await eventually(
        lambda: any(expected in r.getMessage() for r in caplog.records),
        what="a permissions violation",
    )
    assert service.nc.is_connected

    # ... and a signed request that bypasses the library's check fails fast as denied,
    # not after its timeout
    client = service._rpc
    client._targets["Items.Get"] = RpcTarget(
        "Items.Get", "inventory@v1", "rpc.v1.Items.Get", None, None, {}
    )
    forced = await asyncio.wait_for(client.call("Items.Get", {"id": "x"}, timeout=30.0), 10.0)
    assert isinstance(forced, Err)
    assert isinstance(forced.error, TransportError)
    assert forced.error.reason == "trellis.request.denied", forced.error


async def test_grants_and_revocations_apply_to_the_next_call_without_reconnecting(
    inv: Inventory,
) -> None:
    await inv.service()
    user_id, key = await inv.user([READ])
    client: TrellisClient = await inv.connect(key)
    counter = iter(range(1000))

    async def create() -> Result[Any, TrellisError]:
        n = next(counter)
        return await client.call(
            "Items.Create", {"id": f"item{n}", "name": "x", "category": "books"}
        )

    refused = await create()
    assert _denied(refused), refused
    assert isinstance(refused, Err) and "inventory::items.write" in refused.error.message
    # upstream's services say the same in the context: what is required, what is held
    assert refused.error.context == {
        "requiredCapabilities": [WRITE],
        "userCapabilities": [READ],
    }
    # what it holds still works (a declared error is an authorized answer)
    got = await client.call("Items.Get", {"id": "item0"})
    assert isinstance(got, Err) and got.error.type == "ItemNotFound"

    granted = await inv.admin.call("Auth.Users.Update", {"id": user_id, "grant": [WRITE]})
    assert isinstance(granted, Ok), granted
    assert sorted(granted.value.capabilities) == [READ, WRITE]
    ok = await _until(create, lambda r: not _denied(r), "the grant to apply")
    assert isinstance(ok, Ok), ok

    revoked = await inv.admin.call("Auth.Users.Update", {"id": user_id, "revoke": [WRITE]})
    assert isinstance(revoked, Ok), revoked
    assert _denied(await _until(create, _denied, "the revocation to apply"))
    still = await client.call("Items.Get", {"id": "item0"})
    assert isinstance(still, Err) and still.error.type == "ItemNotFound"

    # the same connection all along
    assert client.nc.is_connected
    assert client.nc.stats["reconnects"] == 0
