"""The Trellis-owned contracts (PROTOCOL §8) as Python contract objects.

Names and subjects follow upstream; the models are ours.  The runtime implements the
subset each feature needs and grows it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from trellis.bindings import ContractResourceBindings
from trellis.contracts.authoring import (
    BUILTIN_REGISTRY,
    Capability,
    Contract,
    event,
    rpc,
)
from trellis.result import TrellisError

__all__ = [
    "BUILTIN_CONTRACTS",
    "DeploymentError",
    "EventHeader",
    "HealthHeartbeat",
    "InstanceHealth",
    "trellis_auth",
    "trellis_cli",
    "trellis_core",
    "trellis_health",
    "trellis_jobs",
    "trellis_state",
]


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class Empty(_Wire):
    """No input."""


class EventHeader(_Wire):
    id: str
    time: str


# --- trellis.core@v1 ---------------------------------------------------------------------


class CatalogEntry(_Wire):
    id: str
    digest: str
    display_name: str = Field(alias="displayName")
    description: str


class Catalog(_Wire):
    format: Literal["trellis.catalog.v1"] = "trellis.catalog.v1"
    contracts: list[CatalogEntry]


class ContractGetInput(_Wire):
    digest: str


class ContractGetOutput(_Wire):
    contract: dict[str, Any]


class BindingsGetInput(_Wire):
    contract_id: str | None = Field(default=None, alias="contractId")
    digest: str | None = None


class InstalledBinding(_Wire):
    """What a service deployment's contract is bound to (``trellis.bindings``)."""

    contract_id: str = Field(alias="contractId")
    digest: str
    resources: ContractResourceBindings


class BindingsGetOutput(_Wire):
    binding: InstalledBinding | None = None


class SurfaceStatusInput(_Wire):
    contract_id: str = Field(alias="contractId")
    surface: str
    kind: Literal["rpc", "event", "operation", "feed"] = "rpc"


class SurfaceStatusOutput(_Wire):
    status: Literal[
        "unknown_contract", "unknown_surface", "unauthorized", "unavailable", "available"
    ]


trellis_core = Contract(
    "trellis.core@v1",
    kind="service",
    display_name="Trellis Core",
    description="The contract catalog, contract lookup and resource bindings.",
    capabilities={
        "catalog.read": Capability("Read the catalog", "List the active contracts."),
        "contract.read": Capability("Read contracts", "Fetch a contract manifest by digest."),
    },
    rpc={
        "Trellis.Catalog": rpc(Empty, Catalog, call=["catalog.read"]),
        "Trellis.Contract.Get": rpc(ContractGetInput, ContractGetOutput, call=["contract.read"]),
        "Trellis.Bindings.Get": rpc(BindingsGetInput, BindingsGetOutput, call=["service"]),
        "Trellis.Surface.Status": rpc(
            SurfaceStatusInput, SurfaceStatusOutput, call=["catalog.read"]
        ),
    },
)


# --- trellis.health@v1 -------------------------------------------------------------------


class HealthCheck(_Wire):
    name: str
    status: Literal["ok", "failed"]
    error: str | None = None
    summary: str | None = None
    info: dict[str, Any] | None = None
    latency_ms: float = Field(alias="latencyMs")


class HeartbeatService(_Wire):
    name: str
    kind: Literal["service", "device"]
    instance_id: str = Field(alias="instanceId")
    contract_id: str = Field(alias="contractId")
    contract_digest: str = Field(alias="contractDigest")
    started_at: str = Field(alias="startedAt")
    publish_interval_ms: int = Field(alias="publishIntervalMs", ge=1)
    runtime: Literal["deno", "node", "rust", "python", "unknown"] = "python"
    runtime_version: str | None = Field(default=None, alias="runtimeVersion")
    version: str | None = None
    info: dict[str, Any] | None = None


class HealthHeartbeat(_Wire):
    header: EventHeader
    service: HeartbeatService
    status: Literal["healthy", "unhealthy", "degraded"]
    summary: str | None = None
    checks: list[HealthCheck]


trellis_health = Contract(
    "trellis.health@v1",
    kind="service",
    display_name="Trellis Health",
    description="Service liveness heartbeats.",
    events={"Health.Heartbeat": event(HealthHeartbeat, publish=["service"], subscribe=["service"])},
)


