"""Is a new digest of an already active contract id a compatible upgrade?

When an operator installs a second digest of a contract id, the runtime must either let the
new manifest take over (compatible) or refuse it with every reason (incompatible). The rules
follow upstream's active-contract compatibility check (contracts.md §6) and add the parts that
upstream only documents (surface removal, resource shrinking). Both manifests are normalized
first, so unknown keys and docs never matter.

Rules, in our words:

* The ids must be equal; otherwise nothing else is compared. The ``kind`` must not change.
* Across both manifests together, one subject (template tokens replaced by ``*``) may belong
  to only one logical surface (section plus name).
* A caller-facing surface (``rpc``, ``events``, ``operations``, ``feeds``) that the old
  manifest has must still exist: removing it would break callers. New surfaces are fine.
* For a surface in both: ``subject``, ``version`` and ``transfer`` are identical; rpc
  ``errors`` have the same set of types; every capability list holds the same set (an empty
  list counts as absent); event ``params`` are equal in order; operation ``cancel`` is the
  same flag. Every schema the surface references (input, output, progress, event, signal
  inputs) must merge, and a schema reference may not appear or vanish.
* An operation keeps its signals, and the data schema declared for an error type that a
  kept rpc can return must still merge (callers decode it).
* A capability of this contract's namespace that a kept surface requires must still be
  declared in the new manifest's ``capabilities``.
* A job queue in both keeps every setting (defaults from PROTOCOL §3 filled in first, so an
  omitted default equals the written one); payload and result schemas merge. Removing a
  queue is allowed: queues are internal to the service.
* Resources: a ``kv``/``store``/``streams`` alias may not disappear (a rename is a removal),
  ``history``, ``ttlMs``, ``maxAgeMs`` and byte limits may not shrink (absent, or a zero
  TTL/age, means "no limit"), a kv schema must merge, a stream keeps its retention and
  every subject it captured. New aliases and raised limits are fine.
* Same-named schemas referenced by both manifests must merge too, since the effective
  contract is their union.

Schema merge: equal canonical JSON always merges. Otherwise both must be ``type: "object"``
schemas using only ``type``, ``properties``, ``required``, boolean ``additionalProperties``,
``title`` and ``description`` (the last two are annotations and may differ), with the same
``required`` set; shared properties merge recursively; a property on one side only must be
optional and the other side must be open (``additionalProperties`` not ``false``), so closed
objects need the same property names. Anything else that differs does not merge. The rule is
deliberately conservative: "not provably compatible" is treated as incompatible.

Not compared: ``uses``, ``eventConsumers``, ``state`` and ``exports`` (those change the
deployment's authority, which has its own review), nor display text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from trellis.canonical import canonical_json
from trellis.contracts.manifest import (
    PLATFORM_CAPABILITIES,
    capability_namespace,
    normalize_manifest,
    sorted_unique,
    subject_wildcard,
)

__all__ = [
    "Incompatibility",
    "IncompatibleContractError",
    "assert_compatible",
    "check_compatible",
    "schema_conflicts",
]

Json = dict[str, Any]

#: caller-facing sections, in the order problems are reported
SURFACE_SECTIONS = ("rpc", "operations", "events", "feeds")

#: per section: the fields that hold schema references
_SCHEMA_FIELDS: dict[str, tuple[str, ...]] = {
    "rpc": ("input", "output"),
    "operations": ("input", "progress", "output"),
    "events": ("event",),
    "feeds": ("input", "event"),
}


def _caps_key(value: Any) -> Any:
    """Capability lists compared as sets; an empty list means no requirement."""
    return {k: sorted_unique(v) for k, v in (value or {}).items() if v}


def _errors_key(value: Any) -> Any:
    return sorted_unique(e.get("type") for e in value or [])


def _same(value: Any) -> Any:
    return value


def _list_key(value: Any) -> Any:
    return list(value or [])


def _bool_key(value: Any) -> Any:
    return bool(value)


#: per section: fields that must be identical, with the key that makes them comparable
_IDENTICAL_FIELDS: dict[str, tuple[tuple[str, Callable[[Any], Any]], ...]] = {
    "rpc": (
        ("subject", _same),
        ("version", _same),
        ("transfer", _same),
        ("errors", _errors_key),
        ("capabilities", _caps_key),
    ),
    "operations": (
        ("subject", _same),
        ("version", _same),
        ("transfer", _same),
        ("cancel", _bool_key),
        ("capabilities", _caps_key),
    ),
    "events": (
        ("subject", _same),
        ("version", _same),
        ("params", _list_key),
        ("capabilities", _caps_key),
    ),
    "feeds": (
        ("subject", _same),
        ("version", _same),
        ("capabilities", _caps_key),
    ),
}

#: job settings and the defaults the runtime applies when one is omitted (PROTOCOL §3)
_JOB_DEFAULTS: dict[str, Any] = {
    "maxDeliver": 5,
    "backoffMs": [5000, 30000, 120000, 600000, 1800000],
    "ackWaitMs": 300000,
    "defaultDeadlineMs": None,
    "progress": True,
    "logs": True,
    "dlq": True,
    "concurrency": 1,
}

#: resource limits that may only grow: (kind, field, default, zero means "no limit")
_RESOURCE_LIMITS: tuple[tuple[str, str, int | None, bool], ...] = (
    ("kv", "history", 1, False),
    ("kv", "ttlMs", 0, True),
    ("kv", "maxValueBytes", None, False),
    ("store", "ttlMs", 0, True),
    ("store", "maxObjectBytes", None, False),
    ("store", "maxTotalBytes", None, False),
    ("streams", "maxAgeMs", None, True),
    ("streams", "maxBytes", None, False),
)

_OBJECT_KEYS = frozenset(
    {"type", "properties", "required", "additionalProperties", "title", "description"}
)


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One reason the new manifest cannot replace the active one."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class IncompatibleContractError(ValueError):
    """The new manifest is not a compatible upgrade; ``problems`` lists every reason."""

    def __init__(self, problems: list[Incompatibility], contract_id: str | None = None) -> None:
        self.problems = problems
        self.contract_id = contract_id
        head = (
            f"new manifest of {contract_id!r} is incompatible with the active one"
            if contract_id
            else "new manifest is incompatible with the active one"
        )
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{head} ({len(problems)} problem(s)):\n{lines}")


def check_compatible(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Incompatibility]:
    """Every reason ``new`` cannot replace the active ``old``; empty when it is compatible."""
    return _Checker(normalize_manifest(old), normalize_manifest(new)).run()


def assert_compatible(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Raise ``IncompatibleContractError`` listing every reason, or return quietly."""
    problems = check_compatible(old, new)
    if problems:
        cid = new.get("id")
        raise IncompatibleContractError(problems, cid if isinstance(cid, str) else None)


