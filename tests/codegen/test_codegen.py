"""``trellis contract generate``: typed SDK packages from manifests, ours and upstream's.

``data/field-notes.upstream.json`` was written by upstream's TypeScript contract builder
(TypeBox schemas) from ``data/field-notes.contract.ts``: the manifest and the digest upstream
computes for it.  It carries unions of literals and of objects, records, optional fields,
bounds, a declared error, an ``allOf``, an operation, transfers and a store.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from examples.inventory.contract import inventory
from mypy import api as mypy_api
from typer.testing import CliRunner

from trellis import Contract, Err, Ok
from trellis.cli import app
from trellis.contracts import contract_digest
from trellis.contracts.builtin import BUILTIN_CONTRACTS
from trellis.contracts.codegen import GenerateError, generate, write_sdk
from trellis.events import EventMessage
from trellis.sdk import SDKS, regenerate
from trellis.testing import local_deployment

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
BUILT = json.loads((DATA / "field-notes.upstream.json").read_text(encoding="utf-8"))
UPSTREAM, UPSTREAM_DIGEST = BUILT["manifest"], BUILT["digest"]

MANIFESTS = {
    "inventory": inventory.manifest,
    "field-notes (upstream builder)": UPSTREAM,
    **{cid: c.manifest for cid, c in BUILTIN_CONTRACTS.items()},
}


def load(tmp_path: Path, manifest: dict[str, Any], package: str) -> ModuleType:
    """Generate ``manifest`` into ``tmp_path/package`` and import it."""
    write_sdk(generate(manifest), tmp_path / package)
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module(package)
    finally:
        sys.path.remove(str(tmp_path))


@pytest.mark.parametrize("manifest", MANIFESTS.values(), ids=list(MANIFESTS))
def test_the_generated_contract_rebuilds_the_source_digest(
    manifest: dict[str, Any], tmp_path: Path
) -> None:
    package = f"sdk_{abs(hash(manifest['id']))}"
    module = load(tmp_path, manifest, package)
    assert module.CONTRACT.digest == contract_digest(manifest) == module.DIGEST
    assert module.CONTRACT.model.rpc.keys() == manifest.get("rpc", {}).keys()


def test_the_upstream_built_manifest_digests_as_upstream_says() -> None:
    assert contract_digest(UPSTREAM) == UPSTREAM_DIGEST


def test_the_shipped_sdks_are_fresh() -> None:
    """Fails when a builtin contract changed: run ``python -m trellis.sdk``."""
    for package, files in regenerate().items():
        for name, text in files.items():
            on_disk = (ROOT / "src/trellis/sdk" / package / name).read_text(encoding="utf-8")
            assert on_disk == text, f"trellis.sdk.{package} is stale: python -m trellis.sdk"
    assert set(SDKS.values()) <= set(BUILTIN_CONTRACTS)


def test_upstream_shapes_become_typed_models(tmp_path: Path) -> None:
    sdk = load(tmp_path, UPSTREAM, "field_notes_shapes")
    note = sdk.Note.model_validate(
        {
            "id": "n1",
            "title": "Fence down",
            "kind": "task",
            "priority": 2,
            "tags": ["north"],
            "meta": {"crew": "b"},
            "author": {"type": "device", "deviceId": "d7"},
            "createdAt": "2026-12-02T10:00:00Z",
            "extra": {"a": "x", "b": "y"},
        }
    )
    assert isinstance(note.author, sdk.NoteAuthorDevice)
    assert note.author.device_id == "d7"
    assert note.extra == {"a": "x", "b": "y"}  # allOf: kept as JSON, not refused
    for bad in ({"priority": 9}, {"kind": "memo"}, {"tags": ["x"] * 9}):
        with pytest.raises(ValueError):
            sdk.Note.model_validate({**note.model_dump(by_alias=True), **bad})
    source = (tmp_path / "field_notes_shapes" / "__init__.py").read_text()
    assert "# unsupported: allOf\n    extra: JsonValue" in source
    assert sdk.NoteNotFound.type == "NoteNotFound"


def test_unsupported_constructs_fall_back_to_json_values(tmp_path: Path) -> None:
    odd = {
        "type": "object",
        "properties": {
            "neg": {"not": {"type": "string"}},
            "pair": {"type": "array", "items": [{"type": "string"}, {"type": "number"}]},
            "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "pats": {"type": "object", "patternProperties": {"^a": {}, "^b": {}}},
            "anything": {},
            "maybe": {"type": ["string", "null"]},
            "modelName": {"type": "string"},
            "class": {"type": "string"},
            "json": {"type": "string"},
            "2fa": {"type": "boolean"},
        },
        "required": ["neg"],
    }
    manifest = {
        "format": "trellis.contract.v1",
        "id": "odd@v1",
        "displayName": "Odd",
        "description": "Unusual schemas.",
        "kind": "service",
        "schemas": {"Odd": odd, "Scalar": {"type": "string"}},
        "rpc": {
            "Odd.Echo": {
                "version": "v1",
                "subject": "rpc.v1.Odd.Echo",
                "input": {"schema": "Odd"},
                "output": {"schema": "Scalar"},
            }
        },
    }
    sdk = load(tmp_path, manifest, "odd_sdk")
    value = sdk.Odd.model_validate(
        {"neg": 1, "pair": ["a", 1], "either": 3, "maybe": None, "class": "c", "2fa": True}
    )
    assert (value.neg, value.pair, value.either) == (1, ["a", 1], 3)
    assert (value.class_, value.f_2fa) == ("c", True)  # names Python can hold, JSON aliases
    assert value.model_dump(by_alias=True, exclude_none=True)["2fa"] is True
    assert sdk.Scalar.model_validate("x").root == "x"  # a non-object root: a RootModel
    assert sdk.CONTRACT.digest == contract_digest(manifest)


def test_sections_without_specs_are_carried_with_typed_references(tmp_path: Path) -> None:
    """Operations, feeds and state have no authoring specs yet: they travel as JSON whose
    schema references are the generated classes.  An rpc transfer is declared too."""
    obj = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    manifest = {
        "format": "trellis.contract.v1",
        "id": "sections@v1",
        "displayName": "Sections",
        "description": "Operations, feeds and state.",
        "kind": "service",
        "schemas": {"Start": obj, "Progress": {**obj, "title": "P"}, "Done": {"type": "object"}},
        "operations": {
            "Jobs.Run": {
                "version": "v1",
                "subject": "operations.v1.Jobs.Run",
                "input": {"schema": "Start"},
                "progress": {"schema": "Progress"},
                "output": {"schema": "Done"},
                "capabilities": {"call": []},
                "cancel": True,
            }
        },
        "feeds": {
            "Jobs.Watch": {
                "version": "v1",
                "subject": "feeds.v1.Jobs.Watch",
                "input": {"schema": "Start"},
                "event": {"schema": "Progress"},
            }
        },
        "state": {"cursor": {"kind": "value", "schema": {"schema": "Start"}}},
        "rpc": {
            "Files.Get": {
                "version": "v1",
                "subject": "rpc.v1.Files.Get",
                "input": {"schema": "Start"},
                "output": {"schema": "Done"},
                "transfer": {"direction": "receive"},
            }
        },
    }
    sdk = load(tmp_path, manifest, "sections_sdk")
    assert sdk.CONTRACT.digest == contract_digest(manifest)
    source = (tmp_path / "sections_sdk" / "__init__.py").read_text()
    assert '"input": Start,' in source and '"schema": Start' in source


def test_an_invalid_manifest_is_refused_with_its_problems() -> None:
    broken = {**inventory.manifest, "rpc": {"Items.Get": {"version": "v1"}}}
    with pytest.raises(GenerateError, match=r"rpc\.Items\.Get"):
        generate(broken)


def test_the_cli_writes_the_package(tmp_path: Path) -> None:
    source = tmp_path / "field-notes.json"
    source.write_text(json.dumps(UPSTREAM), encoding="utf-8")
    result = CliRunner().invoke(
        app, ["contract", "generate", str(source), "-o", str(tmp_path / "notes")]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["__init__.py", "_schemas.py"]
    refused = CliRunner().invoke(app, ["contract", "generate", str(tmp_path / "missing.json")])
    assert refused.exit_code != 0


def test_generated_packages_type_check_strictly(tmp_path: Path) -> None:
    write_sdk(generate(UPSTREAM), tmp_path / "notes_sdk")
    (tmp_path / "use_notes.py").write_text(
        textwrap.dedent(
            """
            from typing import assert_type

            from notes_sdk import NOTES_GET, Note, NoteId, NoteNotFound
            from trellis import Result, TrellisClient, TrellisError
            from trellis.result import UnexpectedError

            async def get(client: TrellisClient) -> None:
                result = await client.call(NOTES_GET, NoteId(id="n1"))
                assert_type(result, Result[Note, NoteNotFound | UnexpectedError | TrellisError])

            async def wrong(client: TrellisClient) -> None:
                await client.call(NOTES_GET, Note)  # E: not an input
            """
        ),
        encoding="utf-8",
    )
    out, _err, status = mypy_api.run(
        [
            "--strict",
            "--no-incremental",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            str(tmp_path / "notes_sdk"),
            str(tmp_path / "use_notes.py"),
        ]
    )
    text = (tmp_path / "use_notes.py").read_text().splitlines()
    misuse = next(n for n, line in enumerate(text, 1) if "# E:" in line)
    lines = [line for line in out.splitlines() if ": error:" in line]
    assert len(lines) == 1 and f"use_notes.py:{misuse}:" in lines[0], out
    assert status == 1


async def test_a_generated_sdk_serves_and_calls_on_a_real_deployment(tmp_path: Path) -> None:
    """A Python service implements the upstream-authored contract from its generated module;
    a client whose contract uses it calls through the typed specs."""
    sdk = load(tmp_path / "pkg", UPSTREAM, "field_notes_live")
    client_contract = Contract(
        "notes-cli@v1",
        kind="agent",
        display_name="Notes CLI",
        description="Reads field notes.",
        uses={
            "notes": sdk.CONTRACT.use(rpc=["Notes.Get", "Notes.List"], subscribe=["Notes.Added"])
        },
    )
    async with local_deployment(tmp_path / "dep") as dep:
        service = await dep.connect_service(sdk.CONTRACT, await dep.install(sdk.CONTRACT))

        @service.rpc(sdk.NOTES_GET)
        async def get_note(req: Any, ctx: Any) -> Any:
            if req.id != "n1":
                return Err(sdk.NoteNotFound(note_id=req.id))
            await service.publish(sdk.NOTES_ADDED, sdk.NoteAdded(id="n1", kind="task"))
            return Ok(
                sdk.Note(
                    id="n1",
                    title="Fence down",
                    kind="task",
                    priority=1,
                    tags=[],
                    meta={},
                    author=sdk.NoteAuthorUser(type="user", user_id="ana"),
                    created_at="2026-12-02T10:00:00Z",
                )
            )

        @service.rpc(sdk.NOTES_LIST)
        async def list_notes(req: Any, ctx: Any) -> Any:
            return Ok(sdk.NoteList(notes=[]))

        @service.rpc(sdk.NOTES_ADD)
        async def add_note(req: Any, ctx: Any) -> Any:
            return Ok(sdk.NoteId(id=req.id))

        await service.start()
        me = await dep.user("ana", client_contract, capabilities=["field-notes::notes.read"])
        client = await dep.connect_client(client_contract, me)
        seen: asyncio.Queue[EventMessage[Any]] = asyncio.Queue()
        await client.subscribe(sdk.NOTES_ADDED, seen.put)

        found = await client.call(sdk.NOTES_GET, sdk.NoteId(id="n1"))
        assert isinstance(found, Ok) and isinstance(found.value, sdk.Note)
        assert found.value.author.user_id == "ana"
        missing = await client.call(sdk.NOTES_GET, {"id": "n2"})
        assert isinstance(missing, Err) and isinstance(missing.error, sdk.NoteNotFound)
        assert missing.error.note_id == "n2"
        invalid = await client.call(sdk.NOTES_GET, {"id": ""})
        assert isinstance(invalid, Err) and invalid.error.type == "ValidationError"
        # a spec from another build of the contract decodes with its own models
        copy = load(tmp_path / "copy", UPSTREAM, "field_notes_copy")
        again = await client.call(copy.NOTES_GET, {"id": "n1"})
        assert isinstance(again, Ok) and isinstance(again.value, copy.Note)
        event = await asyncio.wait_for(seen.get(), 5)
        assert isinstance(event.payload, sdk.NoteAdded) and event.payload.kind == "task"
