"""Contract digests: upstream vectors and the projection's edge cases (PROTOCOL §2)."""

from __future__ import annotations

import copy
from typing import Any

from tests.conftest import conformance
from trellis import contract_digest
from trellis.canonical import json_digest
from trellis.contracts import normalize_manifest, project_manifest


def test_upstream_contract_digest_vectors() -> None:
    vectors = conformance("upstream/contract-digest.json")
    assert vectors
    for vector in vectors:
        assert contract_digest(vector["input"]) == vector["digest"], vector["name"]


def base() -> dict[str, Any]:
    return {
        "format": "trellis.contract.v1",
        "id": "demo@v1",
        "displayName": "Demo",
        "description": "Demo contract.",
        "kind": "service",
        "schemas": {"In": {"type": "object"}, "Out": {"type": "string"}, "Err": {"type": "object"}},
        "rpc": {
            "Demo.Get": {
                "version": "v1",
                "subject": "rpc.v1.Demo.Get",
                "input": {"schema": "In"},
                "output": {"schema": "Out"},
                "capabilities": {"call": ["demo::b", "demo::a", "demo::a"]},
                "errors": [{"type": "NotFound"}, {"type": "ValidationError"}, {"type": "NotFound"}],
            }
        },
        "errors": {
            "NotFound": {"type": "NotFound", "schema": {"schema": "Err"}},
            "Unused": {"type": "Unused"},
        },
        "capabilities": {
            "demo::a": {"displayName": "A", "description": "a"},
            "demo::b": {"displayName": "B", "description": "b"},
        },
    }


def digest_after(change: Any) -> str:
    m = base()
    change(m)
    return contract_digest(m)


def test_human_copy_docs_exports_and_unknown_keys_do_not_change_the_digest() -> None:
    d = contract_digest(base())

    def edit(m: dict[str, Any]) -> None:
        m["displayName"] = "Other"
        m["description"] = "Other text."
        m["docs"] = {"markdown": "# hi"}
        m["rpc"]["Demo.Get"]["docs"] = {"markdown": "doc"}
        m["rpc"]["Demo.Get"]["internal"] = True
        m["exports"] = {"schemas": ["In"]}
        m["schemas"]["NeverUsed"] = {"type": "number"}
        m["futureField"] = {"x": 1}

    assert digest_after(edit) == d


def test_capability_copy_is_part_of_identity() -> None:
    def edit(m: dict[str, Any]) -> None:
        m["capabilities"]["demo::a"]["description"] = "changed"

    assert digest_after(edit) != contract_digest(base())


def test_lists_are_sorted_and_deduplicated_in_projection() -> None:
    projected = project_manifest(normalize_manifest(base()))
    method = projected["rpc"]["Demo.Get"]
    assert method["capabilities"]["call"] == ["demo::a", "demo::b"]
    assert method["errors"] == [{"type": "NotFound"}, {"type": "ValidationError"}]
    assert "Unused" not in projected["errors"] and "NotFound" in projected["errors"]
    assert set(projected["schemas"]) == {"In", "Out", "Err"}
    assert "displayName" not in projected and "description" not in projected


def test_kv_defaults_written_or_omitted_digest_differently() -> None:
    m1 = base()
    m1["resources"] = {"kv": {"items": {"purpose": "p", "schema": {"schema": "In"}}}}
    m2 = copy.deepcopy(m1)
    m2["resources"]["kv"]["items"].update({"required": True, "history": 1, "ttlMs": 0})
    assert contract_digest(m1) != contract_digest(m2)


def test_optional_use_also_required_is_dropped_and_empty_lists_kept() -> None:
    m = base()
    m["uses"] = {
        "required": {"core": {"contract": "trellis.core@v1", "rpc": {"call": ["b", "a", "a"]}}},
        "optional": {
            "core": {"contract": "trellis.core@v1"},
            "x": {"contract": "x@v1", "events": {"subscribe": []}},
        },
    }
    projected = project_manifest(normalize_manifest(m))
    assert projected["uses"]["required"]["core"]["rpc"]["call"] == ["a", "b"]
    assert list(projected["uses"]["optional"]) == ["x"]
    assert projected["uses"]["optional"]["x"]["events"] == {"subscribe": []}


def test_only_the_first_matching_error_declaration_contributes_its_schema() -> None:
    m = base()
    m["schemas"]["Err2"] = {"type": "array"}
    m["errors"]["NotFoundAgain"] = {"type": "NotFound", "schema": {"schema": "Err2"}}
    projected = project_manifest(normalize_manifest(m))
    assert "Err2" not in projected["schemas"]
    assert "NotFoundAgain" in projected["errors"]


def test_event_consumer_defaults_are_filled_before_digest() -> None:
    m = base()
    m["events"] = {
        "Demo.Done": {"version": "v1", "subject": "events.v1.Demo.Done", "event": {"schema": "In"}}
    }
    m["eventConsumers"] = {"g": {"self": ["Demo.Done", "Demo.Done"]}}
    explicit = copy.deepcopy(m)
    explicit["eventConsumers"]["g"].update(
        {"replay": "new", "ordering": "strict", "concurrency": 1}
    )
    assert contract_digest(m) == contract_digest(explicit)
    assert normalize_manifest(m)["eventConsumers"]["g"]["self"] == ["Demo.Done"]


def test_empty_capabilities_object_on_event_is_kept() -> None:
    m = base()
    m["events"] = {
        "Demo.Done": {
            "version": "v1",
            "subject": "events.v1.Demo.Done",
            "event": {"schema": "In"},
            "capabilities": {},
        }
    }
    projected = project_manifest(normalize_manifest(m))
    assert projected["events"]["Demo.Done"]["capabilities"] == {}
    without = copy.deepcopy(m)
    del without["events"]["Demo.Done"]["capabilities"]
    assert contract_digest(m) != contract_digest(without)


def test_rpc_capabilities_without_call_are_dropped() -> None:
    m = base()
    m["rpc"]["Demo.Get"]["capabilities"] = {}
    n = normalize_manifest(m)
    assert "capabilities" not in n["rpc"]["Demo.Get"]


def test_no_reachable_schema_omits_the_schemas_key() -> None:
    m = {k: v for k, v in base().items() if k not in ("rpc", "errors")}
    assert "schemas" not in project_manifest(normalize_manifest(m))


def test_streams_extension_is_digested_but_absent_manifests_match_upstream() -> None:
    m = base()
    d_plain = contract_digest(m)
    m["resources"] = {
        "streams": {
            "audit": {
                "purpose": "p",
                "subjects": ["audit.>"],
                "retention": "limits",
                "required": True,
            }
        }
    }
    assert contract_digest(m) != d_plain
    assert project_manifest(normalize_manifest(m))["resources"]["streams"]["audit"]["subjects"] == [
        "audit.>"
    ]


def test_digest_is_json_digest_of_projection() -> None:
    m = base()
    assert contract_digest(m) == json_digest(project_manifest(normalize_manifest(m)))
