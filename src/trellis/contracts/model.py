"""The typed ``trellis.contract.v1`` manifest: one pydantic model per surface.

A manifest is parsed and validated once (``Manifest.parse``, every problem reported with its
path) and every layer reads this model instead of JSON dicts.  The JSON stays the wire form
and the digest input (``manifest.py``); ``Manifest.dump()`` gives the normalized JSON back.

Fields are snake_case with the JSON (camelCase) names as aliases.  Where the runtime applies
a default to an omitted setting (PROTOCOL §3) the field carries that default, so readers
never handle "absent"; an unwritten default stays unwritten in ``dump()``, which keeps the
digest unchanged.  ``Manifest.model_validate`` checks the shape only; ``parse`` adds the
semantic checks of ``validate.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic.alias_generators import to_camel

from trellis.contracts.manifest import SURFACE_SECTIONS, capability_namespace, contract_digest

if TYPE_CHECKING:
    from trellis.contracts.validate import Problem

__all__ = [
    "SURFACE_SECTIONS",
    "CapabilityDecl",
    "Dependency",
    "Docs",
    "ErrorDecl",
    "ErrorRef",
    "Event",
    "EventConsumer",
    "Feed",
    "Job",
    "KvResource",
    "Manifest",
    "Operation",
    "Resources",
    "Rpc",
    "SchemaRef",
    "StateStore",
    "StoreResource",
    "StreamResource",
    "Surface",
    "Uses",
]

NonEmpty = Annotated[StrictStr, Field(min_length=1)]
Names = list[NonEmpty]
SomeNames = Annotated[Names, Field(min_length=1)]
PosInt = Annotated[StrictInt, Field(ge=1)]
NonNegInt = Annotated[StrictInt, Field(ge=0)]


class _Model(BaseModel):
    """Strict JSON types, camelCase aliases, unknown keys dropped (as normalization does)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore", alias_generator=to_camel)


class Docs(_Model):
    summary: StrictStr | None = None
    markdown: StrictStr


class SchemaRef(_Model):
    """A reference to an entry of the manifest's ``schemas`` by name."""

    name: NonEmpty = Field(alias="schema")


class CapabilityDecl(_Model):
    display_name: NonEmpty
    description: NonEmpty
    consequence: StrictStr | None = None


# --- uses ----------------------------------------------------------------------------------


class Calls(_Model):
    """Names by action: which surfaces a ``uses`` entry calls, or which capabilities an rpc
    needs (``call``); the same for events (``publish``/``subscribe``) and feeds."""

    call: Names = []


class PubSub(_Model):
    publish: Names = []
    subscribe: Names = []


class Subscribes(_Model):
    subscribe: Names = []


class Dependency(_Model):
    """One ``uses`` entry: the surfaces of another contract this one needs."""

    contract: NonEmpty
    rpc: Calls = Calls()
    operations: Calls = Calls()
    events: PubSub = PubSub()
    feeds: Subscribes = Subscribes()


class Uses(_Model):
    model_config = ConfigDict(extra="forbid")

    required: dict[NonEmpty, Dependency] = {}
    optional: dict[NonEmpty, Dependency] = {}


# --- surfaces ------------------------------------------------------------------------------


class Surface(_Model):
    """What every caller-facing surface has: a version and the subject it owns."""

    #: the fields holding schema references (signals aside), in report order
    SCHEMA_FIELDS: ClassVar[tuple[str, ...]] = ()

    version: NonEmpty
    subject: NonEmpty
    docs: Docs | None = None

    def schema_fields(self) -> Iterator[tuple[str, SchemaRef | None]]:
        """``(field, reference)`` for each of ``SCHEMA_FIELDS``; an unset optional is None."""
        for field in self.SCHEMA_FIELDS:
            yield field, getattr(self, field)


class ErrorRef(_Model):
    type: NonEmpty


class RpcTransfer(_Model):
    direction: StrictStr | None = None


class Rpc(Surface):
    SCHEMA_FIELDS = ("input", "output")

    input: SchemaRef
    output: SchemaRef
    transfer: RpcTransfer | None = None
    capabilities: Calls = Calls()
    errors: list[ErrorRef] = []


class OperationCapabilities(_Model):
    call: Names = []
    observe: Names = []
    cancel: Names = []
    control: Names = []


class Signal(_Model):
    input: SchemaRef
    docs: Docs | None = None


