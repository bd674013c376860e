"""The runtime's HTTP endpoints: participant bootstrap and health (FastAPI).

Both bootstrap endpoints answer in upstream's shapes (the JSON Schemas in
``shared/conformance/upstream-wire`` are checked by ``tests/interop``), so upstream's
client and service start against this runtime unchanged:

``POST /bootstrap/service`` is signed like the connect token (``nats-connect`` over
``"<iat>:<contractDigest>"``).  It tells an installed service the server's time (so its
connect tokens carry a server-relative ``iat``), where NATS is, the shared deny-all sentinel
credentials it connects with, and its resource bindings (``trellis.bindings``).  Refusals
are ``{reason, message, serverNow}``: ``invalid_request``, ``iat_out_of_range`` and
``invalid_signature`` (400), ``unknown_service`` (404), ``service_disabled`` (403),
``contract_changed`` (409; the message names the command that fixes the mismatch).

``POST /bootstrap/client`` is signed with ``bootstrap-client`` over ``iat``.  Upstream's
client sends no contract: the runtime knows the one registered with the key (``trellis
user add``) and answers with it, and the client compares it with its own.  Ours also sends
its ``contractDigest``, so a mismatch is refused here (409 ``contract_changed``) with the
command that fixes it.  Answers are HTTP 200 ``ready``, ``auth_required`` (a key the
runtime does not know, or a disabled user: signing in again is the remedy) or
``not_ready`` (the registered contract, or a contract it requires, is not active);
``auth_required`` and ``not_ready`` carry our ``reason`` and ``message`` besides.  An
``iat`` out of range is a 400 with ``serverNow`` and no ``status``, which upstream's client
takes as "correct the clock and retry".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.exceptions import HTTPException as StarletteHTTPException

from trellis.auth import (
    DOMAIN_BOOTSTRAP_CLIENT,
    DOMAIN_NATS_CONNECT,
    IAT_SKEW_SECONDS,
    iat_in_window,
    inbox_prefix,
    verify_domain_signature,
)
from trellis.nats.creds import read_creds
from trellis.principals import Principal
from trellis.runtime.bindings import service_binding
from trellis.runtime.bundle import Bundle
from trellis.runtime.state import ControlPlane

__all__ = ["BootstrapRequest", "ClientBootstrapRequest", "create_app"]

_SESSION_KEY = r"^[A-Za-z0-9_-]{43}$"
_DIGEST = r"^[A-Za-z0-9_-]{1,128}$"
_SIGNATURE = r"^[A-Za-z0-9_-]{86}$"


class BootstrapRequest(BaseModel):
    """``POST /bootstrap/service``.  Upstream's service may add its full manifest
    (``contract``); ours has it installed already, so it is ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    session_key: Annotated[str, Field(alias="sessionKey", pattern=_SESSION_KEY)]
    contract_id: Annotated[str, Field(alias="contractId", min_length=1, max_length=200)]
    contract_digest: Annotated[str, Field(alias="contractDigest", pattern=_DIGEST)]
    iat: StrictInt
    sig: Annotated[str, Field(pattern=_SIGNATURE)]


