"""The HTTP bootstrap a service does before connecting (``POST /bootstrap/service``)."""

from __future__ import annotations

import time
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from trellis.auth import DOMAIN_NATS_CONNECT, SessionKey
from trellis.connection import ServerClock
from trellis.result import AuthError, Err, Ok, Result, TransportError

__all__ = ["BootstrapInfo", "bootstrap_service"]


class BootstrapInfo(BaseModel):
    """What the runtime tells an installed service at startup."""

    model_config = ConfigDict(populate_by_name=True)

    server_now: int = Field(alias="serverNow")
    nats_servers: list[str]
    sentinel_jwt: str = Field(repr=False)
    sentinel_seed: str = Field(repr=False)
    deployment: str
    contract_id: str
    contract_digest: str
    resources: dict[str, Any]
    clock_offset: float = 0.0

    def clock(self) -> ServerClock:
        return ServerClock(self.clock_offset)


async def bootstrap_service(
    trellis_url: str,
    key: SessionKey,
    contract_id: str,
    contract_digest: str,
    *,
    timeout: float = 10.0,
) -> Result[BootstrapInfo, AuthError | TransportError]:
    """Ask the runtime for connect info; retries once with the server's time on clock skew."""
    offset = 0.0
    async with httpx.AsyncClient(base_url=trellis_url.rstrip("/"), timeout=timeout) as http:
        for _attempt in range(2):
            iat = int(time.time() + offset)
            body = {
                "sessionKey": key.public_key,
                "contractId": contract_id,
                "contractDigest": contract_digest,
                "iat": iat,
                "sig": key.sign_domain(DOMAIN_NATS_CONNECT, f"{iat}:{contract_digest}"),
            }
            sent = time.time()
            try:
                response = await http.post("/bootstrap/service", json=body)
            except httpx.HTTPError as exc:
                return Err(
                    TransportError(
                        f"cannot reach the Trellis runtime at {trellis_url}: {exc}",
                        code="trellis.request.unavailable",
                    )
                )
            received = time.time()
            try:
                data = response.json()
            except ValueError:
                return Err(
                    TransportError(
                        "the bootstrap reply is not JSON", code="trellis.request.invalid_response"
                    )
                )
            if isinstance(data.get("serverNow"), int):
                offset = ServerClock.from_server_now(data["serverNow"], sent, received).offset
            if response.status_code == 200 and data.get("status") == "ready":
                info = data["connectInfo"]
                return Ok(
                    BootstrapInfo(
                        server_now=data["serverNow"],
                        nats_servers=info["transports"]["native"]["natsServers"],
                        sentinel_jwt=info["transport"]["sentinel"]["jwt"],
                        sentinel_seed=info["transport"]["sentinel"]["seed"],
                        deployment=info.get("deployment", ""),
                        contract_id=info["contractId"],
                        contract_digest=info["contractDigest"],
                        resources=data["binding"].get("resources") or {},
                        clock_offset=offset,
                    )
                )
            reason = data.get("reason", f"http_{response.status_code}")
            if reason == "iat_out_of_range":
                continue
            return Err(AuthError(data.get("message") or reason, reason=reason))
    return Err(
        AuthError("the service clock is too far from the runtime's", reason="iat_out_of_range")
    )
