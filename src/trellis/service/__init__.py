"""Writing services: RPC handlers, events, KV handles (see ``core.py``)."""

from trellis.bootstrap import ConnectError
from trellis.events import EventMessage, SubscriptionRefused
from trellis.service.core import TrellisService, connect_service
from trellis.service.kv import KvEntry, KvHandle
from trellis.service.rpc import RequestContext

__all__ = [
    "ConnectError",
    "EventMessage",
    "KvEntry",
    "KvHandle",
    "RequestContext",
    "SubscriptionRefused",
    "TrellisService",
    "connect_service",
]
