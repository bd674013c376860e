"""Derive a session's NATS publish/subscribe grants from contract manifests (PROTOCOL §7).

The auth callout mints user JWTs from these lists, so this module is the security boundary
between "what a contract declares" and "what NATS lets a connection do". It is pure: parsed
``Manifest`` models and install-time bindings in, a frozen result out, no I/O. The model
guarantees the manifest's shape; every subject taken from it or from a binding is still
validated here, at the security boundary (a model can be built without ``Manifest.parse``'s
checks), so a hostile manifest fails loudly instead of widening a grant (for instance to
``>``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from trellis.auth.keys import KeyFormatError
from trellis.auth.keys import inbox_prefix as session_inbox_prefix
from trellis.contracts.model import Manifest
from trellis.subjects import subject_matches
from trellis.subjects import well_formed as _well_formed

__all__ = [
    "AUTH_VALIDATE_SUBJECT",
    "REASON_INSUFFICIENT_PERMISSIONS",
    "REASON_INVALID_BINDING",
    "REASON_INVALID_MANIFEST",
    "REASON_INVALID_SESSION_KEY",
    "REASON_INVALID_SUBJECT",
    "REASON_MISSING_REQUIRED_CONTRACT",
    "SERVICE_CAPABILITY",
    "SERVICE_RESP_MAX",
    "USER_KINDS",
    "USER_RESP_MAX",
    "DerivedPermissions",
    "EventConsumerBinding",
    "InsufficientPermissionsError",
    "InvalidSubjectError",
    "JobQueueBinding",
    "JobsBinding",
    "KvBinding",
    "MissingRequiredContractError",
    "PermissionDerivationError",
    "ServiceBindings",
    "StreamBinding",
    "derive_permissions",
    "derive_service_permissions",
    "derive_user_permissions",
    "event_subject_pattern",
    "inbox_prefix",
    "required_user_capabilities",
    "subject_matches",
]

SERVICE_CAPABILITY: Final = "service"
AUTH_VALIDATE_SUBJECT: Final = "rpc.v1.Auth.Requests.Validate"
SERVICE_RESP_MAX: Final = 65535
USER_RESP_MAX: Final = 1
USER_KINDS: Final = frozenset({"app", "agent", "cli", "device"})
JOBS_WORK_STREAM: Final = "JOBS_WORK"

REASON_MISSING_REQUIRED_CONTRACT: Final = "missing_required_contract"
REASON_INSUFFICIENT_PERMISSIONS: Final = "insufficient_permissions"
REASON_INVALID_SUBJECT: Final = "invalid_subject"
REASON_INVALID_MANIFEST: Final = "invalid_manifest"
REASON_INVALID_BINDING: Final = "invalid_binding"
REASON_INVALID_SESSION_KEY: Final = "invalid_session_key"


# A literal subject token: no separator, no wildcard, no template brace, no whitespace or
# control characters (``\s`` is Unicode-aware, so NBSP and friends are rejected too).
_LITERAL_PART = r"[^.\s{}*>\x00-\x1f\x7f]+"
# A template token is a whole token ``{/json/pointer}``; the pointer may contain dots.
_TEMPLATE_PART = r"\{/[^{}\s\x00-\x1f\x7f]*\}"
_LITERAL_SUBJECT_RE: Final = re.compile(rf"{_LITERAL_PART}(?:\.{_LITERAL_PART})*")
_TEMPLATE_SUBJECT_RE: Final = re.compile(
    rf"(?:{_LITERAL_PART}|{_TEMPLATE_PART})(?:\.(?:{_LITERAL_PART}|{_TEMPLATE_PART}))*"
)
_TEMPLATE_TOKEN_RE: Final = re.compile(_TEMPLATE_PART)
# Physical names (buckets, streams, consumers, job namespaces/queues) are single tokens.
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_-]+")


# --------------------------------------------------------------------------- errors


class PermissionDerivationError(Exception):
    """Derivation refused; ``reason`` is a stable code the callout can answer with."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        contract_id: str | None = None,
        subject: str | None = None,
        missing_capabilities: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.contract_id = contract_id
        self.subject = subject
        self.missing_capabilities: tuple[str, ...] = tuple(missing_capabilities)


class MissingRequiredContractError(PermissionDerivationError):
    """A ``uses.required`` target is not active: an install error, never a silent skip."""

    def __init__(self, contract_id: str, alias: str) -> None:
        super().__init__(
            REASON_MISSING_REQUIRED_CONTRACT,
            f"required dependency {alias!r} targets {contract_id!r}, which is not active",
            contract_id=contract_id,
        )
        self.alias = alias


