"""Permission derivation: every grant rule, its gates, and refusal of malformed input."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from trellis.contracts import Manifest, check_manifest
from trellis.runtime.permissions import (
    AUTH_VALIDATE_SUBJECT,
    REASON_INSUFFICIENT_PERMISSIONS,
    REASON_INVALID_BINDING,
    REASON_INVALID_MANIFEST,
    REASON_INVALID_SESSION_KEY,
    REASON_INVALID_SUBJECT,
    REASON_MISSING_REQUIRED_CONTRACT,
    SERVICE_RESP_MAX,
    USER_RESP_MAX,
    DerivedPermissions,
    EventConsumerBinding,
    InsufficientPermissionsError,
    InvalidSubjectError,
    JobQueueBinding,
    JobsBinding,
    KvBinding,
    MissingRequiredContractError,
    PermissionDerivationError,
    ServiceBindings,
    StreamBinding,
    derive_service_permissions,
    derive_user_permissions,
    event_subject_pattern,
    inbox_prefix,
    required_user_capabilities,
    subject_matches,
)

Json = dict[str, Any]

SESSION_KEY = "AbCdEfGhIjKlMnOp_rest-of-the-43-char-key-xx"
INBOX = "_INBOX.AbCdEfGhIjKlMnOp"


# --------------------------------------------------------------------------- builders


def rpc(name: str, call: list[str] | None = None) -> dict[str, Any]:
    return {
        "version": "v1",
        "subject": f"rpc.v1.{name}",
        "input": {"schema": "In"},
        "output": {"schema": "Out"},
        "capabilities": {"call": call or []},
        "errors": [],
    }


def event(
    name: str,
    params: list[str] | None = None,
    publish: list[str] | None = None,
    subscribe: list[str] | None = None,
) -> dict[str, Any]:
    params = params or []
    subject = ".".join([f"events.v1.{name}", *(f"{{{p}}}" for p in params)])
    return {
        "version": "v1",
        "subject": subject,
        "params": params,
        "event": {"schema": "Ev"},
        "capabilities": {"publish": publish or [], "subscribe": subscribe or []},
    }


def contract(cid: str, kind: str = "service", **sections: Any) -> Json:
    return {
        "format": "trellis.contract.v1",
        "id": cid,
        "displayName": cid,
        "description": cid,
        "kind": kind,
        **sections,
    }


def use(
    target: str,
    call: list[str] | None = None,
    publish: list[str] | None = None,
    subscribe: list[str] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"contract": target}
    if call is not None:
        out["rpc"] = {"call": call}
    if publish is not None or subscribe is not None:
        out["events"] = {"publish": publish or [], "subscribe": subscribe or []}
    return out


BILLING = contract(
    "billing@v1",
    rpc={
        "Invoices.Get": rpc("Invoices.Get", ["billing::invoices.read"]),
        "Invoices.Open": rpc("Invoices.Open"),
    },
    events={
        "Invoices.Paid": event(
            "Invoices.Paid",
            ["/customerId"],
            publish=["billing::invoices.write"],
            subscribe=["billing::invoices.read"],
        ),
        "Invoices.Voided": event("Invoices.Voided"),
    },
)
HEALTH = contract(
    "trellis.health@v1", events={"Health.Heartbeat": event("Health.Heartbeat", publish=["service"])}
)
AUTH = contract(
    "trellis.auth@v1",
    rpc={
        "Auth.Requests.Validate": rpc("Auth.Requests.Validate", ["service"]),
        "Auth.Sessions.Me": rpc("Auth.Sessions.Me"),
        "Auth.Users.List": rpc("Auth.Users.List", ["admin"]),
    },
)
ACTIVE: dict[str, Json] = {c["id"]: c for c in (BILLING, HEALTH, AUTH)}


def service(**sections: Any) -> Json:
    return contract("orders@v1", "service", **sections)


def model(manifest: Json) -> Manifest:
    """The typed manifest (shape only: these fixtures leave schemas out on purpose)."""
    return Manifest.model_validate(manifest)


def models(active: Mapping[str, Json]) -> dict[str, Manifest]:
    return {cid: model(m) for cid, m in active.items()}


def derive_svc(
    manifest: Json,
    caps: set[str] | None = None,
    bindings: ServiceBindings | None = None,
    active: Mapping[str, Json] = ACTIVE,
) -> DerivedPermissions:
    return derive_service_permissions(
        model(manifest),
        models(active),
        capabilities=caps or set(),
        session_key=SESSION_KEY,
        bindings=bindings,
    )


def derive_usr(
    manifest: Json, caps: set[str] | None = None, active: Mapping[str, Json] = ACTIVE
) -> DerivedPermissions:
    return derive_user_permissions(
        model(manifest), models(active), capabilities=caps or set(), session_key=SESSION_KEY
    )


# --------------------------------------------------------------------------- subject helpers


@pytest.mark.parametrize(
    ("subject", "pattern", "expected"),
    [
        ("a.b.c", "a.b.c", True),
        ("a.b.c", "a.*.c", True),
        ("a.b.c", "a.>", True),
        ("a.b.c", ">", True),
        ("a", "a.>", False),
        ("a.b", "a.*.c", False),
        ("a.b.c.d", "a.*.c", False),
        ("a.b.c", "a.b", False),
        ("a.b", "a.b.c", False),
        ("a.x.c", "a.b.c", False),
        ("a..c", "a.*.c", False),
        ("a.b.c", "a..c", False),
        ("", ">", False),
        ("a.b", "a.>.b", False),
        # wildcard subjects are sets: covered only by an equal-or-wider pattern
        ("a.*.c", "a.*.c", True),
        ("a.*.c", "a.>", True),
        ("a.*.c", "a.b.c", False),
        ("a.>", "a.*", False),
        ("a.>", "a.>", True),
        ("a.b.>", "a.>", True),
        ("a.>", "a.b.>", False),
        ("events.v1.X.*", "events.v1.X.*", True),
    ],
)
def test_subject_matches(subject: str, pattern: str, expected: bool) -> None:
    assert subject_matches(subject, pattern) is expected


def _reference_match(subject: str, pattern: str) -> bool:
    """Independent regex formulation of NATS matching for concrete subjects."""
    parts = []
    for i, tok in enumerate(pattern.split(".")):
        if tok == ">" and i == len(pattern.split(".")) - 1:
            parts.append(r"[^.]+(?:\.[^.]+)*")
        elif tok == "*":
            parts.append(r"[^.]+")
        else:
            parts.append(re.escape(tok))
    return re.fullmatch(r"\.".join(parts), subject) is not None


_tok = st.sampled_from(["a", "b", "c"])


@given(
    st.lists(_tok, min_size=1, max_size=5),
    st.lists(st.sampled_from(["a", "b", "c", "*"]), min_size=1, max_size=5),
    st.booleans(),
)
def test_subject_matches_agrees_with_reference(
    subject: list[str], pattern: list[str], tail: bool
) -> None:
    pat = ".".join([*pattern, ">"] if tail else pattern)
    subj = ".".join(subject)
    assert subject_matches(subj, pat) is _reference_match(subj, pat)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("events.v1.Invoices.Paid", "events.v1.Invoices.Paid"),
        ("events.v1.Invoices.Paid.{/customerId}", "events.v1.Invoices.Paid.*"),
        ("events.v1.A.B.{/x}.{/y/z}", "events.v1.A.B.*.*"),
        ("events.v1.A.B.{/a.b}", "events.v1.A.B.*"),  # a dot inside a pointer is one token
        ("events.v1.A.B.{/}", "events.v1.A.B.*"),
    ],
)
def test_event_subject_pattern(template: str, expected: str) -> None:
    assert event_subject_pattern(template) == expected


@pytest.mark.parametrize(
    "template",
    [
        "events.v1.A.>",
        "events.v1.A.*",
        "events.v1.>",
        ">",
        "*",
        "events.v1.A..B",
        "events.v1.A.B.",
        ".events.v1.A",
        "events.v1.A B",
        "events.v1.A\tB",
        "events.v1.A.B\n",
        "events.v1.A\u00a0B",
        "events.v1.A\x00",
        "events.v1.A.{x}",  # template without a pointer slash
        "events.v1.A.pre{/x}",  # template must be a whole token
        "events.v1.A.{/x}post",
        "events.v1.A.{/x",
        "events.v1.A.{/x{/y}}",
        "events.v1",
        "events.{/x}.A",  # a wildcard version token would span every version
        "events.v1.{/x}",
        "rpc.v1.A.B",
        "$JS.API.INFO",
        "",
    ],
)
def test_event_subject_pattern_rejects_injection(template: str) -> None:
    with pytest.raises(InvalidSubjectError) as info:
        event_subject_pattern(template)
    assert info.value.reason == REASON_INVALID_SUBJECT


def test_inbox_prefix() -> None:
    assert inbox_prefix(SESSION_KEY) == INBOX


@pytest.mark.parametrize(
    "key", ["short", "AbCdEfGh.jKlMnOpQ", "AbCdEfGh*jKlMnOpQ", "Ab CdEfGhIjKlMnOp"]
)
def test_inbox_prefix_rejects_bad_keys(key: str) -> None:
    with pytest.raises(PermissionDerivationError) as info:
        inbox_prefix(key)
    assert info.value.reason == REASON_INVALID_SESSION_KEY


# --------------------------------------------------------------------------- service sessions


def test_service_baseline_grants() -> None:
    got = derive_svc(service())
    assert got.session == "service"
    assert got.contract_id == "orders@v1"
    assert got.publish == (AUTH_VALIDATE_SUBJECT,)
    assert got.subscribe == (f"{INBOX}.>",)
    assert got.resp_max == SERVICE_RESP_MAX == 65535
    assert got.required_capabilities == ()


def test_service_subscribes_own_rpc_and_publishes_own_events_wildcarded() -> None:
    m = service(
        rpc={"Orders.Get": rpc("Orders.Get", ["orders::read"]), "Orders.Put": rpc("Orders.Put")},
        events={
            "Orders.Placed": event("Orders.Placed", ["/region", "/id"], publish=["x::y"]),
            "Orders.Done": event("Orders.Done"),
        },
    )
    got = derive_svc(m)
    # own surfaces need no capability beyond being the implementer
    assert got.subscribe == (f"{INBOX}.>", "rpc.v1.Orders.Get", "rpc.v1.Orders.Put")
    assert got.publish == (
        "events.v1.Orders.Done",
        "events.v1.Orders.Placed.*.*",
        AUTH_VALIDATE_SUBJECT,
    )


def test_service_uses_rpc_gated_by_target_call_capabilities() -> None:
    m = service(
        uses={"required": {"billing": use("billing@v1", ["Invoices.Get", "Invoices.Open"])}}
    )
    without = derive_svc(m)
    assert "rpc.v1.Invoices.Open" in without.publish
    assert "rpc.v1.Invoices.Get" not in without.publish
    assert without.required_capabilities == ("billing::invoices.read",)

    with_cap = derive_svc(m, {"billing::invoices.read"})
    assert {"rpc.v1.Invoices.Get", "rpc.v1.Invoices.Open"} <= set(with_cap.publish)


def test_service_capability_is_implicit() -> None:
    m = service(uses={"required": {"auth": use("trellis.auth@v1", ["Auth.Requests.Validate"])}})
    assert "rpc.v1.Auth.Requests.Validate" in derive_svc(m, set()).publish
    m2 = service(uses={"required": {"auth": use("trellis.auth@v1", ["Auth.Users.List"])}})
    assert "rpc.v1.Auth.Users.List" not in derive_svc(m2).publish
    assert "rpc.v1.Auth.Users.List" in derive_svc(m2, {"admin"}).publish


def test_service_uses_events_gated_by_target_lists() -> None:
    m = service(
        uses={
            "required": {
                "billing": use(
                    "billing@v1",
                    publish=["Invoices.Paid", "Invoices.Voided"],
                    subscribe=["Invoices.Paid", "Invoices.Voided"],
                ),
                "health": use("trellis.health@v1", publish=["Health.Heartbeat"]),
            }
        }
    )
    bare = derive_svc(m)
    assert "events.v1.Health.Heartbeat" in bare.publish  # gated by "service", always held
    assert "events.v1.Invoices.Voided" in bare.publish
    assert "events.v1.Invoices.Voided" in bare.subscribe
    assert "events.v1.Invoices.Paid.*" not in bare.publish
    assert "events.v1.Invoices.Paid.*" not in bare.subscribe

    reader = derive_svc(m, {"billing::invoices.read"})
    assert "events.v1.Invoices.Paid.*" in reader.subscribe
    assert "events.v1.Invoices.Paid.*" not in reader.publish

    writer = derive_svc(m, {"billing::invoices.write"})
    assert "events.v1.Invoices.Paid.*" in writer.publish
    assert "events.v1.Invoices.Paid.*" not in writer.subscribe
    assert bare.required_capabilities == (
        "billing::invoices.read",
        "billing::invoices.write",
        "service",
    )


def test_required_use_of_inactive_contract_is_an_error() -> None:
    m = service(uses={"required": {"ghost": use("ghost@v1", ["Ghost.Boo"])}})
    with pytest.raises(MissingRequiredContractError) as info:
        derive_svc(m)
    assert info.value.reason == REASON_MISSING_REQUIRED_CONTRACT
    assert info.value.contract_id == "ghost@v1"
    assert info.value.alias == "ghost"
    assert isinstance(info.value, PermissionDerivationError)


def test_optional_use_of_inactive_contract_grants_nothing() -> None:
    m = service(uses={"optional": {"ghost": use("ghost@v1", ["Ghost.Boo"], publish=["G.E"])}})
    assert derive_svc(m).publish == (AUTH_VALIDATE_SUBJECT,)


@pytest.mark.parametrize("group", ["required", "optional"])
def test_missing_surface_on_active_target_is_skipped(group: str) -> None:
    m = service(
        uses={
            group: {
                "billing": use(
                    "billing@v1", ["Nope", "Invoices.Open"], publish=["Nope"], subscribe=["Nope"]
                )
            }
        }
    )
    got = derive_svc(m)
    assert got.publish == (AUTH_VALIDATE_SUBJECT, "rpc.v1.Invoices.Open")
    assert got.subscribe == (f"{INBOX}.>",)


def test_required_alias_wins_over_optional_duplicate() -> None:
    m = service(
        uses={
            "required": {"billing": use("billing@v1", ["Invoices.Open"])},
            # same alias in optional: ignored entirely, even its missing target
            "optional": {"billing": use("ghost@v1", ["Ghost.Boo"])},
        }
    )
    assert derive_svc(m).publish == (AUTH_VALIDATE_SUBJECT, "rpc.v1.Invoices.Open")


def test_outputs_are_sorted_and_deduplicated() -> None:
    m = service(
        events={"Invoices.Voided": event("Invoices.Voided")},
        uses={
            "required": {
                "b1": use("billing@v1", ["Invoices.Open", "Invoices.Open"], ["Invoices.Voided"]),
                "b2": use("billing@v1", ["Invoices.Open"], subscribe=["Invoices.Voided"]),
            },
            "optional": {"b3": use("billing@v1", subscribe=["Invoices.Voided"])},
        },
    )
    got = derive_svc(m)
    assert got.publish == tuple(sorted(set(got.publish)))
    assert got.publish.count("events.v1.Invoices.Voided") == 1
    assert got.publish.count("rpc.v1.Invoices.Open") == 1
    assert got.subscribe == (f"{INBOX}.>", "events.v1.Invoices.Voided")


def test_result_is_frozen() -> None:
    got = derive_svc(service())
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.publish = (">",)  # type: ignore[misc]


# --------------------------------------------------------------------------- service bindings


RESOURCES = {
    "resources": {
        "kv": {"cache": {"purpose": "c", "schema": {"schema": "C"}}},
        "streams": {"audit": {"purpose": "a", "subjects": ["audit"], "retention": "limits"}},
    },
    "eventConsumers": {"billing": {"uses": {"billing": ["Invoices.Paid"]}}},
    "jobs": {"sendReminder": {"payload": {"schema": "P"}}},
}


def test_kv_binding_grants_exact_publish_set() -> None:
    got = derive_svc(
        service(**RESOURCES),
        bindings=ServiceBindings(kv=(KvBinding(alias="cache", bucket="tr_kv_01"),)),
    )
    s = "KV_tr_kv_01"
    expected = {
        "$JS.API.INFO",
        "$KV.tr_kv_01.>",
        f"$JS.API.STREAM.INFO.{s}",
        f"$JS.API.STREAM.MSG.GET.{s}",
        f"$JS.API.DIRECT.GET.{s}",
        f"$JS.API.DIRECT.GET.{s}.>",
        f"$JS.API.CONSUMER.CREATE.{s}",
        f"$JS.API.CONSUMER.CREATE.{s}.>",
        f"$JS.API.CONSUMER.INFO.{s}.>",
        f"$JS.API.CONSUMER.DELETE.{s}.>",
        f"$JS.API.CONSUMER.MSG.NEXT.{s}.>",
        f"$JS.ACK.{s}.>",
        f"$JS.FC.{s}.>",
        AUTH_VALIDATE_SUBJECT,
    }
    assert set(got.publish) == expected
    assert got.subscribe == (f"{INBOX}.>",)  # KV watches deliver to the inbox
    # nothing for any other bucket
    assert not any(subject_matches("$KV.other.k", p) for p in got.publish)
    assert not any(subject_matches("$JS.API.STREAM.INFO.KV_other", p) for p in got.publish)


def test_stream_binding_grants() -> None:
    b = StreamBinding(alias="audit", stream="tr_st_1", subjects=("audit.x.>", "audit.y"))
    got = derive_svc(service(**RESOURCES), bindings=ServiceBindings(streams=(b,)))
    assert set(got.publish) == {
        "audit.x.>",
        "audit.y",
        "$JS.API.STREAM.INFO.tr_st_1",
        "$JS.API.STREAM.MSG.GET.tr_st_1",
        "$JS.API.CONSUMER.CREATE.tr_st_1",
        "$JS.API.CONSUMER.CREATE.tr_st_1.>",
        "$JS.API.CONSUMER.INFO.tr_st_1.>",
        "$JS.API.CONSUMER.MSG.NEXT.tr_st_1.>",
        "$JS.ACK.tr_st_1.>",
        AUTH_VALIDATE_SUBJECT,
    }


@pytest.mark.parametrize(
    "subject", [">", "*.x", "$JS.API.>", "_INBOX.x", "a..b", "a.>.b", "a b", "a.{/x}", ""]
)
def test_stream_binding_rejects_dangerous_subjects(subject: str) -> None:
    b = StreamBinding(alias="audit", stream="tr_st_1", subjects=(subject,))
    with pytest.raises(InvalidSubjectError):
        derive_svc(service(**RESOURCES), bindings=ServiceBindings(streams=(b,)))


def test_stream_binding_without_subjects_is_refused() -> None:
    b = StreamBinding(alias="audit", stream="tr_st_1", subjects=())
    with pytest.raises(PermissionDerivationError) as info:
        derive_svc(service(**RESOURCES), bindings=ServiceBindings(streams=(b,)))
    assert info.value.reason == REASON_INVALID_BINDING


def test_event_consumer_binding_grants_exact_subjects() -> None:
    b = EventConsumerBinding(group="billing", stream="trellis", consumer="tr_cons_01")
    got = derive_svc(service(**RESOURCES), bindings=ServiceBindings(event_consumers=(b,)))
    assert set(got.publish) == {
        "$JS.API.CONSUMER.INFO.trellis.tr_cons_01",
        "$JS.API.CONSUMER.MSG.NEXT.trellis.tr_cons_01",
        "$JS.ACK.trellis.tr_cons_01.>",
        AUTH_VALIDATE_SUBJECT,
    }
    assert not any(
        subject_matches("$JS.API.CONSUMER.MSG.NEXT.trellis.tr_cons_02", p) for p in got.publish
    )


def _jobs(
    prefix: str = "trellis.jobs.tr_jobs_1.tr_jq_1", work: str = "trellis.work.tr_jobs_1.tr_jq_1"
) -> JobsBinding:
    return JobsBinding(
        namespace="tr_jobs_1",
        queues={
            "sendReminder": JobQueueBinding(
                publish_prefix=prefix, work_subject=work, consumer="tr_jobs_1_tr_jq_1"
            )
        },
    )


def test_jobs_binding_grants() -> None:
    got = derive_svc(service(**RESOURCES), bindings=ServiceBindings(jobs=_jobs()))
    assert set(got.publish) == {
        "trellis.jobs.tr_jobs_1.>",
        "trellis.work.tr_jobs_1.>",
        "trellis.jobs.workers.tr_jobs_1.>",
        "$JS.API.CONSUMER.INFO.JOBS_WORK.tr_jobs_1_tr_jq_1",
        "$JS.API.CONSUMER.MSG.NEXT.JOBS_WORK.tr_jobs_1_tr_jq_1",
        "$JS.ACK.JOBS_WORK.tr_jobs_1_tr_jq_1.>",
        AUTH_VALIDATE_SUBJECT,
    }
    assert set(got.subscribe) == {f"{INBOX}.>", "trellis.jobs.tr_jobs_1.tr_jq_1.*.cancelled"}
    assert not any(subject_matches("trellis.jobs.other.q.1.created", p) for p in got.publish)


@pytest.mark.parametrize(
    ("prefix", "work"),
    [
        ("trellis.jobs.other.tr_jq_1", "trellis.work.tr_jobs_1.tr_jq_1"),
        ("trellis.jobs.tr_jobs_1.tr_jq_1", "trellis.work.other.tr_jq_1"),
        ("trellis.jobs.tr_jobs_1.tr_jq_1", "trellis.work.tr_jobs_1.tr_jq_2"),
        ("trellis.jobs.tr_jobs_1.*", "trellis.work.tr_jobs_1.*"),
        ("trellis.jobs.tr_jobs_1", "trellis.work.tr_jobs_1"),
    ],
)
def test_jobs_binding_outside_namespace_is_refused(prefix: str, work: str) -> None:
    with pytest.raises(PermissionDerivationError) as info:
        derive_svc(service(**RESOURCES), bindings=ServiceBindings(jobs=_jobs(prefix, work)))
    assert info.value.reason == REASON_INVALID_BINDING


@pytest.mark.parametrize(
    "bindings",
    [
        ServiceBindings(kv=(KvBinding(alias="cache", bucket="a.>"),)),
        ServiceBindings(kv=(KvBinding(alias="cache", bucket="*"),)),
        ServiceBindings(kv=(KvBinding(alias="cache", bucket=""),)),
        ServiceBindings(kv=(KvBinding(alias="cache", bucket="a b"),)),
        ServiceBindings(streams=(StreamBinding(alias="audit", stream="x.>", subjects=("a",)),)),
        ServiceBindings(
            event_consumers=(EventConsumerBinding(group="billing", stream="trellis", consumer=">"),)
        ),
        ServiceBindings(
            event_consumers=(EventConsumerBinding(group="billing", stream="*", consumer="c"),)
        ),
        ServiceBindings(jobs=JobsBinding(namespace=">", queues={})),
    ],
)
def test_binding_names_must_be_plain_tokens(bindings: ServiceBindings) -> None:
    with pytest.raises(PermissionDerivationError) as info:
        derive_svc(service(**RESOURCES), bindings=bindings)
    assert info.value.reason == REASON_INVALID_BINDING


@pytest.mark.parametrize(
    "bindings",
    [
        ServiceBindings(kv=(KvBinding(alias="other", bucket="b"),)),
        ServiceBindings(streams=(StreamBinding(alias="other", stream="s", subjects=("a",)),)),
        ServiceBindings(
            event_consumers=(EventConsumerBinding(group="other", stream="trellis", consumer="c"),)
        ),
        ServiceBindings(
            jobs=JobsBinding(
                namespace="ns",
                queues={
                    "other": JobQueueBinding(
                        publish_prefix="trellis.jobs.ns.q",
                        work_subject="trellis.work.ns.q",
                        consumer="c",
                    )
                },
            )
        ),
    ],
)
def test_bindings_for_undeclared_resources_are_refused(bindings: ServiceBindings) -> None:
    with pytest.raises(PermissionDerivationError) as info:
        derive_svc(service(**RESOURCES), bindings=bindings)
    assert info.value.reason == REASON_INVALID_BINDING
    assert info.value.contract_id == "orders@v1"


def test_bindings_parse_from_camel_case_json() -> None:
    raw = {
        "kv": [{"alias": "cache", "bucket": "tr_kv_01", "history": 1}],
        "streams": [{"alias": "audit", "stream": "tr_st_1", "subjects": ["audit.x"]}],
        "eventConsumers": [{"group": "billing", "stream": "trellis", "consumer": "tr_cons_1"}],
        "jobs": {
            "namespace": "tr_jobs_1",
            "queues": {
                "sendReminder": {
                    "publishPrefix": "trellis.jobs.tr_jobs_1.tr_jq_1",
                    "workSubject": "trellis.work.tr_jobs_1.tr_jq_1",
                    "consumer": "tr_jobs_1_tr_jq_1",
                }
            },
        },
    }
    parsed = ServiceBindings.model_validate(raw)
    assert parsed.kv[0].bucket == "tr_kv_01"
    assert parsed.event_consumers[0].consumer == "tr_cons_1"
    assert parsed.jobs is not None
    assert parsed.jobs.queues["sendReminder"].work_subject == "trellis.work.tr_jobs_1.tr_jq_1"
    got = derive_svc(service(**RESOURCES), bindings=parsed)
    assert "$KV.tr_kv_01.>" in got.publish
    assert "audit.x" in got.publish
    assert "$JS.ACK.trellis.tr_cons_1.>" in got.publish
    assert "trellis.work.tr_jobs_1.>" in got.publish


def test_bindings_are_immutable() -> None:
    b = KvBinding(alias="cache", bucket="b")
    with pytest.raises(ValueError):
        b.bucket = ">"  # type: ignore[misc]


# --------------------------------------------------------------------------- injection


@pytest.mark.parametrize(
    "bad_subject",
    ["rpc.v1.>", "rpc.v1.*", ">", "rpc.v1.A .B", "rpc..A", "events.v1.A", "rpc.v1", "rpc.v1.{/x}"],
)
def test_own_rpc_subject_injection_is_refused(bad_subject: str) -> None:
    m = service(rpc={"Evil": {**rpc("Evil"), "subject": bad_subject}})
    with pytest.raises(InvalidSubjectError) as info:
        derive_svc(m)
    assert info.value.contract_id == "orders@v1"
    assert info.value.subject == bad_subject


@pytest.mark.parametrize("bad_subject", ["rpc.v1.>", ">", "rpc.v1.Evil\n", "$JS.API.>"])
def test_target_rpc_subject_injection_is_refused(bad_subject: str) -> None:
    evil = contract("evil@v1", rpc={"Evil": {**rpc("Evil"), "subject": bad_subject}})
    m = service(uses={"required": {"evil": use("evil@v1", ["Evil"])}})
    with pytest.raises(InvalidSubjectError) as info:
        derive_svc(m, active={**ACTIVE, "evil@v1": evil})
    assert info.value.contract_id == "evil@v1"


@pytest.mark.parametrize("bad_subject", ["events.v1.>", "events.v1.E.*", "events.v1.E.>", "events"])
def test_event_subject_injection_is_refused(bad_subject: str) -> None:
    evil = contract("evil@v1", events={"E": {**event("E"), "subject": bad_subject}})
    m = service(uses={"optional": {"evil": use("evil@v1", subscribe=["E"])}})
    with pytest.raises(InvalidSubjectError):
        derive_svc(m, active={**ACTIVE, "evil@v1": evil})
    with pytest.raises(InvalidSubjectError):
        derive_svc(service(events={"E": {**event("E"), "subject": bad_subject}}))


@pytest.mark.parametrize(
    ("sections", "where"),
    [
        ({"uses": {"required": []}}, "uses.required"),
        ({"uses": {"required": {"b": {"rpc": {"call": ["X"]}}}}}, "contract"),
        (
            {
                "uses": {
                    "required": {"b": {"contract": "billing@v1", "rpc": {"call": "Invoices.Get"}}}
                }
            },
            "call",
        ),
        ({"uses": {"required": {"b": {"contract": "billing@v1", "rpc": {"call": [1]}}}}}, "call"),
        ({"rpc": {"A": "rpc.v1.A"}}, "rpc.A"),
        ({"rpc": ["rpc.v1.A"]}, "rpc"),
        ({"events": {"E": {**event("E"), "capabilities": {"publish": "x"}}}}, "publish"),
    ],
)
def test_malformed_manifest_sections_are_refused(sections: dict[str, Any], where: str) -> None:
    """Derivation reads the typed model, so a malformed section never reaches it."""
    with pytest.raises(ValidationError):
        model(service(**sections))
    assert any(where in str(p) for p in check_manifest(service(**sections)))


def test_string_capability_list_on_target_is_refused() -> None:
    """A bare string would otherwise be iterated character by character."""
    evil = contract("evil@v1", rpc={"A": {**rpc("A"), "capabilities": {"call": "admin"}}})
    with pytest.raises(ValidationError, match=r"rpc\.A\.capabilities\.call"):
        model(evil)


def test_manifest_without_id_is_refused() -> None:
    with pytest.raises(ValidationError, match="id"):
        model({"kind": "service"})


# --------------------------------------------------------------------------- user sessions


def app(**sections: Any) -> Json:
    return contract("console@v1", "app", **sections)


APP = app(
    events={"Console.Clicked": event("Console.Clicked", ["/page"], publish=["console::click"])},
    uses={
        "required": {
            "auth": use("trellis.auth@v1", ["Auth.Sessions.Me"]),
            "billing": use(
                "billing@v1",
                ["Invoices.Get"],
                publish=["Invoices.Voided"],
                subscribe=["Invoices.Paid"],
            ),
        },
        "optional": {"ghost": use("ghost@v1", ["Ghost.Boo"])},
    },
)
APP_CAPS = {"billing::invoices.read", "console::click"}


def test_user_session_grants() -> None:
    got = derive_usr(APP, APP_CAPS)
    assert got.session == "user"
    assert got.publish == (
        "events.v1.Console.Clicked.*",
        "events.v1.Invoices.Voided",
        "rpc.v1.Auth.Sessions.Me",
        "rpc.v1.Invoices.Get",
    )
    assert got.subscribe == (f"{INBOX}.>", "events.v1.Invoices.Paid.*")
    assert got.resp_max == USER_RESP_MAX == 1
    assert got.required_capabilities == ("billing::invoices.read", "console::click")
    assert AUTH_VALIDATE_SUBJECT not in got.publish


def test_user_session_extra_capabilities_do_not_widen() -> None:
    assert derive_usr(APP, APP_CAPS | {"admin", "billing::invoices.write"}) == derive_usr(
        APP, APP_CAPS
    )


@pytest.mark.parametrize(
    ("caps", "missing"),
    [
        (set(), ("billing::invoices.read", "console::click")),
        ({"console::click"}, ("billing::invoices.read",)),
        ({"billing::invoices.read", "service"}, ("console::click",)),
    ],
)
def test_user_session_requires_every_capability(caps: set[str], missing: tuple[str, ...]) -> None:
    with pytest.raises(InsufficientPermissionsError) as info:
        derive_usr(APP, caps)
    assert info.value.reason == REASON_INSUFFICIENT_PERMISSIONS
    assert info.value.missing_capabilities == missing
    assert info.value.contract_id == "console@v1"


def test_required_user_capabilities() -> None:
    assert required_user_capabilities(model(APP), models(ACTIVE)) == (
        "billing::invoices.read",
        "console::click",
    )


@pytest.mark.parametrize("kind", ["app", "agent", "cli", "device"])
def test_user_kinds(kind: str) -> None:
    m = contract(
        "x@v1", kind, uses={"required": {"auth": use("trellis.auth@v1", ["Auth.Sessions.Me"])}}
    )
    got = derive_user_permissions(
        model(m), models(ACTIVE), capabilities=[], session_key=SESSION_KEY
    )
    assert got.session == "user"
    assert got.publish == ("rpc.v1.Auth.Sessions.Me",)


def test_user_required_missing_target_is_an_error() -> None:
    m = app(uses={"required": {"ghost": use("ghost@v1", ["Ghost.Boo"])}})
    with pytest.raises(MissingRequiredContractError):
        derive_usr(m)


def test_user_derivation_refuses_service_kind() -> None:
    with pytest.raises(PermissionDerivationError) as info:
        derive_usr(service())
    assert info.value.reason == REASON_INVALID_MANIFEST


def test_session_kinds() -> None:
    svc = derive_service_permissions(
        model(service()), models(ACTIVE), capabilities=[], session_key=SESSION_KEY
    )
    assert svc.session == "service"
    assert svc.resp_max == SERVICE_RESP_MAX
    with pytest.raises(ValidationError, match="kind"):
        model(contract("x@v1", "robot"))


def test_capabilities_as_bare_string_is_a_type_error() -> None:
    active = models(ACTIVE)
    with pytest.raises(TypeError):
        derive_service_permissions(
            model(service()), active, capabilities="admin", session_key=SESSION_KEY
        )
    with pytest.raises(TypeError):
        derive_user_permissions(model(APP), active, capabilities="admin", session_key=SESSION_KEY)


def test_bad_session_key_is_refused_by_derivation() -> None:
    with pytest.raises(PermissionDerivationError) as info:
        derive_service_permissions(
            model(service()), models(ACTIVE), capabilities=[], session_key="*.>"
        )
    assert info.value.reason == REASON_INVALID_SESSION_KEY


# --------------------------------------------------------------------------- properties

CAPS = ["c1", "c2", "c3", "service"]
NAMES = ["A", "B", "C", "D"]
_caps = st.lists(st.sampled_from(CAPS), max_size=3, unique=True)
_params = st.lists(st.sampled_from(["/id", "/region", "/a.b"]), max_size=2)


@st.composite
def target_contract(draw: st.DrawFn, cid: str) -> Json:
    ns = cid.split("@")[0].capitalize()
    rpcs = {
        n: rpc(f"{ns}.{n}", draw(_caps))
        for n in draw(st.lists(st.sampled_from(NAMES), unique=True))
    }
    events = {
        n: event(f"{ns}.{n}", draw(_params), draw(_caps), draw(_caps))
        for n in draw(st.lists(st.sampled_from(NAMES), unique=True))
    }
    return contract(cid, rpc=rpcs, events=events)


_names = st.lists(st.sampled_from([*NAMES, "Missing"]), max_size=4)


@st.composite
def scenario(draw: st.DrawFn, kind: str = "service") -> tuple[Json, dict[str, Json]]:
    targets = {cid: draw(target_contract(cid)) for cid in ("t1@v1", "t2@v1")}
    active = {cid: m for cid, m in targets.items() if draw(st.booleans())}
    required: dict[str, Any] = {}
    optional: dict[str, Any] = {}
    for i, cid in enumerate(("t1@v1", "t2@v1", "t1@v1")):
        u = use(cid, draw(_names), draw(_names), draw(_names))
        if cid in active and draw(st.booleans()):
            required[f"a{i}"] = u
        else:
            optional[f"a{i}"] = u
    own_events = {
        n: event(f"Own.{n}", draw(_params), draw(_caps))
        for n in draw(st.lists(st.sampled_from(NAMES), unique=True))
    }
    own_rpc = {n: rpc(f"Own.{n}") for n in draw(st.lists(st.sampled_from(NAMES), unique=True))}
    sections: dict[str, Any] = {
        "uses": {"required": required, "optional": optional},
        "events": own_events,
    }
    if kind == "service":
        sections["rpc"] = own_rpc
    return contract("own@v1", kind, **sections), active


def _declared(
    manifest: Json, active: Mapping[str, Json], held: set[str] | None = None
) -> tuple[set[str], set[str]]:
    """Reference model: the subjects a service holding ``held`` gets (None: every gate open)."""

    def allowed(gate: list[str]) -> bool:
        return held is None or set(gate) <= held

    pub = {event_subject_pattern(e["subject"]) for e in manifest.get("events", {}).values()}
    sub = {r["subject"] for r in manifest.get("rpc", {}).values()}
    for group in manifest["uses"].values():
        for u in group.values():
            target = active.get(u["contract"])
            if target is None:
                continue
            pub |= {
                target["rpc"][n]["subject"]
                for n in u.get("rpc", {}).get("call", [])
                if n in target["rpc"] and allowed(target["rpc"][n]["capabilities"]["call"])
            }
            ev = u.get("events", {})
            for action, sink in (("publish", pub), ("subscribe", sub)):
                sink |= {
                    event_subject_pattern(target["events"][n]["subject"])
                    for n in ev.get(action, [])
                    if n in target["events"]
                    and allowed(target["events"][n]["capabilities"][action])
                }
    return pub, sub


@settings(max_examples=200)
@given(scenario(), _caps)
def test_service_grants_stay_within_declared_subjects(
    sc: tuple[Json, dict[str, Json]], caps: list[str]
) -> None:
    manifest, active = sc
    got = derive_svc(manifest, set(caps), active=active)
    pub, sub = _declared(manifest, active)
    assert set(got.publish) <= pub | {AUTH_VALIDATE_SUBJECT}
    assert set(got.subscribe) <= sub | {f"{INBOX}.>"}
    # and exactly what an independent model of the gates predicts
    gated_pub, gated_sub = _declared(manifest, active, set(caps) | {"service"})
    assert set(got.publish) == gated_pub | {AUTH_VALIDATE_SUBJECT}
    assert set(got.subscribe) == gated_sub | {f"{INBOX}.>"}
    # no grant ever reaches outside rpc./events. (besides the inbox)
    for p in (*got.publish, *got.subscribe):
        assert p == f"{INBOX}.>" or (p.split(".")[0] in ("rpc", "events") and ">" not in p)
    assert list(got.publish) == sorted(set(got.publish))
    assert list(got.subscribe) == sorted(set(got.subscribe))


@settings(max_examples=200)
@given(scenario(), _caps, _caps)
def test_adding_capabilities_never_removes_grants(
    sc: tuple[Json, dict[str, Json]], caps: list[str], extra: list[str]
) -> None:
    manifest, active = sc
    small = derive_svc(manifest, set(caps), active=active)
    big = derive_svc(manifest, set(caps) | set(extra), active=active)
    assert set(small.publish) <= set(big.publish)
    assert set(small.subscribe) <= set(big.subscribe)
    full = derive_svc(manifest, set(CAPS), active=active)
    pub, sub = _declared(manifest, active)
    # holding every capability grants every declared subject
    assert set(full.publish) == pub | {AUTH_VALIDATE_SUBJECT}
    assert set(full.subscribe) == sub | {f"{INBOX}.>"}


@settings(max_examples=200)
@given(scenario(kind="app"), _caps)
def test_user_grants_all_or_nothing(sc: tuple[Json, dict[str, Json]], caps: list[str]) -> None:
    manifest, active = sc
    required = set(required_user_capabilities(model(manifest), models(active)))
    if required <= set(caps):
        got = derive_usr(manifest, set(caps), active=active)
        pub, sub = _declared(manifest, active)
        assert set(got.publish) == pub
        assert set(got.subscribe) == sub | {f"{INBOX}.>"}
    else:
        with pytest.raises(InsufficientPermissionsError) as info:
            derive_usr(manifest, set(caps), active=active)
        assert set(info.value.missing_capabilities) == required - set(caps)


_subject_alphabet = st.sampled_from([*"ab.*>{}/ \t\n$", "\u00a0", "\x00", "rpc", "events", "v1"])


@settings(max_examples=400)
@given(
    st.sampled_from(["", "rpc.v1.", "events.v1.", "events.v1.X."]),
    st.lists(_subject_alphabet, max_size=12).map("".join),
    st.sampled_from(["rpc", "event"]),
)
@example("rpc.v1.", "ab", "rpc")
@example("events.v1.X.", "{/a.b}", "event")
@example("rpc.v1.", "a.>", "rpc")
@example("events.v1.X.", "a.*", "event")
def test_arbitrary_subjects_never_widen_grants(prefix: str, tail: str, where: str) -> None:
    """Whatever string a manifest holds, derivation either refuses it or grants it narrowly."""
    raw = prefix + tail
    if where == "rpc":
        m = service(rpc={"X": {**rpc("X"), "subject": raw}})
    else:
        m = service(events={"X": {**event("X"), "subject": raw}})
    try:
        got = derive_svc(m)
    except (InvalidSubjectError, ValidationError):  # refused by derivation or by the model
        return
    for p in (*got.publish, *got.subscribe):
        if p in (AUTH_VALIDATE_SUBJECT, f"{INBOX}.>"):
            continue
        tokens = p.split(".")
        assert tokens[0] in ("rpc", "events")
        assert all(tokens) and ">" not in tokens
        assert not any(c.isspace() for c in p)
        assert tokens[1] != "*" and tokens[2] != "*"
