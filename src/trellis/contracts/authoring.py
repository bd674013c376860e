"""Authoring contracts in Python: pydantic models in, a ``trellis.contract.v1`` manifest out.

``Contract(...)`` builds the manifest once, parses it into the typed ``Manifest``
(``contract.model``; every problem reported together) and computes its digest.  The specs
keep the Python models so services and clients can validate payloads against exactly what
the manifest declares.

A model (or error class) may pin its manifest entry with a class attribute
``__trellis_schema__ = (name, json_schema)``: that schema is emitted verbatim under that name
instead of one generated from the model.  Generated SDKs do so, which is how a contract
rebuilt from a manifest keeps the source's digest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Generic, Literal, Never, TypeVar, overload

from pydantic import BaseModel

from trellis.contracts.manifest import (
    CONTRACT_FORMAT,
    PLATFORM_CAPABILITIES,
    contract_digest,
    event_subject_template,
    global_capability,
    sorted_unique,
)
from trellis.contracts.model import Manifest
from trellis.contracts.schema import SchemaError, model_schema
from trellis.contracts.validate import ContractError, Problem
from trellis.result import BUILTIN_ERRORS, TrellisError

__all__ = [
    "Capability",
    "ConsumerSpec",
    "Contract",
    "EventSpec",
    "JobSpec",
    "KvSpec",
    "RpcSpec",
    "StoreSpec",
    "StreamSpec",
    "Use",
    "consumer",
    "event",
    "job",
    "kv",
    "rpc",
    "store",
    "stream",
]

Kind = Literal["service", "app", "cli", "agent", "device"]

I = TypeVar("I", bound=BaseModel)  # noqa: E741
O = TypeVar("O", bound=BaseModel)  # noqa: E741
E = TypeVar("E", bound=TrellisError)
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Capability:
    """A capability's human copy (``consequence`` says what holding it allows)."""

    display_name: str
    description: str
    consequence: str | None = None


class _Bound:
    """Where a spec lives once a ``Contract`` holds it: the typed reference users pass to
    ``call``/``publish``/``subscribe``/``kv`` is the spec object itself."""

    _owner: tuple[str, str] | None = None

    def _conflict(self, contract_id: str, name: str, section: str) -> Problem | None:
        if self._owner is not None and self._owner != (contract_id, name):
            return Problem(
                f"{section}.{name}",
                f"this spec already belongs to {self._owner[0]} as {self._owner[1]!r}; "
                "make a new one for each contract",
            )
        return None

    def _bind(self, contract_id: str, name: str) -> None:
        object.__setattr__(self, "_owner", (contract_id, name))

    @property
    def contract_id(self) -> str:
        """The id of the contract that declares this surface."""
        return self._require()[0]

    @property
    def name(self) -> str:
        """The logical name (RPC method, event name or KV alias) in its contract."""
        return self._require()[1]

    def _require(self) -> tuple[str, str]:
        if self._owner is None:
            raise LookupError("this spec is not part of a Contract yet")
        return self._owner


@dataclass(frozen=True, eq=False)
class RpcSpec(_Bound, Generic[I, O, E]):
    """An RPC: input model ``I``, output model ``O``, declared errors ``E``; made by ``rpc()``.

    Pass it to ``call`` (``client.call(GET_ITEM, GetItem(id="1"))``) for a result typed
    ``Result[O, E | TrellisError]``, and to ``service.rpc`` to mount a typed handler.
    """

    input: type[I]
    output: type[O]
    errors: tuple[type[E], ...] = ()
    #: ``None`` leaves the list unwritten (a manifest from elsewhere may omit it)
    call: tuple[str, ...] | None = ()
    version: str = "v1"
    docs: str | None = None
    #: upstream's ``transfer.direction`` (``send``/``receive``), declared only: the Python
    #: runtime does not move the bytes yet
    transfer: str | None = None


@dataclass(frozen=True, eq=False)
class EventSpec(_Bound, Generic[M]):
    """An event with payload model ``M``; each ``params`` JSON pointer becomes a subject
    token filled from the payload.  Made by ``event(model, ...)``."""

    model: type[M]
    _: KW_ONLY
    #: ``None`` leaves the entry unwritten (a manifest from elsewhere may omit it)
    params: Sequence[str] | None = ()
    publish: Sequence[str] | None = ()
    subscribe: Sequence[str] | None = ()
    version: str = "v1"
    docs: str | None = None

    def __post_init__(self) -> None:
        for name in ("params", "publish", "subscribe"):  # frozen: keep no caller's list
            object.__setattr__(self, name, _opt(getattr(self, name)))


