"""The typed API: specs as references, handlers checked at mount, types a checker sees."""

from __future__ import annotations

import importlib.resources
import logging
import textwrap
from pathlib import Path

import pytest
from examples.inventory.contract import (
    CREATE_ITEM,
    GET_ITEM,
    AuditEntry,
    GetItem,
    Item,
    ItemExists,
    ItemNotFound,
    NewItem,
    inventory,
)
from mypy import api as mypy_api

from tests.service.conftest import Inventory
from trellis import Contract, Err, Ok, Result, rpc
from trellis.participant import NotInContract
from trellis.result import AuthError
from trellis.service import RequestContext
from trellis.service.handlers import HandlerMismatch, check_handler

ROOT = Path(__file__).resolve().parents[2]


def test_specs_know_their_contract_and_name() -> None:
    assert (GET_ITEM.contract_id, GET_ITEM.name) == ("inventory@v1", "Items.Get")
    loose = rpc(GetItem, Item)
    with pytest.raises(LookupError):
        _ = loose.name


def test_a_spec_belongs_to_one_contract() -> None:
    with pytest.raises(Exception, match="already belongs to inventory@v1"):
        Contract(
            "copy@v1",
            kind="service",
            display_name="Copy",
            description="Reuses a spec of another contract.",
            rpc={"Items.Get": GET_ITEM},
        )


async def test_matching_handlers_mount() -> None:
    async def good(req: GetItem, ctx: RequestContext) -> Result[Item, ItemNotFound | AuthError]:
        return Err(ItemNotFound(item_id=req.id))

    async def unannotated(req, ctx):  # type: ignore[no-untyped-def]
        return Ok(Item(id=req.id, name="x", category="y", quantity=0))

    check_handler("Items.Get", GET_ITEM, good)
    check_handler("Items.Get", GET_ITEM, unannotated)


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("input", "takes NewItem, but the contract's input is GetItem"),
        ("output", "answers AuditEntry, but the contract's output is Item"),
        ("error", "may return ItemExists, which the RPC does not declare"),
    ],
)
def test_mismatched_handlers_are_refused(problem: str, message: str) -> None:
    async def wrong_input(req: NewItem, ctx: RequestContext) -> Ok[Item]:
        raise NotImplementedError

    async def wrong_output(req: GetItem, ctx: RequestContext) -> Ok[AuditEntry]:
        raise NotImplementedError

    async def wrong_error(req: GetItem, ctx: RequestContext) -> Result[Item, ItemExists]:
        raise NotImplementedError

    handler = {"input": wrong_input, "output": wrong_output, "error": wrong_error}[problem]
    with pytest.raises(HandlerMismatch, match=message):
        check_handler("Items.Get", GET_ITEM, handler)


async def test_mounting_checks_against_the_contract(
    inv: Inventory, caplog: pytest.LogCaptureFixture
) -> None:
    service = await inv.service(handlers=False, start=False)

    async def wrong_output(req: NewItem, ctx: RequestContext) -> Ok[AuditEntry]:
        raise NotImplementedError

    with pytest.raises(HandlerMismatch, match="answers AuditEntry"):
        service.rpc(CREATE_ITEM)(wrong_output)  # type: ignore[arg-type]
    with pytest.raises(NotInContract, match=r"no RPC to serve 'Items.Gte' \(did you mean"):
        service.rpc("Items.Gte")

    @service.rpc(GET_ITEM)
    async def get_item(req: GetItem, ctx: RequestContext) -> Ok[Item]:
        return Ok(Item(id=req.id, name="x", category="y", quantity=0))

    caplog.set_level(logging.WARNING, logger="trellis.service")
    await service.start()
    assert any(
        "declares RPCs with no handler: Items.Create" in r.getMessage() for r in caplog.records
    )
    assert inventory.rpc["Items.Get"] is GET_ITEM


def test_a_type_checker_sees_the_contract_types(tmp_path: Path) -> None:
    """``tests/typing/typed_calls.py`` holds the expected types (``assert_type``); this file
    holds mistakes mypy must report, so the expectations cannot pass vacuously."""
    wrong = tmp_path / "wrong_usage.py"
    wrong.write_text(
        textwrap.dedent(
            """
            from examples.inventory.contract import (
                AUDIT, GET_ITEM, ITEMS, AuditEntry, GetItem, Item, NewItem
            )
            from trellis import Ok, TrellisClient, TrellisService
            from trellis.service import KvHandle, RequestContext

            async def misuse(client: TrellisClient, service: TrellisService) -> None:
                await client.call(GET_ITEM, NewItem(id="1", name="n", category="c"))
                handle: KvHandle[AuditEntry] = service.kv[ITEMS]

                @service.rpc(GET_ITEM)
                async def handler(req: GetItem, ctx: RequestContext) -> Ok[AuditEntry]:
                    raise NotImplementedError
            """
        )
    )
    stdout, _stderr, status = mypy_api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--no-incremental",
            str(ROOT / "tests" / "typing" / "typed_calls.py"),
            str(wrong),
        ]
    )
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert status == 1, stdout
    assert all("wrong_usage.py" in line for line in errors), stdout
    expected = {
        9: 'type parameter "I" of "call"',  # the input is not the RPC's input model
        10: 'Invalid index type "KvSpec[Item]"',  # the handle holds Items
        12: "Ok[AuditEntry]",  # the handler answers another model than the output
    }
    for line, fragment in expected.items():
        assert any(f"wrong_usage.py:{line}:" in e and fragment in e for e in errors), stdout
    assert len(errors) == len(expected), stdout


def test_the_package_ships_its_types() -> None:
    """``py.typed`` (PEP 561) is what makes a user's checker read these annotations (the
    wheel carries every file of the package directory)."""
    assert importlib.resources.files("trellis").joinpath("py.typed").is_file()
