"""The test kit users get (``trellis.testing``): what it sets up goes through the runtime's
admin RPCs, and whatever happens in the test, nothing outlives it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from examples.inventory.contract import inventory, inventory_cli
from examples.inventory.service import mount

from tests.runtime.support import billing
from trellis.contracts.builtin import DeploymentError
from trellis.nats.server import check_port_free
from trellis.result import Err
from trellis.testing import LocalDeployment, local_deployment

READ = "inventory::items.read"
WRITE = "inventory::items.write"


async def test_install_and_users_go_through_the_admin_rpcs(
    trellis_deployment: LocalDeployment,
) -> None:
    dep = trellis_deployment
    key = await dep.install(inventory)
    admin = await dep.admin()
    [deployment] = (await admin.call("Auth.Deployments.List", {})).unwrap().deployments
    assert (deployment.name, deployment.instance_keys) == ("inventory", [key.public_key])

    me = await dep.user("me", inventory_cli, [READ])
    registered = (await admin.call("Auth.Users.Get", {"id": "me"})).unwrap()
    assert (registered.session_key, registered.capabilities) == (me.public_key, [READ])

    # the service and the user connect with the keys the kit returned
    service = await dep.connect_service(inventory, key)
    mount(service)
    await service.start()
    client = await dep.connect_client(inventory_cli, me)
    missing = await client.call("Items.Get", {"id": "x"})  # READ suffices for an answer
    assert isinstance(missing, Err) and missing.error.type == "ItemNotFound"

    assert sorted((await dep.grant("me", WRITE)).capabilities) == [READ, WRITE]
    assert (await dep.revoke("me", READ)).capabilities == [WRITE]
    assert (await admin.call("Auth.Users.Get", {"id": "me"})).unwrap().capabilities == [WRITE]

    # a refusal of the runtime is raised as its typed error
    with pytest.raises(DeploymentError) as refused:
        await dep.install(billing)  # needs pricing, which is not installed
    assert refused.value.reason == "missing_dependency"


async def test_nothing_outlives_a_failing_test(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="the test failed"):
        async with local_deployment(tmp_path / "d") as dep:
            pid = dep.server.pid
            key = await dep.install(inventory)
            service = await dep.connect_service(inventory, key)
            await service.start()
            client = await dep.connect_client(inventory_cli, await dep.user("me", inventory_cli))
            raw = await dep.raw_runtime()
            raise RuntimeError("the test failed")
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # nats-server is gone (and reaped)
    assert service.nc.is_closed and client.nc.is_closed and raw.is_closed
    assert not dep.runtime.ready
    config = dep.bundle.config
    for port in (config.nats.client_port, config.nats.monitor_port, config.http.port):
        check_port_free(config.http.host, port)  # raises PortInUseError if still bound