class InsufficientPermissionsError(PermissionDerivationError):
    """The user lacks capabilities the contract needs; login must fail, not degrade."""

    def __init__(self, contract_id: str | None, missing: Iterable[str]) -> None:
        missing_sorted = tuple(sorted(set(missing)))
        super().__init__(
            REASON_INSUFFICIENT_PERMISSIONS,
            f"missing capabilities: {', '.join(missing_sorted)}",
            contract_id=contract_id,
            missing_capabilities=missing_sorted,
        )


class InvalidSubjectError(PermissionDerivationError):
    """A manifest or binding subject could widen a grant; refuse it outright."""

    def __init__(self, subject: object, why: str, *, contract_id: str | None = None) -> None:
        super().__init__(
            REASON_INVALID_SUBJECT,
            f"invalid subject {subject!r}: {why}",
            contract_id=contract_id,
            subject=subject if isinstance(subject, str) else None,
        )


# --------------------------------------------------------------------------- bindings


class _Binding(BaseModel):
    """Bindings arrive as JSON (camelCase) from the runtime's binding store."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


class KvBinding(_Binding):
    """A logical KV alias bound to its physical bucket at install."""

    alias: str
    bucket: str


class StreamBinding(_Binding):
    """A ``resources.streams`` alias (our extension) bound to a physical stream."""

    alias: str
    stream: str
    subjects: tuple[str, ...]


class EventConsumerBinding(_Binding):
    """An ``eventConsumers`` group bound to a durable consumer on an event stream."""

    group: str
    stream: str
    consumer: str
    #: the event subjects the consumer was created with (reported in the service's binding)
    filter_subjects: tuple[str, ...] = Field(default=(), alias="filterSubjects")


class JobQueueBinding(_Binding):
    """One job queue's physical subjects and its JOBS_WORK consumer."""

    publish_prefix: str = Field(alias="publishPrefix")
    work_subject: str = Field(alias="workSubject")
    consumer: str


class JobsBinding(_Binding):
    """The service's job namespace and its queues, keyed by the manifest's queue name."""

    namespace: str
    queues: Mapping[str, JobQueueBinding] = Field(default_factory=dict)


class ServiceBindings(_Binding):
    """Everything assigned to a service deployment at install."""

    kv: tuple[KvBinding, ...] = ()
    streams: tuple[StreamBinding, ...] = ()
    event_consumers: tuple[EventConsumerBinding, ...] = Field(default=(), alias="eventConsumers")
    jobs: JobsBinding | None = None


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, slots=True)
class DerivedPermissions:
    """What goes into the user JWT: sorted, de-duplicated allow lists and ``resp.max``.

    ``required_capabilities`` is the union of every gating list the contract touches. For a
    user session all of them were checked against the user; for a service it is what full
    access would need (grants whose gate the service does not hold are simply absent).
    """

    session: Literal["service", "user"]
    contract_id: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    required_capabilities: tuple[str, ...]
    resp_max: int


# --------------------------------------------------------------------------- subjects


def inbox_prefix(session_key: str) -> str:
    """:func:`trellis.auth.inbox_prefix`, refusing a bad key with a derivation error."""
    try:
        return session_inbox_prefix(session_key)
    except KeyFormatError as exc:
        raise PermissionDerivationError(REASON_INVALID_SESSION_KEY, str(exc)) from None


def event_subject_pattern(template: str, *, contract_id: str | None = None) -> str:
    """Turn ``events.v1.X.Y.{/ptr}`` into ``events.v1.X.Y.*`` after strict validation.

    Only whole ``{/pointer}`` tokens may become wildcards; a literal ``*``/``>``, an empty
    token or whitespace anywhere is an error, as is a subject outside ``events.``.
    """
    return _event_pattern(template, contract_id=contract_id)


def _event_pattern(template: object, *, contract_id: str | None) -> str:
    if not isinstance(template, str) or not _TEMPLATE_SUBJECT_RE.fullmatch(template):
        raise InvalidSubjectError(
            template,
            "event subjects are dot-separated literal or {/pointer} tokens",
            contract_id=contract_id,
        )
    pattern = _TEMPLATE_TOKEN_RE.sub("*", template)
    tokens = pattern.split(".")
    if tokens[0] != "events" or len(tokens) < 3 or "*" in tokens[:3]:
        raise InvalidSubjectError(
            template, "event subjects are events.<version>.<Name>...", contract_id=contract_id
        )
    return pattern


