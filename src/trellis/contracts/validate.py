"""Validation of ``trellis.contract.v1`` manifests, reporting *every* problem with its path.

One pass feeding the typed model: the shape is checked by parsing the JSON into ``Manifest``
(the only place raw fields are looked at), then the semantics are checked on the normalized
model (ids, subjects, params, capabilities, schema references, aliases, and ``uses`` against
known target contracts).  Paths read like ``rpc.Items.Get.input: unknown schema 'Itm'``.
When the shape is broken only the shape problems are reported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from trellis.contracts.manifest import (
    PLATFORM_CAPABILITIES,
    USE_ACTIONS,
    normalize_manifest,
    subject_wildcard,
)
from trellis.contracts.model import Event, Manifest
from trellis.contracts.schema import self_contained
from trellis.result import BUILTIN_ERRORS

__all__ = ["ContractError", "Problem", "check", "check_manifest"]

CONTRACT_ID = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*@v[0-9]+$")
VERSION = re.compile(r"^v[0-9]+$")
SURFACE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
CAPABILITY_LOCAL = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$")
SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
POINTER = re.compile(r"^(/[^/~]*(~[01][^/~]*)*)+$")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a manifest."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ContractError(ValueError):
    """A manifest is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem], contract_id: str | None = None) -> None:
        self.problems = problems
        self.contract_id = contract_id
        head = f"contract {contract_id!r} is invalid" if contract_id else "contract is invalid"
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{head} ({len(problems)} problem(s)):\n{lines}")


# --- shape ------------------------------------------------------------------------------


def _shape(data: Any) -> tuple[Manifest | None, list[Problem]]:
    if not isinstance(data, Mapping):
        return None, [Problem("", "a manifest must be a JSON object")]
    problems: list[Problem] = []
    if "subjects" in data:
        problems.append(Problem("subjects", "a top-level 'subjects' key is not allowed"))
    try:
        Manifest.model_validate(data)
    except PydanticValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "union["))]
            problems.append(Problem(".".join(loc), err["msg"]))
        return None, problems
    return Manifest.model_validate(normalize_manifest(data)), problems


def check(data: Any, known: Mapping[str, Manifest]) -> tuple[Manifest | None, list[Problem]]:
    """The normalized model (None when the shape is broken) and every problem found."""
    model, problems = _shape(data)
    if model is not None:
        problems += _Checker(model, known).run()
    return model, problems


def check_manifest(data: Any, known: Mapping[str, Manifest] | None = None) -> list[Problem]:
    """Every problem in ``data``; ``known`` maps contract ids to manifests for ``uses``."""
    return check(data, known or {})[1]


# --- semantics --------------------------------------------------------------------------


def _schema_at_pointer(schema: Any, pointer: str) -> Any:
    node = schema
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping):
            return None
        props = node.get("properties")
        if not isinstance(props, Mapping) or token not in props:
            return None
        node = props[token]
    return node


def _tokenable(schema: Any) -> bool:
    """A param must point at a scalar so its value can stand in a subject token."""
    if not isinstance(schema, Mapping):
        return False
    kinds = schema.get("type")
    if "enum" in schema or "const" in schema:
        return True
    variants = schema.get("anyOf", schema.get("oneOf"))
    if isinstance(variants, list) and variants:  # a union of literals: TypeBox's enum
        return all(_tokenable(v) for v in variants)
    if isinstance(kinds, str):
        kinds = [kinds]
    return (
        isinstance(kinds, list)
        and bool(kinds)
        and all(k in ("string", "integer", "number", "boolean") for k in kinds)
    )


