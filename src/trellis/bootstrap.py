"""Starting a participant: the signed HTTP bootstrap (``POST /bootstrap/service`` or
``/bootstrap/client``) that hands out NATS URLs, sentinel credentials and resource
bindings, then the NATS connection through the auth callout.  Failures raise
:class:`ConnectError`, whose ``reason`` says which step refused and why.

The replies are upstream's (see ``trellis.runtime.http``): ``ready``, or HTTP 200
``auth_required`` / ``not_ready``, or a non-2xx refusal with a ``reason``; so this client
also starts against an upstream runtime."""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client as NatsClient
from pydantic import BaseModel, ConfigDict, Field

from trellis.auth import DOMAIN_BOOTSTRAP_CLIENT, DOMAIN_NATS_CONNECT, SessionKey
from trellis.bindings import ContractResourceBindings
from trellis.calls import RpcClient
from trellis.connection import ServerClock, connect_participant
from trellis.result import AuthError, Err, Ok, Result, TransportError, TrellisError

__all__ = [
    "BootstrapInfo",
    "ConnectError",
    "ErrorRelay",
    "bootstrap",
    "client_bootstrap_body",
    "connect_nats",
    "load_session_key",
    "service_bootstrap_body",
    "start_session",
]


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
    #: the service's resource bindings (empty for clients)
    resources: ContractResourceBindings = Field(default_factory=ContractResourceBindings)
    clock_offset: float = 0.0

    def clock(self) -> ServerClock:
        return ServerClock(self.clock_offset)


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: httpx would load every CA certificate (0.1-0.4 s) for each
    client it creates, that is on every connect."""
    return httpx.create_ssl_context()


async def _signed_bootstrap(
    trellis_url: str,
    path: str,
    signed_body: Callable[[int], dict[str, Any]],
    timeout: float,
) -> Result[tuple[dict[str, Any], float], AuthError | TransportError]:
    """POST a body signed over ``iat``; on ``iat_out_of_range`` retry once with the server's
    time (``serverNow``), on ``rate_limited`` (429) after its ``Retry-After`` while
    ``timeout`` allows.  Returns the ready reply and the measured clock offset."""
    offset = 0.0
    base_url = trellis_url.rstrip("/")
    give_up = time.monotonic() + timeout
    clock_retried = False
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, verify=_tls()) as http:
        while True:
            sent = time.time()
            try:
                response = await http.post(path, json=signed_body(int(sent + offset)))
            except httpx.HTTPError as exc:
                return Err(
                    TransportError(
                        f"cannot reach the Trellis runtime at {trellis_url}: {exc}",
                        reason="runtime_unreachable",
                    )
                )
            received = time.time()
            try:
                data = response.json()
            except ValueError:
                return Err(
                    TransportError("the bootstrap reply is not JSON", reason="invalid_response")
                )
            if isinstance(data.get("serverNow"), int):
                offset = ServerClock.from_server_now(data["serverNow"], sent, received).offset
            status = data.get("status") if response.status_code == 200 else None
            if status == "ready":
                return Ok((data, offset))
            # ``auth_required`` / ``not_ready`` (HTTP 200) or a refusal: its reason says why
            reason = data.get("reason") or status or f"http_{response.status_code}"
            if reason == "rate_limited":
                wait = _retry_after(response)
                if time.monotonic() + wait < give_up:
                    await asyncio.sleep(wait)
                    continue
            elif reason == "iat_out_of_range" and not clock_retried:
                clock_retried = True
                continue
            if reason == "iat_out_of_range":
                return Err(
                    AuthError("this clock is too far from the runtime's", reason="iat_out_of_range")
                )
            return Err(AuthError(data.get("message") or reason, reason=reason))


def _retry_after(response: httpx.Response) -> float:
    """The seconds a 429 asks to wait (1 when it does not say, at most 10)."""
    try:
        return min(10.0, max(0.0, float(response.headers.get("retry-after", "1"))))
    except ValueError:
        return 1.0


def _info(data: dict[str, Any], offset: float) -> BootstrapInfo:
    info = data["connectInfo"]
    return BootstrapInfo(
        server_now=data["serverNow"],
        nats_servers=info["transports"]["native"]["natsServers"],
        sentinel_jwt=info["transport"]["sentinel"]["jwt"],
        sentinel_seed=info["transport"]["sentinel"]["seed"],
        deployment=info.get("deployment", ""),
        contract_id=info["contractId"],
        contract_digest=info["contractDigest"],
        resources=ContractResourceBindings.model_validate(
            (data.get("binding") or {}).get("resources") or {}
        ),
        clock_offset=offset,
    )


def client_bootstrap_body(key: SessionKey, contract_digest: str, iat: int) -> dict[str, Any]:
    """``POST /bootstrap/client``: upstream's ``{sessionKey, iat, sig}`` (``bootstrap-client``
    over ``iat``) and the digest of the contract this client was built with, so a runtime
    of ours can tell a stale registration from a stale client."""
    return {
        "sessionKey": key.public_key,
        "contractDigest": contract_digest,
        "iat": iat,
        "sig": key.sign_domain(DOMAIN_BOOTSTRAP_CLIENT, str(iat)),
    }


def service_bootstrap_body(
    key: SessionKey, contract_id: str, contract_digest: str, iat: int
) -> dict[str, Any]:
    """``POST /bootstrap/service``, signed like the connect token (``nats-connect``)."""
    return {
        "sessionKey": key.public_key,
        "contractId": contract_id,
        "contractDigest": contract_digest,
        "iat": iat,
        "sig": key.sign_domain(DOMAIN_NATS_CONNECT, f"{iat}:{contract_digest}"),
    }


async def bootstrap(
    trellis_url: str,
    key: SessionKey,
    contract_digest: str,
    *,
    service_contract: str | None = None,
    timeout: float = 10.0,
) -> Result[BootstrapInfo, AuthError | TransportError]:
    """``POST /bootstrap/service`` when ``service_contract`` (the installed contract's id)
    is given, signed like the connect token (``nats-connect``); else ``POST
    /bootstrap/client``, signed with ``bootstrap-client`` over ``iat``."""

    def body(iat: int) -> dict[str, Any]:
        if service_contract is None:
            return client_bootstrap_body(key, contract_digest, iat)
        return service_bootstrap_body(key, service_contract, contract_digest, iat)

    path = "/bootstrap/client" if service_contract is None else "/bootstrap/service"
    booted = await _signed_bootstrap(trellis_url, path, body, timeout)
    if isinstance(booted, Err):
        return booted
    try:
        info = _info(*booted.value)
    except (KeyError, TypeError, ValueError) as exc:
        # never the reply's values in the message: it carries the sentinel seed
        detail = f"no {exc}" if isinstance(exc, KeyError) else "a field has the wrong shape"
        return Err(
            TransportError(f"the bootstrap reply is malformed: {detail}", reason="invalid_response")
        )
    if info.contract_digest != contract_digest:
        # an upstream runtime answers with the contract registered for the key, whatever
        # this participant was built with
        return Err(
            AuthError(
                f"this key is registered with {info.contract_id} digest "
                f"{info.contract_digest}, not this participant's contract ({contract_digest})",
                reason="contract_changed",
            )
        )
    return Ok(info)


async def start_session(
    trellis_url: str,
    key: SessionKey,
    contract_digest: str,
    *,
    service_contract: str | None = None,
    timeout: float = 10.0,
) -> tuple[BootstrapInfo, NatsClient, ErrorRelay]:
    """Bootstrap, then connect through the callout: what every participant does to start.
    Raises ``ConnectError``."""
    booted = await bootstrap(
        trellis_url, key, contract_digest, service_contract=service_contract, timeout=timeout
    )
    if isinstance(booted, Err):
        raise ConnectError(booted.error)
    info = booted.value
    name = f"{info.deployment}:{key.public_key[:8]}" if service_contract else None
    nc, relay = await connect_nats(
        info.nats_servers,
        key,
        contract_digest,
        sentinel=(info.sentinel_jwt, info.sentinel_seed),
        clock=info.clock(),
        name=name,
    )
    return info, nc, relay


class ErrorRelay:
    """Forwards NATS async errors to an RPC client set once it exists, so a permission
    violation fails the pending calls at once instead of letting them time out."""

    def __init__(self) -> None:
        self.client: RpcClient | None = None

    def __call__(self, text: str) -> None:
        if self.client is not None:
            self.client.on_nats_error(text)


async def connect_nats(
    servers: list[str],
    key: SessionKey,
    contract_digest: str,
    *,
    sentinel: tuple[str, str] | None = None,
    sentinel_creds: Path | str | None = None,
    clock: Callable[[], float] = time.time,
    name: str | None = None,
    reconnect: bool = True,
    connect_timeout: float = 5.0,
) -> tuple[NatsClient, ErrorRelay]:
    """The NATS connection of a participant, NATS errors relayed to its RPC client once it
    exists; raises ``ConnectError``.  ``reconnect=False`` suits one-shot commands."""
    relay = ErrorRelay()
    try:
        nc = await connect_participant(
            servers,
            key,
            contract_digest,
            sentinel=sentinel,
            sentinel_creds=sentinel_creds,
            clock=clock,
            name=name,
            on_error=relay,
            max_reconnect_attempts=-1 if reconnect else 0,
            connect_timeout=connect_timeout,
        )
    except Exception as exc:
        raise ConnectError(_nats_refusal(exc, servers)) from exc
    return nc, relay


def _nats_refusal(exc: Exception, servers: list[str]) -> TrellisError:
    """Tell a refused admission (the callout said no) from a server that cannot be reached."""
    text = str(exc)
    if "authorization violation" in text.lower():
        return AuthError(
            "NATS refused the connection: the auth callout did not admit this session "
            "(the runtime's log says why)",
            reason="nats_auth_refused",
        )
    return TransportError(
        f"cannot reach NATS at {', '.join(servers)}: {text or type(exc).__name__}",
        reason="nats_unreachable",
    )


class ConnectError(Exception):
    """Starting a participant failed.

    ``error`` is the typed cause (``AuthError`` when something refused the session,
    ``TransportError`` when something could not be reached) and ``reason`` its code:
    the runtime's refusal codes (``unknown_service``, ``contract_changed``,
    ``session_not_found``, ``iat_out_of_range``, ...), ``runtime_unreachable``,
    ``invalid_response``, ``nats_unreachable`` or ``nats_auth_refused``.
    """

    def __init__(self, error: TrellisError) -> None:
        super().__init__(str(error))
        self.error = error

    @property
    def reason(self) -> str:
        return self.error.reason


def load_session_key(source: SessionKey | str | Path) -> SessionKey:
    """A ``SessionKey``, the path of a seed file (0600), or ``env:VAR`` naming an environment
    variable that holds the seed (never a seed in argv).  Raises ``ConnectError``."""
    if isinstance(source, SessionKey):
        return source
    text = str(source)
    if not text.startswith("env:"):
        return SessionKey.load(text)
    value = os.environ.get(text[4:])
    if not value:
        raise ConnectError(
            AuthError(f"environment variable {text[4:]} is not set", reason="missing_session_key")
        )
    return SessionKey.from_seed(value)
