"""Trellis for Python: contract-driven services over NATS.

The public surface is re-exported here; see the README for a tour. Protocol plumbing (proofs,
connect tokens, canonical JSON) stays in its submodule: ``trellis.auth``, ``trellis.canonical``.
"""

from trellis.auth import SessionKey
from trellis.bootstrap import ConnectError
from trellis.client import TrellisClient, connect_client
from trellis.contracts import (
    Capability,
    Contract,
    ContractError,
    Manifest,
    Use,
    consumer,
    contract_digest,
    event,
    job,
    kv,
    rpc,
    store,
    stream,
)
from trellis.loop import run
from trellis.participant import NotInContract, Participant
from trellis.result import (
    AuthError,
    Err,
    KVError,
    Ok,
    RemoteError,
    Result,
    TransportError,
    TrellisError,
    UnexpectedError,
    ValidationFailed,
)
from trellis.service import EventMessage, RequestContext, TrellisService, connect_service
from trellis.service.handlers import HandlerMismatch

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "Capability",
    "ConnectError",
    "Contract",
    "ContractError",
    "Err",
    "EventMessage",
    "HandlerMismatch",
    "KVError",
    "Manifest",
    "NotInContract",
    "Ok",
    "Participant",
    "RemoteError",
    "RequestContext",
    "Result",
    "SessionKey",
    "TransportError",
    "TrellisClient",
    "TrellisError",
    "TrellisService",
    "UnexpectedError",
    "Use",
    "ValidationFailed",
    "connect_client",
    "connect_service",
    "consumer",
    "contract_digest",
    "event",
    "job",
    "kv",
    "rpc",
    "run",
    "store",
    "stream",
]