# --- trellis.auth@v1 ---------------------------------------------------------------------


class RequestValidateInput(_Wire):
    session_key: str = Field(alias="sessionKey")
    proof: str
    subject: str
    payload_hash: str = Field(alias="payloadHash")
    iat: int
    request_id: str = Field(alias="requestId")
    capabilities: list[str] | None = None


# Who a session is, in upstream's shapes (its ``CallerView`` and ``Auth.Sessions.Me``).
# A session registered with ``trellis user add`` is a user whose identity is the operator's
# registration: provider ``trellis``, subject the user id.


class Identity(_Wire):
    identity_id: str = Field(alias="identityId", min_length=1)
    provider: str = Field(min_length=1)
    subject: str = Field(min_length=1)


class UserCaller(_Wire):
    type: Literal["user"]
    #: ``app``, or ``agent`` for every other participant kind (``cli`` included)
    participant_kind: Literal["app", "agent"] = Field(alias="participantKind")
    user_id: str = Field(alias="userId", min_length=1)
    identity: Identity
    active: bool
    name: str
    email: str
    image: str | None = None
    capabilities: list[str]
    #: when the session last connected (RFC 3339)
    last_auth: str = Field(alias="lastAuth")


class ServiceCaller(_Wire):
    type: Literal["service"]
    #: the instance's session key
    id: str
    #: the deployment name
    name: str
    active: bool
    capabilities: list[str]


class DeviceCaller(_Wire):
    """Upstream's device sessions (activated devices); this runtime has none yet."""

    type: Literal["device"]
    device_id: str = Field(alias="deviceId", min_length=1)
    device_type: str = Field(alias="deviceType", min_length=1)
    runtime_public_key: str = Field(alias="runtimePublicKey", min_length=1)
    deployment_id: str = Field(alias="deploymentId", min_length=1)
    active: bool
    capabilities: list[str]


class RequestValidateOutput(_Wire):
    allowed: bool
    inbox_prefix: str = Field(alias="inboxPrefix")
    caller: UserCaller | ServiceCaller | DeviceCaller


class AuthenticatedUser(_Wire):
    user_id: str = Field(alias="userId", min_length=1)
    active: bool
    name: str
    email: str
    image: str | None = None
    capabilities: list[str]
    identity: Identity
    last_login: str | None = Field(default=None, alias="lastLogin")


class SessionMe(_Wire):
    """``Auth.Sessions.Me``: exactly one of ``user`` / ``device`` / ``service`` is set; the
    others are sent as ``null``, as upstream's schema requires them."""

    participant_kind: Literal["app", "agent", "device", "service"] = Field(alias="participantKind")
    user: AuthenticatedUser | None
    device: DeviceCaller | None
    service: ServiceCaller | None

    @model_serializer(mode="wrap")
    def _with_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in ("user", "device", "service"):
            data.setdefault(key, None)  # kept even when dumped with exclude_none
        return data


class SessionInfo(_Wire):
    session_key: str = Field(alias="sessionKey")
    type: Literal["user", "service", "device"]
    id: str
    contract_id: str | None = Field(default=None, alias="contractId")
    contract_digest: str | None = Field(default=None, alias="contractDigest")
    capabilities: list[str] = Field(default_factory=list)
    created_at: str | None = Field(default=None, alias="createdAt")
    last_auth: str | None = Field(default=None, alias="lastAuth")


class Ack(_Wire):
    success: bool = True


class SessionList(_Wire):
    sessions: list[SessionInfo]


class SessionRevokeInput(_Wire):
    session_key: str = Field(alias="sessionKey")


class ConnectionInfo(_Wire):
    session_key: str = Field(alias="sessionKey")
    user_nkey: str = Field(alias="userNkey")
    server_id: str = Field(alias="serverId")
    client_id: int = Field(alias="clientId")
    connected_at: str = Field(alias="connectedAt")
    kind: Literal["user", "service", "device"] = "service"
    id: str = ""


class ConnectionsListInput(_Wire):
    session_key: str | None = Field(default=None, alias="sessionKey")


