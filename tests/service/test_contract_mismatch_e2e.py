"""A participant whose contract is not the installed/registered one is refused at bootstrap
(``contract_changed``, unchanged on the wire) with the command that fixes it."""

from __future__ import annotations

import pytest
from examples.inventory.contract import inventory

from tests.runtime.support import pricing
from tests.service.conftest import READ, WRITE, Inventory
from trellis import ConnectError, SessionKey
from trellis.contracts import Contract
from trellis.result import Err

#: inventory@v1 with another digest (what a service built from changed code presents)
edited_inventory = Contract(
    "inventory@v1", kind="service", display_name="Inventory", description="Edited."
)
#: inventory-cli@v1 with another digest: it reads, no longer creates
reader_cli = Contract(
    "inventory-cli@v1",
    kind="agent",
    display_name="Inventory CLI",
    description="A command-line client that reads items.",
    uses={"inventory": inventory.use(rpc=["Items.Get"])},
)


async def test_a_service_with_another_digest_is_told_to_upgrade(inv: Inventory) -> None:
    with pytest.raises(ConnectError) as refused:
        await inv.service(contract=edited_inventory)
    error = refused.value.error
    assert error.reason == "contract_changed"
    assert f"with digest {inventory.digest}" in error.message
    assert edited_inventory.digest in error.message
    assert "`trellis service upgrade <contract> --name inventory`" in error.message

    with pytest.raises(ConnectError) as other:
        await inv.service(contract=pricing)
    assert other.value.error.reason == "contract_changed"
    assert "belongs to deployment 'inventory'" in other.value.error.message
    assert "trellis service install" in other.value.error.message


async def test_a_client_with_another_contract_is_told_to_register_it_again(
    inv: Inventory,
) -> None:
    await inv.service()
    user_id, key = await inv.user([READ, WRITE])
    with pytest.raises(ConnectError) as refused:
        await inv.connect(key, reader_cli)
    error = refused.value.error
    assert error.reason == "contract_changed"
    assert "is not the one registered" in error.message
    assert f"`trellis user add {user_id} -c <contract> -k {key.public_key}`" in error.message

    # doing what it says: the same id and key, the new contract; the grants are kept
    again = await inv.admin.call(
        "Auth.Users.Create",
        {
            "id": user_id,
            "sessionKey": key.public_key,
            "contract": reader_cli.manifest,
            "capabilities": [],
        },
    )
    assert again.is_ok(), again
    assert again.unwrap().capabilities == [READ, WRITE]
    assert again.unwrap().contract_digest == reader_cli.digest
    client = await inv.connect(key, reader_cli)
    missing = await client.call("Items.Get", {"id": "nope"})
    assert isinstance(missing, Err) and missing.error.type == "ItemNotFound"
    # another key under an existing id is still refused
    other = await inv.admin.call(
        "Auth.Users.Create",
        {
            "id": user_id,
            "sessionKey": SessionKey.generate().public_key,
            "contract": reader_cli.manifest,
            "capabilities": [],
        },
    )
    assert isinstance(other, Err) and other.error.reason == "exists"
