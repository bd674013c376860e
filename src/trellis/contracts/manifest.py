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
    return ".".join("*" if _TEMPLATE_TOKEN.fullmatch(tok) else tok for tok in subject.split("."))


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


def _pick(
    source: Any,
    get: tuple[str, ...] = (),
    refs: tuple[str, ...] = (),
    defined: tuple[str, ...] = (),
    given: Mapping[str, Callable[[Any], Any] | None] | None = None,
    *,
    docs: bool = True,
) -> Json:
    """Rebuild one manifest object: ``get`` fields always (null when absent), ``refs`` as
    required schema references, ``defined`` fields unless null, ``given`` fields when
    present (truthy), through their function, and ``docs`` unless told not to."""
    out: Json = {key: source.get(key) for key in get}
    out.update({key: _ref(source[key]) for key in refs})
    for key in defined:
        _put(out, key, source, defined=True)
    for key, func in (given or {}).items():
        _put(out, key, source, func)
    if docs:
        _put(out, "docs", source, _docs)
    return out


def _list_copy(value: Any) -> list[Any]:
    return list(value)


def _lists(source: Any, keys: tuple[str, ...]) -> Json:
    return _pick(source, given=dict.fromkeys(keys, _list_copy), docs=False)


def _capability_meta(meta: Any) -> Json:
    return _pick(meta, ("displayName", "description"), given={"consequence": None}, docs=False)


def _use(use: Any) -> Json:
    out: Json = {"contract": use.get("contract")}
    for section, actions in USE_ACTIONS.items():
        if _present(use.get(section)):
            out[section] = _lists(use[section], actions)
    return out


def _uses(uses: Any) -> Json:
    group = dict.fromkeys(("required", "optional"), lambda aliases: _map(aliases, _use))
    return _pick(uses, given=group, docs=False)


def _state_store(store: Any) -> Json:
    given = {"stateVersion": None, "acceptedVersions": lambda versions: _map(versions, _ref)}
    return _pick(store, ("kind",), ("schema",), given=given)


def _gate(out: Json, surface: Any, action: str) -> Json:
    """Keep the one capability list of an rpc or feed, and only when it is given."""
    caps = surface.get("capabilities")
    if _present(caps) and _present(caps.get(action)):
        out["capabilities"] = {action: list(caps[action])}
    return out


def _rpc(method: Any) -> Json:
    given = {
        "transfer": lambda transfer: {"direction": transfer.get("direction")},
        "errors": lambda errors: [{"type": e.get("type")} for e in errors],
    }
    return _gate(
        _pick(method, ("version", "subject"), ("input", "output"), given=given), method, "call"
    )


def _operation(op: Any) -> Json:
    given = {
        "progress": _ref,
        "transfer": lambda transfer: _pick(
            transfer,
            ("direction", "store", "key"),
            defined=("expiresInMs", "maxBytes"),
            given={"contentType": None, "metadata": None},
            docs=False,
        ),
        "capabilities": lambda caps: _lists(caps, ("call", "observe", "cancel", "control")),
        "signals": lambda signals: _map(signals, lambda s: _pick(s, refs=("input",))),
    }
    return _pick(op, ("version", "subject"), ("input", "output"), ("cancel",), given)


def _event(event: Any) -> Json:
    given = {
        "params": _list_copy,
        "capabilities": lambda caps: _lists(caps, ("publish", "subscribe")),
    }
    return _pick(event, ("version", "subject"), ("event",), given=given)


def _feed(feed: Any) -> Json:
    return _gate(_pick(feed, ("version", "subject"), ("input", "event")), feed, "subscribe")


def _event_consumer(group: Any) -> Json:
    given: dict[str, Callable[[Any], Any]] = {
        "uses": lambda uses: {alias: sorted_unique(events) for alias, events in uses.items()},
        "self": sorted_unique,
        "backoffMs": _list_copy,
    }
    out = _pick(group, defined=("ackWaitMs", "maxDeliver"), given=given)
    for key, default in (("replay", "new"), ("ordering", "strict"), ("concurrency", 1)):
        out[key] = group.get(key) if group.get(key) is not None else default
    return out


def _error_decl(error: Any) -> Json:
    return _pick(error, ("type",), given={"schema": _ref}, docs=False)


def _job(queue: Any) -> Json:
    limits = ("maxDeliver", "ackWaitMs", "defaultDeadlineMs", "concurrency")
    given = {"result": _ref, "backoffMs": _list_copy}
    return _pick(
        queue, refs=("payload",), defined=(*limits, "progress", "logs", "dlq"), given=given
    )


def _kv(resource: Any) -> Json:
    limits = ("required", "history", "ttlMs", "maxValueBytes")
    return _pick(resource, ("purpose",), ("schema",), defined=limits)


def _store(resource: Any) -> Json:
    limits = ("required", "ttlMs", "maxObjectBytes", "maxTotalBytes")
    return _pick(resource, ("purpose",), defined=limits)


def _stream(resource: Any) -> Json:
    """Our ``resources.streams`` extension."""
    out = _pick(resource, ("purpose",), defined=("retention", "required", "maxAgeMs", "maxBytes"))
    out["subjects"] = list(resource.get("subjects", []))
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
