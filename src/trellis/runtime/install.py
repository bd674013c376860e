"""Installing, upgrading and retiring services (the seed's model: an operator installs a
contract against the service's public session key).

Install validates the contract against the active catalog, keeps one active digest per
contract id (a new digest of the same id must be compatible), provisions the declared
resources under physical names that stay stable across upgrades, and records the bindings
and the principal of each instance key.

Install is all-or-nothing: every step that changes something records how to undo it, and a
failure part-way undoes what this call did, newest first, leaving what existed before as it
was (a half-done install would keep the contract active and its name owned, with no
deployment record to remove).  Removing a service deletes everything its installs made:
records, event consumers, streams and KV buckets (nothing else would ever find them again:
a new install of the same name provisions new ones).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import BaseModel

from trellis.auth.keys import decode_public_key
from trellis.bindings import KV_HEADER_ROOM
from trellis.contracts import Manifest, contract_digest
from trellis.contracts.builtin import BUILTIN_CONTRACTS
from trellis.contracts.compat import check_compatible
from trellis.contracts.manifest import subject_wildcard
from trellis.contracts.model import EventConsumer, StreamResource
from trellis.ids import now_iso, ulid
from trellis.principals import Principal
from trellis.runtime.bindings import consumer_settings
from trellis.runtime.permissions import (
    EventConsumerBinding,
    KvBinding,
    PermissionDerivationError,
    ServiceBindings,
    StreamBinding,
    derive_service_permissions,
)
from trellis.runtime.state import (
    ActiveContract,
    ContractRecord,
    ControlPlane,
    Deployment,
    Table,
    active_key,
    ensure_bucket,
)
from trellis.subjects import subjects_overlap

__all__ = ["EVENTS_STREAM", "InstallError", "Installer", "check_key", "check_not_reserved"]

log = logging.getLogger("trellis.runtime.install")

EVENTS_STREAM = "trellis"
DEPLOYMENT_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")  # always ``fullmatch``: ``$`` takes "\n"

Kicker = Callable[[str], Awaitable[int]]
M = TypeVar("M", bound=BaseModel)


class InstallError(Exception):
    """An install/upgrade/admin action was refused; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.problems = problems or []


