"""Upstream's shapes for what needs a deployment of its own or none: the connect token and
the ``UnexpectedError`` body of a handler that fails."""

from __future__ import annotations

import json
import time
from typing import Any

from examples.inventory.contract import inventory, inventory_cli

from tests.interop.conftest import READ, check
from tests.interop.test_rpc_wire import reply_json, request
from trellis.auth import SessionKey, connect_token
from trellis.contracts import Manifest, contract_digest
from trellis.contracts.builtin import trellis_cli
from trellis.runtime.state import ActiveContract, ContractRecord, active_key
from trellis.testing import LocalDeployment


def test_the_connect_token_is_upstreams() -> None:
    key = SessionKey.generate()
    check("NatsAuthTokenV1", json.loads(connect_token(key, inventory.digest, int(time.time()))))


async def test_an_unexpected_failure_is_upstreams_unexpected_error(
    trellis_deployment: LocalDeployment,
) -> None:
    dep = trellis_deployment
    service = await dep.connect_service(inventory, await dep.install(inventory))

    @service.rpc("Items.Get")
    async def broken(req: Any, ctx: Any) -> Any:
        raise RuntimeError("boom")

    await service.start()
    key = await dep.user("someone", inventory_cli, [READ])
    user = await dep.raw_participant(key, inventory_cli.digest)
    error = reply_json(await request(user, key, "rpc.v1.Items.Get", {"id": "1"}), error=True)
    check("UnexpectedErrorData", error)


async def test_a_runtime_replaces_the_older_trellis_contracts_an_earlier_one_left(
    trellis_deployment: LocalDeployment,
) -> None:
    """The wire changes above changed trellis.auth@v1 and trellis.cli@v1 incompatibly; a
    runtime started on the state an older one left must still start, with its own."""
    dep = trellis_deployment
    cp = dep.runtime.cp
    assert cp is not None
    older = {**trellis_cli.manifest, "kind": "cli"}  # what the previous release shipped
    digest = contract_digest(older)
    await cp.contracts.put(
        digest, ContractRecord(digest=digest, id=trellis_cli.id, manifest=Manifest.parse(older))
    )
    await cp.active.put(
        active_key(trellis_cli.id), ActiveContract(id=trellis_cli.id, digest=digest)
    )
    await dep.runtime.stop()
    runtime = await dep.start_new_runtime()
    assert runtime.cp is not None
    now = await runtime.cp.active.get(active_key(trellis_cli.id))
    assert now is not None and now.digest == trellis_cli.digest
    assert (await (await dep.admin()).call("Trellis.Catalog", {})).is_ok()