@dataclass(frozen=True, eq=False)
class KvSpec(_Bound, Generic[M]):
    """A KV bucket of ``model`` values, bound to a physical bucket at install;
    ``service.kv[spec]`` is a ``KvHandle[M]``.  Made by ``kv(model, purpose=...)``."""

    model: type[M]
    _: KW_ONLY
    purpose: str
    required: bool = True
    history: int = 1
    ttl_ms: int = 0
    max_value_bytes: int | None = None


@dataclass(frozen=True, kw_only=True)
class StoreSpec:
    """An object store resource, bound to a physical bucket at install; made by
    ``store(purpose=...)``."""

    purpose: str
    required: bool = True
    ttl_ms: int = 0
    max_object_bytes: int | None = None
    max_total_bytes: int | None = None


@dataclass(frozen=True, kw_only=True)
class StreamSpec:
    """Our ``resources.streams`` extension: a JetStream stream under a logical alias,
    capturing ``subjects``.  Made by ``stream(purpose=..., subjects=[...])``."""

    purpose: str
    subjects: Sequence[str]
    retention: Literal["limits", "workqueue", "interest"] = "limits"
    required: bool = True
    max_age_ms: int | None = None
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "subjects", tuple(self.subjects))  # frozen: keep no list


@dataclass(frozen=True)
class JobSpec:
    payload: type[BaseModel]
    result: type[BaseModel] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ConsumerSpec:
    """A durable event-consumer group over used (``uses``) and own (``self_events``) events;
    made by ``consumer(...)``."""

    uses: Mapping[str, Sequence[str]] = field(default_factory=dict)
    self_events: Sequence[str] = ()
    replay: Literal["new", "all"] = "new"
    concurrency: int = 1
    ack_wait_ms: int | None = None
    max_deliver: int | None = None
    backoff_ms: Sequence[int] | None = None

    def __post_init__(self) -> None:  # frozen: keep none of the caller's lists
        uses = {alias: tuple(events) for alias, events in (self.uses or {}).items()}
        object.__setattr__(self, "uses", uses)
        object.__setattr__(self, "self_events", tuple(self.self_events))
        if self.backoff_ms is not None:
            object.__setattr__(self, "backoff_ms", tuple(self.backoff_ms))


@dataclass(frozen=True)
class Use:
    """A dependency on surfaces of another contract; made by ``Contract.use``."""

    contract: str
    rpc: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    optional: bool = False
    target: Contract | None = field(default=None, compare=False, repr=False)

    def manifest(self) -> dict[str, Any]:
        events = _given(publish=list(self.publish) or None, subscribe=list(self.subscribe) or None)
        return _given(
            contract=self.contract,
            rpc={"call": list(self.rpc)} if self.rpc else None,
            events=events or None,
        )


@overload
def rpc(
    input: type[I],
    output: type[O],
    *,
    call: Sequence[str] | None = (),
    version: str = "v1",
    docs: str | None = None,
    transfer: str | None = None,
) -> RpcSpec[I, O, Never]: ...


@overload
def rpc(
    input: type[I],
    output: type[O],
    *,
    errors: Sequence[type[E]],
    call: Sequence[str] | None = (),
    version: str = "v1",
    docs: str | None = None,
    transfer: str | None = None,
) -> RpcSpec[I, O, E]: ...


def rpc(
    input: type[I],
    output: type[O],
    *,
    errors: Sequence[type[E]] = (),
    call: Sequence[str] | None = (),
    version: str = "v1",
    docs: str | None = None,
    transfer: str | None = None,
) -> RpcSpec[I, O, E]:
    """An RPC taking ``input`` and answering ``output``; ``errors`` are the declared error
    classes, ``call`` the capabilities a caller needs."""
    return RpcSpec(input, output, tuple(errors), _opt(call), version, docs, transfer)


#: the spec classes are their own constructors: ``kv(Item, purpose=...)``, ``store(...)``
event = EventSpec
kv = KvSpec
store = StoreSpec
stream = StreamSpec
consumer = ConsumerSpec


def _opt(values: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)


