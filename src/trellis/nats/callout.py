"""Auth-callout claims: the server's ``authorization_request`` and our signed response.

nats-server sends a server-signed request JWT on ``$SYS.REQ.USER.AUTH``; the callout
answers with an ``authorization_response`` JWT that either wraps the user JWT it minted or
carries a reason code (PROTOCOL §5). Sealing both with xkeys is :mod:`.xkey`'s part.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

from trellis.nats.jwt import (
    JWT_VERSION,
    JwtError,
    UserLimits,
    UserPermissions,
    decode_jwt,
    encode_jwt,
    encode_user_jwt,
    opt_str,
    require_key,
)
from trellis.nats.nkey import KeyRole, NKeyPair, is_public_key

__all__ = [
    "AuthorizationRequest",
    "callout_deny",
    "callout_grant",
    "decode_authorization_request",
]

AUTHORIZATION_REQUEST_AUDIENCE: Final = "nats-authorization-request"


@dataclass(frozen=True)
class AuthorizationRequest:
    """The fields of a server-signed ``authorization_request`` the callout needs."""

    user_nkey: str
    server_id: str
    server_name: str | None
    server_xkey: str | None
    account: str | None
    client_info: dict[str, Any]
    connect_opts: dict[str, Any] = field(repr=False)
    auth_token: str | None = field(repr=False)
    issuer: str
    expires_at: int | None


def decode_authorization_request(token: str, *, now: float | None = None) -> AuthorizationRequest:
    """Verify and parse the (already unsealed) request JWT sent on ``$SYS.REQ.USER.AUTH``."""
    decoded = decode_jwt(
        token,
        expected_type="authorization_request",
        issuer_roles=(KeyRole.SERVER,),
        now=now,
    )
    if decoded.audience != AUTHORIZATION_REQUEST_AUDIENCE:
        raise JwtError("authorization request has the wrong audience")
    nats = decoded.nats
    user_nkey = nats.get("user_nkey")
    if not isinstance(user_nkey, str) or not is_public_key(user_nkey, KeyRole.USER):
        raise JwtError("authorization request has no valid user_nkey")
    server = nats.get("server_id")
    if not isinstance(server, dict) or not isinstance(server.get("id"), str) or not server["id"]:
        raise JwtError("authorization request has no server id")
    client_info = nats.get("client_info")
    connect_opts = nats.get("connect_opts")
    client_info = client_info if isinstance(client_info, dict) else {}
    connect_opts = connect_opts if isinstance(connect_opts, dict) else {}
    token_value = connect_opts.get("auth_token")
    exp = decoded.claims.get("exp")
    return AuthorizationRequest(
        user_nkey=user_nkey,
        server_id=server["id"],
        server_name=opt_str(server.get("name")),
        server_xkey=opt_str(server.get("xkey")),
        account=decoded.subject,
        client_info=client_info,
        connect_opts=connect_opts,
        auth_token=token_value if isinstance(token_value, str) and token_value else None,
        issuer=decoded.issuer,
        expires_at=exp if isinstance(exp, int) else None,
    )


def _response(
    request: AuthorizationRequest, signer: NKeyPair, issuer_account: str, answer: dict[str, str]
) -> str:
    """The signed ``authorization_response`` carrying ``answer`` (``jwt`` or ``error``)."""
    if signer.role is not KeyRole.ACCOUNT:
        raise JwtError("authorization response must be signed by an account (signing) key")
    nats: dict[str, Any] = {"type": "authorization_response", "version": JWT_VERSION, **answer}
    if issuer_account != signer.public_key:
        require_key(issuer_account, KeyRole.ACCOUNT)
        nats["issuer_account"] = issuer_account
    claims = {"sub": request.user_nkey, "aud": request.server_id, "nats": nats}
    return encode_jwt(claims, signer)


def callout_grant(
    request: AuthorizationRequest,
    *,
    user_signer: NKeyPair,
    target_account: str,
    response_signer: NKeyPair,
    callout_account: str,
    permissions: UserPermissions,
    limits: UserLimits | None = None,
    name: str | None = None,
    ttl_seconds: int = 3600,
    now: int | None = None,
) -> str:
    """Mint the user JWT for ``request`` and wrap it in a signed authorization response.

    ``user_signer`` is the target account's signing key (the user lands in
    ``target_account``); ``response_signer`` is the callout account's signing key.
    Returns the response JWT, ready to be sealed to ``request.server_xkey``.
    """
    issued = int(time.time()) if now is None else now
    user_jwt = encode_user_jwt(
        user_signer,
        request.user_nkey,
        issuer_account=target_account,
        name=name,
        permissions=permissions,
        limits=limits,
        audience=target_account,
        issued_at=issued,
        expires_at=issued + ttl_seconds,
    )
    return _response(request, response_signer, callout_account, {"jwt": user_jwt})


def callout_deny(
    request: AuthorizationRequest,
    *,
    response_signer: NKeyPair,
    callout_account: str,
    error: str,
) -> str:
    """A signed authorization response refusing ``request`` with reason code ``error``."""
    if not error:
        raise JwtError("a deny response needs a reason code")
    return _response(request, response_signer, callout_account, {"error": error})
