"""``trellis dev --demo``: install the inventory example and exercise it end to end.

Every step goes through the real stack: the service bootstraps and connects through the
auth callout, the demo client is a registered ``cli`` participant, calls carry signed
proofs, events go through JetStream to a durable consumer group, and state lives in KV.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from trellis.auth import SessionKey
from trellis.cli.common import out
from trellis.cli.service import admin_session
from trellis.client import TrellisClient, connect_client
from trellis.participant import Participant
from trellis.result import Err, Ok, Result, TrellisError
from trellis.runtime.bundle import Bundle
from trellis.sdk import auth
from trellis.service import EventMessage, TrellisService, connect_service


class DemoUnavailable(RuntimeError):
    """The example code the demo runs cannot be imported."""


@dataclass
class Step:
    name: str
    passed: bool
    detail: str


def _key(bundle: Bundle, name: str) -> SessionKey:
    path = bundle.directory / "demo" / f"{name}.seed"
    if path.exists():
        return SessionKey.load(path)
    key = SessionKey.generate()
    key.save(path)
    return key


async def _ensure_installed(
    admin: Participant, manifest: dict[str, Any], key: SessionKey
) -> Result[auth.DeploymentOutput, TrellisError]:
    payload = {"name": "inventory", "contract": manifest, "publicKey": key.public_key}
    result = await admin.call(auth.AUTH_DEPLOYMENTS_CREATE, payload)
    if isinstance(result, Err) and result.error.reason == "exists":
        return await admin.call(auth.AUTH_DEPLOYMENTS_UPGRADE, payload)
    return result


async def _ensure_user(
    admin: Participant, manifest: dict[str, Any], key: SessionKey, caps: list[str]
) -> Result[auth.UserInfo, TrellisError]:
    user = {"id": "demo-cli", "capabilities": caps}
    registration = {**user, "sessionKey": key.public_key, "contract": manifest}
    created = await admin.call(auth.AUTH_USERS_CREATE, registration)
    if isinstance(created, Err) and created.error.reason == "exists":
        return await admin.call(auth.AUTH_USERS_UPDATE, {**user, "active": True})
    return created


async def run_demo(bundle: Bundle, *, emit: bool = True) -> dict[str, Any]:
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        from examples.inventory.contract import inventory, inventory_cli
        from examples.inventory.service import mount
    except ImportError as exc:
        raise DemoUnavailable(
            "the demo uses examples/inventory from the repository: run it from the repository root"
        ) from exc

    steps: list[Step] = []

    def record(name: str, passed: bool, detail: str) -> None:
        steps.append(Step(name, passed, detail))
        if emit:
            mark = "[green]✓[/]" if passed else "[red]✗[/]"
            out.print(f" {mark} {name}: {detail}", highlight=False)

    if emit:
        out.print("\n[bold]Demo[/]: the inventory service and a CLI client, through the real stack")
    admin = await admin_session(bundle, one_shot=False)
    service: TrellisService | None = None
    client: TrellisClient | None = None
    try:
        service_key = _key(bundle, "inventory")
        installed = await _ensure_installed(admin, inventory.manifest, service_key)
        record(
            "install inventory@v1",
            installed.is_ok(),
            _describe(
                installed,
                lambda v: (
                    f"deployment {v.deployment.name}, digest {v.deployment.contract_digest[:12]}…"
                ),
            ),
        )
        if installed.is_err():
            return _summary(steps, emit)

        service = await connect_service(
            inventory, session_key=service_key, trellis_url=bundle.config.http.url
        )
        mount(service)
        await service.start()
        record(
            "service connected",
            True,
            f"bootstrapped over HTTP, admitted by the callout as {service.name}",
        )

        user_key = _key(bundle, "cli")
        caps = ["inventory::items.read", "inventory::items.write"]
        user = await _ensure_user(admin, inventory_cli.manifest, user_key, caps)
        record(
            "register CLI session",
            user.is_ok(),
            _describe(user, lambda v: f"user {v.id} holds {', '.join(v.capabilities or [])}"),
        )
        if user.is_err():
            return _summary(steps, emit)
        client = await connect_client(
            inventory_cli, session=user_key, trellis_url=bundle.config.http.url
        )

        live: asyncio.Queue[EventMessage[Any]] = asyncio.Queue()

        async def on_live(event: EventMessage[Any]) -> None:
            await live.put(event)

        await client.subscribe("Items.Created", on_live, filters={"/category": "books"})

        item_id = f"dune-{int(time.time() * 1000)}"
        created = await client.call(
            "Items.Create", {"id": item_id, "name": "Dune", "category": "books", "quantity": 3}
        )
        record(
            "RPC Items.Create",
            created.is_ok(),
            _describe(created, lambda v: f"created {v.id} ({v.name})"),
        )

        got = await client.call("Items.Get", {"id": item_id})
        record(
            "RPC Items.Get (KV read-back)",
            isinstance(got, Ok) and got.value.quantity == 3,
            _describe(got, lambda v: f"{v.id}: {v.name}, quantity {v.quantity}"),
        )

        missing = await client.call("Items.Get", {"id": "no-such-item"})
        record(
            "declared error",
            isinstance(missing, Err) and missing.error.type == "ItemNotFound",
            f"Items.Get(no-such-item) → {_error(missing)}",
        )

        invalid = await client.call(
            "Items.Create", {"id": "x", "name": "", "category": "Not A Category"}
        )
        record(
            "validation error",
            isinstance(invalid, Err) and invalid.error.type == "ValidationError",
            f"Items.Create(bad input) → {_error(invalid)}",
        )

        try:
            event = await asyncio.wait_for(live.get(), timeout=5)
            record("live event (filtered to books)", True, f"{event.name} on {event.subject}")
        except TimeoutError:
            record("live event (filtered to books)", False, "no event within 5 s")

        audited = None
        for _ in range(100):
            keys = await service.kv.audit.keys()
            for key in keys:
                entry = await service.kv.audit.get(key)
                if entry is not None and entry.value.item_id == item_id:
                    audited = entry
            if audited:
                break
            await asyncio.sleep(0.05)
        record(
            "durable consumer 'audit'",
            audited is not None,
            f"recorded {audited.value.event} for {audited.value.item_id} in KV"
            if audited
            else "event not consumed within 5 s",
        )
        heartbeat = await service.heartbeat()
        record(
            "Health.Heartbeat",
            heartbeat.is_ok(),
            "published" if heartbeat.is_ok() else _error(heartbeat),
        )
    finally:
        if client is not None:
            await client.close()
        if service is not None:
            await service.stop()
        await admin.close()
    return _summary(steps, emit)


def _describe(result: Result[Any, TrellisError], ok: Callable[[Any], str]) -> str:
    if isinstance(result, Ok):
        return ok(result.value)
    return _error(result)


def _error(result: Result[Any, TrellisError]) -> str:
    if isinstance(result, Ok):
        return "unexpectedly succeeded"
    error = result.error
    reason = "" if error.reason == error.type else f" ({error.reason})"
    return f"{error.type}: {error.message}{reason}"


def _summary(steps: list[Step], emit: bool) -> dict[str, Any]:
    passed = all(s.passed for s in steps) and bool(steps)
    if emit:
        table = Table(title="Demo summary", show_header=True)
        table.add_column("step")
        table.add_column("result")
        for s in steps:
            table.add_row(s.name, "[green]ok[/]" if s.passed else "[red]failed[/]")
        out.print(table)
        out.print(
            "[green]All demo steps passed.[/]" if passed else "[red]Some demo steps failed.[/]"
        )
    return {"passed": passed, "steps": [s.__dict__ for s in steps]}