class OperationTransfer(_Model):
    direction: StrictStr | None = None
    store: StrictStr | None = None
    key: StrictStr | None = None
    content_type: StrictStr | None = None
    #: a JSON pointer into the input, as ``key`` and ``content_type``
    metadata: StrictStr | None = None
    expires_in_ms: NonNegInt | None = None
    max_bytes: PosInt | None = None


class Operation(Surface):
    SCHEMA_FIELDS = ("input", "progress", "output")

    input: SchemaRef
    progress: SchemaRef | None = None
    output: SchemaRef
    transfer: OperationTransfer | None = None
    capabilities: OperationCapabilities = OperationCapabilities()
    signals: dict[NonEmpty, Signal] = {}
    cancel: StrictBool = False


class Event(Surface):
    SCHEMA_FIELDS = ("event",)

    params: list[StrictStr] = []
    event: SchemaRef
    capabilities: PubSub = PubSub()


class Feed(Surface):
    SCHEMA_FIELDS = ("input", "event")

    input: SchemaRef
    event: SchemaRef
    capabilities: Subscribes = Subscribes()


class ErrorDecl(_Model):
    type: NonEmpty
    schema_ref: SchemaRef | None = Field(default=None, alias="schema")


# --- jobs, consumers, state, resources -------------------------------------------------------


class Job(_Model):
    """A job queue; omitted settings take the runtime defaults (PROTOCOL §3)."""

    payload: SchemaRef
    result: SchemaRef | None = None
    max_deliver: PosInt = 5
    backoff_ms: list[NonNegInt] = [5000, 30000, 120000, 600000, 1800000]
    ack_wait_ms: PosInt = 300000
    default_deadline_ms: PosInt | None = None
    progress: StrictBool = True
    logs: StrictBool = True
    dlq: StrictBool = True
    concurrency: PosInt = 1
    docs: Docs | None = None


class EventConsumer(_Model):
    """A durable consumer group over used (``uses``) and own (``self``) events."""

    uses: dict[NonEmpty, SomeNames] = {}
    self_events: SomeNames = Field(default=[], alias="self")
    replay: Literal["new", "all"] = "new"
    ordering: Literal["strict"] = "strict"
    concurrency: PosInt = 1
    ack_wait_ms: PosInt | None = None
    max_deliver: PosInt | None = None
    backoff_ms: list[NonNegInt] | None = None
    docs: Docs | None = None


class StateStore(_Model):
    kind: Literal["value", "map"]
    schema_ref: SchemaRef = Field(alias="schema")
    state_version: StrictStr | None = None
    accepted_versions: dict[NonEmpty, SchemaRef] = {}
    docs: Docs | None = None


class KvResource(_Model):
    purpose: NonEmpty
    schema_ref: SchemaRef = Field(alias="schema")
    required: StrictBool = True
    history: PosInt = 1
    ttl_ms: NonNegInt = 0
    max_value_bytes: PosInt | None = None
    docs: Docs | None = None


class StoreResource(_Model):
    purpose: NonEmpty
    required: StrictBool = True
    ttl_ms: NonNegInt = 0
    max_object_bytes: PosInt | None = None
    max_total_bytes: PosInt | None = None
    docs: Docs | None = None


class StreamResource(_Model):
    """Our ``resources.streams`` extension (PROTOCOL §3)."""

    purpose: NonEmpty
    subjects: SomeNames
    retention: Literal["limits", "workqueue", "interest"] = "limits"
    required: StrictBool = True
    max_age_ms: NonNegInt | None = None
    max_bytes: PosInt | None = None
    docs: Docs | None = None


class Resources(_Model):
    kv: dict[NonEmpty, KvResource] = {}
    store: dict[NonEmpty, StoreResource] = {}
    streams: dict[NonEmpty, StreamResource] = {}


class Exports(_Model):
    schemas: Names = []


# --- the manifest ----------------------------------------------------------------------------