def _rpc_subject(subject: object, *, contract_id: str | None) -> str:
    """Validate an rpc subject: literal tokens only, under ``rpc.``."""
    if not isinstance(subject, str) or not _LITERAL_SUBJECT_RE.fullmatch(subject):
        raise InvalidSubjectError(
            subject, "rpc subjects are dot-separated literal tokens", contract_id=contract_id
        )
    tokens = subject.split(".")
    if tokens[0] != "rpc" or len(tokens) < 3:
        raise InvalidSubjectError(
            subject, "rpc subjects are rpc.<version>.<Name>", contract_id=contract_id
        )
    return subject


def _check_name(value: object, what: str) -> str:
    """Physical names become subject tokens; one bad character could widen a grant."""
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise PermissionDerivationError(
            REASON_INVALID_BINDING, f"{what} {value!r} is not a plain name token"
        )
    return value


def _check_stream_subject(subject: str, stream: str) -> str:
    """Stream subjects may use wildcards, but never as the leading token or under ``$``."""
    tokens = subject.split(".")
    valid = (
        all(t == "*" or t == ">" or re.fullmatch(_LITERAL_PART, t) for t in tokens)
        and _well_formed(tokens)
        and tokens[0] not in ("*", ">")
        and not tokens[0].startswith("$")
        and tokens[0] != "_INBOX"
    )
    if not valid:
        raise InvalidSubjectError(subject, f"not an acceptable subject for stream {stream!r}")
    return subject


# --------------------------------------------------------------------------- manifest grants


@dataclass(frozen=True, slots=True)
class _Grant:
    """One candidate grant: a subject pattern and the capabilities that gate it."""

    subject: str
    requires: frozenset[str]


@dataclass(slots=True)
class _Collected:
    publish: list[_Grant]
    subscribe: list[_Grant]


def _collect_uses(manifest: Manifest, active: Mapping[str, Manifest]) -> _Collected:
    """Grants from ``uses``: rpc calls and event publish/subscribe, each with its gate.

    A required target that is not active is an error; an optional one grants nothing.
    """
    collected = _Collected(publish=[], subscribe=[])
    for alias, use, required in manifest.dependencies():
        target = active.get(use.contract)
        if target is None:
            if required:
                raise MissingRequiredContractError(use.contract, alias)
            continue
        for name in use.rpc.call:
            method = target.rpc.get(name)
            if method is not None:
                subject = _rpc_subject(method.subject, contract_id=target.id)
                collected.publish.append(_Grant(subject, frozenset(method.capabilities.call)))
        for action, sink in (("publish", collected.publish), ("subscribe", collected.subscribe)):
            for name in getattr(use.events, action):
                event = target.events.get(name)
                if event is not None:
                    pattern = _event_pattern(event.subject, contract_id=target.id)
                    sink.append(_Grant(pattern, frozenset(getattr(event.capabilities, action))))
    return collected


def _own_events(manifest: Manifest) -> list[_Grant]:
    """The contract's own events, publish form, gated by their ``publish`` lists."""
    return [
        _Grant(
            _event_pattern(event.subject, contract_id=manifest.id),
            frozenset(event.capabilities.publish),
        )
        for event in manifest.events.values()
    ]


def _own_rpc_subjects(manifest: Manifest) -> list[str]:
    return [_rpc_subject(m.subject, contract_id=manifest.id) for m in manifest.rpc.values()]


# --------------------------------------------------------------------------- resource grants


def _kv_grants(binding: KvBinding) -> list[str]:
    """JetStream API surface nats-py's KV client needs for one bucket, and nothing else."""
    b = _check_name(binding.bucket, "kv bucket")
    s = f"KV_{b}"
    return [
        "$JS.API.INFO",
        f"$KV.{b}.>",
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
        # Ordered (watch) consumers use flow control; its replies go here.
        f"$JS.FC.{s}.>",
    ]


def _stream_grants(binding: StreamBinding) -> list[str]:
    s = _check_name(binding.stream, "stream")
    if not binding.subjects:
        raise PermissionDerivationError(
            REASON_INVALID_BINDING, f"stream binding {binding.alias!r} has no subjects"
        )
    grants = [_check_stream_subject(subj, s) for subj in binding.subjects]
    grants += [
        f"$JS.API.STREAM.INFO.{s}",
        f"$JS.API.STREAM.MSG.GET.{s}",
        f"$JS.API.CONSUMER.CREATE.{s}",
        f"$JS.API.CONSUMER.CREATE.{s}.>",
        f"$JS.API.CONSUMER.INFO.{s}.>",
        f"$JS.API.CONSUMER.MSG.NEXT.{s}.>",
        f"$JS.ACK.{s}.>",
    ]
    return grants


