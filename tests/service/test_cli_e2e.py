"""The ``trellis`` admin commands against a running deployment (real nats-server, runtime):
grants checked against the installed contracts, upgrades without repeating the key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from examples.inventory.contract import inventory_cli
from typer.testing import CliRunner, Result

from tests.service.conftest import READ, WRITE, Inventory
from trellis.auth import SessionKey
from trellis.cli import app
from trellis.contracts.builtin import DeploymentError
from trellis.result import Err, Ok

runner = CliRunner()


async def trellis(inv: Inventory, *args: str) -> Result:
    """The real ``trellis`` command against the running stack (in a thread: it runs its
    own event loop while this one keeps serving)."""
    home = str(inv.dep.bundle.directory)
    return await asyncio.to_thread(runner.invoke, app, [*args, "--home", home])


async def test_the_runtime_refuses_undeclared_capabilities_and_lists_the_valid_ones(
    inv: Inventory,
) -> None:
    key = SessionKey.generate()
    created = await inv.admin.call(
        "Auth.Users.Create",
        {
            "id": "typo",
            "sessionKey": key.public_key,
            "contract": inventory_cli.manifest,
            "capabilities": ["items.read"],
        },
    )
    assert isinstance(created, Err) and isinstance(created.error, DeploymentError)
    error = created.error
    assert error.reason == "unknown_capability"
    assert "namespaced by contract id" in error.message
    assert READ in error.message and WRITE in error.message
    assert error.problems == [
        "'items.read' has no contract namespace (write '<contract>::items.read'); "
        f"did you mean '{READ}'?"
    ]
    # refused before anything was stored: the same id and key register fine afterwards
    user_id, _ = await inv.user([READ])
    granted = await inv.admin.call(
        "Auth.Users.Update", {"id": user_id, "grant": ["inventory::items.delete", WRITE]}
    )
    assert isinstance(granted, Err) and granted.error.reason == "unknown_capability"
    assert granted.error.problems == [
        "'inventory::items.delete': no installed contract declares it"
    ]
    # revoking is not checked (a removed contract's capability must stay revocable)
    revoked = await inv.admin.call(
        "Auth.Users.Update", {"id": user_id, "revoke": ["gone::x"], "grant": [WRITE]}
    )
    assert isinstance(revoked, Ok), revoked
    assert revoked.value.capabilities == [READ, WRITE]


async def test_cli_user_add_with_an_unnamespaced_capability_explains_and_exits_1(
    inv: Inventory,
) -> None:
    key = SessionKey.generate().public_key
    source = "examples.inventory.contract:inventory_cli"
    human = await trellis(inv, "user", "add", "me", "-c", source, "-k", key, "-g", "items.read")
    assert human.exit_code == 1, human.output
    assert "namespaced by contract id" in human.stderr
    assert f"did you mean '{READ}'" in human.stderr
    typed = await trellis(
        inv, "user", "add", "me", "-c", source, "-k", key, "-g", "items.read", "--json"
    )
    assert typed.exit_code == 1
    error = json.loads(typed.stdout)
    assert error["type"] == "DeploymentError"
    assert error["reason"] == "unknown_capability"
    assert READ in error["message"]
    added = await trellis(inv, "user", "add", "me", "-c", source, "-k", key, "-g", READ, "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["capabilities"] == [READ]
    grant = await trellis(inv, "user", "grant", "me", "items.write")
    assert grant.exit_code == 1 and f"did you mean '{WRITE}'" in grant.stderr


async def test_service_upgrade_reuses_the_deployments_key(inv: Inventory) -> None:
    source = "examples.inventory.contract:inventory"
    upgraded = await trellis(inv, "service", "upgrade", source, "--name", "inventory", "--json")
    assert upgraded.exit_code == 0, upgraded.output
    deployment = json.loads(upgraded.stdout)
    assert deployment["instanceKeys"] == [inv.key.public_key]
    missing = await trellis(inv, "service", "upgrade", source, "--name", "nope", "--json")
    assert missing.exit_code == 1
    assert json.loads(missing.stdout)["reason"] == "not_found"


async def test_call_as_admin_prints_the_output_and_refuses_unknown_names(inv: Inventory) -> None:
    listed = await trellis(inv, "call", "Auth.Deployments.List", "--json")
    assert listed.exit_code == 0, listed.output
    assert [d["name"] for d in json.loads(listed.stdout)["deployments"]] == ["inventory"]
    pretty = await trellis(inv, "call", "Auth.Deployments.Get", '{"name": "inventory"}')
    assert pretty.exit_code == 0, pretty.output
    assert json.loads(pretty.stdout)["deployment"]["contractId"] == "inventory@v1"
    unknown = await trellis(inv, "call", "Items.Get", '{"id": "1"}')
    assert unknown.exit_code == 2
    assert "'Items.Get' is not an RPC" in unknown.stderr
    assert "Auth.Users.List" in unknown.stderr  # the list of what it can call
    refused = await trellis(inv, "call", "Auth.Deployments.Get", '{"name": "nope"}', "--json")
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["reason"] == "not_found"


async def test_call_as_a_registered_session(
    inv: Inventory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRELLIS_URL", raising=False)  # found through --home's runtime.json
    await inv.service()
    _, key = await inv.user([READ, WRITE])
    seed = tmp_path / "me.seed"
    key.save(seed)
    manifest = tmp_path / "inventory-cli.json"
    manifest.write_text(json.dumps(inventory_cli.manifest))
    as_me = ["--session", str(seed), "--contract", "examples.inventory.contract:inventory_cli"]

    item = {"id": "d1", "name": "Dune", "category": "books"}
    created = await trellis(inv, "call", "Items.Create", json.dumps(item), *as_me, "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout).items() >= item.items()
    home = ["--home", str(inv.dep.bundle.directory)]
    got = await asyncio.to_thread(
        runner.invoke,
        app,
        ["call", "Items.Get", "-", "-s", str(seed), "-c", str(manifest), "--json", *home],
        input='{"id": "d1"}',
    )
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout)["name"] == "Dune"
    missing = await trellis(inv, "call", "Items.Get", '{"id": "nope"}', *as_me, "--json")
    assert missing.exit_code == 1
    error = json.loads(missing.stdout)
    assert error["type"] == "ItemNotFound" and error["item_id"] == "nope"
    human = await trellis(inv, "call", "Items.Get", '{"id": "nope"}', *as_me)
    assert human.exit_code == 1 and "No item has this id" in human.stderr
    unknown = await trellis(inv, "call", "Items.Delete", "{}", *as_me)
    assert unknown.exit_code == 2 and "Items.Create, Items.Get" in unknown.stderr
