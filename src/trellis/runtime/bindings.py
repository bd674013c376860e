"""The binding a service deployment is told about (``POST /bootstrap/service``,
``Trellis.Bindings.Get``), built from what install stored and the manifest it provisioned.

Install keeps the physical names per alias (``ServiceBindings``, also the permission
derivation's input); the settings each resource was provisioned with come from the
manifest, through :func:`consumer_settings` for event consumers so that provisioning and
the binding can never disagree.
"""

from __future__ import annotations

from typing import Any

from trellis.bindings import (
    ContractResourceBindings,
    EventConsumerResourceBinding,
    KvResourceBinding,
    StreamResourceBinding,
)
from trellis.contracts.model import EventConsumer, Manifest
from trellis.runtime.permissions import ServiceBindings

__all__ = ["ConsumerSettings", "consumer_settings", "contract_resource_bindings", "service_binding"]

#: acknowledgement deadline of an event delivery when the contract sets none
DEFAULT_ACK_WAIT_MS = 30_000
#: deliveries of one event before it is given up, when the contract sets none: upstream's
#: runtime default (one delivery plus its five redelivery steps), so a binding always states
#: a finite count as upstream's peers expect
DEFAULT_MAX_DELIVER = 6

ConsumerSettings = dict[str, Any]


def consumer_settings(spec: EventConsumer) -> ConsumerSettings:
    """The delivery settings an event consumer group is provisioned with (binding field
    names).  ``backoffMs`` is empty unless the contract sets it: redelivery delays after a
    failed handler are then the service's own (see ``trellis.events``)."""
    return {
        "replay": spec.replay,
        "ordering": spec.ordering,
        "concurrency": spec.concurrency,
        "ackWaitMs": spec.ack_wait_ms or DEFAULT_ACK_WAIT_MS,
        "maxDeliver": spec.max_deliver or DEFAULT_MAX_DELIVER,
        "backoffMs": list(spec.backoff_ms or ()),
    }


def contract_resource_bindings(
    manifest: Manifest, bindings: ServiceBindings
) -> ContractResourceBindings:
    """Upstream's ``ContractResourceBindings`` (plus our ``streams``) for a deployment."""
    kv = {
        b.alias: KvResourceBinding(
            bucket=b.bucket,
            history=spec.history,
            ttl_ms=spec.ttl_ms,
            max_value_bytes=spec.max_value_bytes,
        )
        for b in bindings.kv
        if (spec := manifest.resources.kv.get(b.alias)) is not None
    }
    consumers = {
        b.group: EventConsumerResourceBinding.model_validate(
            {
                "stream": b.stream,
                "consumerName": b.consumer,
                "filterSubjects": list(b.filter_subjects),
                **consumer_settings(group),
            }
        )
        for b in bindings.event_consumers
        if (group := manifest.event_consumers.get(b.group)) is not None
    }
    streams = {
        b.alias: StreamResourceBinding(stream=b.stream, subjects=list(b.subjects))
        for b in bindings.streams
    }
    return ContractResourceBindings(kv=kv, event_consumers=consumers, streams=streams)


def service_binding(
    contract_id: str, digest: str, manifest: Manifest | None, bindings: ServiceBindings | None
) -> dict[str, Any]:
    """``{contractId, digest, resources}``: the ``binding`` object of both endpoints."""
    resources = (
        contract_resource_bindings(manifest, bindings)
        if manifest is not None and bindings is not None
        else ContractResourceBindings()
    )
    return {"contractId": contract_id, "digest": digest, "resources": resources.wire()}