def _event_consumer_grants(binding: EventConsumerBinding) -> list[str]:
    """Exact subjects for one durable consumer: it cannot touch any other consumer."""
    s = _check_name(binding.stream, "event stream")
    c = _check_name(binding.consumer, "event consumer")
    return [
        f"$JS.API.CONSUMER.INFO.{s}.{c}",
        f"$JS.API.CONSUMER.MSG.NEXT.{s}.{c}",
        f"$JS.ACK.{s}.{c}.>",
    ]


def _jobs_grants(binding: JobsBinding) -> tuple[list[str], list[str]]:
    """Own job namespace only; queue subjects must sit under it or the binding is bogus."""
    ns = _check_name(binding.namespace, "jobs namespace")
    publish = [f"trellis.jobs.{ns}.>", f"trellis.work.{ns}.>", f"trellis.jobs.workers.{ns}.>"]
    subscribe: list[str] = []
    for queue_name, queue in binding.queues.items():
        _check_name(queue_name, "job queue")
        consumer = _check_name(queue.consumer, "job consumer")
        prefix_tokens = queue.publish_prefix.split(".")
        work_tokens = queue.work_subject.split(".")
        if (
            len(prefix_tokens) != 4
            or prefix_tokens[:3] != ["trellis", "jobs", ns]
            or not _NAME_RE.fullmatch(prefix_tokens[3])
            or work_tokens != ["trellis", "work", ns, prefix_tokens[3]]
        ):
            raise PermissionDerivationError(
                REASON_INVALID_BINDING,
                f"job queue {queue_name!r} subjects are outside namespace {ns!r}",
            )
        publish += [
            f"$JS.API.CONSUMER.INFO.{JOBS_WORK_STREAM}.{consumer}",
            f"$JS.API.CONSUMER.MSG.NEXT.{JOBS_WORK_STREAM}.{consumer}",
            f"$JS.ACK.{JOBS_WORK_STREAM}.{consumer}.>",
        ]
        # Workers watch for cancellation of the jobs they run.
        subscribe.append(f"{queue.publish_prefix}.*.cancelled")
    return publish, subscribe


def _binding_grants(manifest: Manifest, bindings: ServiceBindings) -> tuple[list[str], list[str]]:
    """Resource grants; a binding for something the manifest never declared is refused."""

    def undeclared(what: str, name: str) -> PermissionDerivationError:
        return PermissionDerivationError(
            REASON_INVALID_BINDING,
            f"{what} {name!r} is bound but not declared by {manifest.id}",
            contract_id=manifest.id,
        )

    publish: list[str] = []
    subscribe: list[str] = []
    for kv in bindings.kv:
        if kv.alias not in manifest.resources.kv:
            raise undeclared("kv resource", kv.alias)
        publish += _kv_grants(kv)
    for stream in bindings.streams:
        if stream.alias not in manifest.resources.streams:
            raise undeclared("stream resource", stream.alias)
        publish += _stream_grants(stream)
    for consumer in bindings.event_consumers:
        if consumer.group not in manifest.event_consumers:
            raise undeclared("event consumer group", consumer.group)
        publish += _event_consumer_grants(consumer)
    if bindings.jobs is not None:
        for queue_name in bindings.jobs.queues:
            if queue_name not in manifest.jobs:
                raise undeclared("job queue", queue_name)
        job_pub, job_sub = _jobs_grants(bindings.jobs)
        publish += job_pub
        subscribe += job_sub
    return publish, subscribe


# --------------------------------------------------------------------------- derivation


def _capability_set(capabilities: Iterable[str]) -> frozenset[str]:
    """A bare string would silently become a set of its characters; refuse it."""
    if isinstance(capabilities, str):
        raise TypeError("capabilities must be an iterable of capability keys, not a string")
    return frozenset(capabilities)


def _sorted_unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(items)))


