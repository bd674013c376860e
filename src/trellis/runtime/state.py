"""Control-plane state in JetStream KV (ARCHITECTURE "Decisions": NATS is the only infrastructure).

Every record the runtime needs to answer the callout and the admin RPCs lives in a KV bucket,
so a restarted runtime (or a second replica) finds everything where it left it:

========================  ==========================  =====================================
bucket                    key                         value
========================  ==========================  =====================================
``trellis_contracts``     contract digest             the normalized manifest JSON
``trellis_active``        contract id (``@``→``_``)   which digest is active for that id
``trellis_deployments``   deployment name             contract, instance keys, enabled flag
``trellis_bindings``      deployment name             physical resource names per alias
``trellis_principals``    session key                 who the key is and its capabilities
``trellis_connections``   ``<sessionKey>.<userNkey>`` server and client ids (TTL 2 h)
``trellis_heartbeats``    ``<deployment>.<instance>`` latest heartbeat (TTL 90 s)
========================  ==========================  =====================================
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Generic, TypeVar

from nats.js.api import KeyValueConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field, field_serializer

from trellis.contracts.builtin import Deployment, InstanceHealth
from trellis.contracts.model import Manifest
from trellis.ids import now_iso
from trellis.nats.kv import list_keys
from trellis.principals import PRINCIPALS_BUCKET, Principal
from trellis.runtime.permissions import ServiceBindings

__all__ = [
    "ActiveContract",
    "Connection",
    "ContractRecord",
    "ControlPlane",
    "Deployment",
    "Table",
    "active_key",
]

M = TypeVar("M", bound=BaseModel)

CONNECTION_TTL_SECONDS = 2 * 3600
#: three missed 30 s heartbeats and an instance no longer counts as alive
HEARTBEAT_TTL_SECONDS = 90


def active_key(contract_id: str) -> str:
    """KV keys cannot hold ``@``; ids end in ``@vN`` so ``_vN`` stays unambiguous."""
    return contract_id.replace("@", "_")


class _Record(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class ContractRecord(_Record):
    """A contract by digest; the manifest is stored as its normalized JSON and parsed into
    the typed model when the record is loaded."""

    digest: str
    id: str
    manifest: Manifest
    installed_at: str = Field(alias="installedAt", default_factory=now_iso)

    @field_serializer("manifest")
    def _manifest_json(self, manifest: Manifest) -> dict[str, Any]:
        return manifest.dump()


class ActiveContract(_Record):
    id: str
    digest: str
    #: the deployment implementing it; empty for Trellis-owned and participant contracts
    deployment: str = ""
    activated_at: str = Field(alias="activatedAt", default_factory=now_iso)


class Connection(_Record):
    session_key: str = Field(alias="sessionKey")
    user_nkey: str = Field(alias="userNkey")
    server_id: str = Field(alias="serverId")
    client_id: int = Field(alias="clientId")
    kind: str
    name: str
    connected_at: str = Field(alias="connectedAt", default_factory=now_iso)
    #: the contract digest it was admitted with (records from before it was kept: ``None``)
    contract_digest: str | None = Field(default=None, alias="contractDigest")


class Table(Generic[M]):
    """A KV bucket holding one pydantic model per key."""

    def __init__(self, kv: KeyValue, model: type[M]) -> None:
        self.kv = kv
        self.model = model

    async def get(self, key: str) -> M | None:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return self.model.model_validate_json(entry.value)

    async def put(self, key: str, value: M) -> int:
        return await self.kv.put(key, value.model_dump_json(by_alias=True).encode())

    async def delete(self, key: str) -> None:
        with contextlib.suppress(KeyNotFoundError):
            await self.kv.delete(key)

    async def keys(self, pattern: str = ">") -> list[str]:
        """Keys matching ``pattern`` (NATS wildcards; the server does the filtering)."""
        # not ``KeyValue.keys()``: it can miss every key under load (see trellis.nats.kv)
        return await list_keys(self.kv, pattern)

    async def values(self) -> list[M]:
        return [value for key in await self.keys() if (value := await self.get(key)) is not None]


class ControlPlane:
    """The runtime's tables, created idempotently at start."""

    def __init__(self, js: JetStreamContext, tables: dict[str, Table[Any]]) -> None:
        self.js = js
        self.contracts: Table[ContractRecord] = tables["contracts"]
        self.active: Table[ActiveContract] = tables["active"]
        self.deployments: Table[Deployment] = tables["deployments"]
        self.bindings: Table[ServiceBindings] = tables["bindings"]
        self.principals: Table[Principal] = tables["principals"]
        self.connections: Table[Connection] = tables["connections"]
        self.heartbeats: Table[InstanceHealth] = tables["heartbeats"]
        self.lock = asyncio.Lock()  # serializes installs within one runtime process
        #: parsed manifests by digest: a digest names its content, so an entry never goes
        #: stale, and the callout need not re-parse every active manifest on each connect
        self._manifests: dict[str, Manifest] = {}

    @classmethod
    async def open(cls, js: JetStreamContext, *, replicas: int = 1) -> ControlPlane:
        specs: dict[str, tuple[str, type[BaseModel], int, int]] = {
            "contracts": ("trellis_contracts", ContractRecord, 1, 0),
            "active": ("trellis_active", ActiveContract, 5, 0),
            "deployments": ("trellis_deployments", Deployment, 5, 0),
            "bindings": ("trellis_bindings", ServiceBindings, 5, 0),
            "principals": (PRINCIPALS_BUCKET, Principal, 1, 0),
            "connections": ("trellis_connections", Connection, 1, CONNECTION_TTL_SECONDS),
            "heartbeats": ("trellis_heartbeats", InstanceHealth, 1, HEARTBEAT_TTL_SECONDS),
        }
        tables: dict[str, Table[Any]] = {}
        for name, (bucket, model, history, ttl) in specs.items():
            kv = await ensure_bucket(js, bucket, history=history, ttl=ttl, replicas=replicas)
            tables[name] = Table(kv, model)
        return cls(js, tables)

    async def manifest(self, digest: str) -> Manifest | None:
        """The stored manifest with this digest, parsed once per process."""
        cached = self._manifests.get(digest)
        if cached is None:
            record = await self.contracts.get(digest)
            if record is None:
                return None
            cached = self._manifests[digest] = record.manifest
        return cached

    async def active_manifests(self) -> dict[str, Manifest]:
        """Contract id → manifest of every active contract."""
        out: dict[str, Manifest] = {}
        for active in await self.active.values():
            manifest = await self.manifest(active.digest)
            if manifest is not None:
                out[active.id] = manifest
        return out


async def ensure_bucket(
    js: JetStreamContext,
    bucket: str,
    *,
    history: int = 1,
    ttl: float = 0,
    replicas: int = 1,
    max_value_size: int | None = None,
) -> KeyValue:
    """Open ``bucket``, creating it with the given settings if it does not exist yet."""
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        pass
    config = KeyValueConfig(
        bucket=bucket,
        history=history,
        ttl=ttl or None,
        replicas=replicas,
        storage=StorageType.FILE,
        max_value_size=max_value_size or -1,
    )
    try:
        return await js.create_key_value(config)
    except Exception:
        # another replica may have created it between our check and create
        return await js.key_value(bucket)