class ConnectionList(_Wire):
    connections: list[ConnectionInfo]


class ConnectionKickInput(_Wire):
    user_nkey: str = Field(alias="userNkey")


class UserInfo(_Wire):
    """A registered participant session: a key, the contract it connects with, its grants."""

    id: str
    name: str | None = None
    session_key: str = Field(alias="sessionKey")
    contract_id: str = Field(alias="contractId")
    contract_digest: str = Field(alias="contractDigest")
    active: bool = True
    capabilities: list[str] = Field(default_factory=list)


class UserGetInput(_Wire):
    id: str


class UserList(_Wire):
    users: list[UserInfo]


class UserCreateInput(_Wire):
    id: str = Field(pattern=r"^[a-z][a-z0-9._-]{0,62}$")
    name: str | None = None
    session_key: str = Field(alias="sessionKey", pattern=r"^[A-Za-z0-9_-]{43}$")
    contract: dict[str, Any]
    capabilities: list[str] = Field(default_factory=list)


class UserUpdateInput(_Wire):
    id: str
    active: bool | None = None
    capabilities: list[str] | None = None
    grant: list[str] = Field(default_factory=list)
    revoke: list[str] = Field(default_factory=list)


class Deployment(_Wire):
    name: str
    contract_id: str = Field(alias="contractId")
    contract_digest: str = Field(alias="contractDigest")
    disabled: bool = False
    instance_keys: list[str] = Field(default_factory=list, alias="instanceKeys")
    #: ``service`` plus what the contract's ``uses`` need, granted by installing it
    capabilities: list[str] = Field(default_factory=lambda: ["service"])
    created_at: str = Field(default="", alias="createdAt")
    updated_at: str = Field(default="", alias="updatedAt")


class DeploymentCreateInput(_Wire):
    name: str
    contract: dict[str, Any]
    public_key: str = Field(alias="publicKey")


class DeploymentNameInput(_Wire):
    name: str


class DeploymentList(_Wire):
    deployments: list[Deployment]


class InstanceHealth(_Wire):
    """The latest ``Health.Heartbeat`` of one service instance."""

    name: str
    instance_id: str = Field(alias="instanceId")
    status: Literal["healthy", "unhealthy", "degraded"]
    seen_at: str = Field(alias="seenAt")
    started_at: str = Field(alias="startedAt")
    contract_digest: str = Field(alias="contractDigest")
    summary: str | None = None


class DeploymentOutput(_Wire):
    deployment: Deployment
    #: instances that sent a heartbeat in the last 90 s (liveness)
    health: list[InstanceHealth] = Field(default_factory=list)


class InstanceInput(_Wire):
    name: str
    instance_key: str = Field(alias="instanceKey")


class InstanceInfo(_Wire):
    instance_id: str = Field(alias="instanceId")
    name: str
    instance_key: str = Field(alias="instanceKey")
    disabled: bool = False


class InstanceList(_Wire):
    instances: list[InstanceInfo]


class ConnectionEvent(_Wire):
    header: EventHeader
    origin: str
    id: str
    session_key: str = Field(alias="sessionKey")
    user_nkey: str = Field(alias="userNkey")


class ConnectionKickedEvent(_Wire):
    header: EventHeader
    origin: str
    id: str
    user_nkey: str = Field(alias="userNkey")
    kicked_by: str = Field(alias="kickedBy")


class SessionRevokedEvent(_Wire):
    header: EventHeader
    origin: str
    id: str
    session_key: str = Field(alias="sessionKey")
    revoked_by: str = Field(alias="revokedBy")


class DeploymentError(TrellisError):
    """The runtime refused a deployment change."""

    reason: str
    problems: list[str] = Field(default_factory=list)


_ADMIN = ["admin"]
_DEPLOY_ERRORS = [DeploymentError]

