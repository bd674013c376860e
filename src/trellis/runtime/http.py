"""The runtime's HTTP endpoints: service bootstrap and health (FastAPI).

``POST /bootstrap/service`` is signed like the connect token (``nats-connect`` over
``"<iat>:<contractDigest>"``).  It tells an installed service the server's time (so its
connect tokens carry a server-relative ``iat``), where NATS is, the shared deny-all sentinel
credentials it connects with, and its resource bindings.  Refusals are typed:
``iat_out_of_range`` and ``invalid_signature`` (400), ``unknown_service`` (404),
``service_disabled`` (403), ``contract_changed`` (409; the message names the command that
fixes the mismatch).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from trellis.auth import (
    DOMAIN_BOOTSTRAP_CLIENT,
    DOMAIN_NATS_CONNECT,
    IAT_SKEW_SECONDS,
    iat_in_window,
    verify_domain_signature,
)
from trellis.nats.creds import read_creds
from trellis.principals import Principal
from trellis.runtime.bundle import Bundle
from trellis.runtime.state import ControlPlane

__all__ = ["BootstrapRequest", "create_app"]


class BootstrapRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    session_key: Annotated[str, Field(alias="sessionKey", pattern=r"^[A-Za-z0-9_-]{43}$")]
    contract_id: Annotated[str, Field(alias="contractId", min_length=1, max_length=200)]
    contract_digest: Annotated[
        str, Field(alias="contractDigest", pattern=r"^[A-Za-z0-9_-]{1,128}$")
    ]
    iat: StrictInt
    sig: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{86}$")]


class ClientBootstrapRequest(BaseModel):
    """``POST /bootstrap/client``: signed with the ``bootstrap-client`` domain over ``iat``."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    session_key: Annotated[str, Field(alias="sessionKey", pattern=r"^[A-Za-z0-9_-]{43}$")]
    contract_digest: Annotated[
        str, Field(alias="contractDigest", pattern=r"^[A-Za-z0-9_-]{1,128}$")
    ]
    iat: StrictInt
    sig: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{86}$")]


def create_app(
    bundle: Bundle,
    cp: ControlPlane,
    *,
    clock: Callable[[], float] = time.time,
    ready: Callable[[], bool] = lambda: True,
) -> FastAPI:
    app = FastAPI(title="Trellis runtime", docs_url=None, redoc_url=None, openapi_url=None)
    sentinel = read_creds(bundle.sentinel_creds)

    def refuse(status: int, reason: str, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse(
            {
                "status": "refused",
                "reason": reason,
                "message": message,
                "serverNow": int(clock()),
                **extra,
            },
            status_code=status,
        )

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
        bindings = await cp.bindings.get(principal.name)
        return JSONResponse(
            {
                "status": "ready",
                "serverNow": int(clock()),
                "connectInfo": connect_info(principal, "service_identity"),
                "binding": {
                    "contractId": principal.contract_id,
                    "digest": principal.contract_digest,
                    "resources": bindings.model_dump(mode="json", by_alias=True)
                    if bindings
                    else {},
                },
            }
        )

    def connect_info(principal: Principal, mode: str) -> dict[str, Any]:
        return {
            "sessionKey": principal.session_key,
            "contractId": principal.contract_id,
            "contractDigest": principal.contract_digest,
            "deployment": principal.name,
            "transports": {
                "native": {"natsServers": bundle.config.nats.servers},
                "websocket": {"natsServers": bundle.config.nats.websocket_servers},
            },
            "transport": {"sentinel": {"jwt": sentinel.jwt, "seed": sentinel.seed}},
            "auth": {"mode": mode, "iatSkewSeconds": IAT_SKEW_SECONDS},
        }

    @app.post("/bootstrap/client")
    async def bootstrap_client(req: ClientBootstrapRequest) -> JSONResponse:
        refusal = unsigned(req.iat, req.session_key, DOMAIN_BOOTSTRAP_CLIENT, str(req.iat), req.sig)
        if refusal is not None:
            return refusal
        principal = await cp.principals.get(req.session_key)
        if principal is None or principal.kind != "user":
            return refuse(404, "session_not_found", "this key is not registered (trellis user add)")
        if principal.disabled:
            return refuse(403, "user_inactive", f"user {principal.name!r} is inactive")
        if principal.contract_digest != req.contract_digest:
            return refuse(
                409,
                "contract_changed",
                f"the client's contract (digest {req.contract_digest}) is not the one "
                f"registered for user {principal.name!r} ({principal.contract_id} digest "
                f"{principal.contract_digest}): register it again with `trellis user add "
                f"{principal.name} -c <contract> -k {principal.session_key}` (grants are kept)",
            )
        return JSONResponse(
            {
                "status": "ready",
                "serverNow": int(clock()),
                "connectInfo": connect_info(principal, "session_key"),
            }
        )

    return app


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