class Manifest(_Model):
    """A ``trellis.contract.v1`` manifest, typed. Build it with ``Manifest.parse``."""

    format: Literal["trellis.contract.v1"]
    id: NonEmpty
    display_name: NonEmpty
    description: NonEmpty
    #: upstream kinds plus ``cli`` from the seed document
    kind: Literal["service", "app", "device", "agent", "cli"]
    docs: Docs | None = None
    capabilities: dict[NonEmpty, CapabilityDecl] = {}
    schemas: dict[NonEmpty, dict[str, Any] | StrictBool] = {}
    exports: Exports = Exports()
    uses: Uses = Uses()
    state: dict[NonEmpty, StateStore] = {}
    rpc: dict[NonEmpty, Rpc] = {}
    operations: dict[NonEmpty, Operation] = {}
    events: dict[NonEmpty, Event] = {}
    feeds: dict[NonEmpty, Feed] = {}
    errors: dict[NonEmpty, ErrorDecl] = {}
    jobs: dict[NonEmpty, Job] = {}
    event_consumers: dict[NonEmpty, EventConsumer] = {}
    resources: Resources = Resources()

    @classmethod
    def parse(cls, data: Any, known: Mapping[str, Manifest] | None = None) -> Manifest:
        """Validate JSON ``data`` and return it normalized and typed.

        Raises ``ContractError`` listing every problem with its path.  ``known`` maps
        contract ids to manifests, against which ``uses`` are checked.
        """
        from trellis.contracts.validate import ContractError

        model, problems = cls.check(data, known)
        if model is None or problems:
            cid = data.get("id") if isinstance(data, Mapping) else None
            raise ContractError(problems, cid if isinstance(cid, str) else None)
        return model

    @classmethod
    def check(
        cls, data: Any, known: Mapping[str, Manifest] | None = None
    ) -> tuple[Manifest | None, list[Problem]]:
        """The parsed manifest (None if its shape is broken) and every problem found."""
        from trellis.contracts.validate import Problem, check

        model, problems = check(data, known or {})
        if model is not None and not problems:
            try:  # a manifest without a digest could never be installed or referenced
                contract_digest(model.dump())
            except ValueError as exc:
                problems.append(Problem("", f"the contract has no canonical JSON: {exc}"))
        return model, problems

    def dump(self) -> dict[str, Any]:
        """The normalized JSON (what ``normalize_manifest`` gives for the parsed input)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    @property
    def namespace(self) -> str:
        """The capability namespace: the id without its ``@vN``."""
        return capability_namespace(self.id)

    def surfaces(self) -> Iterator[tuple[str, str, Rpc | Operation | Event | Feed]]:
        """Every caller-facing surface as ``(section, name, surface)``."""
        sections: tuple[Mapping[str, Rpc | Operation | Event | Feed], ...] = (
            self.rpc,
            self.operations,
            self.events,
            self.feeds,
        )
        for section, surfaces in zip(SURFACE_SECTIONS, sections, strict=True):
            for name, surface in surfaces.items():
                yield section, name, surface

    def dependencies(self) -> Iterator[tuple[str, Dependency, bool]]:
        """Each ``uses`` alias, its entry and whether it is required (required wins)."""
        for alias, use in self.uses.required.items():
            yield alias, use, True
        for alias, use in self.uses.optional.items():
            if alias not in self.uses.required:
                yield alias, use, False

    def error_schema(self, error_type: str) -> SchemaRef | None:
        """The data schema of the first declaration of ``error_type`` (upstream's rule)."""
        decl = next((e for e in self.errors.values() if e.type == error_type), None)
        return decl.schema_ref if decl else None

    def schema_refs(self) -> Iterator[tuple[str, SchemaRef]]:
        """Every schema reference in the manifest, with its path.

        Error declarations are visited by their own path; ``reachable_schemas`` follows them
        only through an rpc that can return them.
        """
        for name, store in self.state.items():
            yield f"state.{name}.schema", store.schema_ref
            for ver, ref in store.accepted_versions.items():
                yield f"state.{name}.acceptedVersions.{ver}", ref
        for section, name, surface in self.surfaces():
            for field, maybe in surface.schema_fields():
                if maybe is not None:
                    yield f"{section}.{name}.{field}", maybe
            if isinstance(surface, Operation):
                for signal_name, signal in surface.signals.items():
                    yield f"{section}.{name}.signals.{signal_name}.input", signal.input
        for name, decl in self.errors.items():
            if decl.schema_ref is not None:
                yield f"errors.{name}.schema", decl.schema_ref
        for queue, job in self.jobs.items():
            yield f"jobs.{queue}.payload", job.payload
            if job.result is not None:
                yield f"jobs.{queue}.result", job.result
        for alias, kv in self.resources.kv.items():
            yield f"resources.kv.{alias}.schema", kv.schema_ref

    def reachable_schemas(self, *, state: bool = True) -> set[str]:
        """Schema names the contract depends on at run time (the digest keeps only these)."""
        names = {
            ref.name
            for path, ref in self.schema_refs()
            if not path.startswith("errors.") and (state or not path.startswith("state."))
        }
        for method in self.rpc.values():
            for error in method.errors:
                ref = self.error_schema(error.type)
                if ref is not None:
                    names.add(ref.name)
        return names