# --- helpers ------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """Short, stable rendering of a JSON value for messages."""
    if value is None:
        return "(absent)"
    try:
        return canonical_json(value)
    except ValueError:
        return repr(value)


def _canonical_equal(a: Any, b: Any) -> bool:
    try:
        return canonical_json(a) == canonical_json(b)
    except ValueError:
        # not JSON (NaN and the like): equal only if Python says so
        return bool(a == b)


def _pointer_token(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _names(values: Iterable[str]) -> str:
    return ", ".join(repr(v) for v in sorted(values))


def _string_set(value: Any) -> list[str] | None:
    """``required`` as a list of unique strings, or None when it is anything else."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value if len(set(value)) == len(value) else None


def schema_conflicts(old: Any, new: Any, at: str = "") -> list[str]:
    """Why two resolved JSON schemas do not merge (empty list: they merge).

    ``at`` is the JSON pointer of the compared node inside the schema, used in messages.
    """
    if _canonical_equal(old, new):
        return []
    where = at or "the root"
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return [f"schemas differ at {where}"]
    objects = (old.get("type") == "object", new.get("type") == "object")
    if objects == (False, False):
        return [f"schemas differ at {where}"]
    if objects != (True, True):
        return [f"schemas differ at {where}, where only one is an object schema"]
    shapes: list[tuple[list[str], Mapping[str, Any], bool]] = []
    for side, schema in (("old", old), ("new", new)):
        extra = set(schema) - _OBJECT_KEYS
        if extra:
            return [
                f"schemas differ at {where} and the {side} one uses {_names(extra)}, "
                "which the object merge rule does not cover"
            ]
        additional = schema.get("additionalProperties", True)
        if not isinstance(additional, bool):
            return [
                f"schemas differ at {where} and the {side} one has a non-boolean "
                "additionalProperties"
            ]
        required = _string_set(schema.get("required"))
        if required is None:
            return [f"schemas differ at {where} and the {side} 'required' is not a set of names"]
        properties = schema.get("properties", {})
        if not isinstance(properties, Mapping):
            return [f"schemas differ at {where} and the {side} 'properties' is not an object"]
        shapes.append((required, properties, additional))
    (old_req, old_props, old_open), (new_req, new_props, new_open) = shapes
    problems: list[str] = []
    if set(old_req) != set(new_req):
        added, removed = set(new_req) - set(old_req), set(old_req) - set(new_req)
        parts = [f"now requires {_names(added)}"] if added else []
        parts += [f"no longer requires {_names(removed)}"] if removed else []
        problems.append(f"required set at {where} changed: {'; '.join(parts)}")
    both_required = set(old_req) & set(new_req)
    changed_required = set(old_req) ^ set(new_req)
    for name in old_props.keys() | new_props.keys():
        pointer = f"{at}/properties/{_pointer_token(name)}"
        if name in old_props and name in new_props:
            problems.extend(schema_conflicts(old_props[name], new_props[name], pointer))
            continue
        side, other_open = ("old", new_open) if name in old_props else ("new", old_open)
        if name in both_required:
            problems.append(f"property {pointer} exists only in the {side} schema and is required")
        elif name in changed_required:
            continue  # already reported with the required set
        elif not other_open:
            other = "new" if side == "old" else "old"
            problems.append(
                f"property {pointer} exists only in the {side} schema but the {other} object "
                "is closed (additionalProperties: false)"
            )
    return sorted(problems)


def _limit(value: Any, zero_unlimited: bool) -> float:
    if value is None or (zero_unlimited and value == 0):
        return math.inf
    return float(value)


def _show_limit(value: Any, zero_unlimited: bool) -> str:
    if value is None:
        return "no limit"
    if zero_unlimited and value == 0:
        return "0 (no limit)"
    return str(value)


def _referenced_schemas(m: Mapping[str, Any]) -> set[str]:
    """Schema names the effective (merged) contract depends on; ``state`` is excluded."""
    names: set[str] = set()

    def add(ref: Any) -> None:
        if isinstance(ref, Mapping) and isinstance(ref.get("schema"), str):
            names.add(ref["schema"])

    error_schemas = {e.get("type"): e.get("schema") for e in (m.get("errors") or {}).values()}
    for section, fields in _SCHEMA_FIELDS.items():
        for surface in (m.get(section) or {}).values():
            for field in fields:
                add(surface.get(field))
            for signal in (surface.get("signals") or {}).values():
                add(signal.get("input"))
            if section == "rpc":
                for ref in surface.get("errors") or []:
                    add(error_schemas.get(ref.get("type")))
    for job in (m.get("jobs") or {}).values():
        add(job.get("payload"))
        add(job.get("result"))
    for resource in ((m.get("resources") or {}).get("kv") or {}).values():
        add(resource.get("schema"))
    return names


# --- the checker --------------------------------------------------------------------------


class _Checker:
    """Collects every incompatibility between two normalized manifests."""

    def __init__(self, old: Json, new: Json) -> None:
        self.old = old
        self.new = new
        self.problems: list[Incompatibility] = []
        #: (old name, new name) schema pairs already compared through a reference
        self.compared: set[tuple[str, str]] = set()

    def add(self, path: str, message: str) -> None:
        self.problems.append(Incompatibility(path, message))

    def run(self) -> list[Incompatibility]:
        if self.old.get("id") != self.new.get("id"):
            self.add(
                "id",
                f"contract id changed from {_show(self.old.get('id'))} to "
                f"{_show(self.new.get('id'))}; a different id is a different contract",
            )
            return self.problems
        if self.old.get("kind") != self.new.get("kind"):
            self.add(
                "kind",
                f"changed from {_show(self.old.get('kind'))} to {_show(self.new.get('kind'))}",
            )
        self.check_subjects()
        for section in SURFACE_SECTIONS:
            self.check_surfaces(section)
        self.check_capabilities()
        self.check_errors()
        self.check_jobs()
        self.check_resources()
        self.check_named_schemas()
        return self.problems

    # subjects
    def check_subjects(self) -> None:
        """One subject, one logical surface, across both manifests together."""
        owners: dict[str, tuple[str, str, str]] = {}
        reported: set[frozenset[tuple[str, str]]] = set()
        for side, m in (("old", self.old), ("new", self.new)):
            for section in SURFACE_SECTIONS:
                for name, surface in sorted((m.get(section) or {}).items()):
                    subject = surface.get("subject")
                    if not isinstance(subject, str):
                        continue
                    wildcard = subject_wildcard(subject)
                    owner = owners.setdefault(wildcard, (section, name, side))
                    pair = frozenset({owner[:2], (section, name)})
                    if owner[:2] == (section, name) or pair in reported:
                        continue
                    reported.add(pair)
                    self.add(
                        f"{section}.{name}.subject",
                        f"subject {wildcard!r} ({side}) is also used by "
                        f"{owner[0]}.{owner[1]} ({owner[2]}); a subject may serve only one "
                        "surface",
                    )

    # surfaces
    def check_surfaces(self, section: str) -> None:
        old_all = self.old.get(section) or {}
        new_all = self.new.get(section) or {}
        for name in sorted(old_all):
            base = f"{section}.{name}"
            if name not in new_all:
                self.add(base, "removed; callers of the active contract would break")
                continue
            old, new = old_all[name], new_all[name]
            for field, key in _IDENTICAL_FIELDS[section]:
                if key(old.get(field)) != key(new.get(field)):
                    self.add(
                        f"{base}.{field}",
                        f"changed from {_show(key(old.get(field)))} to "
                        f"{_show(key(new.get(field)))}",
                    )
            for field in _SCHEMA_FIELDS[section]:
                self.check_ref_pair(f"{base}.{field}", old.get(field), new.get(field))
            if section == "operations":
                self.check_signals(base, old.get("signals") or {}, new.get("signals") or {})

    def check_signals(self, base: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        for name in sorted(old):
            path = f"{base}.signals.{name}"
            if name not in new:
                self.add(path, "removed; callers of the active contract would break")
            else:
                self.check_ref_pair(f"{path}.input", old[name].get("input"), new[name].get("input"))

    # schemas
    def resolve(self, m: Json, side: str, path: str, ref: Mapping[str, Any]) -> tuple[bool, Any]:
        name = ref.get("schema")
        schemas = m.get("schemas") or {}
        if name not in schemas:
            self.add(path, f"schema {name!r} is not defined in the {side} manifest")
            return False, None
        return True, schemas[name]

    def check_ref_pair(self, path: str, old_ref: Any, new_ref: Any) -> None:
        if old_ref is None and new_ref is None:
            return
        if old_ref is None or new_ref is None:
            change = "added" if old_ref is None else "removed"
            self.add(path, f"schema reference {change}")
            return
        ok_old, old_schema = self.resolve(self.old, "old", path, old_ref)
        ok_new, new_schema = self.resolve(self.new, "new", path, new_ref)
        if not (ok_old and ok_new):
            return
        old_name, new_name = old_ref["schema"], new_ref["schema"]
        self.compared.add((old_name, new_name))
        label = (
            f"schema {old_name!r} does not merge"
            if old_name == new_name
            else f"schemas {old_name!r} (old) and {new_name!r} (new) do not merge"
        )
        for reason in schema_conflicts(old_schema, new_schema):
            self.add(path, f"{label}: {reason}")

    def check_named_schemas(self) -> None:
        """Same-named schemas must merge, since the effective contract unions them."""
        old_schemas = self.old.get("schemas") or {}
        new_schemas = self.new.get("schemas") or {}
        shared = _referenced_schemas(self.old) & _referenced_schemas(self.new)
        for name in sorted(shared):
            if (name, name) in self.compared or name not in old_schemas or name not in new_schemas:
                continue
            for reason in schema_conflicts(old_schemas[name], new_schemas[name]):
                self.add(f"schemas.{name}", f"schema {name!r} does not merge: {reason}")

    # capabilities
    def check_capabilities(self) -> None:
        """A capability that a kept surface requires must still be declared."""
        namespace = capability_namespace(str(self.new.get("id")))
        declared = set((self.new.get("capabilities") or {}).keys())
        users: dict[str, list[str]] = {}
        for section in SURFACE_SECTIONS:
            new_all = self.new.get(section) or {}
            for name, surface in (self.old.get(section) or {}).items():
                if name not in new_all:
                    continue
                for caps in (surface.get("capabilities") or {}).values():
                    for cap in caps or []:
                        if cap in PLATFORM_CAPABILITIES or cap in declared:
                            continue
                        if cap.partition("::")[0] == namespace:
                            users.setdefault(cap, []).append(f"{section}.{name}")
        for cap in sorted(users):
            self.add(
                f"capabilities.{cap}",
                f"no longer declared but required by {', '.join(sorted(set(users[cap])))}",
            )

    # errors
    def check_errors(self) -> None:
        """The data schema of an error a kept rpc can return must still merge."""
        old_decls = {e.get("type"): (k, e) for k, e in (self.old.get("errors") or {}).items()}
        new_decls = {e.get("type"): (k, e) for k, e in (self.new.get("errors") or {}).items()}
        new_rpc = self.new.get("rpc") or {}
        types = {
            ref.get("type")
            for name, method in (self.old.get("rpc") or {}).items()
            if name in new_rpc
            for ref in method.get("errors") or []
        }
        for error_type in sorted(t for t in types if t in old_decls):
            key, old = old_decls[error_type]
            if error_type not in new_decls:
                self.add(f"errors.{key}", f"declaration of error type {error_type!r} removed")
                continue
            self.check_ref_pair(
                f"errors.{key}.schema", old.get("schema"), new_decls[error_type][1].get("schema")
            )

    # jobs
    def check_jobs(self) -> None:
        old_all = self.old.get("jobs") or {}
        new_all = self.new.get("jobs") or {}
        for queue in sorted(old_all.keys() & new_all.keys()):
            base = f"jobs.{queue}"
            old, new = old_all[queue], new_all[queue]
            for field, default in _JOB_DEFAULTS.items():
                before, after = old.get(field, default), new.get(field, default)
                if not _canonical_equal(before, after):
                    self.add(f"{base}.{field}", f"changed from {_show(before)} to {_show(after)}")
            for field in ("payload", "result"):
                self.check_ref_pair(f"{base}.{field}", old.get(field), new.get(field))

    # resources
    def check_resources(self) -> None:
        old_res = self.old.get("resources") or {}
        new_res = self.new.get("resources") or {}
        for kind in ("kv", "store", "streams"):
            old_all = old_res.get(kind) or {}
            new_all = new_res.get(kind) or {}
            for alias in sorted(old_all):
                base = f"resources.{kind}.{alias}"
                if alias not in new_all:
                    self.add(base, f"{kind} alias removed (renaming an alias removes it)")
                    continue
                self.check_resource(kind, base, old_all[alias], new_all[alias])

    def check_resource(
        self, kind: str, base: str, old: Mapping[str, Any], new: Mapping[str, Any]
    ) -> None:
        for limit_kind, field, default, zero_unlimited in _RESOURCE_LIMITS:
            if limit_kind != kind:
                continue
            before, after = old.get(field, default), new.get(field, default)
            if _limit(after, zero_unlimited) < _limit(before, zero_unlimited):
                self.add(
                    f"{base}.{field}",
                    f"shrank from {_show_limit(before, zero_unlimited)} to "
                    f"{_show_limit(after, zero_unlimited)}",
                )
        if kind == "kv":
            self.check_ref_pair(f"{base}.schema", old.get("schema"), new.get("schema"))
        if kind == "streams":
            before, after = old.get("retention", "limits"), new.get("retention", "limits")
            if before != after:
                self.add(f"{base}.retention", f"changed from {before!r} to {after!r}")
            dropped = set(old.get("subjects") or []) - set(new.get("subjects") or [])
            if dropped:
                self.add(f"{base}.subjects", f"no longer captures {_names(dropped)}")
