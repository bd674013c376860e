"""Validation of ``trellis.contract.v1`` manifests, reporting *every* problem with its path.

Two passes: a structural one (pydantic models of the manifest shape; unknown keys are left
for normalization to drop) and a semantic one (ids, subjects, params, capabilities, schema
references, aliases, and ``uses`` against known target contracts).  Paths read like
``rpc.Items.Get.input: unknown schema 'Itm'``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic import ValidationError as PydanticValidationError

from trellis.contracts.manifest import (
    PLATFORM_CAPABILITIES,
    capability_namespace,
    subject_wildcard,
)

__all__ = ["ContractError", "Problem", "check_manifest", "validate_manifest"]

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


# --- structure --------------------------------------------------------------------------

NonEmpty = Annotated[StrictStr, Field(min_length=1)]
Names = list[NonEmpty]
PosInt = Annotated[StrictInt, Field(ge=1)]
NonNegInt = Annotated[StrictInt, Field(ge=0)]


class _M(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Ref(_M):
    schema_: NonEmpty = Field(alias="schema")


class _Docs(_M):
    summary: StrictStr | None = None
    markdown: StrictStr


class _CapMeta(_M):
    displayName: NonEmpty
    description: NonEmpty
    consequence: StrictStr | None = None


class _UseCall(_M):
    call: Names | None = None


class _UsePubSub(_M):
    publish: Names | None = None
    subscribe: Names | None = None


class _UseFeeds(_M):
    subscribe: Names | None = None


class _Use(_M):
    contract: NonEmpty
    rpc: _UseCall | None = None
    operations: _UseCall | None = None
    events: _UsePubSub | None = None
    feeds: _UseFeeds | None = None


class _Uses(_M):
    model_config = ConfigDict(extra="forbid", strict=True)
    required: dict[NonEmpty, _Use] | None = None
    optional: dict[NonEmpty, _Use] | None = None


class _ErrorRef(_M):
    type: NonEmpty


class _RpcCaps(_M):
    call: Names | None = None


class _Rpc(_M):
    version: NonEmpty
    subject: NonEmpty
    input: _Ref
    output: _Ref
    capabilities: _RpcCaps | None = None
    errors: list[_ErrorRef] | None = None
    docs: _Docs | None = None


class _OpCaps(_M):
    call: Names | None = None
    observe: Names | None = None
    cancel: Names | None = None
    control: Names | None = None


class _Signal(_M):
    input: _Ref


class _Operation(_M):
    version: NonEmpty
    subject: NonEmpty
    input: _Ref
    progress: _Ref | None = None
    output: _Ref
    capabilities: _OpCaps | None = None
    signals: dict[NonEmpty, _Signal] | None = None
    cancel: StrictBool | None = None


class _EventCaps(_M):
    publish: Names | None = None
    subscribe: Names | None = None


class _Event(_M):
    version: NonEmpty
    subject: NonEmpty
    params: list[StrictStr] | None = None
    event: _Ref
    capabilities: _EventCaps | None = None


class _FeedCaps(_M):
    subscribe: Names | None = None


class _Feed(_M):
    version: NonEmpty
    subject: NonEmpty
    input: _Ref
    event: _Ref
    capabilities: _FeedCaps | None = None


class _ErrorDecl(_M):
    type: NonEmpty
    schema_: _Ref | None = Field(default=None, alias="schema")


class _Job(_M):
    payload: _Ref
    result: _Ref | None = None
    maxDeliver: PosInt | None = None
    backoffMs: list[NonNegInt] | None = None
    ackWaitMs: PosInt | None = None
    defaultDeadlineMs: PosInt | None = None
    progress: StrictBool | None = None
    logs: StrictBool | None = None
    dlq: StrictBool | None = None
    concurrency: PosInt | None = None


class _Consumer(_M):
    uses: dict[NonEmpty, Annotated[Names, Field(min_length=1)]] | None = None
    self_: Annotated[Names, Field(min_length=1)] | None = Field(default=None, alias="self")
    replay: Literal["new", "all"] | None = None
    ordering: Literal["strict"] | None = None
    concurrency: PosInt | None = None
    ackWaitMs: PosInt | None = None
    maxDeliver: PosInt | None = None
    backoffMs: list[NonNegInt] | None = None


class _Kv(_M):
    purpose: NonEmpty
    schema_: _Ref = Field(alias="schema")
    required: StrictBool | None = None
    history: PosInt | None = None
    ttlMs: NonNegInt | None = None
    maxValueBytes: PosInt | None = None


class _Store(_M):
    purpose: NonEmpty
    required: StrictBool | None = None
    ttlMs: NonNegInt | None = None
    maxObjectBytes: PosInt | None = None
    maxTotalBytes: PosInt | None = None


class _Stream(_M):
    purpose: NonEmpty
    subjects: Annotated[Names, Field(min_length=1)]
    retention: Literal["limits", "workqueue", "interest"] | None = None
    required: StrictBool | None = None
    maxAgeMs: NonNegInt | None = None
    maxBytes: PosInt | None = None


class _Resources(_M):
    kv: dict[NonEmpty, _Kv] | None = None
    store: dict[NonEmpty, _Store] | None = None
    streams: dict[NonEmpty, _Stream] | None = None


class _StateStore(_M):
    kind: Literal["value", "map"]
    schema_: _Ref = Field(alias="schema")
    stateVersion: StrictStr | None = None
    acceptedVersions: dict[NonEmpty, _Ref] | None = None


class _Manifest(_M):
    format: Literal["trellis.contract.v1"]
    id: NonEmpty
    displayName: NonEmpty
    description: NonEmpty
    kind: Literal["service", "app", "device", "agent", "cli"]
    docs: _Docs | None = None
    capabilities: dict[NonEmpty, _CapMeta] | None = None
    schemas: dict[NonEmpty, dict[str, Any] | StrictBool] | None = None
    exports: dict[str, Names] | None = None
    uses: _Uses | None = None
    state: dict[NonEmpty, _StateStore] | None = None
    rpc: dict[NonEmpty, _Rpc] | None = None
    operations: dict[NonEmpty, _Operation] | None = None
    events: dict[NonEmpty, _Event] | None = None
    feeds: dict[NonEmpty, _Feed] | None = None
    errors: dict[NonEmpty, _ErrorDecl] | None = None
    jobs: dict[NonEmpty, _Job] | None = None
    eventConsumers: dict[NonEmpty, _Consumer] | None = None
    resources: _Resources | None = None


def _structural_problems(manifest: Any) -> list[Problem]:
    if not isinstance(manifest, Mapping):
        return [Problem("", "a manifest must be a JSON object")]
    problems: list[Problem] = []
    if "subjects" in manifest:
        problems.append(Problem("subjects", "a top-level 'subjects' key is not allowed"))
    try:
        _Manifest.model_validate(manifest)
    except PydanticValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "union["))]
            problems.append(Problem(".".join(loc), err["msg"]))
    return problems


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
    if isinstance(kinds, str):
        kinds = [kinds]
    return (
        isinstance(kinds, list)
        and bool(kinds)
        and all(k in ("string", "integer", "number", "boolean") for k in kinds)
    )


class _Checker:
    def __init__(self, m: Mapping[str, Any], known: Mapping[str, Mapping[str, Any]]) -> None:
        self.m = m
        self.known = known
        self.problems: list[Problem] = []
        self.schemas: Mapping[str, Any] = m.get("schemas") or {}
        self.cid: str = m["id"]
        self.ns = capability_namespace(self.cid)
        self.declared_caps = set((m.get("capabilities") or {}).keys())

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def run(self) -> list[Problem]:
        m = self.m
        if not CONTRACT_ID.match(self.cid):
            self.add("id", f"{self.cid!r} is not a contract id of the form 'name@vN'")
        self.check_capability_declarations()
        subjects: dict[str, str] = {}
        for section in ("rpc", "operations", "feeds", "events"):
            for name, surface in (m.get(section) or {}).items():
                self.check_surface(section, name, surface, subjects)
        self.check_errors()
        self.check_uses()
        self.check_resources()
        self.check_jobs_state_exports()
        self.check_event_consumers()
        return self.problems

    # capabilities
    def check_capability_declarations(self) -> None:
        leaf = self.ns.split(".")[-1]
        for key in self.declared_caps:
            path = f"capabilities.{key}"
            ns, sep, local = key.partition("::")
            if not sep:
                self.add(path, f"capability {key!r} must be namespaced as '{self.ns}::<name>'")
                continue
            if ns != self.ns:
                self.add(
                    path, f"capability {key!r} is outside this contract's namespace {self.ns!r}"
                )
            if not CAPABILITY_LOCAL.match(local):
                self.add(path, f"capability name {local!r} must be lowercase dotted words")
            for prefix in {f"{self.ns}.", f"{leaf}."}:
                if local.startswith(prefix):
                    self.add(
                        path,
                        f"capability name {local!r} must not repeat the namespace prefix "
                        f"{prefix!r}",
                    )

    def check_capability_refs(self, path: str, caps: Any) -> None:
        for cap in caps or []:
            if cap in PLATFORM_CAPABILITIES:
                continue
            ns, sep, _ = cap.partition("::")
            if not sep or (ns == self.ns and cap not in self.declared_caps):
                self.add(path, f"capability {cap!r} is not declared in 'capabilities'")

    # schemas
    def check_ref(self, path: str, ref: Any) -> None:
        if isinstance(ref, Mapping) and isinstance(ref.get("schema"), str):
            name = ref["schema"]
            if name not in self.schemas:
                self.add(path, f"unknown schema {name!r}")

    # surfaces
    def check_surface(
        self, section: str, name: str, s: Mapping[str, Any], subjects: dict[str, str]
    ) -> None:
        base = f"{section}.{name}"
        if not SURFACE_NAME.match(name):
            self.add(base, f"{name!r} is not a valid surface name (dotted words)")
        version = s.get("version", "")
        if not VERSION.match(version):
            self.add(f"{base}.version", f"{version!r} is not a version like 'v1'")
        subject = s.get("subject", "")
        self.check_subject(f"{base}.subject", subject, section)
        wildcard = subject_wildcard(subject)
        owner = subjects.get(wildcard)
        if owner is not None:
            self.add(f"{base}.subject", f"subject {wildcard!r} collides with {owner}")
        else:
            subjects[wildcard] = base
        for key in ("input", "output", "progress", "event"):
            if key in s:
                self.check_ref(f"{base}.{key}", s[key])
        for sig_name, signal in (s.get("signals") or {}).items():
            self.check_ref(f"{base}.signals.{sig_name}.input", signal.get("input"))
        for cap_key, caps in (s.get("capabilities") or {}).items():
            self.check_capability_refs(f"{base}.capabilities.{cap_key}", caps)
        if section == "events":
            self.check_params(base, s)
        if section == "rpc":
            for index, ref in enumerate(s.get("errors") or []):
                self.check_rpc_error(f"{base}.errors[{index}]", ref.get("type"))

    def check_subject(self, path: str, subject: str, section: str) -> None:
        tokens = subject.split(".")
        for token in tokens:
            if section == "events" and token.startswith("{"):
                continue
            if not SUBJECT_TOKEN.match(token):
                self.add(path, f"subject {subject!r} has an invalid token {token!r}")
                return
        prefix = {"rpc": "rpc", "operations": "operations", "feeds": "feeds", "events": "events"}[
            section
        ]
        if tokens[0] != prefix:
            self.add(path, f"subject {subject!r} must start with '{prefix}.'")

    def check_params(self, base: str, event: Mapping[str, Any]) -> None:
        params = list(event.get("params") or [])
        tokens = [t[1:-1] for t in event.get("subject", "").split(".") if t.startswith("{")]
        for token in tokens:
            if not POINTER.match(token):
                self.add(f"{base}.subject", f"template token {{{token}}} is not a JSON pointer")
        if tokens != params:
            self.add(
                f"{base}.params",
                f"params {params} must list the subject's template tokens {tokens} in order",
            )
        if len(set(params)) != len(params):
            self.add(f"{base}.params", "params must not repeat")
        ref = event.get("event") or {}
        schema = self.schemas.get(ref.get("schema", ""))
        if schema is None:
            return
        for index, pointer in enumerate(params):
            if not POINTER.match(pointer):
                self.add(f"{base}.params[{index}]", f"{pointer!r} is not a JSON pointer")
                continue
            target = _schema_at_pointer(schema, pointer)
            if target is None:
                self.add(
                    f"{base}.params[{index}]",
                    f"{pointer!r} does not point into the event schema {ref.get('schema')!r}",
                )
            elif not _tokenable(target):
                self.add(
                    f"{base}.params[{index}]",
                    f"{pointer!r} must point at a string, number, boolean or enum field",
                )

    def check_rpc_error(self, path: str, error_type: Any) -> None:
        from trellis.result import BUILTIN_ERRORS

        declared = {e.get("type") for e in (self.m.get("errors") or {}).values()}
        if error_type not in declared and error_type not in BUILTIN_ERRORS:
            self.add(path, f"error type {error_type!r} is not declared in 'errors'")

    def check_errors(self) -> None:
        for name, decl in (self.m.get("errors") or {}).items():
            if "schema" in decl:
                self.check_ref(f"errors.{name}.schema", decl["schema"])

    # uses
    def check_uses(self) -> None:
        uses = self.m.get("uses") or {}
        required = uses.get("required") or {}
        optional = uses.get("optional") or {}
        for alias in set(required) & set(optional):
            self.add(
                f"uses.optional.{alias}",
                f"duplicate alias {alias!r}: it is also under uses.required",
            )
        for group, entries in (("required", required), ("optional", optional)):
            for alias, use in entries.items():
                self.check_use(f"uses.{group}.{alias}", alias, use)

    def check_use(self, path: str, alias: str, use: Mapping[str, Any]) -> None:
        if not ALIAS.match(alias):
            self.add(path, f"alias {alias!r} must be a single word")
        target_id = use.get("contract", "")
        if not CONTRACT_ID.match(target_id):
            self.add(f"{path}.contract", f"{target_id!r} is not a contract id")
            return
        target = self.known.get(target_id)
        if target is None:
            return  # unknown targets are checked at install, against the active catalog
        for kind, key, section in (
            ("rpc", "call", "rpc"),
            ("operations", "call", "operations"),
            ("events", "publish", "events"),
            ("events", "subscribe", "events"),
            ("feeds", "subscribe", "feeds"),
        ):
            names = (use.get(kind) or {}).get(key) or []
            owned = target.get(section) or {}
            for name in names:
                if name not in owned:
                    self.add(f"{path}.{kind}.{key}", f"{target_id} has no {section} {name!r}")

    # resources
    def check_resources(self) -> None:
        resources = self.m.get("resources") or {}
        seen: dict[str, str] = {}
        for kind in ("kv", "store", "streams"):
            for alias, res in (resources.get(kind) or {}).items():
                path = f"resources.{kind}.{alias}"
                if not ALIAS.match(alias):
                    self.add(path, f"alias {alias!r} must be a single word")
                if alias in seen:
                    self.add(path, f"duplicate alias {alias!r}: also used by {seen[alias]}")
                else:
                    seen[alias] = path
                if kind == "kv":
                    self.check_ref(f"{path}.schema", res.get("schema"))
                if kind == "streams":
                    for index, subject in enumerate(res.get("subjects") or []):
                        tokens = subject.split(".")
                        ok = all(SUBJECT_TOKEN.match(t) or t == "*" for t in tokens[:-1]) and (
                            SUBJECT_TOKEN.match(tokens[-1]) or tokens[-1] in ("*", ">")
                        )
                        if not ok:
                            self.add(
                                f"{path}.subjects[{index}]",
                                f"{subject!r} is not a valid relative subject",
                            )

    def check_jobs_state_exports(self) -> None:
        for queue, job in (self.m.get("jobs") or {}).items():
            if not ALIAS.match(queue):
                self.add(f"jobs.{queue}", f"queue name {queue!r} must be a single word")
            self.check_ref(f"jobs.{queue}.payload", job.get("payload"))
            if "result" in job:
                self.check_ref(f"jobs.{queue}.result", job["result"])
        for name, store in (self.m.get("state") or {}).items():
            self.check_ref(f"state.{name}.schema", store.get("schema"))
            for ver, ref in (store.get("acceptedVersions") or {}).items():
                self.check_ref(f"state.{name}.acceptedVersions.{ver}", ref)
        exports = (self.m.get("exports") or {}).get("schemas") or []
        if len(set(exports)) != len(exports):
            self.add("exports.schemas", "exported schema names must be unique")
        for name in exports:
            if name not in self.schemas:
                self.add("exports.schemas", f"unknown schema {name!r}")
        for name, schema in self.schemas.items():
            if _contains_ref(schema):
                self.add(f"schemas.{name}", "'$ref' is not allowed; schemas must be self-contained")

    def check_event_consumers(self) -> None:
        uses = self.m.get("uses") or {}
        aliases = {**(uses.get("optional") or {}), **(uses.get("required") or {})}
        own_events = set((self.m.get("events") or {}).keys())
        for group, consumer in (self.m.get("eventConsumers") or {}).items():
            path = f"eventConsumers.{group}"
            for alias, events in (consumer.get("uses") or {}).items():
                use = aliases.get(alias)
                if use is None:
                    self.add(f"{path}.uses.{alias}", f"{alias!r} is not a 'uses' alias")
                    continue
                subscribed = set(((use.get("events") or {}).get("subscribe")) or [])
                for event in events:
                    if event not in subscribed:
                        self.add(
                            f"{path}.uses.{alias}",
                            f"event {event!r} is not in uses.{alias}.events.subscribe",
                        )
            for event in consumer.get("self") or []:
                if event not in own_events:
                    self.add(f"{path}.self", f"{event!r} is not an event of this contract")


def _contains_ref(node: Any) -> bool:
    if isinstance(node, Mapping):
        return "$ref" in node or any(_contains_ref(v) for v in node.values())
    if isinstance(node, list):
        return any(_contains_ref(v) for v in node)
    return False


def check_manifest(
    manifest: Any, known: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Problem]:
    """Every problem in ``manifest``; ``known`` maps contract ids to manifests for ``uses``."""
    problems = _structural_problems(manifest)
    if not isinstance(manifest, Mapping):
        return problems
    try:
        semantic = _Checker(manifest, known or {}).run()
    except (AttributeError, KeyError, TypeError):
        # the shape is too broken for semantic checks; the structural problems say why
        semantic = []
    seen = {(p.path, p.message) for p in problems}
    return problems + [p for p in semantic if (p.path, p.message) not in seen]


def validate_manifest(manifest: Any, known: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Raise ``ContractError`` listing every problem, or return quietly."""
    problems = check_manifest(manifest, known)
    if problems:
        cid = manifest.get("id") if isinstance(manifest, Mapping) else None
        raise ContractError(problems, cid if isinstance(cid, str) else None)
