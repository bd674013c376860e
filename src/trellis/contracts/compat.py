"""Is a new digest of an already active contract id a compatible upgrade?

When an operator installs a second digest of a contract id, the runtime must either let the
new manifest take over (compatible) or refuse it with every reason (incompatible). The rules
follow upstream's active-contract compatibility check (contracts.md §6) and add the parts that
upstream only documents (surface removal, resource shrinking). Both are parsed ``Manifest``
models, so unknown keys and docs never matter and omitted settings read as their defaults.

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
* A job queue in both keeps every setting (an omitted setting reads as its PROTOCOL §3
  default, so it equals the written default); payload and result schemas merge. Removing a
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
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from trellis.canonical import canonical_json
from trellis.contracts.manifest import PLATFORM_CAPABILITIES, sorted_unique, subject_wildcard
from trellis.contracts.model import (
    SURFACE_SECTIONS,
    Job,
    KvResource,
    Manifest,
    SchemaRef,
    StoreResource,
    StreamResource,
    Surface,
)
from trellis.contracts.validate import Problem

__all__ = ["Incompatibility", "check_compatible", "schema_conflicts"]

#: per section: the fields that must stay identical (schemas and signals are merged instead)
_IDENTICAL_FIELDS: dict[str, tuple[str, ...]] = {
    "rpc": ("subject", "version", "transfer", "errors", "capabilities"),
    "operations": ("subject", "version", "transfer", "cancel", "capabilities"),
    "events": ("subject", "version", "params", "capabilities"),
    "feeds": ("subject", "version", "capabilities"),
}

#: resource limits that may only grow: (field, zero means "no limit"); defaults are the model's
_RESOURCE_LIMITS: dict[type[BaseModel], tuple[tuple[str, bool], ...]] = {
    KvResource: (("history", False), ("ttl_ms", True), ("max_value_bytes", False)),
    StoreResource: (("ttl_ms", True), ("max_object_bytes", False), ("max_total_bytes", False)),
    StreamResource: (("max_age_ms", True), ("max_bytes", False)),
}


def _comparable(field: str, value: Any) -> Any:
    """A surface field as JSON, in the form compared: capability lists and error types as
    sets (an empty capability list means no requirement)."""
    if field == "capabilities":
        return {k: sorted_unique(v) for k, v in value if v}
    if field == "errors":
        return sorted_unique(e.type for e in value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return value


def _json_name(model: type[BaseModel], field: str) -> str:
    return model.model_fields[field].alias or field


_OBJECT_KEYS = frozenset(
    {"type", "properties", "required", "additionalProperties", "title", "description"}
)


#: one reason the new manifest cannot replace the active one (a path and a message)
Incompatibility = Problem


def check_compatible(old: Manifest, new: Manifest) -> list[Incompatibility]:
    """Every reason ``new`` cannot replace the active ``old``; empty when it is compatible."""
    return _Checker(old, new).run()


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


# --- the checker --------------------------------------------------------------------------


class _Checker:
    """Collects every incompatibility between two manifests."""

    def __init__(self, old: Manifest, new: Manifest) -> None:
        self.old = old
        self.new = new
        self.problems: list[Incompatibility] = []
        #: (old name, new name) schema pairs already compared through a reference
        self.compared: set[tuple[str, str]] = set()

    def add(self, path: str, message: str) -> None:
        self.problems.append(Incompatibility(path, message))

    def run(self) -> list[Incompatibility]:
        if self.old.id != self.new.id:
            self.add(
                "id",
                f"contract id changed from {_show(self.old.id)} to {_show(self.new.id)}; "
                "a different id is a different contract",
            )
            return self.problems
        if self.old.kind != self.new.kind:
            self.add("kind", f"changed from {_show(self.old.kind)} to {_show(self.new.kind)}")
        self.check_subjects()
        self.check_surfaces()
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
            for section, name, surface in sorted(m.surfaces(), key=_section_order):
                wildcard = subject_wildcard(surface.subject)
                owner = owners.setdefault(wildcard, (section, name, side))
                pair = frozenset({owner[:2], (section, name)})
                if owner[:2] == (section, name) or pair in reported:
                    continue
                reported.add(pair)
                self.add(
                    f"{section}.{name}.subject",
                    f"subject {wildcard!r} ({side}) is also used by "
                    f"{owner[0]}.{owner[1]} ({owner[2]}); a subject may serve only one surface",
                )

    # surfaces
    def check_surfaces(self) -> None:
        kept = {(section, name): s for section, name, s in self.new.surfaces()}
        for section, name, old in sorted(self.old.surfaces(), key=_section_order):
            base = f"{section}.{name}"
            new = kept.get((section, name))
            if new is None:
                self.add(base, "removed; callers of the active contract would break")
                continue
            for field in _IDENTICAL_FIELDS[section]:
                before = _comparable(field, getattr(old, field))
                after = _comparable(field, getattr(new, field))
                if before != after:
                    self.add(f"{base}.{field}", f"changed from {_show(before)} to {_show(after)}")
            for (field, old_ref), (_, new_ref) in zip(
                old.schema_fields(), new.schema_fields(), strict=True
            ):
                self.check_ref_pair(f"{base}.{field}", old_ref, new_ref)
            old_signals = getattr(old, "signals", {})
            new_signals = getattr(new, "signals", {})
            for signal in sorted(old_signals):
                path = f"{base}.signals.{signal}"
                if signal not in new_signals:
                    self.add(path, "removed; callers of the active contract would break")
                else:
                    self.check_ref_pair(
                        f"{path}.input", old_signals[signal].input, new_signals[signal].input
                    )

    # schemas
    def resolve(self, m: Manifest, side: str, path: str, ref: SchemaRef) -> tuple[bool, Any]:
        if ref.name not in m.schemas:
            self.add(path, f"schema {ref.name!r} is not defined in the {side} manifest")
            return False, None
        return True, m.schemas[ref.name]

    def check_ref_pair(
        self, path: str, old_ref: SchemaRef | None, new_ref: SchemaRef | None
    ) -> None:
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
        old_name, new_name = old_ref.name, new_ref.name
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
        shared = self.old.reachable_schemas(state=False) & self.new.reachable_schemas(state=False)
        for name in sorted(shared):
            if (
                (name, name) in self.compared
                or name not in self.old.schemas
                or name not in self.new.schemas
            ):
                continue
            for reason in schema_conflicts(self.old.schemas[name], self.new.schemas[name]):
                self.add(f"schemas.{name}", f"schema {name!r} does not merge: {reason}")

    # capabilities
    def check_capabilities(self) -> None:
        """A capability that a kept surface requires must still be declared."""
        kept = {(section, name) for section, name, _ in self.new.surfaces()}
        users: dict[str, list[str]] = {}
        for section, name, surface in self.old.surfaces():
            if (section, name) not in kept:
                continue
            for _, caps in surface.capabilities:
                for cap in caps:
                    if cap in PLATFORM_CAPABILITIES or cap in self.new.capabilities:
                        continue
                    if cap.partition("::")[0] == self.new.namespace:
                        users.setdefault(cap, []).append(f"{section}.{name}")
        for cap in sorted(users):
            self.add(
                f"capabilities.{cap}",
                f"no longer declared but required by {', '.join(sorted(set(users[cap])))}",
            )

    # errors
    def check_errors(self) -> None:
        """The data schema of an error a kept rpc can return must still merge."""
        old_decls = {e.type: (k, e) for k, e in self.old.errors.items()}
        new_decls = {e.type: (k, e) for k, e in self.new.errors.items()}
        types = {
            ref.type
            for name, method in self.old.rpc.items()
            if name in self.new.rpc
            for ref in method.errors
        }
        for error_type in sorted(t for t in types if t in old_decls):
            key, old = old_decls[error_type]
            if error_type not in new_decls:
                self.add(f"errors.{key}", f"declaration of error type {error_type!r} removed")
                continue
            self.check_ref_pair(
                f"errors.{key}.schema", old.schema_ref, new_decls[error_type][1].schema_ref
            )

    # jobs
    def check_jobs(self) -> None:
        for queue in sorted(self.old.jobs.keys() & self.new.jobs.keys()):
            base = f"jobs.{queue}"
            old, new = self.old.jobs[queue], self.new.jobs[queue]
            for field in Job.model_fields:
                if field in ("payload", "result", "docs"):
                    continue
                before, after = getattr(old, field), getattr(new, field)
                if before != after:
                    self.add(
                        f"{base}.{_json_name(Job, field)}",
                        f"changed from {_show(before)} to {_show(after)}",
                    )
            self.check_ref_pair(f"{base}.payload", old.payload, new.payload)
            self.check_ref_pair(f"{base}.result", old.result, new.result)

    # resources
    def check_resources(self) -> None:
        for kind in ("kv", "store", "streams"):
            old_all: Mapping[str, BaseModel] = getattr(self.old.resources, kind)
            new_all: Mapping[str, BaseModel] = getattr(self.new.resources, kind)
            for alias in sorted(old_all):
                base = f"resources.{kind}.{alias}"
                if alias not in new_all:
                    self.add(base, f"{kind} alias removed (renaming an alias removes it)")
                    continue
                self.check_resource(base, old_all[alias], new_all[alias])

    def check_resource(self, base: str, old: BaseModel, new: BaseModel) -> None:
        for field, zero_unlimited in _RESOURCE_LIMITS[type(old)]:
            before, after = getattr(old, field), getattr(new, field)
            if _limit(after, zero_unlimited) < _limit(before, zero_unlimited):
                self.add(
                    f"{base}.{_json_name(type(old), field)}",
                    f"shrank from {_show_limit(before, zero_unlimited)} to "
                    f"{_show_limit(after, zero_unlimited)}",
                )
        if isinstance(old, KvResource) and isinstance(new, KvResource):
            self.check_ref_pair(f"{base}.schema", old.schema_ref, new.schema_ref)
        if isinstance(old, StreamResource) and isinstance(new, StreamResource):
            if old.retention != new.retention:
                self.add(
                    f"{base}.retention", f"changed from {old.retention!r} to {new.retention!r}"
                )
            dropped = set(old.subjects) - set(new.subjects)
            if dropped:
                self.add(f"{base}.subjects", f"no longer captures {_names(dropped)}")


def _section_order(item: tuple[str, str, Surface]) -> tuple[int, str]:
    """Report in section order, names sorted within a section."""
    return SURFACE_SECTIONS.index(item[0]), item[1]
