"""The NATS auth callout: every participant connection is decided here (PROTOCOL §5).

The server hands each sentinel connection to ``$SYS.REQ.USER.AUTH``, sealed to our xkey.  We
open it, check the connect token (fresh ``iat``, signature bound to the presented contract
digest), find the principal of the session key, derive its permissions from the installed
contract and answer with a user JWT scoped to exactly that — or with a signed refusal
carrying the reason code.  A JWT is only ever minted from a complete derivation; any
unexpected failure is logged and refused as ``internal_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from trellis.auth import (
    IAT_SKEW_SECONDS,
    ConnectToken,
    ConnectTokenError,
    parse_connect_token,
    verify_connect_token,
)
from trellis.logs import ThrottledLog
from trellis.nats import settle
from trellis.nats.callout import (
    AuthorizationRequest,
    callout_deny,
    callout_grant,
    decode_authorization_request,
)
from trellis.nats.jwt import JwtError, SubjectPermission, UserLimits, UserPermissions
from trellis.nats.xkey import XKeyError
from trellis.principals import PRINCIPALS_BUCKET, Principal
from trellis.runtime.bundle import Bundle
from trellis.runtime.permissions import (
    DerivedPermissions,
    PermissionDerivationError,
    ServiceBindings,
    derive_service_permissions,
    derive_user_permissions,
)
from trellis.runtime.state import ControlPlane

__all__ = ["CalloutDecision", "CalloutService", "platform_service_grants"]

log = logging.getLogger("trellis.runtime.callout")

JWT_TTL_SECONDS = 3600
#: upstream's per-user limits, kept on the wire for parity; nats-server does not enforce a
#: callout user's JWT limits (it builds the user from the permissions alone): the TRELLIS
#: account's limits (``RuntimeConfig.limits``) are what bound each connection
LIMITS = UserLimits(subs=1500, data=100_000_000, payload=-1)


def platform_service_grants() -> tuple[str, ...]:
    """Read-only access to the principals bucket, so services resolve callers locally: no
    consumer deletion (that would let a service delete the runtime's and other services'
    watch consumers, blinding them to revocations)."""
    stream = f"KV_{PRINCIPALS_BUCKET}"
    return (
        "$JS.API.INFO",
        f"$JS.API.STREAM.INFO.{stream}",
        # unnamed creates only (nats-py's ordered watch consumer): a create naming an
        # existing consumer would redefine the runtime's or another service's watch
        f"$JS.API.CONSUMER.CREATE.{stream}",
        # nats-py's KV watcher asks for its ordered consumer's info right after creating it
        f"$JS.API.CONSUMER.INFO.{stream}.>",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.FC.{stream}.>",
    )


@dataclass(frozen=True, slots=True)
class CalloutDecision:
    """The outcome for one connection: permissions and principal, or a reason code."""

    reason: str | None
    principal: Principal | None = None
    permissions: DerivedPermissions | None = None


ConnectHook = Callable[[AuthorizationRequest, Principal], Awaitable[None]]


class UsedTokens:
    """Connect tokens already presented, each kept until its ``iat`` leaves the window.

    A token is signed over its ``iat`` and contract digest alone, so whoever sees one (a
    proxy, a server log) could otherwise open connections with it for 30 s.  A token bound
    to its connection's nonce (``nonceSig``, what our clients send) is fresh by construction;
    one without (upstream's clients) is admitted once.  Per runtime process: a replica does
    not see another's tokens.
    """

    def __init__(self, limit: int = 1_000_000) -> None:
        self._until: dict[tuple[str, str], float] = {}  # insertion order ~ expiry order
        self._limit = limit

    def replayed(self, token: ConnectToken, *, nonce_bound: bool, now: float) -> bool:
        """Whether ``token``, not bound to its connection's nonce, was admitted before."""
        while self._until:
            oldest = next(iter(self._until))
            if self._until[oldest] >= now and len(self._until) < self._limit:
                break
            del self._until[oldest]
        return not nonce_bound and (token.session_key, token.sig) in self._until

    def admitted(self, token: ConnectToken) -> None:
        """Remember an admitted token (a nonce-bound one too: stripped of its ``nonceSig``,
        the plain token inside it is then refused)."""
        self._until.setdefault((token.session_key, token.sig), token.iat + IAT_SKEW_SECONDS + 1)

    def __len__(self) -> int:
        return len(self._until)


class CalloutService:
    """Answers ``$SYS.REQ.USER.AUTH`` in queue group ``trellis`` (replicas share the load)."""

    def __init__(
        self,
        bundle: Bundle,
        cp: ControlPlane,
        *,
        on_connect: ConnectHook | None = None,
        max_inflight: int = 32,
        max_waiting: int = 256,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings = bundle.config.auth_callout
        self._subject = settings.subject
        self._queue = settings.queue
        self._xkey = bundle.callout_xkey()
        self._user_signer = bundle.trellis_signing_key()
        self._response_signer = bundle.auth_signing_key()
        self._target_account = settings.target_account
        self._callout_account = settings.issuer_account
        self._cp = cp
        self._on_connect = on_connect
        self._semaphore = asyncio.Semaphore(max_inflight)
        #: connects held at once (deciding plus waiting); beyond it: ``rate_limited``
        self.capacity = max_inflight + max_waiting
        self._pending = 0
        self._clock = clock
        self._sub: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.decisions: dict[str, int] = {}
        self.used_tokens = UsedTokens()
        #: anyone can make the callout refuse: its warnings are bounded (counts: decisions)
        self._refusals = ThrottledLog(log)

    async def start(self, nc: NatsClient) -> None:
        self._nc = nc
        self._sub = await nc.subscribe(self._subject, queue=self._queue, cb=self._on_message)
        await settle(nc)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await self._sub.unsubscribe()
            self._sub = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)

    async def _on_message(self, msg: Msg) -> None:
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        server_xkey = (msg.headers or {}).get("Nats-Server-Xkey")
        if not server_xkey or not msg.reply:
            log.warning("callout request without Nats-Server-Xkey; ignored (xkey is mandatory)")
            return
        try:
            request = decode_authorization_request(self._xkey.open(msg.data, server_xkey).decode())
        except (XKeyError, JwtError, UnicodeDecodeError) as exc:
            self._refusals.warning("unreadable callout request refused: %s", exc)
            return
        self._pending += 1
        try:
            if self._pending > self.capacity:
                decision = CalloutDecision("rate_limited")
            else:
                async with self._semaphore:
                    decision = await self._decide_safely(request)
            token = self._respond(request, decision)
            await msg.respond(self._xkey.seal(token.encode(), server_xkey))
        except Exception:
            log.exception("could not answer a callout request")
            return
        finally:
            self._pending -= 1
        reason = decision.reason or "ok"
        self.decisions[reason] = self.decisions.get(reason, 0) + 1
        if decision.reason is None and decision.principal is not None:
            log.info(
                "connected %s %s (%s)",
                decision.principal.kind,
                decision.principal.name,
                request.user_nkey,
            )
            if self._on_connect is not None:
                try:
                    await self._on_connect(request, decision.principal)
                except Exception:
                    log.exception("connection tracking failed")
        else:
            client = request.client_info
            self._refusals.warning(
                "refused connection from %s (client %s): %s",
                client.get("host") or client.get("ip") or "?",
                client.get("id", "?"),
                decision.reason,
            )

    def _respond(self, request: AuthorizationRequest, decision: CalloutDecision) -> str:
        if (
            decision.reason is not None
            or decision.permissions is None
            or decision.principal is None
        ):
            return callout_deny(
                request,
                response_signer=self._response_signer,
                callout_account=self._callout_account,
                error=decision.reason or "internal_error",
            )
        perms = decision.permissions
        return callout_grant(
            request,
            user_signer=self._user_signer,
            target_account=self._target_account,
            response_signer=self._response_signer,
            callout_account=self._callout_account,
            permissions=UserPermissions(
                pub=SubjectPermission(allow=perms.publish),
                sub=SubjectPermission(allow=perms.subscribe),
                resp_max=perms.resp_max,
            ),
            limits=LIMITS,
            name=decision.principal.name,
            ttl_seconds=JWT_TTL_SECONDS,
        )

    async def _decide_safely(self, request: AuthorizationRequest) -> CalloutDecision:
        try:
            return await self.decide(request.auth_token, nonce=request.client_info.get("nonce"))
        except Exception:
            log.exception("callout decision failed")
            return CalloutDecision("internal_error")

    async def decide(self, raw_token: str | None, *, nonce: object = None) -> CalloutDecision:
        """The whole decision for one connect token presented on a connection that nats-server
        sent ``nonce`` (pure apart from state reads and the used-token record)."""
        try:
            token = parse_connect_token(raw_token)
        except ConnectTokenError as exc:
            return CalloutDecision(exc.reason)
        now = self._clock()
        reason = verify_connect_token(token, now)
        if reason is not None:
            return CalloutDecision(reason)
        nonce_bound = token.nonce_sig is not None
        if nonce_bound and not token.bound_to(nonce if isinstance(nonce, str) else None):
            return CalloutDecision("invalid_signature")
        if self.used_tokens.replayed(token, nonce_bound=nonce_bound, now=now):
            return CalloutDecision("token_replayed")
        principal = await self._cp.principals.get(token.session_key)
        if principal is None:
            return CalloutDecision("session_not_found")
        if principal.disabled:
            return CalloutDecision(
                "service_disabled" if principal.kind == "service" else "user_inactive"
            )
        if token.contract_digest != principal.contract_digest:
            return CalloutDecision("contract_changed")
        manifest = await self._cp.manifest(principal.contract_digest)
        if manifest is None:
            return CalloutDecision("contract_changed")
        active = await self._cp.active_manifests()
        try:
            if principal.kind == "service":
                bindings = await self._cp.bindings.get(principal.name) or ServiceBindings()
                derived = derive_service_permissions(
                    manifest,
                    active,
                    capabilities=principal.capabilities,
                    session_key=principal.session_key,
                    bindings=bindings,
                )
                derived = dataclasses.replace(
                    derived, publish=tuple(sorted({*derived.publish, *platform_service_grants()}))
                )
            else:
                # never refused for capabilities: what the user lacks is left out of the
                # grants (events) or refused by the handler at each call (RPCs, live grants)
                derived = derive_user_permissions(
                    manifest,
                    active,
                    capabilities=principal.capabilities,
                    session_key=principal.session_key,
                    rpc_checked_by_handler=True,
                )
        except PermissionDerivationError as exc:
            log.warning("permission derivation for %s failed: %s", principal.name, exc)
            return CalloutDecision(
                "contract_changed"
                if exc.reason == "missing_required_contract"
                else "internal_error"
            )
        # checked again with no await in between: of two connects presenting the same
        # plain token at once, one is admitted
        if self.used_tokens.replayed(token, nonce_bound=nonce_bound, now=now):
            return CalloutDecision("token_replayed")
        self.used_tokens.admitted(token)
        return CalloutDecision(None, principal, derived)
