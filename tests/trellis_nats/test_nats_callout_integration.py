"""End to end against a real nats-server: bundle, auth callout, permissions, JetStream.

A minimal test-side callout responder (the real one lives in the runtime) answers
``$SYS.REQ.USER.AUTH`` with the bundle's callout creds, using only library functions
from ``trellis.nats``: open the sealed request, decode it, mint + wrap + seal a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from trellis.nats import settle
from trellis.nats.callout import (
    AuthorizationRequest,
    callout_deny,
    callout_grant,
    decode_authorization_request,
)
from trellis.nats.jwt import SubjectPermission, UserLimits, UserPermissions
from trellis.nats.nkey import KeyRole, is_public_key
from trellis.nats.server import NatsServer
from trellis.runtime.bundle import Bundle

Decision = UserPermissions | str  # permissions to grant, or a reason code to deny

DEMO_PERMISSIONS = UserPermissions(
    pub=SubjectPermission(allow=("demo.>",)),
    sub=SubjectPermission(allow=("demo.>", "_INBOX.>")),
    resp_max=1,
)


@dataclass
class Responder:
    requests: list[AuthorizationRequest] = field(default_factory=list)
    headers_seen: list[str] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)


@contextlib.asynccontextmanager
async def callout_responder(
    bundle: Bundle, decide: Callable[[AuthorizationRequest], Decision]
) -> AsyncIterator[Responder]:
    state = Responder()
    xkey = bundle.callout_xkey()
    auth_signing = bundle.auth_signing_key()
    trellis_signing = bundle.trellis_signing_key()
    settings = bundle.config.auth_callout

    async def handle(msg: Msg) -> None:
        try:
            server_xkey = (msg.headers or {}).get("Nats-Server-Xkey")
            assert server_xkey is not None, "callout request without Nats-Server-Xkey"
            state.headers_seen.append(server_xkey)
            request = decode_authorization_request(xkey.open(msg.data, server_xkey).decode())
            state.requests.append(request)
            decision = decide(request)
            if isinstance(decision, str):
                token = callout_deny(
                    request,
                    response_signer=auth_signing,
                    callout_account=settings.issuer_account,
                    error=decision,
                )
            else:
                token = callout_grant(
                    request,
                    user_signer=trellis_signing,
                    target_account=settings.target_account,
                    response_signer=auth_signing,
                    callout_account=settings.issuer_account,
                    permissions=decision,
                    limits=UserLimits(subs=1500, data=100_000_000, payload=-1),
                    name="integration-test",
                )
            await msg.respond(xkey.seal(token.encode(), server_xkey))
        except BaseException as exc:  # surfaced by the test, never swallowed
            state.failures.append(exc)
            raise

    nc = await nats.connect(bundle.nats_url, user_credentials=str(bundle.callout_creds))
    try:
        await nc.subscribe(settings.subject, queue=settings.queue, cb=handle)
        await settle(nc)
        yield state
    finally:
        await nc.close()


def token_decision(request: AuthorizationRequest) -> Decision:
    if request.auth_token == "allow-me":
        return DEMO_PERMISSIONS
    return "invalid_auth_token"


async def connect_sentinel(bundle: Bundle, token: str, errors: list[Exception]) -> Client:
    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    return await nats.connect(
        bundle.nats_url,
        user_credentials=str(bundle.sentinel_creds),
        token=token,
        error_cb=on_error,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=5,
    )


async def test_callout_grants_scoped_user_in_trellis(
    nats_bundle: Bundle, nats_bundle_server: NatsServer
) -> None:
    bundle = nats_bundle
    async with callout_responder(bundle, token_decision) as responder:
        errors: list[Exception] = []
        nc = await connect_sentinel(bundle, "allow-me", errors)
        # The runtime (direct TRELLIS login) sees what the callout-placed user publishes:
        # proof the user landed in TRELLIS, not AUTH.
        runtime = await nats.connect(bundle.nats_url, user_credentials=str(bundle.runtime_creds))
        try:
            # The server's request carried what the callout needs.
            assert len(responder.requests) == 1
            request = responder.requests[0]
            assert request.auth_token == "allow-me"
            assert is_public_key(request.user_nkey, KeyRole.USER)
            assert request.server_id == nc._server_info["server_id"]
            assert request.account == bundle.config.auth.public_key
            assert responder.headers_seen[0] == request.server_xkey
            assert responder.headers_seen[0].startswith("X")

            # Allowed publish/subscribe works.
            own = await nc.subscribe("demo.hello")
            seen_by_runtime = await runtime.subscribe("demo.>")
            await settle(runtime)
            await nc.publish("demo.hello", b"hi")
            await settle(nc)
            got = await own.next_msg(timeout=2)
            assert got.data == b"hi"
            got_runtime = await seen_by_runtime.next_msg(timeout=2)
            assert got_runtime.data == b"hi"

            # A subscription outside the allow list is a permissions violation.
            await nc.subscribe("secret.stuff")
            await settle(nc)
            for _ in range(50):
                if errors:
                    break
                await asyncio.sleep(0.05)
            messages = [str(e) for e in errors]
            assert any("permissions violation" in m.lower() for m in messages), messages
            assert any("secret.stuff" in m for m in messages), messages
            assert nc.is_connected  # a permissions violation does not close the connection

            # Publishing outside the allow list is dropped and reported too.
            errors.clear()
            forbidden = await runtime.subscribe("forbidden.x")
            await settle(runtime)
            await nc.publish("forbidden.x", b"no")
            await settle(nc)
            for _ in range(50):
                if errors:
                    break
                await asyncio.sleep(0.05)
            assert any("publish" in str(e).lower() for e in errors), errors
            with pytest.raises(nats.errors.TimeoutError):
                await forbidden.next_msg(timeout=0.3)
        finally:
            await nc.close()
            await runtime.close()
        assert responder.failures == []


async def test_callout_deny_fails_connection(
    nats_bundle: Bundle, nats_bundle_server: NatsServer
) -> None:
    bundle = nats_bundle
    async with callout_responder(bundle, token_decision) as responder:
        errors: list[Exception] = []
        # nats-py surfaces the server's -ERR as a plain nats.errors.Error on first connect.
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await connect_sentinel(bundle, "let-me-in-please", errors)
        assert [r.auth_token for r in responder.requests] == ["let-me-in-please"]
        assert responder.failures == []
    # The refusal came from our signed, sealed deny response (not from a timeout). The
    # server writes the reason to its log on its own schedule: the client can see the
    # refusal first, so poll the log a little rather than read it once.
    log_file = bundle.path(bundle.config.log_file)
    for _ in range(100):
        if "invalid_auth_token" in log_file.read_text():
            break
        await asyncio.sleep(0.05)
    assert "invalid_auth_token" in log_file.read_text()


async def test_sentinel_without_callout_answer_is_refused(
    nats_bundle: Bundle, nats_bundle_server: NatsServer
) -> None:
    # Nobody answers the callout: the sentinel alone never gets in.
    errors: list[Exception] = []
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await connect_sentinel(nats_bundle, "allow-me", errors)


async def test_runtime_creds_have_jetstream(
    nats_bundle: Bundle, nats_bundle_server: NatsServer
) -> None:
    nc = await nats.connect(nats_bundle.nats_url, user_credentials=str(nats_bundle.runtime_creds))
    try:
        js = nc.jetstream()
        kv = await js.create_key_value(bucket="trellis_bundle_test", history=1)
        revision = await kv.put("greeting", b"hello")
        entry = await kv.get("greeting")
        assert entry.value == b"hello"
        assert entry.revision == revision
        info = await js.account_info()
        assert info.streams >= 1
    finally:
        await nc.close()


async def test_system_creds_reach_system_account(
    nats_bundle: Bundle, nats_bundle_server: NatsServer
) -> None:
    nc = await nats.connect(nats_bundle.nats_url, user_credentials=str(nats_bundle.system_creds))
    try:
        reply = await nc.request("$SYS.REQ.SERVER.PING", b"", timeout=2)
        assert b"server_id" in reply.data or b'"server"' in reply.data
    finally:
        await nc.close()
