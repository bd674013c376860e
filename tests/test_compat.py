"""Compatibility of a new digest with the active manifest of the same contract id."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trellis.contracts import Manifest, check_manifest
from trellis.contracts.compat import (
    Incompatibility,
    check_compatible,
    schema_conflicts,
)

Json = dict[str, Any]

STR: Json = {"type": "string"}
INT: Json = {"type": "integer"}


def obj(props: Json, required: list[str] | None = None, **extra: Any) -> Json:
    out: Json = {"type": "object", "properties": props, "required": required or []}
    out.update(extra)
    return out


def base() -> Json:
    """A small but complete manifest touching every section the check compares."""
    return {
        "format": "trellis.contract.v1",
        "id": "inventory@v1",
        "displayName": "Inventory",
        "description": "Owns item records.",
        "kind": "service",
        "capabilities": {
            "inventory::items.read": {"displayName": "Read", "description": "Read items"},
            "inventory::items.write": {"displayName": "Write", "description": "Write items"},
        },
        "schemas": {
            "GetItem": obj({"id": STR}, ["id"]),
            "Item": obj({"id": STR, "name": STR}, ["id", "name"]),
            "ItemRecord": obj({"id": STR, "quantity": INT}, ["id"]),
            "ItemCreated": obj({"id": STR, "category": STR}, ["id", "category"]),
            "NotFoundData": obj({"item_id": STR}, ["item_id"]),
            "Reindex": obj({"full": {"type": "boolean"}}),
            "Import": obj({"url": STR}, ["url"]),
            "ImportDone": obj({"count": INT}, ["count"]),
            "Pause": obj({}),
            "Watch": obj({"category": STR}),
        },
        "rpc": {
            "Items.Get": {
                "version": "v1",
                "subject": "rpc.v1.Items.Get",
                "input": {"schema": "GetItem"},
                "output": {"schema": "Item"},
                "capabilities": {"call": ["inventory::items.read", "admin"]},
                "errors": [{"type": "ItemNotFound"}, {"type": "ValidationError"}],
            }
        },
        "operations": {
            "Items.Import": {
                "version": "v1",
                "subject": "operations.v1.Items.Import",
                "input": {"schema": "Import"},
                "output": {"schema": "ImportDone"},
                "capabilities": {"call": ["inventory::items.write"]},
                "signals": {"pause": {"input": {"schema": "Pause"}}},
                "cancel": True,
            }
        },
        "events": {
            "Items.Created": {
                "version": "v1",
                "subject": "events.v1.Items.Created.{/category}",
                "params": ["/category"],
                "event": {"schema": "ItemCreated"},
                "capabilities": {
                    "publish": ["service"],
                    "subscribe": ["inventory::items.read"],
                },
            }
        },
        "feeds": {
            "Items.Watch": {
                "version": "v1",
                "subject": "feeds.v1.Items.Watch",
                "input": {"schema": "Watch"},
                "event": {"schema": "ItemCreated"},
                "capabilities": {"subscribe": ["inventory::items.read"]},
            }
        },
        "errors": {"ItemNotFound": {"type": "ItemNotFound", "schema": {"schema": "NotFoundData"}}},
        "jobs": {"reindex": {"payload": {"schema": "Reindex"}, "maxDeliver": 3}},
        "resources": {
            "kv": {
                "items": {
                    "purpose": "Item records",
                    "schema": {"schema": "ItemRecord"},
                    "required": True,
                    "history": 1,
                    "ttlMs": 0,
                }
            },
            "store": {
                "blobs": {
                    "purpose": "Attachments",
                    "required": True,
                    "ttlMs": 0,
                    "maxObjectBytes": 1_048_576,
                }
            },
            "streams": {
                "audit": {
                    "purpose": "Audit trail",
                    "subjects": ["audit.>"],
                    "retention": "limits",
                    "required": True,
                    "maxAgeMs": 86_400_000,
                }
            },
        },
    }


def changed(edit: Callable[[Json], object]) -> Json:
    """A copy of ``base()`` with ``edit`` applied in place."""
    m = base()
    edit(m)
    return m


def compat(old: Json, new: Json) -> list[Incompatibility]:
    """``check_compatible`` on the typed models of two JSON fixtures (shape checked only:
    some fixtures are semantically broken on purpose)."""
    return check_compatible(Manifest.model_validate(old), Manifest.model_validate(new))


def paths(problems: list[Incompatibility]) -> list[str]:
    return [p.path for p in problems]


# --- sanity ------------------------------------------------------------------------------


def test_base_manifest_is_valid_and_compatible_with_itself() -> None:
    assert check_manifest(base()) == []
    assert compat(base(), base()) == []


def test_incompatibility_str() -> None:
    problem = Incompatibility("rpc.Items.Get", "removed")
    assert str(problem) == "rpc.Items.Get: removed"
    assert Incompatibility(
        "rpc.Items.Get", "removed; callers of the active contract would break"
    ) in compat(base(), changed(lambda m: m.pop("rpc")))


def test_docs_and_display_text_do_not_matter() -> None:
    def edit(m: Json) -> None:
        m["displayName"] = "Stock"
        m["description"] = "Something else."
        m["rpc"]["Items.Get"]["docs"] = {"summary": "Fetch one item.", "markdown": "."}
        m["unknownKey"] = 1

    assert compat(base(), changed(edit)) == []


# --- identity and kind -------------------------------------------------------------------


def test_different_id_is_one_problem() -> None:
    def edit(m: Json) -> None:
        m["id"] = "inventory@v2"
        m["kind"] = "app"
        m.pop("rpc")

    problems = compat(base(), changed(edit))
    assert paths(problems) == ["id"]
    assert "inventory@v2" in problems[0].message


def test_kind_change() -> None:
    problems = compat(base(), changed(lambda m: m.update(kind="agent")))
    assert paths(problems) == ["kind"]


# --- surfaces ----------------------------------------------------------------------------


def test_new_rpc_is_compatible() -> None:
    def edit(m: Json) -> None:
        m["schemas"]["ListItems"] = obj({"limit": INT})
        m["rpc"]["Items.List"] = {
            "version": "v1",
            "subject": "rpc.v1.Items.List",
            "input": {"schema": "ListItems"},
            "output": {"schema": "Item"},
            "capabilities": {"call": ["inventory::items.read"]},
        }

    new = changed(edit)
    assert check_manifest(new) == []
    assert compat(base(), new) == []


@pytest.mark.parametrize("section", ["rpc", "operations", "events", "feeds"])
def test_removed_surface(section: str) -> None:
    name = next(iter(base()[section]))
    problems = compat(base(), changed(lambda m: m[section].pop(name)))
    assert paths(problems) == [f"{section}.{name}"]
    assert "removed" in problems[0].message


def test_changed_subject() -> None:
    def edit(m: Json) -> None:
        m["rpc"]["Items.Get"]["subject"] = "rpc.v1.Items.Fetch"

    problems = compat(base(), changed(edit))
    assert paths(problems) == ["rpc.Items.Get.subject"]
    assert "rpc.v1.Items.Fetch" in problems[0].message


def test_changed_version() -> None:
    def edit(m: Json) -> None:
        m["events"]["Items.Created"]["version"] = "v2"

    assert paths(compat(base(), changed(edit))) == ["events.Items.Created.version"]


def test_subject_taken_over_by_another_surface() -> None:
    """Renaming an rpc but keeping its subject: removal plus a subject collision."""

    def edit(m: Json) -> None:
        m["rpc"]["Items.Fetch"] = m["rpc"].pop("Items.Get")

    problems = compat(base(), changed(edit))
    assert sorted(paths(problems)) == ["rpc.Items.Fetch.subject", "rpc.Items.Get"]
    collision = next(p for p in problems if p.path == "rpc.Items.Fetch.subject")
    assert "rpc.Items.Get" in collision.message


def test_event_template_subjects_collide_after_wildcarding() -> None:
    """Template tokens with other pointer names still make the same subject."""

    def edit(m: Json) -> None:
        m["events"]["Items.Added"] = {
            "version": "v1",
            "subject": "events.v1.Items.Created.{/id}",
            "params": ["/id"],
            "event": {"schema": "ItemCreated"},
        }

    problems = compat(base(), changed(edit))
    assert paths(problems) == ["events.Items.Added.subject"]
    assert "events.v1.Items.Created.*" in problems[0].message
    assert "events.Items.Created (old)" in problems[0].message


def test_changed_capabilities() -> None:
    def edit(m: Json) -> None:
        m["rpc"]["Items.Get"]["capabilities"]["call"] = ["inventory::items.write"]

    problems = compat(base(), changed(edit))
    assert paths(problems) == ["rpc.Items.Get.capabilities"]


def test_reordered_capabilities_and_errors_are_the_same() -> None:
    def edit(m: Json) -> None:
        method = m["rpc"]["Items.Get"]
        method["capabilities"]["call"] = ["admin", "inventory::items.read", "admin"]
        method["errors"] = [{"type": "ValidationError"}, {"type": "ItemNotFound"}]

    assert compat(base(), changed(edit)) == []


def test_changed_errors() -> None:
    def edit(m: Json) -> None:
        m["rpc"]["Items.Get"]["errors"] = [{"type": "ItemNotFound"}]

    assert paths(compat(base(), changed(edit))) == ["rpc.Items.Get.errors"]


def test_changed_event_params_and_operation_cancel() -> None:
    def edit(m: Json) -> None:
        m["events"]["Items.Created"]["subject"] = "events.v1.Items.Created.{/id}"
        m["events"]["Items.Created"]["params"] = ["/id"]
        m["operations"]["Items.Import"]["cancel"] = False

    problems = compat(base(), changed(edit))
    assert sorted(paths(problems)) == [
        "events.Items.Created.params",
        "events.Items.Created.subject",
        "operations.Items.Import.cancel",
    ]


def test_removed_operation_signal() -> None:
    def edit(m: Json) -> None:
        del m["operations"]["Items.Import"]["signals"]

    problems = compat(base(), changed(edit))
    assert paths(problems) == ["operations.Items.Import.signals.pause"]


def test_added_progress_schema_reference() -> None:
    def edit(m: Json) -> None:
        m["operations"]["Items.Import"]["progress"] = {"schema": "ImportDone"}

    problems = compat(base(), changed(edit))
    assert paths(problems) == ["operations.Items.Import.progress"]
    assert "added" in problems[0].message


def test_capability_used_by_a_kept_surface_must_stay_declared() -> None:
    def edit(m: Json) -> None:
        del m["capabilities"]["inventory::items.read"]

    problems = compat(base(), changed(edit))
    assert paths(problems) == ["capabilities.inventory::items.read"]
    assert "rpc.Items.Get" in problems[0].message
    assert "feeds.Items.Watch" in problems[0].message


def test_capability_of_a_removed_surface_may_go() -> None:
    """Removing the surface is reported once; its capability is not reported again."""

    def edit(m: Json) -> None:
        del m["capabilities"]["inventory::items.write"]
        del m["operations"]

    assert paths(compat(base(), changed(edit))) == ["operations.Items.Import"]


# --- schemas through surfaces ------------------------------------------------------------


def test_new_optional_property_on_open_object_is_compatible() -> None:
    def edit(m: Json) -> None:
        m["schemas"]["Item"]["properties"]["category"] = STR

    assert compat(base(), changed(edit)) == []


def test_new_required_property_is_incompatible() -> None:
    def edit(m: Json) -> None:
        m["schemas"]["GetItem"]["properties"]["tenant"] = STR
        m["schemas"]["GetItem"]["required"].append("tenant")

    problems = compat(base(), changed(edit))
    assert paths(problems) == ["rpc.Items.Get.input"]
    assert "'tenant'" in problems[0].message
    assert "GetItem" in problems[0].message


def test_property_type_change_is_incompatible() -> None:
    def edit(m: Json) -> None:
        m["schemas"]["Item"]["properties"]["name"] = INT

    problems = compat(base(), changed(edit))
    assert paths(problems) == ["rpc.Items.Get.output"]
    assert "/properties/name" in problems[0].message


def test_closed_object_cannot_gain_a_property() -> None:
    def edit(m: Json) -> None:
        m["schemas"]["Watch"]["additionalProperties"] = False

    # closing an object while keeping its properties merges
    assert compat(base(), changed(edit)) == []

    def edit_more(m: Json) -> None:
        edit(m)
        m["schemas"]["Watch"]["properties"]["limit"] = INT

    problems = compat(changed(edit), changed(edit_more))
    assert paths(problems) == ["feeds.Items.Watch.input"]
    assert "closed" in problems[0].message


def test_renamed_schema_reference_that_merges_is_fine() -> None:
    def edit(m: Json) -> None:
        m["schemas"]["ItemV2"] = obj({"id": STR, "name": STR, "note": STR}, ["id", "name"])
        m["rpc"]["Items.Get"]["output"] = {"schema": "ItemV2"}

    assert compat(base(), changed(edit)) == []


def test_same_named_schema_must_merge_even_when_referenced_elsewhere() -> None:
    """A schema the old manifest referenced may not change incompatibly under its name."""

    def edit(m: Json) -> None:
        m["schemas"]["ItemV2"] = copy.deepcopy(m["schemas"]["Item"])
        m["rpc"]["Items.Get"]["output"] = {"schema": "ItemV2"}
        m["schemas"]["Item"]["properties"]["name"] = INT
        m["schemas"]["ListItems"] = obj({})
        m["rpc"]["Items.List"] = {
            "version": "v1",
            "subject": "rpc.v1.Items.List",
            "input": {"schema": "ListItems"},
            "output": {"schema": "Item"},
        }

    problems = compat(base(), changed(edit))
    assert paths(problems) == ["schemas.Item"]


def test_missing_schema_is_reported() -> None:
    def edit(m: Json) -> None:
        m["rpc"]["Items.Get"]["input"] = {"schema": "Nowhere"}

    problems = compat(base(), changed(edit))
    assert paths(problems) == ["rpc.Items.Get.input"]
    assert "not defined in the new manifest" in problems[0].message


def test_error_data_schema_must_merge() -> None:
    def edit(m: Json) -> None:
        m["schemas"]["NotFoundData"]["properties"]["item_id"] = INT

    assert paths(compat(base(), changed(edit))) == ["errors.ItemNotFound.schema"]


# --- jobs --------------------------------------------------------------------------------


def test_job_settings() -> None:
    def edit(m: Json) -> None:
        job = m["jobs"]["reindex"]
        job["maxDeliver"] = 4
        job["concurrency"] = 1  # the default written out: unchanged
        job["result"] = {"schema": "ImportDone"}

    problems = compat(base(), changed(edit))
    assert sorted(paths(problems)) == ["jobs.reindex.maxDeliver", "jobs.reindex.result"]


def test_job_payload_must_merge_and_new_queue_is_fine() -> None:
    def edit(m: Json) -> None:
        m["schemas"]["Reindex"]["properties"]["full"] = STR
        m["jobs"]["compact"] = {"payload": {"schema": "Pause"}}

    assert paths(compat(base(), changed(edit))) == ["jobs.reindex.payload"]


# --- resources ---------------------------------------------------------------------------


def test_raised_limits_and_new_aliases_are_compatible() -> None:
    def edit(m: Json) -> None:
        res = m["resources"]
        res["kv"]["items"]["history"] = 5
        res["kv"]["items"]["maxValueBytes"] = 4096  # was unlimited: that is a shrink
        res["store"]["blobs"]["maxObjectBytes"] = 2 * 1_048_576
        res["streams"]["audit"]["maxAgeMs"] = 0  # unlimited
        res["streams"]["audit"]["subjects"].append("audit2.>")
        res["kv"]["sessions"] = {"purpose": "Sessions", "schema": {"schema": "Pause"}}

    problems = compat(base(), changed(edit))
    assert paths(problems) == ["resources.kv.items.maxValueBytes"]


def test_removed_and_renamed_aliases() -> None:
    def edit(m: Json) -> None:
        res = m["resources"]
        del res["store"]
        res["kv"]["records"] = res["kv"].pop("items")

    problems = compat(base(), changed(edit))
    assert sorted(paths(problems)) == ["resources.kv.items", "resources.store.blobs"]


def test_shrunk_ttl_and_history() -> None:
    old = changed(lambda m: m["resources"]["kv"]["items"].update(history=3))

    def edit(m: Json) -> None:
        m["resources"]["kv"]["items"].update(history=2, ttlMs=60_000)
        m["resources"]["store"]["blobs"]["ttlMs"] = 1

    problems = compat(old, changed(edit))
    assert sorted(paths(problems)) == [
        "resources.kv.items.history",
        "resources.kv.items.ttlMs",
        "resources.store.blobs.ttlMs",
    ]
    ttl = next(p for p in problems if p.path == "resources.kv.items.ttlMs")
    assert "no limit" in ttl.message
    # the other way round every limit grows: a zero TTL means "no expiry"
    assert compat(changed(edit), old) == []
    shrunk = compat(changed(edit), base())
    assert shrunk == [Incompatibility("resources.kv.items.history", "shrank from 2 to 1")]


def test_kv_schema_must_merge() -> None:
    def edit(m: Json) -> None:
        m["schemas"]["ItemRecord"]["properties"]["quantity"] = STR

    assert paths(compat(base(), changed(edit))) == ["resources.kv.items.schema"]


def test_stream_changes() -> None:
    def edit(m: Json) -> None:
        stream = m["resources"]["streams"]["audit"]
        stream["subjects"] = ["audit.items.>"]
        stream["retention"] = "workqueue"
        stream["maxAgeMs"] = 1000

    problems = compat(base(), changed(edit))
    assert sorted(paths(problems)) == [
        "resources.streams.audit.maxAgeMs",
        "resources.streams.audit.retention",
        "resources.streams.audit.subjects",
    ]


def test_every_problem_is_reported() -> None:
    def edit(m: Json) -> None:
        m["kind"] = "app"
        del m["events"]
        m["rpc"]["Items.Get"]["subject"] = "rpc.v1.Items.Other"
        m["schemas"]["GetItem"]["required"] = []
        del m["resources"]["kv"]

    problems = compat(base(), changed(edit))
    assert sorted(paths(problems)) == [
        "events.Items.Created",
        "kind",
        "resources.kv.items",
        "rpc.Items.Get.input",
        "rpc.Items.Get.subject",
    ]


# --- the schema merge rule on its own ------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (STR, STR),
        ({"type": "string", "maxLength": 3}, {"maxLength": 3, "type": "string"}),
        (obj({"a": STR}), obj({"a": STR, "b": INT})),
        (obj({"a": STR, "b": INT}), obj({"a": STR})),
        (obj({"a": obj({"x": STR})}, ["a"]), obj({"a": obj({"x": STR, "y": STR})}, ["a"])),
        (obj({"a": STR}, title="A"), obj({"a": STR}, title="B", description="now documented")),
        (obj({"a": STR}), obj({"a": STR}, additionalProperties=False)),
        ({"type": "object"}, obj({"a": STR})),
    ],
)
def test_schemas_that_merge(old: Json, new: Json) -> None:
    assert schema_conflicts(old, new) == []
    assert schema_conflicts(new, old) == []


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        (STR, INT, "the root"),
        (obj({"a": STR}), obj({"a": STR, "b": STR}, ["b"]), "now requires 'b'"),
        (obj({"a": STR}, ["a"]), obj({"a": STR}), "no longer requires 'a'"),
        (obj({"a": STR}), obj({"a": INT}), "/properties/a"),
        (obj({"a": STR}, additionalProperties=False), obj({"a": STR, "b": STR}), "closed"),
        (obj({"a": STR}, minProperties=1), obj({"a": STR, "b": STR}), "'minProperties'"),
        (
            obj({"a": STR}, additionalProperties=STR),
            obj({"a": STR, "b": STR}),
            "non-boolean",
        ),
        (obj({"a": STR}, ["a", "a"]), obj({"a": STR, "b": STR}, ["a"]), "not a set"),
        (obj({"a": STR}, ["a", "b"]), obj({"a": STR}, ["a", "b"], b=1), "'b'"),
        (obj({"x": obj({"y": STR})}), obj({"x": obj({"y": INT})}), "/properties/x/properties/y"),
        (obj({"a/b": STR}), obj({"a/b": INT}), "/properties/a~1b"),
        (True, {"type": "object"}, "the root"),
    ],
)
def test_schemas_that_do_not_merge(old: Any, new: Any, fragment: str) -> None:
    reasons = schema_conflicts(old, new)
    assert reasons
    assert any(fragment in r for r in reasons), reasons
    assert schema_conflicts(new, old)


def test_required_but_undefined_property_on_one_side() -> None:
    old = obj({"a": STR, "b": STR}, ["b"])
    new = obj({"a": STR}, ["b"])
    assert any("is required" in r for r in schema_conflicts(old, new))


# --- properties --------------------------------------------------------------------------

NAMES = st.text(alphabet="abcxyz", min_size=1, max_size=4)
LEAF = st.sampled_from(
    [STR, INT, {"type": "boolean"}, {"type": "string", "maxLength": 8}, {"enum": ["a", "b"]}]
)


@st.composite
def object_schemas(draw: st.DrawFn, children: st.SearchStrategy[Any]) -> Json:
    props = draw(st.dictionaries(NAMES, children, max_size=4))
    required = draw(st.lists(st.sampled_from(sorted(props)), unique=True)) if props else []
    schema: Json = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    if draw(st.booleans()):
        schema["additionalProperties"] = draw(st.booleans())
    return schema


SCHEMAS = st.recursive(LEAF, lambda children: object_schemas(children), max_leaves=8)
OPEN_OBJECTS = object_schemas(SCHEMAS).filter(lambda s: s.get("additionalProperties", True))
SURFACE_NAMES = st.from_regex(r"\A[A-Z][a-z]{0,5}\.[A-Z][a-z]{0,5}\Z")


@st.composite
def manifests(draw: st.DrawFn) -> Json:
    schemas = draw(st.dictionaries(st.from_regex(r"\AS[a-z]{1,5}\Z"), SCHEMAS, min_size=1))
    ref = st.sampled_from(sorted(schemas)).map(lambda name: {"schema": name})
    rpc = {
        name: {
            "version": "v1",
            "subject": f"rpc.v1.{name}",
            "input": draw(ref),
            "output": draw(ref),
            "capabilities": {"call": draw(st.lists(st.sampled_from(["admin", "service"])))},
        }
        for name in draw(st.lists(SURFACE_NAMES, unique=True, max_size=4))
    }
    events = {
        name: {"version": "v1", "subject": f"events.v1.{name}", "event": draw(ref)}
        for name in draw(st.lists(SURFACE_NAMES, unique=True, max_size=3))
    }
    m: Json = {
        "format": "trellis.contract.v1",
        "id": "generated@v1",
        "displayName": "Generated",
        "description": "A generated contract.",
        "kind": draw(st.sampled_from(["service", "app", "device", "agent"])),
        "schemas": schemas,
        "rpc": rpc,
        "events": events,
    }
    if draw(st.booleans()):
        m["resources"] = {
            "kv": {
                "state": {
                    "purpose": "State",
                    "schema": draw(ref),
                    "history": draw(st.integers(1, 10)),
                    "ttlMs": draw(st.integers(0, 10_000)),
                }
            }
        }
    return m


@settings(max_examples=150, deadline=None)
@given(manifests())
def test_a_manifest_is_compatible_with_itself(m: Json) -> None:
    assert compat(m, copy.deepcopy(m)) == []


@settings(max_examples=150, deadline=None)
@given(manifests(), SCHEMAS, SCHEMAS)
def test_adding_an_unrelated_rpc_keeps_compatibility(m: Json, input_: Any, output: Any) -> None:
    new = copy.deepcopy(m)
    new["schemas"]["ZzExtraInput"] = input_
    new["schemas"]["ZzExtraOutput"] = output
    new["rpc"]["Zz.Extra"] = {
        "version": "v1",
        "subject": "rpc.v1.Zz.Extra",
        "input": {"schema": "ZzExtraInput"},
        "output": {"schema": "ZzExtraOutput"},
    }
    assert compat(m, new) == []


@settings(max_examples=200, deadline=None)
@given(SCHEMAS, SCHEMAS)
def test_schema_merge_is_reflexive_and_symmetric(a: Any, b: Any) -> None:
    assert schema_conflicts(a, copy.deepcopy(a)) == []
    assert (schema_conflicts(a, b) == []) == (schema_conflicts(b, a) == [])


@settings(max_examples=200, deadline=None)
@given(OPEN_OBJECTS, NAMES, SCHEMAS)
def test_new_optional_property_on_an_open_object_merges(schema: Json, name: str, prop: Any) -> None:
    if name in schema["properties"]:
        return
    grown = copy.deepcopy(schema)
    grown["properties"][name] = prop
    assert schema_conflicts(schema, grown) == []