class Installer:
    def __init__(self, cp: ControlPlane, js: JetStreamContext, *, replicas: int = 1) -> None:
        self.cp = cp
        self.js = js
        self.replicas = replicas

    # -- contracts --------------------------------------------------------------------

    async def parse(self, manifest: Mapping[str, Any]) -> tuple[Manifest, str]:
        """Parse and validate a manifest received over the network, against the catalog;
        returns it with its digest.  ``parse``, ``check_activation`` and ``activate`` are
        the steps of ``activate_contract``, for callers (``Users``) that check more between
        them, holding ``cp.lock``."""
        model, problems = Manifest.check(manifest, await self.cp.active_manifests())
        if model is None or problems:
            raise InstallError(
                "invalid_contract",
                f"the contract has {len(problems)} problem(s)",
                [str(p) for p in problems],
            )
        return model, contract_digest(model.dump())

    async def check_activation(self, manifest: Manifest, deployment: str) -> ActiveContract | None:
        """Refuse missing dependencies, subject collisions and incompatible upgrades."""
        cid = manifest.id
        active = await self.cp.active_manifests()
        missing = [
            f"uses.required.{alias} needs {use.contract}, which is not installed"
            for alias, use in manifest.uses.required.items()
            if use.contract not in active
        ]
        if missing:
            raise InstallError("missing_dependency", "a required dependency is missing", missing)
        current = await self.cp.active.get(active_key(cid))
        if current is not None and current.deployment and current.deployment != deployment:
            raise InstallError(
                "contract_owned",
                f"{cid} is already implemented by deployment {current.deployment!r}",
            )
        ours = _owned_subjects(manifest)
        collisions = [
            f"{surface} ({subject}) overlaps {theirs} of {other_id}"
            for other_id, other in active.items()
            if other_id != cid
            for theirs in _owned_subjects(other)
            for subject, surface in ours.items()
            if subjects_overlap(subject, theirs)
        ]
        if collisions:
            raise InstallError(
                "subject_collision", "subjects collide with another contract", collisions
            )
        digest = contract_digest(manifest.dump())
        if current is not None and current.digest != digest and not _runtime_owned(cid, digest):
            old = await self.cp.contracts.get(current.digest)
            if old is not None:
                problems = check_compatible(old.manifest, manifest)
                if problems:
                    raise InstallError(
                        "incompatible",
                        f"the new {cid} is not compatible with the active digest; "
                        "publish a new major version (@vN+1) instead",
                        [str(p) for p in problems],
                    )
        return current

    async def activate(self, manifest: Manifest, digest: str, deployment: str) -> None:
        await self.cp.contracts.put(
            digest, ContractRecord(digest=digest, id=manifest.id, manifest=manifest)
        )
        await self.cp.active.put(
            active_key(manifest.id),
            ActiveContract(id=manifest.id, digest=digest, deployment=deployment),
        )

    async def activate_contract(self, manifest: Mapping[str, Any], owner: str = "") -> str:
        """Make a participant (cli/app/agent) or Trellis-owned contract active; returns digest.

        ``owner`` names who implements it (``trellis`` for the contracts the runtime serves).
        """
        async with self.cp.lock:
            normalized, digest = await self.parse(manifest)
            await self.check_activation(normalized, owner)
            await self.activate(normalized, digest, owner)
            return digest

    # -- services ---------------------------------------------------------------------

    async def install(
        self, manifest: Mapping[str, Any], name: str, public_key: str, *, upgrade: bool = False
    ) -> Deployment:
        _check_name(name)
        check_key(public_key)
        async with self.cp.lock:
            normalized, digest = await self.parse(manifest)
            check_not_reserved(normalized, digest)
            if normalized.kind != "service":
                raise InstallError(
                    "not_a_service", f"{normalized.id} is a {normalized.kind} contract"
                )
            existing = await self.cp.deployments.get(name)
            if existing is not None and not upgrade:
                if existing.contract_digest == digest and public_key in existing.instance_keys:
                    return existing  # installing the same thing twice changes nothing
                raise InstallError("exists", f"deployment {name!r} exists; use upgrade")
            if existing is None and upgrade:
                raise InstallError("not_found", f"no deployment named {name!r}")
            if existing is not None and existing.contract_id != normalized.id:
                raise InstallError(
                    "contract_changed",
                    f"deployment {name!r} implements {existing.contract_id}, not {normalized.id}",
                )
            await self.check_activation(normalized, name)
            await self._check_key_free(public_key, name)
            capabilities = await self._granted_capabilities(normalized)
            keys = list(existing.instance_keys) if existing else []
            if public_key not in keys:
                keys.append(public_key)
            deployment = Deployment(
                capabilities=capabilities,
                name=name,
                contract_id=normalized.id,
                contract_digest=digest,
                instance_keys=keys,
                disabled=existing.disabled if existing else False,
                created_at=existing.created_at if existing else now_iso(),
                updated_at=now_iso(),
            )
            undo = _Undo()
            try:
                bindings = await self._provision(normalized, name, undo)
                if await self.cp.contracts.get(digest) is None:
                    undo.add(f"contract record {digest}", self.cp.contracts.delete, digest)
                await _put_undoably(undo, self.cp.active, active_key(normalized.id), None)
                await self.activate(normalized, digest, name)
                await _put_undoably(undo, self.cp.bindings, name, bindings)
                await _put_undoably(undo, self.cp.deployments, name, deployment)
                for key in deployment.instance_keys:
                    await _put_undoably(undo, self.cp.principals, key, _principal(deployment, key))
            except BaseException as exc:
                await self._roll_back(undo, name, exc)
                if isinstance(exc, InstallError) or not isinstance(exc, Exception):
                    raise
                raise InstallError(
                    "provisioning_failed",
                    f"installing {normalized.id} as {name!r} failed ({exc}); "
                    "everything this install provisioned was rolled back",
                ) from exc
            log.info("installed %s as %s (digest %s)", normalized.id, name, digest)
            return deployment

    async def _roll_back(self, undo: _Undo, name: str, cause: BaseException) -> None:
        """Undo a failed install; what could not be undone is logged and reported."""
        left = await undo.run()
        if not left:
            log.warning("install of %r failed and was rolled back: %r", name, cause)
            return
        log.error("install of %r failed (%r); could not undo: %s", name, cause, "; ".join(left))
        if not isinstance(cause, Exception):
            return  # a cancellation stays one
        raise InstallError(
            "rollback_incomplete",
            f"installing {name!r} failed ({cause}) and {len(left)} step(s) could not be undone",
            left,
        ) from cause

    async def add_instance_key(self, name: str, public_key: str) -> Deployment:
        check_key(public_key)
        async with self.cp.lock:
            deployment = await self._deployment(name)
            await self._check_key_free(public_key, name)
            if public_key not in deployment.instance_keys:
                deployment.instance_keys.append(public_key)
                await self._save(deployment)
            await self._write_principals(deployment)
            return deployment

    async def remove_instance_key(self, name: str, public_key: str, kick: Kicker) -> Deployment:
        async with self.cp.lock:
            deployment = await self._deployment(name)
            if public_key in deployment.instance_keys:
                deployment.instance_keys.remove(public_key)
                await self._save(deployment)
            await self.cp.principals.delete(public_key)
        await kick(public_key)
        return deployment

    async def set_disabled(self, name: str, disabled: bool, kick: Kicker) -> Deployment:
        async with self.cp.lock:
            deployment = await self._deployment(name)
            deployment.disabled = disabled
            await self._save(deployment)
            await self._write_principals(deployment)
        if disabled:
            await _kick_twice(kick, deployment.instance_keys)
        return deployment

    async def remove(self, name: str, kick: Kicker) -> Deployment:
        """Delete the deployment and everything its installs made.  Its keys lose their
        principals and its contract is deactivated first, so nothing can use what is being
        deleted; the deployment record goes last, so a remove that could not delete
        everything says what is left and can simply be run again."""
        async with self.cp.lock:
            deployment = await self._deployment(name)
            active = await self.cp.active_manifests()
            dependants = [
                cid
                for cid, manifest in active.items()
                for use in manifest.uses.required.values()
                if use.contract == deployment.contract_id and cid != deployment.contract_id
            ]
            if dependants:
                raise InstallError(
                    "in_use",
                    f"{deployment.contract_id} is required by {', '.join(sorted(set(dependants)))}",
                )
            for key in deployment.instance_keys:
                await self.cp.principals.delete(key)
            current = await self.cp.active.get(active_key(deployment.contract_id))
            if current is not None and current.deployment == name:
                await self.cp.active.delete(active_key(deployment.contract_id))
            bindings = await self.cp.bindings.get(name) or ServiceBindings()
            remaining = await self._delete_resources(bindings)
            left = _resource_names(remaining)
            if left:  # the deployment stays, to be removed again
                await self.cp.bindings.put(name, remaining)
            else:
                await self.cp.bindings.delete(name)
                await self.cp.deployments.delete(name)
        await _kick_twice(kick, deployment.instance_keys)
        if left:
            raise InstallError(
                "remove_incomplete",
                f"{name!r} no longer runs, but some of its resources could not be deleted; "
                "run remove again",
                left,
            )
        log.info("removed %s (%s)", name, ", ".join(_resource_names(bindings)) or "no resources")
        return deployment

    async def _delete_resources(self, bindings: ServiceBindings) -> ServiceBindings:
        """Delete the consumers, streams and buckets of ``bindings``; returns those that
        are still there (one already gone counts as deleted)."""

        async def gone(what: str, delete: Callable[..., Awaitable[Any]], *args: str) -> bool:
            try:
                await delete(*args)
            except NotFoundError:
                pass
            except Exception as exc:
                log.warning("could not delete %s: %r", what, exc)
                return False
            return True

        js = self.js
        consumers = [
            b
            for b in bindings.event_consumers
            if not await gone(f"consumer {b.consumer}", js.delete_consumer, b.stream, b.consumer)
        ]
        streams = [
            b
            for b in bindings.streams
            if not await gone(f"stream {b.stream}", js.delete_stream, b.stream)
        ]
        kv = [
            b
            for b in bindings.kv
            if not await gone(f"bucket {b.bucket}", js.delete_key_value, b.bucket)
        ]
        return ServiceBindings(
            kv=tuple(kv), streams=tuple(streams), event_consumers=tuple(consumers)
        )

    async def _save(self, deployment: Deployment) -> None:
        deployment.updated_at = now_iso()
        await self.cp.deployments.put(deployment.name, deployment)

    async def _deployment(self, name: str) -> Deployment:
        deployment = await self.cp.deployments.get(name)
        if deployment is None:
            raise InstallError("not_found", f"no deployment named {name!r}")
        return deployment

    async def _check_key_free(self, public_key: str, name: str) -> None:
        """Refuse a key that another deployment (or a user) already holds."""
        principal = await self.cp.principals.get(public_key)
        if principal is not None and (principal.kind, principal.name) != ("service", name):
            owner = principal.name if principal.kind == "service" else f"user:{principal.name}"
            raise InstallError("key_in_use", f"that public key belongs to deployment {owner!r}")

    async def _granted_capabilities(self, manifest: Manifest) -> list[str]:
        """Installing a service accepts what its ``uses`` need — except ``admin``, which an
        operator grants to people, never implicitly to a service."""
        try:
            derived = derive_service_permissions(
                manifest,
                {**await self.cp.active_manifests(), manifest.id: manifest},
                capabilities=("service",),
                session_key="A" * 43,
            )
        except PermissionDerivationError as exc:
            raise InstallError("invalid_contract", str(exc)) from None
        needed = set(derived.required_capabilities) - {"admin"}
        return sorted({"service", *needed})

    async def _write_principals(self, deployment: Deployment) -> None:
        for key in deployment.instance_keys:
            await self.cp.principals.put(key, _principal(deployment, key))

    # -- resources --------------------------------------------------------------------

    async def ensure_events_stream(self) -> None:
        try:
            await self.js.stream_info(EVENTS_STREAM)
        except NotFoundError:
            await self.js.add_stream(
                StreamConfig(
                    name=EVENTS_STREAM,
                    subjects=["events.>"],
                    storage=StorageType.FILE,
                    num_replicas=self.replicas,
                    duplicate_window=120.0,
                )
            )

    async def _provision(self, manifest: Manifest, name: str, undo: _Undo) -> ServiceBindings:
        """Create or update the declared resources; each one created here (a new alias gets
        a new physical name) is deleted again by ``undo``, each stream updated here gets its
        previous configuration back."""
        previous = await self.cp.bindings.get(name) or ServiceBindings()
        js = self.js
        kv_bindings = []
        old_kv = {b.alias: b.bucket for b in previous.kv}
        for alias, kv in manifest.resources.kv.items():
            bucket = old_kv.get(alias) or f"tr_kv_{ulid().lower()}"
            if alias not in old_kv:
                undo.add(f"bucket {bucket}", js.delete_key_value, bucket)
            await ensure_bucket(
                js,
                bucket,
                history=kv.history,
                ttl=kv.ttl_ms / 1000,
                replicas=self.replicas,
                max_value_size=kv.max_value_bytes and kv.max_value_bytes + KV_HEADER_ROOM,
            )
            kv_bindings.append(KvBinding(alias=alias, bucket=bucket))
        stream_bindings = []
        old_streams = {b.alias: b.stream for b in previous.streams}
        for alias, spec in manifest.resources.streams.items():
            stream = old_streams.get(alias) or f"tr_st_{ulid().lower()}"
            subjects = tuple(f"tr.{stream}.{rel}" for rel in spec.subjects)
            await self._ensure_stream(stream, subjects, spec, undo)
            stream_bindings.append(StreamBinding(alias=alias, stream=stream, subjects=subjects))
        consumer_bindings = []
        groups = manifest.event_consumers
        if groups or manifest.events:
            await self.ensure_events_stream()  # shared by every service: never undone
        old_consumers = {b.group: b.consumer for b in previous.event_consumers}
        active = await self.cp.active_manifests()
        active[manifest.id] = manifest
        for group, consumer_spec in groups.items():
            consumer = old_consumers.get(group) or f"tr_cons_{ulid().lower()}"
            filters = _consumer_filters(manifest, consumer_spec, active)
            if group not in old_consumers:
                undo.add(f"consumer {consumer}", js.delete_consumer, EVENTS_STREAM, consumer)
            await self._ensure_consumer(consumer, filters, consumer_spec)
            consumer_bindings.append(
                EventConsumerBinding(
                    group=group,
                    stream=EVENTS_STREAM,
                    consumer=consumer,
                    filter_subjects=tuple(filters),
                )
            )
        return ServiceBindings(
            kv=tuple(kv_bindings),
            streams=tuple(stream_bindings),
            event_consumers=tuple(consumer_bindings),
        )

    async def _ensure_stream(
        self, stream: str, subjects: tuple[str, ...], spec: StreamResource, undo: _Undo
    ) -> None:
        retention = {
            "limits": RetentionPolicy.LIMITS,
            "workqueue": RetentionPolicy.WORK_QUEUE,
            "interest": RetentionPolicy.INTEREST,
        }[spec.retention]
        config = StreamConfig(
            name=stream,
            subjects=list(subjects),
            retention=retention,
            storage=StorageType.FILE,
            num_replicas=self.replicas,
            max_age=spec.max_age_ms / 1000 if spec.max_age_ms else None,
            max_bytes=spec.max_bytes,
        )
        try:
            before = (await self.js.stream_info(stream)).config
        except NotFoundError:
            undo.add(f"stream {stream}", self.js.delete_stream, stream)
            await self.js.add_stream(config)
            return
        undo.add(f"stream {stream}'s previous configuration", self.js.update_stream, before)
        await self.js.update_stream(config)

    async def _ensure_consumer(
        self, consumer: str, filters: list[str], spec: EventConsumer
    ) -> None:
        settings = consumer_settings(spec)  # what the service's binding reports
        config = ConsumerConfig(
            durable_name=consumer,
            name=consumer,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL if spec.replay == "all" else DeliverPolicy.NEW,
            ack_wait=settings["ackWaitMs"] / 1000,
            max_deliver=settings["maxDeliver"],
            backoff=[b / 1000 for b in settings["backoffMs"]] or None,
            filter_subjects=filters if len(filters) > 1 else None,
            filter_subject=filters[0] if len(filters) == 1 else None,
            max_ack_pending=spec.concurrency * 64,
        )
        try:
            await self.js.consumer_info(EVENTS_STREAM, consumer)
        except NotFoundError:
            await self.js.add_consumer(EVENTS_STREAM, config)


