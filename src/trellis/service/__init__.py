"""Writing services: RPC handlers, events, KV handles (see ``core.py``)."""

from trellis.service.core import ServiceConnectError, TrellisService, connect_service
from trellis.service.events import EventMessage, SubscriptionRefused
from trellis.service.kv import KvEntry, KvHandle
from trellis.service.rpc import RequestContext

__all__ = [
    "EventMessage",
    "KvEntry",
    "KvHandle",
    "RequestContext",
    "ServiceConnectError",
    "SubscriptionRefused",
    "TrellisService",
    "connect_service",
]
