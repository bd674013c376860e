"""Contracts and small helpers shared by the runtime integration tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import nats.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from pydantic import BaseModel

from trellis.auth import SessionKey
from trellis.contracts import Contract, event, rpc
from trellis.nats import settle
from trellis.principals import Principal, PrincipalCache
from trellis.testing import LocalDeployment


class PriceQuery(BaseModel):
    sku: str


class Price(BaseModel):
    sku: str
    cents: int


class InvoiceQuery(BaseModel):
    number: str


class Invoice(BaseModel):
    number: str
    total_cents: int


#: a service whose RPC only other services may call (gate: the raw ``service`` capability)
pricing = Contract(
    "pricing@v1",
    kind="service",
    display_name="Pricing",
    description="Answers prices.",
    rpc={"Prices.Get": rpc(PriceQuery, Price, call=["service"])},
    events={"Prices.Changed": event(Price, params=["/sku"])},
)

#: a service that declares it calls ``Prices.Get`` (and nothing of inventory)
billing = Contract(
    "billing@v1",
    kind="service",
    display_name="Billing",
    description="Issues invoices.",
    rpc={"Invoices.Get": rpc(InvoiceQuery, Invoice, call=["service"])},
    uses={"pricing": pricing.use(rpc=["Prices.Get"])},
)


class Clock:
    """A wall clock that a test can move forward (the runtime's ``clock``)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def eventually(
    predicate: Callable[[], bool], *, within: float = 5.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true; fail the test after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"{what} not reached within {within} s")
        await asyncio.sleep(0.02)


def decisions(stack: LocalDeployment) -> dict[str, int]:
    assert stack.runtime.callout is not None
    return stack.runtime.callout.decisions


async def refused(stack: LocalDeployment, token: str | None, reason: str) -> None:
    """Connecting with ``token`` fails with an authorization error and ``reason`` is counted."""
    before = decisions(stack).get(reason, 0)
    with pytest.raises(nats.errors.Error) as info:
        await stack.raw_sentinel(token)
    assert "authorization violation" in str(info.value).lower(), info.value
    await eventually(
        lambda: decisions(stack).get(reason, 0) == before + 1,
        what=f"callout decision {reason!r}",
    )


def violation(kind: str, subject: str) -> str:
    """The text nats-py hands the error callback (it lower-cases the server's -ERR)."""
    action = "subscription" if kind == "subscribe" else "publish"
    return f'nats: permissions violation for {action} to "{subject.lower()}"'


async def expect_violation(nc: NatsClient, errors: list[str], kind: str, subject: str) -> None:
    await settle(nc)
    text = violation(kind, subject)  # a queue subscription adds ` using queue "<q>"`
    await eventually(
        lambda: any(e == text or e.startswith(text + " ") for e in errors),
        what=f"permissions violation for {subject}",
    )
    assert nc.is_connected  # a violation is reported, the connection stays up


def token_dict(token: str) -> dict[str, Any]:
    data = json.loads(token)
    assert isinstance(data, dict)
    return data


class Collector:
    """A subscription callback that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Msg] = []

    async def add(self, msg: Msg) -> None:
        self.messages.append(msg)

    @property
    def subjects(self) -> list[str]:
        return [m.subject for m in self.messages]


def caller_principal(key: SessionKey, *, disabled: bool = False) -> Principal:
    """A user allowed to read the inventory, for tests serving an ``RpcServer`` without a
    runtime."""
    return Principal(
        session_key=key.public_key,
        kind="user",
        name="caller",
        contract_id="caller@v1",
        contract_digest="caller",
        capabilities=("inventory::items.read",),
        disabled=disabled,
    )


def caller(key: SessionKey) -> PrincipalCache:
    """A principal cache holding :func:`caller_principal`."""
    principals = PrincipalCache()
    principals.put(caller_principal(key))
    return principals
