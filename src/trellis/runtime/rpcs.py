"""The Trellis-owned RPCs the runtime serves (``trellis.core@v1`` and ``trellis.auth@v1``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from trellis.auth import iat_in_window, inbox_prefix, proof_input_for_hash, verify_signature
from trellis.contracts import builtin as b
from trellis.encoding import b64url_decode, sha256
from trellis.ids import now_iso
from trellis.nats.kv import list_keys
from trellis.principals import Principal
from trellis.result import AuthError, Err, Ok, Result, TrellisError
from trellis.runtime.bindings import service_binding
from trellis.runtime.connections import ConnectionTracker
from trellis.runtime.health import HealthMonitor
from trellis.runtime.install import Installer, InstallError
from trellis.runtime.state import ControlPlane
from trellis.runtime.users import Users
from trellis.service.rpc import ReplayGuard, RequestContext, RpcServer

__all__ = ["mount_auth", "mount_core", "mount_users"]

log = logging.getLogger("trellis.runtime.rpcs")


def _refused(exc: InstallError) -> Err[TrellisError]:
    return Err(b.DeploymentError(str(exc), reason=exc.reason, problems=exc.problems))


def mount_core(server: RpcServer, cp: ControlPlane) -> None:
    @server.handler("Trellis.Catalog")
    async def catalog(_: b.Empty, ctx: RequestContext) -> Result[b.Catalog, TrellisError]:
        entries = []
        for active in sorted(await cp.active.values(), key=lambda a: a.id):
            record = await cp.contracts.get(active.digest)
            if record is None:
                continue
            entries.append(
                b.CatalogEntry(
                    id=active.id,
                    digest=active.digest,
                    display_name=record.manifest.display_name,
                    description=record.manifest.description,
                )
            )
        return Ok(b.Catalog(contracts=entries))

    @server.handler("Trellis.Contract.Get")
    async def contract_get(
        req: b.ContractGetInput, ctx: RequestContext
    ) -> Result[Any, TrellisError]:
        record = await cp.contracts.get(req.digest)
        if record is None:
            return Err(
                b.DeploymentError(f"no contract with digest {req.digest}", reason="not_found")
            )
        return Ok(b.ContractGetOutput(contract=record.manifest.dump()))

    @server.handler("Trellis.Bindings.Get")
    async def bindings_get(_: b.BindingsGetInput, ctx: RequestContext) -> Result[Any, TrellisError]:
        """The caller's own binding, as ``POST /bootstrap/service`` gives it."""
        principal = ctx.principal
        if principal.kind != "service":
            return Ok(b.BindingsGetOutput(binding=None))
        binding = service_binding(
            principal.contract_id,
            principal.contract_digest,
            await cp.manifest(principal.contract_digest),
            await cp.bindings.get(principal.name),
        )
        return Ok(b.BindingsGetOutput.model_validate({"binding": binding}))

    @server.handler("Trellis.Surface.Status")
    async def surface_status(
        req: b.SurfaceStatusInput, ctx: RequestContext
    ) -> Result[Any, TrellisError]:
        manifests = await cp.active_manifests()
        manifest = manifests.get(req.contract_id)
        if manifest is None:
            return Ok(b.SurfaceStatusOutput(status="unknown_contract"))
        section = {"rpc": "rpc", "event": "events", "operation": "operations", "feed": "feeds"}[
            req.kind
        ]
        surface = next(
            (s for sec, name, s in manifest.surfaces() if (sec, name) == (section, req.surface)),
            None,
        )
        if surface is None:
            return Ok(b.SurfaceStatusOutput(status="unknown_surface"))
        needed = getattr(surface.capabilities, "call" if req.kind == "rpc" else "subscribe", [])
        if not ctx.principal.holds(needed):
            return Ok(b.SurfaceStatusOutput(status="unauthorized"))
        return Ok(b.SurfaceStatusOutput(status="available"))


