"""Contract authoring and validation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from examples.inventory.contract import ItemNotFound, inventory
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tests.conftest import conformance
from trellis import Contract, ContractError, TrellisError, contract_digest, event, kv, rpc, stream
from trellis.canonical import canonical_json
from trellis.contracts import (
    BUILTIN_CONTRACTS,
    Manifest,
    Problem,
    check_manifest,
    normalize_manifest,
    project_manifest,
    trellis_core,
)
from trellis.contracts.model import SchemaRef
from trellis.runtime.state import ContractRecord


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
    schema = conformance("schemas/trellis.contract.v1.schema.json")
    validator = jsonschema.Draft201909Validator(schema)
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


# --- the typed model ------------------------------------------------------------------------


def test_an_upstream_authored_manifest_parses_into_the_model_and_round_trips() -> None:
    """The digest vectors' inputs come from upstream's TypeScript builder."""
    for vector in conformance("upstream/contract-digest.json"):
        model = Manifest.parse(vector["input"])
        assert model.dump() == normalize_manifest(vector["input"])
        assert canonical_json(Manifest.parse(model.dump()).dump()) == canonical_json(model.dump())
        assert contract_digest(model.dump()) == vector["digest"], vector["name"]


def test_authored_contracts_expose_their_model() -> None:
    known = {c.id: c.model for c in BUILTIN_CONTRACTS.values()}
    for contract in (inventory, *BUILTIN_CONTRACTS.values()):
        assert contract.model.dump() == contract.manifest
        assert Manifest.parse(contract.manifest, known) == contract.model
    items = inventory.model.resources.kv["items"]
    assert (items.schema_ref.name, items.history, items.max_value_bytes) == ("Item", 1, None)
    get = inventory.model.rpc["Items.Get"]
    assert get.capabilities.call == ["inventory::items.read"]
    assert [e.type for e in get.errors] == ["ItemNotFound"]
    assert inventory.model.error_schema("ItemNotFound") == SchemaRef(schema="ItemNotFoundData")


def test_omitted_settings_read_as_defaults_and_stay_unwritten() -> None:
    m = manifest(
        jobs={"q": {"payload": {"schema": "In"}}},
        resources={"kv": {"k": {"purpose": "p", "schema": {"schema": "In"}}}},
    )
    model = Manifest.parse(m)
    assert (model.jobs["q"].max_deliver, model.jobs["q"].ack_wait_ms) == (5, 300000)
    assert (model.resources.kv["k"].history, model.resources.kv["k"].ttl_ms) == (1, 0)
    assert model.dump() == normalize_manifest(m)
    assert "maxDeliver" not in model.dump()["jobs"]["q"]
    assert contract_digest(model.dump()) == contract_digest(m)


def test_parse_raises_every_problem_and_check_returns_them() -> None:
    with pytest.raises(ContractError) as info:
        Manifest.parse(manifest(rpc={"A.B": rpc_entry("A.B", ref="Nope")}, kind="robot"))
    assert [p.path for p in info.value.problems] == ["kind"]
    assert info.value.contract_id == "demo@v1"
    model, problems = Manifest.check(manifest(rpc={"A.B": rpc_entry("A.B", ref="Nope")}))
    assert model is not None and model.rpc["A.B"].input.name == "Nope"
    assert [str(p) for p in problems] == ["rpc.A.B.input: unknown schema 'Nope'"]
    assert Manifest.check([]) == (None, [Problem("", "a manifest must be a JSON object")])


def test_schema_refs_visit_every_reference_once_and_reachability_follows_rpc_errors() -> None:
    schemas = {name: {"type": "object"} for name in ("In", "S", "Old", "Gone", "Unused", "X")}
    m = manifest(
        schemas=schemas,
        rpc={"A.B": rpc_entry("A.B", errors=[{"type": "Gone"}])},
        errors={
            "Gone": {"type": "Gone", "schema": {"schema": "Gone"}},
            "Unused": {"type": "Unused", "schema": {"schema": "Unused"}},
        },
        state={
            "s": {
                "kind": "value",
                "schema": {"schema": "S"},
                "acceptedVersions": {"v0": {"schema": "Old"}},
            }
        },
    )
    model = Manifest.parse(m)
    paths = [path for path, _ in model.schema_refs()]
    assert len(paths) == len(set(paths))
    assert {path: ref.name for path, ref in model.schema_refs()} == {
        "state.s.schema": "S",
        "state.s.acceptedVersions.v0": "Old",
        "rpc.A.B.input": "In",
        "rpc.A.B.output": "In",
        "errors.Gone.schema": "Gone",
        "errors.Unused.schema": "Unused",
    }
    assert model.reachable_schemas() == {"In", "S", "Old", "Gone"}
    assert model.reachable_schemas(state=False) == {"In", "Gone"}
    projected = project_manifest(normalize_manifest(m))
    assert set(projected["schemas"]) == model.reachable_schemas()


def test_a_stored_contract_record_keeps_the_manifest_json_exactly() -> None:
    record = ContractRecord(digest=inventory.digest, id=inventory.id, manifest=inventory.model)
    stored = json.loads(record.model_dump_json(by_alias=True))
    assert stored["manifest"] == inventory.manifest
    loaded = ContractRecord.model_validate_json(json.dumps(stored))
    assert loaded.manifest == inventory.model
    assert contract_digest(loaded.manifest.dump()) == inventory.digest


SCHEMA_NAMES = ["In", "Out", "Ev"]
GENERATED_SCHEMAS = {
    "In": {"type": "object", "properties": {"id": {"type": "string"}}},
    "Out": {"type": "object", "properties": {}},
    "Ev": {
        "type": "object",
        "properties": {"region": {"type": "string"}, "n": {"type": "integer"}},
    },
}
_surface_names = st.lists(st.from_regex(r"\A[A-Z][a-z]{0,4}\.[A-Z][a-z]{0,4}\Z"), max_size=3)
_ref = st.sampled_from(SCHEMA_NAMES).map(lambda name: {"schema": name})
_caps = st.lists(st.sampled_from(["gen::read", "gen::write", "admin"]), unique=True)
_docs = st.one_of(st.none(), st.builds(lambda t: {"markdown": t}, st.text(max_size=5)))


def _maybe(draw: st.DrawFn, out: dict[str, Any], key: str, values: st.SearchStrategy[Any]) -> None:
    """Write ``key`` or leave it out: omitted and written defaults digest differently."""
    if draw(st.booleans()):
        out[key] = draw(values)


@st.composite
def valid_manifests(draw: st.DrawFn) -> dict[str, Any]:
    m: dict[str, Any] = {
        "format": "trellis.contract.v1",
        "id": "gen@v1",
        "displayName": "Generated",
        "description": "A generated contract.",
        "kind": draw(st.sampled_from(["service", "app", "device", "agent", "cli"])),
        "capabilities": {
            "gen::read": {"displayName": "Read", "description": "r"},
            "gen::write": {"displayName": "Write", "description": "w", "consequence": "c"},
        },
        "schemas": dict(GENERATED_SCHEMAS),
        "errors": {"Gone": {"type": "Gone", "schema": {"schema": "Out"}}},
    }
    _maybe(draw, m, "docs", _docs.filter(bool))
    rpc: dict[str, Any] = {}
    for name in draw(_surface_names):
        entry = {"version": "v1", "subject": f"rpc.v1.{name}", "input": draw(_ref)}
        entry["output"] = draw(_ref)
        _maybe(draw, entry, "capabilities", st.builds(lambda c: {"call": c}, _caps))
        _maybe(draw, entry, "errors", st.sampled_from([[{"type": "Gone"}], []]))
        rpc[name] = entry
    events: dict[str, Any] = {}
    for name in draw(_surface_names):
        params = draw(st.sampled_from([[], ["/region"], ["/region", "/n"]]))
        subject = ".".join([f"events.v1.{name}", *(f"{{{p}}}" for p in params)])
        event = {"version": "v1", "subject": subject, "params": params, "event": {"schema": "Ev"}}
        _maybe(
            draw,
            event,
            "capabilities",
            st.builds(lambda p, s: {"publish": p, "subscribe": s}, _caps, _caps),
        )
        events[name] = event
    m["rpc"], m["events"] = rpc, events
    kv: dict[str, Any] = {"purpose": "p", "schema": draw(_ref)}
    for key, values in (
        ("required", st.booleans()),
        ("history", st.integers(1, 64)),
        ("ttlMs", st.integers(0, 10**6)),
        ("maxValueBytes", st.integers(1, 10**6)),
    ):
        _maybe(draw, kv, key, values)
    stream: dict[str, Any] = {"purpose": "p", "subjects": ["a.*", "b.>"]}
    _maybe(draw, stream, "retention", st.sampled_from(["limits", "workqueue", "interest"]))
    _maybe(draw, stream, "maxAgeMs", st.integers(0, 10**6))
    m["resources"] = {
        "kv": {"items": kv},
        "store": {"files": {"purpose": "p"}},
        "streams": {"log": stream},
    }
    job: dict[str, Any] = {"payload": draw(_ref)}
    _maybe(draw, job, "result", _ref)
    for key, values in (
        ("maxDeliver", st.integers(1, 9)),
        ("backoffMs", st.lists(st.integers(0, 10**5), max_size=3)),
        ("progress", st.booleans()),
        ("concurrency", st.integers(1, 8)),
    ):
        _maybe(draw, job, key, values)
    m["jobs"] = {"work": job}
    if events:
        consumer: dict[str, Any] = {"self": sorted(events)[:1]}
        _maybe(draw, consumer, "replay", st.sampled_from(["new", "all"]))
        _maybe(draw, consumer, "ackWaitMs", st.integers(1, 10**5))
        m["eventConsumers"] = {"audit": consumer}
    if draw(st.booleans()):
        m["uses"] = {
            "required": {
                "core": {"contract": "trellis.core@v1", "rpc": {"call": ["Trellis.Catalog"]}}
            }
        }
    return m


@settings(max_examples=60, deadline=None)
@given(valid_manifests())
def test_parse_then_dump_round_trips_generated_manifests(m: dict[str, Any]) -> None:
    known = {c.id: c.model for c in BUILTIN_CONTRACTS.values()}
    model = Manifest.parse(m, known)
    dumped = model.dump()
    assert dumped == normalize_manifest(m)
    assert Manifest.parse(dumped, known) == model
    assert canonical_json(Manifest.parse(json.loads(json.dumps(dumped))).dump()) == canonical_json(
        dumped
    )
    assert contract_digest(dumped) == contract_digest(m)
