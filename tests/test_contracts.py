"""Contract authoring and validation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from examples.inventory.contract import ItemNotFound, inventory
from pydantic import BaseModel

from tests.conftest import CONFORMANCE
from trellis import Contract, ContractError, TrellisError, contract_digest, event, kv, rpc, stream
from trellis.contracts import BUILTIN_CONTRACTS, check_manifest, trellis_core


class In(BaseModel):
    id: str


class Out(BaseModel):
    id: str
    category: str


class Inner(BaseModel):
    x: int


class Outer(BaseModel):
    inner: Inner
    many: list[Inner]


def emitted_manifests() -> list[dict[str, Any]]:
    return [inventory.manifest, *(c.manifest for c in BUILTIN_CONTRACTS.values())]


def test_emitted_manifests_validate_against_the_upstream_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    path = CONFORMANCE / "schemas" / "trellis.contract.v1.schema.json"
    if not path.is_file():
        pytest.skip("conformance schema not present")
    validator = jsonschema.Draft201909Validator(json.loads(path.read_text()))
    for manifest in emitted_manifests():
        # our two extensions (PROTOCOL §3): resources.streams and the seed's 'cli' kind
        if "streams" in manifest.get("resources", {}) or manifest["kind"] == "cli":
            continue
        errors = list(validator.iter_errors(manifest))
        assert not errors, (manifest["id"], [e.message for e in errors])


def test_emitted_manifests_pass_our_own_checks_and_digest_stably() -> None:
    known = {c.id: c.model for c in BUILTIN_CONTRACTS.values()}
    for manifest in emitted_manifests():
        assert check_manifest(manifest, known) == []
        assert contract_digest(json.loads(json.dumps(manifest))) == contract_digest(manifest)


def test_inventory_manifest_shape() -> None:
    m = inventory.manifest
    assert m["rpc"]["Items.Get"]["subject"] == "rpc.v1.Items.Get"
    assert m["rpc"]["Items.Get"]["capabilities"]["call"] == ["inventory::items.read"]
    assert m["rpc"]["Items.Get"]["errors"] == [{"type": "ItemNotFound"}]
    assert m["errors"]["ItemNotFound"] == {
        "type": "ItemNotFound",
        "schema": {"schema": "ItemNotFoundData"},
    }
    assert m["events"]["Items.Created"]["subject"] == "events.v1.Items.Created.{/category}"
    assert m["events"]["Items.Created"]["params"] == ["/category"]
    assert m["resources"]["kv"]["items"] == {
        "purpose": "Item records by id",
        "schema": {"schema": "Item"},
        "required": True,
        "history": 1,
        "ttlMs": 0,
    }
    assert m["jobs"]["reindex"] == {
        "payload": {"schema": "Reindex"},
        "result": {"schema": "ReindexResult"},
        "maxDeliver": 5,
    }
    assert m["uses"]["required"]["core"] == {
        "contract": "trellis.core@v1",
        "rpc": {"call": ["Trellis.Catalog"]},
    }
    # services get the health baseline, as upstream's helper adds it
    assert m["uses"]["required"]["health"]["events"] == {"publish": ["Health.Heartbeat"]}
    assert inventory.digest == contract_digest(m)
    assert ItemNotFound.type == "ItemNotFound"


def test_nested_models_are_inlined_without_ref() -> None:
    c = Contract(
        "nest@v1",
        kind="service",
        display_name="N",
        description="n",
        rpc={"N.Get": rpc(Outer, Inner)},
    )
    schema = c.manifest["schemas"]["Outer"]
    assert "$ref" not in json.dumps(schema) and "$defs" not in schema
    assert schema["properties"]["inner"]["properties"]["x"]["type"] == "integer"


def test_recursive_models_are_refused_with_a_clear_problem() -> None:
    class Node(BaseModel):
        children: list[Node]

    Node.model_rebuild()
    with pytest.raises(ContractError, match="recursive"):
        Contract(
            "rec@v1",
            kind="service",
            display_name="R",
            description="r",
            rpc={"R.Get": rpc(Node, In)},
        )


def test_capabilities_are_namespaced_and_platform_ones_pass_through() -> None:
    c = Contract(
        "acme.billing@v2",
        kind="service",
        display_name="B",
        description="b",
        capabilities={"invoices.read": "Read invoices"},
        rpc={"Invoices.Get": rpc(In, Out, call=["invoices.read", "admin", "other::x"])},
    )
    assert list(c.manifest["capabilities"]) == ["acme.billing::invoices.read"]
    assert c.manifest["rpc"]["Invoices.Get"]["capabilities"]["call"] == [
        "acme.billing::invoices.read",
        "admin",
        "other::x",
    ]


def test_use_checks_names_against_the_target() -> None:
    use = trellis_core.use(rpc=["Trellis.Catalog"])
    assert use.contract == "trellis.core@v1"
    with pytest.raises(ContractError) as info:
        trellis_core.use(rpc=["Trellis.Catalgo", "Nope"], subscribe=["X"])
    assert len(info.value.problems) == 3


def test_every_problem_is_reported_at_once() -> None:
    class Bad(TrellisError):
        reason_code: str

    with pytest.raises(ContractError) as info:
        Contract(
            "Bad Id",
            kind="service",
            display_name="B",
            description="b",
            capabilities={"bad.read": "x"},
            rpc={
                "Items.Get": rpc(In, Out, call=["undeclared"]),
                "Items.Get2": rpc(In, Out, version="1"),
            },
            events={"Items.Moved": event(Out, params=["/nope", "/category"])},
            kv={"items": kv(Out, purpose="p")},
            streams={"items": stream(purpose="p", subjects=["a b"])},
        )
    messages = [str(p) for p in info.value.problems]
    text = "\n".join(messages)
    assert "id: 'Bad Id' is not a contract id" in text
    assert "rpc.Items.Get.capabilities.call: capability 'undeclared' is not declared" in text
    assert "rpc.Items.Get2.version" in text
    assert "events.Items.Moved.params[0]: '/nope' does not point into the event schema" in text
    assert "resources.streams.items: duplicate alias 'items'" in text
    assert "resources.streams.items.subjects[0]" in text
    assert len(messages) >= 6


def manifest(**overrides: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "format": "trellis.contract.v1",
        "id": "demo@v1",
        "displayName": "Demo",
        "description": "Demo.",
        "kind": "service",
        "schemas": {
            "In": {
                "type": "object",
                "properties": {"c": {"type": "string"}, "o": {"type": "object"}},
            }
        },
    }
    m.update(overrides)
    return m


def rpc_entry(
    name: str, subject: str | None = None, ref: str = "In", **extra: Any
) -> dict[str, Any]:
    return {
        "version": "v1",
        "subject": subject or f"rpc.v1.{name}",
        "input": {"schema": ref},
        "output": {"schema": "In"},
        **extra,
    }


def paths(m: Any, known: Any = None) -> list[str]:
    return [str(p) for p in check_manifest(m, known)]


def test_unknown_schema_reference_has_a_precise_path() -> None:
    assert "rpc.Items.Get.input: unknown schema 'Itm'" in paths(
        manifest(rpc={"Items.Get": rpc_entry("Items.Get", ref="Itm")})
    )


def test_subject_collisions_after_wildcarding() -> None:
    events = {
        "A.B": {
            "version": "v1",
            "subject": "events.v1.A.B.{/c}",
            "params": ["/c"],
            "event": {"schema": "In"},
        },
        "A.B.x": {
            "version": "v1",
            "subject": "events.v1.A.B.*",
            "params": [],
            "event": {"schema": "In"},
        },
    }
    problems = paths(manifest(events=events))
    assert any("collides" in p for p in problems)


def test_event_params_must_point_at_scalars_in_order() -> None:
    events = {
        "A.B": {
            "version": "v1",
            "subject": "events.v1.A.B.{/o}",
            "params": ["/o"],
            "event": {"schema": "In"},
        },
        "A.C": {
            "version": "v1",
            "subject": "events.v1.A.C.{/c}",
            "params": [],
            "event": {"schema": "In"},
        },
    }
    problems = "\n".join(paths(manifest(events=events)))
    assert "events.A.B.params[0]: '/o' must point at a string" in problems
    assert "events.A.C.params" in problems


def test_capability_namespace_rules() -> None:
    caps = {
        "other::x": {"displayName": "x", "description": "x"},
        "demo::demo.read": {"displayName": "x", "description": "x"},
        "plain": {"displayName": "x", "description": "x"},
        "demo::Bad Name": {"displayName": "x", "description": "x"},
    }
    problems = "\n".join(
        paths(
            manifest(
                capabilities=caps,
                rpc={"A.B": rpc_entry("A.B", capabilities={"call": ["demo::missing"]})},
            )
        )
    )
    assert "outside this contract's namespace" in problems
    assert "must not repeat the namespace prefix 'demo.'" in problems
    assert "must be namespaced" in problems
    assert "lowercase dotted words" in problems
    assert "capability 'demo::missing' is not declared" in problems


def test_uses_must_name_existing_surfaces_and_aliases_must_be_unique() -> None:
    known = {c.id: c.model for c in BUILTIN_CONTRACTS.values()}
    uses = {
        "required": {"core": {"contract": "trellis.core@v1", "rpc": {"call": ["Trellis.Nope"]}}},
        "optional": {"core": {"contract": "trellis.core@v1"}},
    }
    problems = "\n".join(paths(manifest(uses=uses), known))
    assert "uses.required.core.rpc.call: trellis.core@v1 has no rpc 'Trellis.Nope'" in problems
    assert "duplicate alias 'core'" in problems


def test_undeclared_rpc_error_and_structural_problems() -> None:
    problems = "\n".join(paths(manifest(rpc={"A.B": rpc_entry("A.B", errors=[{"type": "Nope"}])})))
    assert "error type 'Nope' is not declared" in problems
    assert "kind" in "\n".join(paths(manifest(kind="server")))
    assert paths([]) == [": a manifest must be a JSON object"] or paths([])[0].startswith(
        "a manifest"
    )
    assert any(p.startswith("subjects") for p in paths(manifest(subjects={})))
    assert any("$ref" in p for p in paths(manifest(schemas={"In": {"$ref": "#/x"}})))
