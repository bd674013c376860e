"""Connecting a participant (service, CLI, app) to NATS through the auth callout.

Participants connect as the shared deny-all *sentinel* user and present a connect token;
the runtime's callout answers with a JWT scoped to their contract.  The token is computed
afresh on every (re)connect from a clock corrected to the server's (``serverNow`` from the
bootstrap), because the callout refuses an ``iat`` more than 30 s away from its own time.
The token also signs the nonce nats-server sent this connection (``nonceSig``), so a token
seen by anyone else cannot open another connection.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import nats
from nats.aio.client import Client as NatsClient

from trellis.auth import SessionKey, connect_token
from trellis.nats.creds import Creds, read_creds
from trellis.nats.nkey import NKeyPair

__all__ = ["ServerClock", "connect_participant"]

log = logging.getLogger("trellis.connection")

ErrorHook = Callable[[str], None]


class ServerClock:
    """Local time shifted by the offset measured against the server's ``serverNow``."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    @classmethod
    def from_server_now(cls, server_now: float, sent_at: float, received_at: float) -> ServerClock:
        return cls(server_now - (sent_at + received_at) / 2)

    def __call__(self) -> float:
        return time.time() + self.offset


async def connect_participant(
    servers: Sequence[str],
    key: SessionKey,
    contract_digest: str,
    *,
    sentinel_creds: Path | str | None = None,
    sentinel: tuple[str, str] | None = None,
    clock: Callable[[], float] = time.time,
    name: str | None = None,
    on_error: ErrorHook | None = None,
    max_reconnect_attempts: int = -1,
    connect_timeout: float = 5.0,
) -> NatsClient:
    """Connect with the sentinel credentials and a fresh connect token on every connect.

    ``sentinel`` is ``(jwt, seed)`` as handed out by the bootstrap endpoint;
    ``sentinel_creds`` a creds file.  NATS errors (permission violations among them) are
    passed to ``on_error`` as text; the connection stays up.
    """
    if sentinel is not None:
        creds = Creds(jwt=sentinel[0], seed=sentinel[1])
    elif sentinel_creds is not None:
        creds = read_creds(sentinel_creds)
    else:
        raise ValueError("sentinel credentials are required")
    sentinel_key = NKeyPair.from_seed(creds.seed)
    nonces: list[str] = []  # nats-py signs the server's nonce, then asks for the token

    def sign_nonce(nonce: str) -> bytes:
        nonces.append(nonce)
        return base64.b64encode(sentinel_key.sign(nonce.encode()))

    def sentinel_jwt() -> bytes:
        return creds.jwt.encode()

    def token() -> str:
        nonce = nonces.pop() if nonces else None
        nonces.clear()
        return connect_token(key, contract_digest, int(clock()), nonce=nonce)

    async def error_cb(error: Exception) -> None:
        text = str(error)
        if on_error is not None:
            on_error(text)
        if "permissions violation" in text.lower():
            log.warning("NATS refused an operation: %s", text)
        else:
            log.debug("NATS error: %s", text)

    async def disconnected_cb() -> None:
        log.info("disconnected from NATS; reconnecting")

    async def reconnected_cb() -> None:
        log.info("reconnected to NATS")

    callbacks: dict[str, Callable[..., Awaitable[None]]] = {
        "error_cb": error_cb,
        "disconnected_cb": disconnected_cb,
        "reconnected_cb": reconnected_cb,
    }
    # ``max_reconnect_attempts=0`` means "never reconnect": nats-py reads 0 as "retry the
    # first connect forever" (only a positive bound stops it), so a one-shot command whose
    # server is down would hang instead of failing
    one_shot = max_reconnect_attempts == 0
    return await nats.connect(
        list(servers),
        signature_cb=sign_nonce,
        user_jwt_cb=sentinel_jwt,
        token=token,
        inbox_prefix=key.inbox_prefix,
        name=name,
        max_reconnect_attempts=1 if one_shot else max_reconnect_attempts,
        reconnect_time_wait=0.5,
        connect_timeout=connect_timeout,
        allow_reconnect=not one_shot,
        **callbacks,
    )
