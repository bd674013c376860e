"""The ``trellis.contract.v1`` manifest: normalization, digest projection and digest.

These functions work on plain JSON dicts so that a manifest from anywhere (our authoring
layer, a file, another runtime) digests exactly as upstream's TypeScript does (PROTOCOL §2).
Presence rules follow JavaScript truthiness where upstream relies on it: an empty string is
absent, an empty list or object is present.

``resources.streams`` is our extension (PROTOCOL §3): kept by normalization and included in
the digest projection, so a manifest without it digests as upstream does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from trellis.canonical import json_digest, utf16_key

__all__ = [
    "CONTRACT_FORMAT",
    "capability_namespace",
    "contract_digest",
    "event_subject_template",
    "global_capability",
    "normalize_manifest",
    "project_manifest",
    "sorted_unique",
    "subject_wildcard",
]

CONTRACT_FORMAT = "trellis.contract.v1"
PLATFORM_CAPABILITIES = frozenset({"admin", "service"})

Json = dict[str, Any]

#: caller-facing sections: each surface owns a subject
SURFACE_SECTIONS = ("rpc", "operations", "events", "feeds")
#: the lists of surface names a ``uses`` entry may give, per section
USE_ACTIONS = {
    "rpc": ("call",),
    "operations": ("call",),
    "events": ("publish", "subscribe"),
    "feeds": ("subscribe",),
}


def sorted_unique(values: Iterable[str]) -> list[str]:
    """De-duplicate and sort by UTF-16 code units (JavaScript's default sort)."""
    return sorted(set(values), key=utf16_key)


def capability_namespace(contract_id: str) -> str:
    """Contract id minus a trailing ``@vN``."""
    return re.sub(r"@v\d+$", "", contract_id)


def global_capability(contract_id: str, local: str) -> str:
    return f"{capability_namespace(contract_id)}::{local}"


_TEMPLATE_TOKEN = re.compile(r"^\{(/[^{}]*)\}$")


def subject_wildcard(subject: str) -> str:
    """Replace every ``{/ptr}`` token with ``*`` (permissions, subscriptions, collisions)."""
    return ".".join("*" if _TEMPLATE_TOKEN.match(tok) else tok for tok in subject.split("."))


def event_subject_template(name: str, version: str, params: Iterable[str]) -> str:
    return ".".join([f"events.{version}.{name}", *(f"{{{p}}}" for p in params)])


# --- normalization (upstream ``normalizeContractManifest``) -------------------------------


def _present(value: Any) -> bool:
    """JavaScript truthiness for the JSON values a manifest holds."""
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return value != ""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    return True


def _map(values: Any, func: Callable[[Any], Any]) -> Json:
    return {key: func(value) for key, value in values.items()}


def _docs(docs: Any) -> Json:
    out: Json = {}
    if "summary" in docs and docs["summary"] is not None:
        out["summary"] = docs["summary"]
    out["markdown"] = docs.get("markdown")
    return out


def _ref(ref: Any) -> Json:
    return {"schema": ref["schema"]}


def _put(
    out: Json,
    key: str,
    source: Mapping[str, Any],
    func: Callable[[Any], Any] | None = None,
    *,
    defined: bool = False,
) -> None:
    """Copy ``source[key]`` into ``out`` when present (truthy, or merely defined)."""
    if key not in source:
        return
    value = source[key]
    keep = value is not None if defined else _present(value)
    if keep:
        out[key] = func(value) if func else value


def _capability_meta(meta: Any) -> Json:
    out: Json = {"displayName": meta.get("displayName"), "description": meta.get("description")}
    _put(out, "consequence", meta)
    return out


def _list_copy(value: Any) -> list[Any]:
    return list(value)


def _use(use: Any) -> Json:
    out: Json = {"contract": use.get("contract")}
    for section, actions in USE_ACTIONS.items():
        if _present(use.get(section)):
            out[section] = _lists(use[section], actions)
    return out


def _lists(source: Any, keys: tuple[str, ...]) -> Json:
    out: Json = {}
    for key in keys:
        _put(out, key, source, _list_copy)
    return out


def _uses(uses: Any) -> Json:
    out: Json = {}
    _put(out, "required", uses, lambda group: _map(group, _use))
    _put(out, "optional", uses, lambda group: _map(group, _use))
    return out


def _state_store(store: Any) -> Json:
    out: Json = {"kind": store.get("kind"), "schema": _ref(store["schema"])}
    _put(out, "stateVersion", store)
    _put(out, "acceptedVersions", store, lambda accepted: _map(accepted, _ref))
    _put(out, "docs", store, _docs)
    return out


def _gate(out: Json, surface: Any, action: str) -> None:
    """Keep the one capability list of an rpc or feed, and only when it is given."""
    caps = surface.get("capabilities")
    if _present(caps) and _present(caps.get(action)):
        out["capabilities"] = {action: list(caps[action])}


def _rpc(method: Any) -> Json:
    out: Json = {
        "version": method.get("version"),
        "subject": method.get("subject"),
        "input": _ref(method["input"]),
        "output": _ref(method["output"]),
    }
    if _present(method.get("transfer")):
        out["transfer"] = {"direction": method["transfer"].get("direction")}
    _gate(out, method, "call")
    _put(out, "errors", method, lambda errors: [{"type": e.get("type")} for e in errors])
    _put(out, "docs", method, _docs)
    return out


def _operation(op: Any) -> Json:
    out: Json = {
        "version": op.get("version"),
        "subject": op.get("subject"),
        "input": _ref(op["input"]),
    }
    _put(out, "progress", op, _ref)
    out["output"] = _ref(op["output"])
    if _present(op.get("transfer")):
        transfer = op["transfer"]
        t: Json = {
            "direction": transfer.get("direction"),
            "store": transfer.get("store"),
            "key": transfer.get("key"),
        }
        _put(t, "contentType", transfer)
        _put(t, "metadata", transfer)
        _put(t, "expiresInMs", transfer, defined=True)
        _put(t, "maxBytes", transfer, defined=True)
        out["transfer"] = t
    _put(
        out, "capabilities", op, lambda caps: _lists(caps, ("call", "observe", "cancel", "control"))
    )
    _put(out, "signals", op, lambda signals: _map(signals, _signal))
    _put(out, "cancel", op, defined=True)
    _put(out, "docs", op, _docs)
    return out


def _signal(signal: Any) -> Json:
    out: Json = {"input": _ref(signal["input"])}
    _put(out, "docs", signal, _docs)
    return out


def _event(event: Any) -> Json:
    out: Json = {"version": event.get("version"), "subject": event.get("subject")}
    _put(out, "params", event, _list_copy)
    out["event"] = _ref(event["event"])
    _put(out, "capabilities", event, lambda caps: _lists(caps, ("publish", "subscribe")))
    _put(out, "docs", event, _docs)
    return out


def _feed(feed: Any) -> Json:
    out: Json = {
        "version": feed.get("version"),
        "subject": feed.get("subject"),
        "input": _ref(feed["input"]),
        "event": _ref(feed["event"]),
    }
    _gate(out, feed, "subscribe")
    _put(out, "docs", feed, _docs)
    return out


def _event_consumer(group: Any) -> Json:
    out: Json = {}
    _put(out, "uses", group, lambda uses: {a: sorted_unique(ev) for a, ev in uses.items()})
    _put(out, "self", group, sorted_unique)
    out["replay"] = group.get("replay") if group.get("replay") is not None else "new"
    out["ordering"] = group.get("ordering") if group.get("ordering") is not None else "strict"
    out["concurrency"] = group.get("concurrency") if group.get("concurrency") is not None else 1
    _put(out, "ackWaitMs", group, defined=True)
    _put(out, "maxDeliver", group, defined=True)
    _put(out, "backoffMs", group, _list_copy)
    _put(out, "docs", group, _docs)
    return out


def _error_decl(error: Any) -> Json:
    out: Json = {"type": error.get("type")}
    _put(out, "schema", error, _ref)
    return out


def _job(queue: Any) -> Json:
    out: Json = {"payload": _ref(queue["payload"])}
    _put(out, "result", queue, _ref)
    _put(out, "backoffMs", queue, _list_copy)
    for key in (
        "maxDeliver",
        "ackWaitMs",
        "defaultDeadlineMs",
        "progress",
        "logs",
        "dlq",
        "concurrency",
    ):
        _put(out, key, queue, defined=True)
    _put(out, "docs", queue, _docs)
    return out


def _kv(resource: Any) -> Json:
    out: Json = {"purpose": resource.get("purpose"), "schema": _ref(resource["schema"])}
    for key in ("required", "history", "ttlMs", "maxValueBytes"):
        _put(out, key, resource, defined=True)
    _put(out, "docs", resource, _docs)
    return out


def _store(resource: Any) -> Json:
    out: Json = {"purpose": resource.get("purpose")}
    for key in ("required", "ttlMs", "maxObjectBytes", "maxTotalBytes"):
        _put(out, key, resource, defined=True)
    _put(out, "docs", resource, _docs)
    return out


def _stream(resource: Any) -> Json:
    """Our ``resources.streams`` extension."""
    out: Json = {"purpose": resource.get("purpose"), "subjects": list(resource.get("subjects", []))}
    for key in ("retention", "required", "maxAgeMs", "maxBytes"):
        _put(out, key, resource, defined=True)
    _put(out, "docs", resource, _docs)
    return out


def normalize_manifest(manifest: Mapping[str, Any]) -> Json:
    """Rebuild a (structurally valid) manifest field by field, dropping unknown keys."""
    m = manifest
    out: Json = {
        "format": m.get("format"),
        "id": m.get("id"),
        "displayName": m.get("displayName"),
        "description": m.get("description"),
    }
    _put(out, "docs", m, _docs)
    out["kind"] = m.get("kind")
    _put(out, "capabilities", m, lambda caps: _map(caps, _capability_meta))
    _put(out, "schemas", m, dict)
    _put(out, "exports", m, lambda ex: _lists(ex, ("schemas",)))
    _put(out, "uses", m, _uses)
    _put(out, "state", m, lambda state: _map(state, _state_store))
    _put(out, "rpc", m, lambda rpc: _map(rpc, _rpc))
    _put(out, "operations", m, lambda ops: _map(ops, _operation))
    _put(out, "events", m, lambda events: _map(events, _event))
    _put(out, "feeds", m, lambda feeds: _map(feeds, _feed))
    _put(out, "jobs", m, lambda jobs: _map(jobs, _job))
    _put(out, "eventConsumers", m, lambda groups: _map(groups, _event_consumer))
    if _present(m.get("resources")):
        res = m["resources"]
        r: Json = {}
        _put(r, "kv", res, lambda kv: _map(kv, _kv))
        _put(r, "store", res, lambda store: _map(store, _store))
        _put(r, "streams", res, lambda streams: _map(streams, _stream))
        out["resources"] = r
    _put(out, "errors", m, lambda errors: _map(errors, _error_decl))
    return out


# --- digest projection (upstream ``projectContractDigestManifest``) ----------------------


def _without_docs(value: Mapping[str, Any]) -> Json:
    return {k: v for k, v in value.items() if k != "docs"}


def _sorted_lists(lists: Mapping[str, Any]) -> Json:
    """Every action list sorted and de-duplicated (normalization kept only known actions)."""
    return {action: sorted_unique(names) for action, names in lists.items()}


def _project_uses_flat(uses: Mapping[str, Any]) -> Json:
    out: Json = {}
    for alias, use in uses.items():
        entry: Json = {"contract": use.get("contract")}
        for section in USE_ACTIONS:
            if use.get(section):
                entry[section] = _sorted_lists(use[section])
        out[alias] = entry
    return out


def _project_uses(uses: Mapping[str, Any]) -> Json | None:
    required = _project_uses_flat(uses["required"]) if "required" in uses else None
    optional = _project_uses_flat(uses["optional"]) if "optional" in uses else None
    if optional is not None and required is not None:
        optional = {a: u for a, u in optional.items() if a not in required} or None
    if required is None and optional is None:
        return None
    out: Json = {}
    if required is not None:
        out["required"] = required
    if optional is not None:
        out["optional"] = optional
    return out


def _project_surface(surface: Mapping[str, Any]) -> Json:
    """A normalized rpc, operation, event or feed without docs, its lists sorted."""
    out = _without_docs(surface)
    if surface.get("capabilities"):  # an empty object stays as it is
        out["capabilities"] = _sorted_lists(surface["capabilities"])
    if "errors" in surface:
        out["errors"] = [{"type": t} for t in sorted_unique(e["type"] for e in surface["errors"])]
    if "signals" in surface:
        out["signals"] = _map(surface["signals"], _without_docs)
    return out


def project_manifest(normalized: Mapping[str, Any]) -> Json:
    """Keep only what is runtime-relevant: the input of the contract digest."""
    m = normalized
    out: Json = {"format": m["format"], "id": m["id"], "kind": m["kind"]}
    if "capabilities" in m:
        out["capabilities"] = m["capabilities"]
    from trellis.contracts.model import Manifest  # the model imports this module

    reachable = Manifest.model_validate(m).reachable_schemas()
    if "schemas" in m and reachable:
        schemas = {name: s for name, s in m["schemas"].items() if name in reachable}
        if schemas:
            out["schemas"] = schemas
    if "state" in m:
        out["state"] = _map(m["state"], _without_docs)
    if "uses" in m:
        uses = _project_uses(m["uses"])
        if uses is not None:
            out["uses"] = uses
    for section in SURFACE_SECTIONS:
        if section in m:
            out[section] = _map(m[section], _project_surface)
    if "errors" in m:
        referenced = {
            ref["type"]
            for method in (m.get("rpc") or {}).values()
            for ref in method.get("errors") or []
        }
        errors = {k: e for k, e in m["errors"].items() if e["type"] in referenced}
        if errors:
            out["errors"] = errors
    if "jobs" in m:
        out["jobs"] = _map(m["jobs"], _without_docs)
    if "eventConsumers" in m:
        out["eventConsumers"] = _map(m["eventConsumers"], _without_docs)
    resources = m.get("resources") or {}
    if any(k in resources for k in ("kv", "store", "streams")):
        out["resources"] = {
            k: _map(resources[k], _without_docs)
            for k in ("kv", "store", "streams")
            if k in resources
        }
    return out


def contract_digest(manifest: Mapping[str, Any]) -> str:
    """``json_digest(project(normalize(manifest)))``: the contract's identity."""
    return json_digest(project_manifest(normalize_manifest(manifest)))