class ClientBootstrapRequest(BaseModel):
    """``POST /bootstrap/client``: upstream's ``{sessionKey, iat, sig}``; ``contractDigest``
    is our optional addition (the contract the client was built with)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    session_key: Annotated[str, Field(alias="sessionKey", pattern=_SESSION_KEY)]
    contract_digest: Annotated[str, Field(pattern=_DIGEST)] | None = Field(
        default=None, alias="contractDigest"
    )
    iat: StrictInt
    sig: Annotated[str, Field(pattern=_SIGNATURE)]


def create_app(
    bundle: Bundle,
    cp: ControlPlane,
    *,
    clock: Callable[[], float] = time.time,
    ready: Callable[[], bool] = lambda: True,
) -> FastAPI:
    app = FastAPI(title="Trellis runtime", docs_url=None, redoc_url=None, openapi_url=None)
    sentinel = read_creds(bundle.sentinel_creds)
    transports: dict[str, Any] = {"native": {"natsServers": bundle.config.nats.servers}}
    if bundle.config.nats.websocket_servers:  # upstream requires at least one when present
        transports["websocket"] = {"natsServers": bundle.config.nats.websocket_servers}

    def now() -> int:
        return int(clock())

    def refuse(status: int, reason: str, message: str, **extra: Any) -> JSONResponse:
        """A non-2xx refusal: ``{reason, message, serverNow}`` and no ``status`` key (for
        upstream's client a ``status`` marks an answer, not a refusal)."""
        body = {"reason": reason, "message": message, "serverNow": now(), **extra}
        return JSONResponse(body, status_code=status)

    def answer(status: str, reason: str, message: str) -> JSONResponse:
        """An HTTP 200 ``auth_required`` / ``not_ready`` answer of the client bootstrap."""
        return JSONResponse(
            {"status": status, "serverNow": now(), "reason": reason, "message": message}
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        """A malformed body is a 400 ``invalid_request`` refusal, as upstream answers it."""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return refuse(400, "invalid_request", f"the request is malformed: {problems}")

    @app.exception_handler(StarletteHTTPException)
    async def framework_refusal(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        """The framework's own refusals in the same shape: a body it cannot parse at all
        (nesting deeper than the JSON decoder's recursion limit), an unknown path, a wrong
        method.  Their ``detail`` is the framework's fixed text, never the input."""
        reason = _FRAMEWORK_REASONS.get(exc.status_code, "invalid_request")
        response = refuse(exc.status_code, reason, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        ok = ready()
        return JSONResponse({"status": "ok" if ok else "starting"}, status_code=200 if ok else 503)

    def unsigned(
        iat: int, session_key: str, domain: str, value: str, sig: str
    ) -> JSONResponse | None:
        """The refusal for a stale or badly signed bootstrap request, or None when it is fine."""
        if not iat_in_window(iat, clock()):
            return refuse(
                400, "iat_out_of_range", f"iat must be within {IAT_SKEW_SECONDS}s of serverNow"
            )
        if not verify_domain_signature(session_key, domain, value, sig):
            return refuse(400, "invalid_signature", "the signature does not verify")
        return None

    def connect_info(principal: Principal) -> dict[str, Any]:
        return {
            "sessionKey": principal.session_key,
            "contractId": principal.contract_id,
            "contractDigest": principal.contract_digest,
            "transports": transports,
            "transport": {
                "inboxPrefix": inbox_prefix(principal.session_key),
                "sentinel": {"jwt": sentinel.jwt, "seed": sentinel.seed},
            },
        }

    @app.post("/bootstrap/service")
    async def bootstrap_service(req: BootstrapRequest) -> JSONResponse:
        refusal = unsigned(
            req.iat,
            req.session_key,
            DOMAIN_NATS_CONNECT,
            f"{req.iat}:{req.contract_digest}",
            req.sig,
        )
        if refusal is not None:
            return refusal
        principal = await cp.principals.get(req.session_key)
        if principal is None or principal.kind != "service":
            return refuse(404, "unknown_service", "no service is installed for this key")
        if principal.disabled:
            return refuse(403, "service_disabled", f"deployment {principal.name!r} is disabled")
        if (
            principal.contract_id != req.contract_id
            or principal.contract_digest != req.contract_digest
        ):
            return refuse(
                409,
                "contract_changed",
                _service_mismatch(principal, req.contract_id, req.contract_digest),
                installed={
                    "contractId": principal.contract_id,
                    "digest": principal.contract_digest,
                },
            )
        binding = service_binding(
            principal.contract_id,
            principal.contract_digest,
            await cp.manifest(principal.contract_digest),
            await cp.bindings.get(principal.name),
        )
        info = connect_info(principal)
        info["auth"] = {"mode": "service_identity", "iatSkewSeconds": IAT_SKEW_SECONDS}
        info["deployment"] = principal.name  # ours: the deployment this instance belongs to
        return JSONResponse(
            {"status": "ready", "serverNow": now(), "connectInfo": info, "binding": binding}
        )

    @app.post("/bootstrap/client")
    async def bootstrap_client(req: ClientBootstrapRequest) -> JSONResponse:
        refusal = unsigned(req.iat, req.session_key, DOMAIN_BOOTSTRAP_CLIENT, str(req.iat), req.sig)
        if refusal is not None:
            return refusal
        principal = await cp.principals.get(req.session_key)
        if principal is None or principal.kind != "user":
            return answer(
                "auth_required",
                "session_not_found",
                "this key is not registered (`trellis user add <id> -c <contract> -k <key>`)",
            )
        if principal.disabled:
            return answer(
                "auth_required",
                "user_inactive",
                f"user {principal.name!r} is inactive (`trellis user enable {principal.name}`)",
            )
        if req.contract_digest is not None and principal.contract_digest != req.contract_digest:
            return refuse(
                409,
                "contract_changed",
                f"the client's contract (digest {req.contract_digest}) is not the one "
                f"registered for user {principal.name!r} ({principal.contract_id} digest "
                f"{principal.contract_digest}): register it again with `trellis user add "
                f"{principal.name} -c <contract> -k {principal.session_key}` (grants are kept)",
            )
        inactive = await _inactive_contracts(cp, principal)
        if inactive:
            return answer(
                "not_ready",
                "contract_not_active",
                f"{principal.contract_id} cannot connect: not installed: {', '.join(inactive)}",
            )
        return JSONResponse(
            {"status": "ready", "serverNow": now(), "connectInfo": connect_info(principal)}
        )

    return app


_FRAMEWORK_REASONS = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}


async def _inactive_contracts(cp: ControlPlane, principal: Principal) -> list[str]:
    """The registered contract if it is gone, else the contracts it requires that are not
    active: what would make the callout refuse this session."""
    manifest = await cp.manifest(principal.contract_digest)
    if manifest is None:
        return [f"{principal.contract_id} (digest {principal.contract_digest})"]
    active = await cp.active_manifests()
    return sorted({u.contract for u in manifest.uses.required.values()} - set(active))


def _service_mismatch(principal: Principal, contract_id: str, digest: str) -> str:
    """Why a service's contract does not match its deployment, and the command that fixes it."""
    name = principal.name
    if principal.contract_id != contract_id:
        return (
            f"this key belongs to deployment {name!r}, which implements "
            f"{principal.contract_id}, not {contract_id}: install {contract_id} with its own "
            f"key (`trellis service install <contract> --name <name> --public-key <key>`)"
        )
    return (
        f"contract {contract_id} is installed for deployment {name!r} with digest "
        f"{principal.contract_digest}, this service has {digest}: run "
        f"`trellis service upgrade <contract> --name {name}` (or start the installed version)"
    )