def job(
    payload: type[BaseModel],
    result: type[BaseModel] | None = None,
    *,
    max_deliver: int | None = None,
    backoff_ms: Sequence[int] | None = None,
    ack_wait_ms: int | None = None,
    default_deadline_ms: int | None = None,
    progress: bool | None = None,
    logs: bool | None = None,
    dlq: bool | None = None,
    concurrency: int | None = None,
) -> JobSpec:
    """A job queue; unset options take the runtime defaults (PROTOCOL §3) and stay unwritten."""
    options = _given(
        maxDeliver=max_deliver,
        backoffMs=list(backoff_ms) if backoff_ms is not None else None,
        ackWaitMs=ack_wait_ms,
        defaultDeadlineMs=default_deadline_ms,
        progress=progress,
        logs=logs,
        dlq=dlq,
        concurrency=concurrency,
    )
    return JobSpec(payload, result, options)


def _given(**fields: Any) -> dict[str, Any]:
    """The fields that are set, by their JSON names: unset ones stay unwritten."""
    return {name: value for name, value in fields.items() if value is not None}


class Contract:
    """A Trellis contract declared in Python.

    ``sections`` carries manifest sections that have no specs here yet (``operations``,
    ``feeds``, ``state``) as JSON in which a model class stands for ``{"schema": name}``.
    Raises ``ContractError`` listing every problem when the declaration is invalid.
    """

    def __init__(
        self,
        id: str,
        *,
        kind: Kind,
        display_name: str,
        description: str,
        capabilities: Mapping[str, str | Capability] | None = None,
        rpc: Mapping[str, RpcSpec[Any, Any, Any]] | None = None,
        events: Mapping[str, EventSpec[Any]] | None = None,
        kv: Mapping[str, KvSpec[Any]] | None = None,
        store: Mapping[str, StoreSpec] | None = None,
        streams: Mapping[str, StreamSpec] | None = None,
        jobs: Mapping[str, JobSpec] | None = None,
        uses: Mapping[str, Use] | None = None,
        event_consumers: Mapping[str, ConsumerSpec] | None = None,
        exports: Iterable[type[BaseModel]] = (),
        docs: str | None = None,
        baseline_uses: bool = True,
        sections: Mapping[str, Any] | None = None,
    ) -> None:
        self.id = id
        self.kind = kind
        self.display_name = display_name
        self.description = description
        self.rpc: dict[str, RpcSpec[Any, Any, Any]] = dict(rpc or {})
        self.events: dict[str, EventSpec[Any]] = dict(events or {})
        self.kv: dict[str, KvSpec[Any]] = dict(kv or {})
        self.store: dict[str, StoreSpec] = dict(store or {})
        self.streams: dict[str, StreamSpec] = dict(streams or {})
        self.jobs: dict[str, JobSpec] = dict(jobs or {})
        self.event_consumers: dict[str, ConsumerSpec] = dict(event_consumers or {})
        self.uses: dict[str, Use] = dict(uses or {})
        if baseline_uses:
            for alias, use in _baseline_uses(id, kind).items():
                self.uses.setdefault(alias, use)
        self._capabilities = dict(capabilities or {})
        self._exports = tuple(exports)
        self._sections = dict(sections or {})
        self._docs = docs
        self._problems: list[Problem] = []
        self._schemas: dict[str, dict[str, Any]] = {}
        self._schema_models: dict[str, type[BaseModel]] = {}
        surfaces = (("rpc", self.rpc), ("events", self.events), ("kv", self.kv))
        for section, specs in surfaces:
            for name, spec in specs.items():
                problem = spec._conflict(id, name, section)
                if problem is not None:
                    self._problems.append(problem)
        model, problems = Manifest.check(self._build(), known_manifests(self.uses))
        problems = self._problems + problems
        if model is None or problems:
            raise ContractError(problems, id)
        #: the parsed, typed manifest every layer reads
        self.model: Manifest = model
        #: the normalized ``trellis.contract.v1`` JSON (the wire form)
        self.manifest: dict[str, Any] = model.dump()
        self.digest: str = contract_digest(self.manifest)
        for _section, specs in surfaces:
            for name, spec in specs.items():
                spec._bind(id, name)

    def __repr__(self) -> str:
        return f"Contract({self.id!r}, kind={self.kind!r}, digest={self.digest!r})"

    # -- dependencies ------------------------------------------------------------------

    def use(
        self,
        *,
        rpc: Sequence[str] = (),
        publish: Sequence[str] = (),
        subscribe: Sequence[str] = (),
        optional: bool = False,
    ) -> Use:
        """Declare a dependency on this contract's surfaces; unknown names raise at once."""
        problems = [
            Problem(f"uses.{self.id}.{section}", f"{self.id} has no {kind} {name!r}")
            for section, kind, names, owned in (
                ("rpc.call", "rpc", rpc, self.rpc),
                ("events.publish", "event", publish, self.events),
                ("events.subscribe", "event", subscribe, self.events),
            )
            for name in names
            if name not in owned
        ]
        if problems:
            raise ContractError(problems)
        return Use(self.id, tuple(rpc), tuple(publish), tuple(subscribe), optional, self)

    # -- manifest building ---------------------------------------------------------------

    def _schema_ref(self, model: type[BaseModel] | type[TrellisError], path: str) -> dict[str, str]:
        pinned = model.__dict__.get("__trellis_schema__")
        if pinned is not None:  # a model pinned to its manifest entry (generated SDKs)
            name, schema = pinned
            model_key: Any = schema  # an error class and its data model may pin one entry
            make: Any = lambda: schema  # noqa: E731
        elif isinstance(model, type) and issubclass(model, TrellisError):
            name = f"{model.type}Data"
            model_key = model
            make = model.wire_schema
        else:
            name = model.__name__
            model_key = model
            make = lambda: model_schema(model)  # noqa: E731
        known = self._schema_models.get(name)
        if known is None:
            try:
                self._schemas[name] = make()
            except SchemaError as exc:
                self._problems.append(Problem(path, str(exc)))
                self._schemas[name] = {}
            self._schema_models[name] = model_key
        elif known is not model_key:
            self._problems.append(
                Problem(path, f"two different models are named {name!r}; rename one")
            )
        return {"schema": name}

    def _with_refs(self, value: Any, path: str) -> Any:
        if isinstance(value, type) and issubclass(value, BaseModel):
            return self._schema_ref(value, path)
        if isinstance(value, Mapping):
            return {k: self._with_refs(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._with_refs(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    def _cap(self, name: str) -> str:
        if name in self._capabilities:
            return global_capability(self.id, name)
        return name  # platform or foreign (``ns::x``) capability; validation checks the rest

    def _caps(self, names: Iterable[str]) -> list[str]:
        return sorted_unique(self._cap(n) for n in names)

    def _build(self) -> dict[str, Any]:
        m: dict[str, Any] = {
            "format": CONTRACT_FORMAT,
            "id": self.id,
            "displayName": self.display_name,
            "description": self.description,
            "kind": self.kind,
        }
        if self._docs:
            m["docs"] = {"markdown": self._docs}
        if self._capabilities:
            caps: dict[str, Any] = {}
            for local, meta in self._capabilities.items():
                if isinstance(meta, str):
                    meta = Capability(meta, meta)
                entry = {"displayName": meta.display_name, "description": meta.description}
                if meta.consequence:
                    entry["consequence"] = meta.consequence
                if local in PLATFORM_CAPABILITIES or "::" in local:
                    self._problems.append(
                        Problem(f"capabilities.{local}", "declare capabilities by their local name")
                    )
                caps[global_capability(self.id, local)] = entry
            m["capabilities"] = caps
        self._build_uses(m)
        self._build_surfaces(m)
        self._build_resources(m)
        for key, value in self._sections.items():
            if key in m:
                self._problems.append(Problem(key, "this section is built from the arguments"))
            m[key] = self._with_refs(value, key)
        if self._exports:
            m["exports"] = {
                "schemas": [self._schema_ref(model, "exports")["schema"] for model in self._exports]
            }
        if self._schemas:
            m["schemas"] = dict(self._schemas)
        return m

    def _build_uses(self, m: dict[str, Any]) -> None:
        required = {a: u.manifest() for a, u in self.uses.items() if not u.optional}
        optional = {a: u.manifest() for a, u in self.uses.items() if u.optional}
        if required or optional:
            m["uses"] = _given(required=required or None, optional=optional or None)

    def _build_surfaces(self, m: dict[str, Any]) -> None:
        errors: dict[str, Any] = {}
        if self.rpc:
            m["rpc"] = {}
            for name, spec in self.rpc.items():
                path = f"rpc.{name}"
                m["rpc"][name] = _given(
                    version=spec.version,
                    subject=f"rpc.{spec.version}.{name}",
                    input=self._schema_ref(spec.input, f"{path}.input"),
                    output=self._schema_ref(spec.output, f"{path}.output"),
                    transfer={"direction": spec.transfer} if spec.transfer else None,
                    capabilities=None if spec.call is None else {"call": self._caps(spec.call)},
                    errors=[{"type": err.type} for err in spec.errors] or None,
                    docs={"markdown": spec.docs} if spec.docs else None,
                )
                for err in spec.errors:
                    if err.type not in BUILTIN_ERRORS:
                        schema = self._schema_ref(err, f"{path}.errors")
                        errors[err.type] = {"type": err.type, "schema": schema}
        if errors:
            m["errors"] = errors
        if self.events:
            m["events"] = {
                name: _given(
                    version=ev.version,
                    subject=event_subject_template(name, ev.version, ev.params or ()),
                    params=None if ev.params is None else list(ev.params),
                    event=self._schema_ref(ev.model, f"events.{name}.event"),
                    capabilities=_given(
                        publish=None if ev.publish is None else self._caps(ev.publish),
                        subscribe=None if ev.subscribe is None else self._caps(ev.subscribe),
                    )
                    or None,
                    docs={"markdown": ev.docs} if ev.docs else None,
                )
                for name, ev in self.events.items()
            }
        if self.jobs:
            m["jobs"] = {
                queue: _given(
                    payload=self._schema_ref(j.payload, f"jobs.{queue}.payload"),
                    result=self._schema_ref(j.result, f"jobs.{queue}.result") if j.result else None,
                    **j.options,
                )
                for queue, j in self.jobs.items()
            }
        if self.event_consumers:
            m["eventConsumers"] = {
                group: _given(
                    uses={alias: list(events) for alias, events in c.uses.items()} or None,
                    self=list(c.self_events) or None,
                    replay=c.replay,
                    ordering="strict",
                    concurrency=c.concurrency,
                    ackWaitMs=c.ack_wait_ms,
                    maxDeliver=c.max_deliver,
                    backoffMs=list(c.backoff_ms) if c.backoff_ms is not None else None,
                )
                for group, c in self.event_consumers.items()
            }

    def _build_resources(self, m: dict[str, Any]) -> None:
        resources: dict[str, Any] = {}
        if self.kv:
            resources["kv"] = {
                alias: {
                    "purpose": k.purpose,
                    "schema": self._schema_ref(k.model, f"resources.kv.{alias}.schema"),
                    "required": k.required,
                    "history": k.history,
                    "ttlMs": k.ttl_ms,
                    **_given(maxValueBytes=k.max_value_bytes),
                }
                for alias, k in self.kv.items()
            }
        if self.store:
            resources["store"] = {
                alias: {
                    "purpose": s.purpose,
                    "required": s.required,
                    "ttlMs": s.ttl_ms,
                    **_given(maxObjectBytes=s.max_object_bytes, maxTotalBytes=s.max_total_bytes),
                }
                for alias, s in self.store.items()
            }
        if self.streams:
            resources["streams"] = {
                alias: {
                    "purpose": s.purpose,
                    "subjects": list(s.subjects),
                    "retention": s.retention,
                    "required": s.required,
                    **_given(maxAgeMs=s.max_age_ms, maxBytes=s.max_bytes),
                }
                for alias, s in self.streams.items()
            }
        if resources:
            m["resources"] = resources


#: Trellis-owned contracts, filled by ``trellis.contracts.builtin`` as it defines them, so
#: every contract's ``uses`` of a builtin is checked against the real surfaces.
BUILTIN_REGISTRY: dict[str, Contract] = {}


def known_manifests(uses: Mapping[str, Use] | None = None) -> dict[str, Manifest]:
    """The manifests ``uses`` are checked against: the Trellis-owned contracts, and the
    contracts that ``uses`` entries made with ``Contract.use`` point at."""
    known = {c.id: c.model for c in BUILTIN_REGISTRY.values()}
    for use in (uses or {}).values():
        if use.target is not None:
            known[use.contract] = use.target.model
    return known


def _baseline_uses(contract_id: str, kind: str) -> dict[str, Use]:
    """The dependencies upstream's authoring helper adds to every contract of a kind."""
    if contract_id.startswith("trellis."):
        return {}
    baseline: dict[str, Use] = {}
    if kind in ("service", "device"):
        baseline["health"] = Use("trellis.health@v1", publish=("Health.Heartbeat",))
    if kind in ("app", "agent", "device", "cli"):
        baseline["auth"] = Use("trellis.auth@v1", rpc=("Auth.Sessions.Me", "Auth.Sessions.Logout"))
    return baseline