class _Checker:
    def __init__(self, m: Manifest, known: Mapping[str, Manifest]) -> None:
        self.m = m
        self.known = known
        self.problems: list[Problem] = []
        self.ns = m.namespace

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def run(self) -> list[Problem]:
        if not CONTRACT_ID.fullmatch(self.m.id):
            self.add("id", f"{self.m.id!r} is not a contract id of the form 'name@vN'")
        self.check_capability_declarations()
        self.check_surfaces()
        for path, ref in self.m.schema_refs():
            if ref.name not in self.m.schemas:
                self.add(path, f"unknown schema {ref.name!r}")
        self.check_uses()
        self.check_resources()
        self.check_jobs_and_schemas()
        self.check_event_consumers()
        return self.problems

    # capabilities
    def check_capability_declarations(self) -> None:
        leaf = self.ns.split(".")[-1]
        for key in self.m.capabilities:
            path = f"capabilities.{key}"
            ns, sep, local = key.partition("::")
            if not sep:
                self.add(path, f"capability {key!r} must be namespaced as '{self.ns}::<name>'")
                continue
            if ns != self.ns:
                self.add(
                    path, f"capability {key!r} is outside this contract's namespace {self.ns!r}"
                )
            if not CAPABILITY_LOCAL.fullmatch(local):
                self.add(path, f"capability name {local!r} must be lowercase dotted words")
            for prefix in {f"{self.ns}.", f"{leaf}."}:
                if local.startswith(prefix):
                    self.add(
                        path,
                        f"capability name {local!r} must not repeat the namespace prefix "
                        f"{prefix!r}",
                    )

    def check_capability_refs(self, path: str, caps: list[str]) -> None:
        for cap in caps:
            if cap in PLATFORM_CAPABILITIES:
                continue
            ns, sep, _ = cap.partition("::")
            if not sep or (ns == self.ns and cap not in self.m.capabilities):
                self.add(path, f"capability {cap!r} is not declared in 'capabilities'")

    # surfaces
    def check_surfaces(self) -> None:
        subjects: dict[str, str] = {}
        for section, name, surface in self.m.surfaces():
            base = f"{section}.{name}"
            if not SURFACE_NAME.fullmatch(name):
                self.add(base, f"{name!r} is not a valid surface name (dotted words)")
            if not VERSION.fullmatch(surface.version):
                self.add(f"{base}.version", f"{surface.version!r} is not a version like 'v1'")
            self.check_subject(f"{base}.subject", surface.subject, section)
            wildcard = subject_wildcard(surface.subject)
            owner = subjects.setdefault(wildcard, base)
            if owner != base:
                self.add(f"{base}.subject", f"subject {wildcard!r} collides with {owner}")
            for cap_key, caps in surface.capabilities:
                self.check_capability_refs(f"{base}.capabilities.{cap_key}", caps)
            if isinstance(surface, Event):
                self.check_params(base, surface)
            if section == "rpc":
                declared = {e.type for e in self.m.errors.values()}
                for index, ref in enumerate(self.m.rpc[name].errors):
                    if ref.type not in declared and ref.type not in BUILTIN_ERRORS:
                        self.add(
                            f"{base}.errors[{index}]",
                            f"error type {ref.type!r} is not declared in 'errors'",
                        )

    def check_subject(self, path: str, subject: str, section: str) -> None:
        tokens = subject.split(".")
        for token in tokens:
            if section == "events" and token.startswith("{"):
                continue
            if not SUBJECT_TOKEN.fullmatch(token):
                self.add(path, f"subject {subject!r} has an invalid token {token!r}")
                return
        if tokens[0] != section:
            self.add(path, f"subject {subject!r} must start with '{section}.'")

    def check_params(self, base: str, event: Event) -> None:
        params = event.params
        tokens = [t[1:-1] for t in event.subject.split(".") if t.startswith("{")]
        for token in tokens:
            if not POINTER.fullmatch(token):
                self.add(f"{base}.subject", f"template token {{{token}}} is not a JSON pointer")
        if tokens != params:
            self.add(
                f"{base}.params",
                f"params {params} must list the subject's template tokens {tokens} in order",
            )
        if len(set(params)) != len(params):
            self.add(f"{base}.params", "params must not repeat")
        schema = self.m.schemas.get(event.event.name)
        if schema is None:
            return
        for index, pointer in enumerate(params):
            if not POINTER.fullmatch(pointer):
                self.add(f"{base}.params[{index}]", f"{pointer!r} is not a JSON pointer")
                continue
            target = _schema_at_pointer(schema, pointer)
            if target is None:
                self.add(
                    f"{base}.params[{index}]",
                    f"{pointer!r} does not point into the event schema {event.event.name!r}",
                )
            elif not _tokenable(target):
                self.add(
                    f"{base}.params[{index}]",
                    f"{pointer!r} must point at a string, number, boolean or enum field",
                )

    # uses
    def check_uses(self) -> None:
        uses = self.m.uses
        for alias in set(uses.required) & set(uses.optional):
            self.add(
                f"uses.optional.{alias}",
                f"duplicate alias {alias!r}: it is also under uses.required",
            )
        for group, entries in (("required", uses.required), ("optional", uses.optional)):
            for alias, use in entries.items():
                path = f"uses.{group}.{alias}"
                if not ALIAS.fullmatch(alias):
                    self.add(path, f"alias {alias!r} must be a single word")
                if not CONTRACT_ID.fullmatch(use.contract):
                    self.add(f"{path}.contract", f"{use.contract!r} is not a contract id")
                    continue
                target = self.known.get(use.contract)
                if target is None:
                    continue  # unknown targets are checked at install, against the catalog
                for kind, actions in USE_ACTIONS.items():
                    owned = getattr(target, kind)
                    for key in actions:
                        for name in getattr(getattr(use, kind), key):
                            if name not in owned:
                                self.add(
                                    f"{path}.{kind}.{key}", f"{use.contract} has no {kind} {name!r}"
                                )

    # resources
    def check_resources(self) -> None:
        seen: dict[str, str] = {}
        resources = self.m.resources
        for kind, aliases in (
            ("kv", resources.kv),
            ("store", resources.store),
            ("streams", resources.streams),
        ):
            for alias in aliases:
                path = f"resources.{kind}.{alias}"
                if not ALIAS.fullmatch(alias):
                    self.add(path, f"alias {alias!r} must be a single word")
                owner = seen.setdefault(alias, path)
                if owner != path:
                    self.add(path, f"duplicate alias {alias!r}: also used by {owner}")
        for alias, stream in resources.streams.items():
            for index, subject in enumerate(stream.subjects):
                tokens = subject.split(".")
                ok = all(SUBJECT_TOKEN.fullmatch(t) or t == "*" for t in tokens[:-1]) and (
                    SUBJECT_TOKEN.fullmatch(tokens[-1]) or tokens[-1] in ("*", ">")
                )
                if not ok:
                    self.add(
                        f"resources.streams.{alias}.subjects[{index}]",
                        f"{subject!r} is not a valid relative subject",
                    )

    def check_jobs_and_schemas(self) -> None:
        for queue in self.m.jobs:
            if not ALIAS.fullmatch(queue):
                self.add(f"jobs.{queue}", f"queue name {queue!r} must be a single word")
        exports = self.m.exports.schemas
        if len(set(exports)) != len(exports):
            self.add("exports.schemas", "exported schema names must be unique")
        for name in exports:
            if name not in self.m.schemas:
                self.add("exports.schemas", f"unknown schema {name!r}")
        for name, schema in self.m.schemas.items():
            if not self_contained(schema):
                self.add(f"schemas.{name}", "'$ref' is not allowed; schemas must be self-contained")

    def check_event_consumers(self) -> None:
        aliases = {alias: use for alias, use, _ in self.m.dependencies()}
        for group, consumer in self.m.event_consumers.items():
            path = f"eventConsumers.{group}"
            for alias, events in consumer.uses.items():
                use = aliases.get(alias)
                if use is None:
                    self.add(f"{path}.uses.{alias}", f"{alias!r} is not a 'uses' alias")
                    continue
                for event in events:
                    if event not in use.events.subscribe:
                        self.add(
                            f"{path}.uses.{alias}",
                            f"event {event!r} is not in uses.{alias}.events.subscribe",
                        )
            for event in consumer.self_events:
                if event not in self.m.events:
                    self.add(f"{path}.self", f"{event!r} is not an event of this contract")