trellis_auth = Contract(
    "trellis.auth@v1",
    kind="service",
    display_name="Trellis Auth",
    description="Sessions, connections, users and service deployments.",
    capabilities={
        "device.review": Capability("Review devices", "Approve or deny device user authority."),
        "events.auth": Capability("Auth events", "Observe connection and session events."),
    },
    rpc={
        "Auth.Requests.Validate": rpc(
            RequestValidateInput, RequestValidateOutput, call=["service"]
        ),
        "Auth.Sessions.Me": rpc(Empty, SessionMe),
        "Auth.Sessions.Logout": rpc(Empty, Ack),
        "Auth.Sessions.List": rpc(Empty, SessionList, call=_ADMIN),
        "Auth.Sessions.Revoke": rpc(SessionRevokeInput, Ack, call=_ADMIN),
        "Auth.Connections.List": rpc(ConnectionsListInput, ConnectionList, call=_ADMIN),
        "Auth.Connections.Kick": rpc(ConnectionKickInput, Ack, call=_ADMIN),
        "Auth.Users.List": rpc(Empty, UserList, call=_ADMIN),
        "Auth.Users.Get": rpc(UserGetInput, UserInfo, call=_ADMIN, errors=_DEPLOY_ERRORS),
        "Auth.Users.Create": rpc(UserCreateInput, UserInfo, call=_ADMIN, errors=_DEPLOY_ERRORS),
        "Auth.Users.Update": rpc(UserUpdateInput, UserInfo, call=_ADMIN, errors=_DEPLOY_ERRORS),
        "Auth.Deployments.Create": rpc(
            DeploymentCreateInput, DeploymentOutput, call=_ADMIN, errors=_DEPLOY_ERRORS
        ),
        "Auth.Deployments.Upgrade": rpc(
            DeploymentCreateInput, DeploymentOutput, call=_ADMIN, errors=_DEPLOY_ERRORS
        ),
        "Auth.Deployments.List": rpc(Empty, DeploymentList, call=_ADMIN),
        "Auth.Deployments.Get": rpc(
            DeploymentNameInput, DeploymentOutput, call=_ADMIN, errors=_DEPLOY_ERRORS
        ),
        "Auth.Deployments.Enable": rpc(
            DeploymentNameInput, DeploymentOutput, call=_ADMIN, errors=_DEPLOY_ERRORS
        ),
        "Auth.Deployments.Disable": rpc(
            DeploymentNameInput, DeploymentOutput, call=_ADMIN, errors=_DEPLOY_ERRORS
        ),
        "Auth.Deployments.Remove": rpc(
            DeploymentNameInput, Ack, call=_ADMIN, errors=_DEPLOY_ERRORS
        ),
        "Auth.ServiceInstances.Provision": rpc(
            InstanceInput, InstanceInfo, call=_ADMIN, errors=_DEPLOY_ERRORS
        ),
        "Auth.ServiceInstances.List": rpc(
            DeploymentNameInput, InstanceList, call=_ADMIN, errors=_DEPLOY_ERRORS
        ),
        "Auth.ServiceInstances.Enable": rpc(InstanceInput, InstanceInfo, call=_ADMIN),
        "Auth.ServiceInstances.Disable": rpc(InstanceInput, InstanceInfo, call=_ADMIN),
        "Auth.ServiceInstances.Remove": rpc(InstanceInput, Ack, call=_ADMIN, errors=_DEPLOY_ERRORS),
    },
    events={
        "Auth.Connections.Opened": event(
            ConnectionEvent, publish=["service"], subscribe=["events.auth"]
        ),
        "Auth.Connections.Closed": event(
            ConnectionEvent, publish=["service"], subscribe=["events.auth"]
        ),
        "Auth.Connections.Kicked": event(
            ConnectionKickedEvent, publish=["service"], subscribe=["events.auth"]
        ),
        "Auth.Sessions.Revoked": event(
            SessionRevokedEvent, publish=["service"], subscribe=["events.auth"]
        ),
    },
)


# --- trellis.state@v1 --------------------------------------------------------------------


class StateKey(_Wire):
    store: str
    key: str | None = None


class StatePutInput(_Wire):
    store: str
    key: str | None = None
    value: Any
    expected_revision: int | None = Field(default=None, alias="expectedRevision")


class StateEntry(_Wire):
    found: bool
    value: Any = None
    revision: int | None = None


class StateListOutput(_Wire):
    keys: list[str]