class _Undo:
    """What an install changed, as steps that put it back; run newest first."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = []

    def add(self, what: str, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Record the undo *before* the change: a change that fails half-way (a create
        that timed out after the server made it) is undone too."""
        self._steps.append((what, lambda: fn(*args)))

    async def run(self) -> list[str]:
        """Undo every step; returns what could not be undone (one already gone is undone)."""
        left = []
        for what, step in reversed(self._steps):
            try:
                await step()
            except NotFoundError:
                pass
            except Exception as exc:
                log.warning("could not undo %s: %r", what, exc)
                left.append(f"{what}: {exc}")
        self._steps.clear()
        return left


async def _put_undoably(undo: _Undo, table: Table[M], key: str, value: M | None) -> None:
    """Write ``value`` (None: only record the undo) after recording how to restore the
    record now under ``key``."""
    before = await table.get(key)
    if before is None:
        undo.add(f"record {key}", table.delete, key)
    else:
        undo.add(f"record {key}", table.put, key, before)
    if value is not None:
        await table.put(key, value)


def _principal(deployment: Deployment, key: str) -> Principal:
    return Principal(
        session_key=key,
        kind="service",
        name=deployment.name,
        contract_id=deployment.contract_id,
        contract_digest=deployment.contract_digest,
        capabilities=tuple(deployment.capabilities),
        disabled=deployment.disabled,
    )


