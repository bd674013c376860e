"""Resource bindings as services receive them: ``binding.resources`` of ``POST
/bootstrap/service`` and of ``Trellis.Bindings.Get``.

The shape is upstream's (``ContractResourceBindings``): records keyed by logical alias, each
with the physical name and the settings it was provisioned with, so an upstream service
bootstraps against our runtime unchanged and ours against theirs.  Our stream resources
(PROTOCOL §3) travel under ``streams``, a key upstream's parser does not know and drops.
Readers ignore keys they do not know, so a newer runtime can add some.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "KV_HEADER_ROOM",
    "ContractResourceBindings",
    "EventConsumerResourceBinding",
    "KvResourceBinding",
    "StreamResourceBinding",
]


#: NATS counts a message's headers against a bucket's maximum value size, and conditional
#: writes (``create``, ``update``) carry one of about 60 bytes: a bucket is provisioned with
#: this much room above the declared ``maxValueBytes``, which the KV handle enforces on the
#: value itself
KV_HEADER_ROOM = 256


class _Binding(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class KvResourceBinding(_Binding):
    """A ``resources.kv`` alias: its bucket and the settings it was created with."""

    bucket: str
    history: int = 1
    ttl_ms: int = Field(default=0, alias="ttlMs")
    max_value_bytes: int | None = Field(default=None, alias="maxValueBytes")


class EventConsumerResourceBinding(_Binding):
    """An ``eventConsumers`` group: the durable consumer on the event stream and its settings."""

    stream: str
    consumer_name: str = Field(alias="consumerName")
    filter_subjects: list[str] = Field(default_factory=list, alias="filterSubjects")
    replay: Literal["new", "all"] = "new"
    ordering: Literal["strict"] = "strict"
    concurrency: int = 1
    ack_wait_ms: int = Field(alias="ackWaitMs")
    max_deliver: int = Field(alias="maxDeliver")
    backoff_ms: list[int] = Field(default_factory=list, alias="backoffMs")


class StreamResourceBinding(_Binding):
    """Our ``resources.streams`` extension: the physical stream and its physical subjects."""

    stream: str
    subjects: list[str]


class ContractResourceBindings(_Binding):
    """What a service deployment's logical resources are bound to."""

    kv: dict[str, KvResourceBinding] = Field(default_factory=dict)
    event_consumers: dict[str, EventConsumerResourceBinding] = Field(
        default_factory=dict, alias="eventConsumers"
    )
    streams: dict[str, StreamResourceBinding] = Field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        """The JSON form (camelCase, absent optionals left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