trellis_state = Contract(
    "trellis.state@v1",
    kind="service",
    display_name="Trellis State",
    description="Per-participant named state stores.",
    rpc={
        "State.Get": rpc(StateKey, StateEntry),
        "State.Put": rpc(StatePutInput, StateEntry),
        "State.Delete": rpc(StateKey, Ack),
        "State.List": rpc(StateKey, StateListOutput),
    },
)


# --- trellis.jobs@v1 ---------------------------------------------------------------------


class JobRef(_Wire):
    service: str
    queue: str
    job_id: str = Field(alias="jobId")


class JobsListInput(_Wire):
    service: str | None = None
    queue: str | None = None
    state: str | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class JobInfo(_Wire):
    service: str
    queue: str
    job_id: str = Field(alias="jobId")
    state: Literal[
        "pending",
        "active",
        "completed",
        "retry",
        "failed",
        "cancelled",
        "dead",
        "expired",
        "dismissed",
    ]
    tries: int = 0
    payload: Any = None
    result: Any = None
    error: str | None = None
    created_at: str = Field(alias="createdAt")
    updated_at: str = Field(alias="updatedAt")


class JobOutput(_Wire):
    job: JobInfo


class JobsList(_Wire):
    jobs: list[JobInfo]


class JobsHealth(_Wire):
    status: Literal["healthy", "unhealthy", "degraded"]


class JobsServices(_Wire):
    services: list[str]


trellis_jobs = Contract(
    "trellis.jobs@v1",
    kind="service",
    display_name="Trellis Jobs",
    description="Job queue administration.",
    capabilities={
        "admin.read": Capability("Read jobs", "Inspect job queues and jobs."),
        "admin.mutate": Capability(
            "Change jobs", "Cancel, retry, replay or dismiss jobs.", "Can re-run or stop work."
        ),
    },
    rpc={
        "Jobs.Health": rpc(Empty, JobsHealth, call=["admin.read"]),
        "Jobs.ListServices": rpc(Empty, JobsServices, call=["admin.read"]),
        "Jobs.List": rpc(JobsListInput, JobsList, call=["admin.read"]),
        "Jobs.Get": rpc(JobRef, JobOutput, call=["admin.read"]),
        "Jobs.Cancel": rpc(JobRef, JobOutput, call=["admin.mutate"]),
        "Jobs.Retry": rpc(JobRef, JobOutput, call=["admin.mutate"]),
        "Jobs.ListDLQ": rpc(JobsListInput, JobsList, call=["admin.read"]),
        "Jobs.ReplayDLQ": rpc(JobRef, JobOutput, call=["admin.mutate"]),
        "Jobs.DismissDLQ": rpc(JobRef, JobOutput, call=["admin.mutate"]),
    },
)

# --- trellis.cli@v1: the operator's command line (an ``agent``, as upstream's CLI is) -----

trellis_cli = Contract(
    "trellis.cli@v1",
    kind="agent",
    display_name="Trellis CLI",
    description="The trellis command line used by operators.",
    uses={
        "auth": trellis_auth.use(
            rpc=[
                "Auth.Sessions.Me",
                "Auth.Sessions.Logout",
                "Auth.Connections.List",
                "Auth.Connections.Kick",
                "Auth.Deployments.Create",
                "Auth.Deployments.Upgrade",
                "Auth.Deployments.List",
                "Auth.Deployments.Get",
                "Auth.Deployments.Enable",
                "Auth.Deployments.Disable",
                "Auth.Deployments.Remove",
                "Auth.ServiceInstances.Provision",
                "Auth.ServiceInstances.List",
                "Auth.ServiceInstances.Remove",
                "Auth.Users.List",
                "Auth.Users.Get",
                "Auth.Users.Create",
                "Auth.Users.Update",
            ],
            subscribe=["Auth.Connections.Opened", "Auth.Connections.Closed"],
        ),
        "core": trellis_core.use(rpc=["Trellis.Catalog", "Trellis.Contract.Get"]),
    },
)

BUILTIN_CONTRACTS: dict[str, Contract] = {
    c.id: c
    for c in (trellis_core, trellis_health, trellis_auth, trellis_state, trellis_jobs, trellis_cli)
}
BUILTIN_REGISTRY.update(BUILTIN_CONTRACTS)