def _resource_names(bindings: ServiceBindings | None) -> list[str]:
    if bindings is None:
        return []
    return [
        *(f"consumer {b.consumer}" for b in bindings.event_consumers),
        *(f"stream {b.stream}" for b in bindings.streams),
        *(f"bucket {b.bucket}" for b in bindings.kv),
    ]


async def _kick_twice(kick: Kicker, keys: list[str]) -> None:
    """Kick now, and once more shortly after: a connection the callout admitted just before
    the change is recorded only after its answer, and would otherwise escape the first pass."""
    for key in keys:
        await kick(key)

    async def again() -> None:
        await asyncio.sleep(1.0)
        try:
            for key in keys:
                await kick(key)
        except Exception:  # the runtime may be stopping; the callout refuses them anyway
            log.debug("second kick pass failed", exc_info=True)

    task = asyncio.create_task(again())
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


_BACKGROUND: set[asyncio.Task[None]] = set()


def _runtime_owned(contract_id: str, digest: str) -> bool:
    """Exactly the version of a Trellis-owned contract this runtime ships: it replaces the
    active one even when incompatible (the runtime serves only its own version; refusing it
    would keep a runtime from starting on the state an older one left)."""
    builtin = BUILTIN_CONTRACTS.get(contract_id)
    return builtin is not None and builtin.digest == digest


