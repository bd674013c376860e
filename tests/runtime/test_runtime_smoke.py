from __future__ import annotations

from pathlib import Path

from examples.inventory.contract import inventory

from trellis.auth import SessionKey
from trellis.testing import local_deployment


async def test_runtime_comes_up_and_installs_a_service(tmp_path: Path) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        admin = await stack.admin()
        listed = await admin.call("Auth.Deployments.List", {})
        assert listed.unwrap().deployments == []
        key = SessionKey.generate()
        await stack.install(inventory, "inventory", key)
        listed = await admin.call("Auth.Deployments.List", {})
        [deployment] = listed.unwrap().deployments
        assert deployment.name == "inventory" and deployment.instance_keys == [key.public_key]
        catalog = (await admin.call("Trellis.Catalog", {})).unwrap()
        assert "inventory@v1" in {c.id for c in catalog.contracts}
        nc = await stack.raw_participant(key, inventory.digest)
        assert nc.is_connected