def derive_service_permissions(
    manifest: Manifest,
    active: Mapping[str, Manifest],
    *,
    capabilities: Iterable[str],
    session_key: str,
    bindings: ServiceBindings | None = None,
) -> DerivedPermissions:
    """Grants for a service session holding ``service`` plus ``capabilities``.

    Uses whose gate the service does not hold are left out rather than refused: a service
    may degrade, and the receiver re-checks capabilities on every request anyway.
    """
    inbox = inbox_prefix(session_key)
    held = _capability_set(capabilities) | {SERVICE_CAPABILITY}
    uses = _collect_uses(manifest, active)

    publish = [AUTH_VALIDATE_SUBJECT]
    publish += [g.subject for g in _own_events(manifest)]
    publish += [g.subject for g in uses.publish if g.requires <= held]
    subscribe = [f"{inbox}.>", *_own_rpc_subjects(manifest)]
    subscribe += [g.subject for g in uses.subscribe if g.requires <= held]

    bind_pub, bind_sub = _binding_grants(manifest, bindings or ServiceBindings())
    publish += bind_pub
    subscribe += bind_sub

    required = set().union(*(g.requires for g in (*uses.publish, *uses.subscribe)))
    return DerivedPermissions(
        session="service",
        contract_id=manifest.id,
        publish=_sorted_unique(publish),
        subscribe=_sorted_unique(subscribe),
        required_capabilities=_sorted_unique(required),
        resp_max=SERVICE_RESP_MAX,
    )


def _user_grants(
    manifest: Manifest, active: Mapping[str, Manifest]
) -> tuple[list[_Grant], list[_Grant]]:
    if manifest.kind not in USER_KINDS:
        raise PermissionDerivationError(
            REASON_INVALID_MANIFEST,
            f"kind {manifest.kind!r} is not a user-session kind",
            contract_id=manifest.id,
        )
    uses = _collect_uses(manifest, active)
    return [*_own_events(manifest), *uses.publish], uses.subscribe


def required_user_capabilities(
    manifest: Manifest, active: Mapping[str, Manifest]
) -> tuple[str, ...]:
    """Every capability a user needs to sign in with this contract (for consent screens)."""
    publish, subscribe = _user_grants(manifest, active)
    return _sorted_unique(c for g in (*publish, *subscribe) for c in g.requires)


def derive_user_permissions(
    manifest: Manifest,
    active: Mapping[str, Manifest],
    *,
    capabilities: Iterable[str],
    session_key: str,
    rpc_checked_by_handler: bool = False,
) -> DerivedPermissions:
    """Grants for an app/agent/cli/device session.

    By default all-or-nothing on capabilities (upstream's login rule): a user either holds
    everything the contract needs or the login fails.  With ``rpc_checked_by_handler``
    (what our runtime uses) the used RPC subjects are granted as the contract declares them
    and each call's capabilities are checked by the handler against live grants, so a grant
    or revocation changes the next call without a reconnect; event publish/subscribe, which
    no handler sees, stay gated here by the capabilities held at connect time.
    """
    inbox = inbox_prefix(session_key)
    publish, subscribe = _user_grants(manifest, active)
    required = frozenset(c for g in (*publish, *subscribe) for c in g.requires)
    held = _capability_set(capabilities)
    if rpc_checked_by_handler:
        publish = [g for g in publish if g.subject.startswith("rpc.") or g.requires <= held]
        subscribe = [g for g in subscribe if g.requires <= held]
    else:
        missing = required - held
        if missing:
            raise InsufficientPermissionsError(manifest.id, missing)
    return DerivedPermissions(
        session="user",
        contract_id=manifest.id,
        publish=_sorted_unique(g.subject for g in publish),
        subscribe=_sorted_unique([f"{inbox}.>", *(g.subject for g in subscribe)]),
        required_capabilities=_sorted_unique(required),
        resp_max=USER_RESP_MAX,
    )


def derive_permissions(
    manifest: Manifest,
    active: Mapping[str, Manifest],
    *,
    capabilities: Iterable[str],
    session_key: str,
    bindings: ServiceBindings | None = None,
) -> DerivedPermissions:
    """Dispatch on the manifest's ``kind``: ``service`` or one of the user kinds."""
    if manifest.kind == "service":
        return derive_service_permissions(
            manifest, active, capabilities=capabilities, session_key=session_key, bindings=bindings
        )
    if bindings is not None:
        raise PermissionDerivationError(
            REASON_INVALID_BINDING,
            "resource bindings belong to service sessions only",
            contract_id=manifest.id,
        )
    return derive_user_permissions(
        manifest, active, capabilities=capabilities, session_key=session_key
    )