def _owned_subjects(manifest: Manifest) -> dict[str, str]:
    return {
        subject_wildcard(surface.subject): f"{section}.{name}"
        for section, name, surface in manifest.surfaces()
    }


def _consumer_filters(
    manifest: Manifest, group: EventConsumer, active: Mapping[str, Manifest]
) -> list[str]:
    aliases = {alias: use for alias, use, _ in manifest.dependencies()}
    filters = [subject_wildcard(manifest.events[event].subject) for event in group.self_events]
    for alias, events in group.uses.items():
        target = active.get(aliases[alias].contract)
        if target is None:
            continue
        for event in events:
            surface = target.events.get(event)
            if surface is not None:
                filters.append(subject_wildcard(surface.subject))
    if not filters:
        raise InstallError("invalid_contract", "an event consumer group selects no events")
    return sorted(set(filters))


def _check_name(name: str) -> None:
    if not DEPLOYMENT_NAME.fullmatch(name):
        raise InstallError(
            "invalid_name", f"{name!r} is not a deployment name (lowercase letters, digits, '-')"
        )


def check_key(public_key: str) -> None:
    if decode_public_key(public_key) is None:
        raise InstallError("invalid_key", "the public key must be a 43-character base64url key")


def check_not_reserved(manifest: Manifest, digest: str) -> None:
    """Contract ids ``trellis@vN`` and ``trellis.*`` belong to Trellis: only its built-in
    contracts, exactly as this runtime ships them, may be activated under them (a user's
    ``trellis.auth@v2`` would otherwise look like the runtime's own to every client)."""
    name = manifest.id.partition("@")[0]
    if name != "trellis" and not name.startswith("trellis."):
        return
    builtin = BUILTIN_CONTRACTS.get(manifest.id)
    if builtin is None or builtin.digest != digest:
        raise InstallError(
            "reserved_id",
            f"contract id {manifest.id!r} is reserved: ids 'trellis@vN' and 'trellis.*' "
            "belong to Trellis's own contracts; choose another id",
        )