def mount_auth(
    server: RpcServer,
    cp: ControlPlane,
    installer: Installer,
    tracker: ConnectionTracker,
    lookup: Callable[[str], Principal | None],
    health: HealthMonitor,
    clock: Callable[[], float] = time.time,
) -> None:
    async def user_kind(principal: Principal) -> Literal["app", "agent"]:
        """Upstream's participant kind of a user session: every kind but ``app`` (``cli``
        too) is an ``agent`` to upstream."""
        manifest = await cp.manifest(principal.contract_digest)
        return "app" if manifest is not None and manifest.kind == "app" else "agent"

    auth_times: dict[str, tuple[float, str]] = {}

    async def last_auth(session_key: str) -> str:
        """When the session's newest live connection was admitted (now, if none is known).
        Kept for 30 s: upstream's services ask ``Validate`` on every request, and reading
        the connections bucket costs about 3 ms of the 3.4 ms such an answer took."""
        now = clock()
        cached = auth_times.get(session_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        keys = await list_keys(cp.connections.kv, f"{session_key}.*")
        times = [c.connected_at for k in keys if (c := await cp.connections.get(k)) is not None]
        if len(auth_times) >= 10_000:  # a bound, not an LRU: entries are cheap to refetch
            auth_times.clear()
        auth_times[session_key] = (now + 30, max(times, default=now_iso()))
        return auth_times[session_key][1]

    def service_view(p: Principal) -> b.ServiceCaller:
        return b.ServiceCaller(
            type="service",
            id=p.session_key,
            name=p.name,
            active=not p.disabled,
            capabilities=list(p.capabilities),
        )

    def identity(p: Principal) -> b.Identity:
        return b.Identity(identity_id=f"trellis:{p.name}", provider="trellis", subject=p.name)

    replays = ReplayGuard()

    @server.handler("Auth.Requests.Validate")
    async def validate(
        req: b.RequestValidateInput, ctx: RequestContext
    ) -> Result[Any, TrellisError]:
        """For participants that ask the runtime rather than verify locally (upstream's
        services do, on every request): the proof is checked as a receiver would, and the
        caller is described in upstream's ``CallerView``.  A request that does not verify,
        or was asked about before, is answered with ``AuthError`` and its reason, as
        upstream does."""
        try:
            payload_hash = b64url_decode(req.payload_hash)
        except ValueError:
            payload_hash = b""
        if len(payload_hash) != 32:
            return Err(AuthError("payloadHash is not a SHA-256", reason="invalid_signature"))
        if not iat_in_window(req.iat, clock()):
            return Err(AuthError("iat is outside the allowed window", reason="iat_out_of_range"))
        digest_input = proof_input_for_hash(
            req.session_key, req.subject, payload_hash, req.iat, req.request_id
        )
        if not verify_signature(req.session_key, sha256(digest_input), req.proof):
            return Err(AuthError("the proof does not verify", reason="invalid_signature"))
        if not replays.first_use(req.session_key, req.request_id, clock()):
            # asking twice about one request is how a replayed request would look
            return Err(AuthError("request id was already used", reason="invalid_signature"))
        principal = lookup(req.session_key)
        if principal is None:
            return Err(AuthError("unknown session", reason="session_not_found"))
        if principal.disabled:
            reason = "service_disabled" if principal.kind == "service" else "user_inactive"
            return Err(AuthError("the session is disabled", reason=reason))
        caller: b.UserCaller | b.ServiceCaller
        if principal.kind == "service":
            caller = service_view(principal)
        else:
            caller = b.UserCaller(
                type="user",
                participant_kind=await user_kind(principal),
                user_id=principal.name,
                identity=identity(principal),
                active=True,
                name=principal.name,
                email="",
                capabilities=list(principal.capabilities),
                last_auth=await last_auth(principal.session_key),
            )
        return Ok(
            b.RequestValidateOutput(
                allowed=principal.holds(req.capabilities or []),
                inbox_prefix=inbox_prefix(req.session_key),
                caller=caller,
            )
        )

    @server.handler("Auth.Sessions.Me")
    async def me(_: b.Empty, ctx: RequestContext) -> Result[Any, TrellisError]:
        p = ctx.principal
        if p.kind == "service":
            return Ok(
                b.SessionMe(
                    participant_kind="service", user=None, device=None, service=service_view(p)
                )
            )
        user = b.AuthenticatedUser(
            user_id=p.name,
            active=not p.disabled,
            name=p.name,
            email="",
            capabilities=list(p.capabilities),
            identity=identity(p),
            last_login=await last_auth(p.session_key),
        )
        return Ok(
            b.SessionMe(
                participant_kind=await user_kind(p),
                user=user,
                device=None,
                service=None,
            )
        )

    @server.handler("Auth.Connections.List")
    async def connections_list(
        req: b.ConnectionsListInput, ctx: RequestContext
    ) -> Result[Any, TrellisError]:
        rows = await tracker.list(req.session_key)
        return Ok(
            b.ConnectionList(
                connections=[
                    b.ConnectionInfo(
                        session_key=c.session_key,
                        user_nkey=c.user_nkey,
                        server_id=c.server_id,
                        client_id=c.client_id,
                        connected_at=c.connected_at,
                        kind="service" if c.kind == "service" else "user",
                        id=c.name,
                    )
                    for c in rows
                ]
            )
        )

    @server.handler("Auth.Connections.Kick")
    async def connections_kick(
        req: b.ConnectionKickInput, ctx: RequestContext
    ) -> Result[Any, TrellisError]:
        return Ok(b.Ack(success=await tracker.kick_user_nkey(req.user_nkey) > 0))

    async def get_deployment(req: b.DeploymentNameInput, _: RequestContext) -> Any:
        deployment = await cp.deployments.get(req.name)
        if deployment is None:
            raise InstallError("not_found", f"no deployment named {req.name!r}")
        return b.DeploymentOutput(deployment=deployment, health=await health.instances(req.name))

    async def list_instances(req: b.DeploymentNameInput, _: RequestContext) -> Any:
        deployment = await cp.deployments.get(req.name)
        if deployment is None:
            raise InstallError("not_found", f"no deployment named {req.name!r}")
        keys = deployment.instance_keys
        return b.InstanceList(instances=[_instance(req.name, k, deployment.disabled) for k in keys])

    async def upgrade(req: Any, _: RequestContext) -> b.Deployment:
        """Install the new digest, then drop the instances still connected with the old one:
        their reconnect with it is refused (``contract_changed``)."""
        deployment = await installer.install(req.contract, req.name, req.public_key, upgrade=True)
        await tracker.kick_stale(deployment.instance_keys, deployment.contract_digest)
        return deployment

    actions: dict[str, Action] = {
        "Auth.Deployments.Create": lambda req, _: installer.install(
            req.contract, req.name, req.public_key
        ),
        "Auth.Deployments.Upgrade": upgrade,
        "Auth.Deployments.Get": get_deployment,
        "Auth.Deployments.Enable": lambda req, _: installer.set_disabled(
            req.name, False, tracker.kick
        ),
        "Auth.Deployments.Disable": lambda req, _: installer.set_disabled(
            req.name, True, tracker.kick
        ),
        "Auth.Deployments.Remove": lambda req, _: installer.remove(req.name, tracker.kick),
        "Auth.ServiceInstances.Provision": lambda req, _: installer.add_instance_key(
            req.name, req.instance_key
        ),
        "Auth.ServiceInstances.List": list_instances,
        "Auth.ServiceInstances.Remove": lambda req, _: installer.remove_instance_key(
            req.name, req.instance_key, tracker.kick
        ),
    }
    outputs: dict[str, Callable[[Any, Any], Any]] = {
        "Auth.Deployments.Remove": lambda _req, _out: b.Ack(),
        "Auth.ServiceInstances.Remove": lambda _req, _out: b.Ack(),
        "Auth.ServiceInstances.Provision": lambda req, _out: _instance(
            req.name, req.instance_key, False
        ),
    }
    for name, action in actions.items():
        server.mount(name, _admin_action(action, outputs.get(name)))

    @server.handler("Auth.Deployments.List")
    async def deployments_list(_: b.Empty, ctx: RequestContext) -> Result[Any, TrellisError]:
        deployments = sorted(await cp.deployments.values(), key=lambda d: d.name)
        return Ok(b.DeploymentList(deployments=deployments))


Action = Callable[[Any, RequestContext], Awaitable[Any]]


def _admin_action(
    action: Action, output: Callable[[Any, Any], Any] | None = None
) -> Callable[[Any, RequestContext], Awaitable[Result[Any, TrellisError]]]:
    """A handler running an admin action: refusals become ``Err(DeploymentError)``; a bare
    ``Deployment`` result is wrapped as ``DeploymentOutput``."""

    async def handler(req: Any, ctx: RequestContext) -> Result[Any, TrellisError]:
        try:
            result = await action(req, ctx)
        except InstallError as exc:
            return _refused(exc)
        if output is not None:
            return Ok(output(req, result))
        if isinstance(result, b.Deployment):
            return Ok(b.DeploymentOutput(deployment=result))
        return Ok(result)

    return handler


def mount_users(server: RpcServer, users: Users, tracker: ConnectionTracker) -> None:
    """Registered participant sessions (CLIs, scripts, apps) and their capability grants."""

    async def get_user(req: b.UserGetInput, _: RequestContext) -> Any:
        found = await users.get(req.id)
        if found is None:
            raise InstallError("not_found", f"no user named {req.id!r}")
        return _user(found)

    async def create_user(req: b.UserCreateInput, _: RequestContext) -> Any:
        return _user(await users.create(req.id, req.session_key, req.contract, req.capabilities))

    async def update_user(req: b.UserUpdateInput, _: RequestContext) -> Any:
        principal = await users.update(
            req.id,
            active=req.active,
            capabilities=req.capabilities,
            grant=req.grant,
            revoke=req.revoke,
            kick=tracker.kick,
        )
        return _user(principal)

    async def list_users(_req: b.Empty, _: RequestContext) -> Any:
        return b.UserList(users=[_user(p) for p in await users.all()])

    for name, action in (
        ("Auth.Users.Get", get_user),
        ("Auth.Users.Create", create_user),
        ("Auth.Users.Update", update_user),
        ("Auth.Users.List", list_users),
    ):
        server.mount(name, _admin_action(action))


def _user(principal: Principal) -> b.UserInfo:
    return b.UserInfo(
        id=principal.name,
        session_key=principal.session_key,
        contract_id=principal.contract_id,
        contract_digest=principal.contract_digest,
        active=not principal.disabled,
        capabilities=list(principal.capabilities),
    )


def _instance(name: str, key: str, disabled: bool) -> b.InstanceInfo:
    return b.InstanceInfo(
        instance_id="svc_" + sha256(key.encode()).hex()[:22],
        name=name,
        instance_key=key,
        disabled=disabled,
    )
