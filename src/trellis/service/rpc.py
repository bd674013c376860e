"""Serving RPCs: the handler side of PROTOCOL §6.

One request, in order: check the reply subject belongs to the caller's inbox (else drop it
unanswered; a request without a ``session-key`` is answered ``missing_session_key`` only
when its reply lies in some session's inbox, see docs/protocol.md), answer a missing
``proof`` with ``missing_proof``, refuse it at once with
``TransportError(trellis.request.unavailable)`` if the server already holds
``max_pending`` requests (waiting plus running), then, in a task of its own: check ``iat``
freshness, verify the proof over the body actually received (inline:
handing one Ed25519 verify elsewhere costs more than it saves, see bench/README.md), refuse
a replayed request id, resolve the caller (local cache, no round trip), check the method's
``capabilities.call``, validate the input into its model, run the handler under the
``max_concurrency`` gate, and reply with the output JSON or the error envelope.  A handler
that raises is logged with its trace and answered as ``UnexpectedError``: a caller never
waits for a timeout because a handler failed.

Why the bound and the missing-header answers sit in front of the task: a flood must cost
the service a header check and a canned reply per request, not a task, a verification and
memory that grows with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from trellis.auth import iat_in_window, inbox_prefix, rpc_proof_digest
from trellis.auth.keys import KeyFormatError, in_a_session_inbox, verify_signature
from trellis.contracts import Contract
from trellis.nats import settle
from trellis.principals import Principal
from trellis.result import (
    AuthError,
    Err,
    Ok,
    TransportError,
    TrellisError,
    UnexpectedError,
    ValidationFailed,
)
from trellis.wire import (
    HEADER_IAT,
    HEADER_PROOF,
    HEADER_REQUEST_ID,
    HEADER_SESSION_KEY,
    HEADER_TRACEPARENT,
    dump_payload,
    error_reply,
)

__all__ = ["Handler", "PrincipalLookup", "ReplayGuard", "RequestContext", "RpcServer"]

log = logging.getLogger("trellis.service")

#: answers given before any task or verification, each encoded once (one error id each)
_BUSY = error_reply(
    TransportError(
        "the service is at its request bound; retry later", reason="trellis.request.unavailable"
    )
)
_MISSING_SESSION_KEY = error_reply(
    AuthError("missing session-key header", reason="missing_session_key")
)
_MISSING_PROOF = error_reply(AuthError("missing proof header", reason="missing_proof"))


class PrincipalLookup(Protocol):
    def get(self, session_key: str) -> Principal | None: ...


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a handler knows about the request besides its input."""

    method: str
    subject: str
    principal: Principal
    request_id: str
    headers: Mapping[str, str]
    traceparent: str | None = None

    @property
    def caller(self) -> str:
        return self.principal.name


Handler = Callable[[Any, RequestContext], Awaitable[Any]]


class ReplayGuard:
    """Remembers (session key, request id) pairs for the ``iat`` window and refuses repeats.

    Every pair is kept ``window`` seconds from its first use, so pairs expire in the order
    they came and forgetting is a pop from the old end: a constant cost per request, where
    rebuilding the whole table every few seconds stalled the loop for as long as the table
    was big (a million pairs: about 0.4 s).
    """

    def __init__(self, window: float = 60.0) -> None:
        self._window = window
        #: session key + request id (a session key is 43 characters: never ambiguous)
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_use(self, session_key: str, request_id: str, now: float) -> bool:
        seen = self._seen
        while seen:
            oldest = next(iter(seen))
            if seen[oldest] > now:
                break
            del seen[oldest]
        key = session_key + request_id
        if key in seen:
            return False
        seen[key] = now + self._window
        return True


@dataclass
class _Method:
    name: str
    subject: str
    input: type[BaseModel]
    output: type[BaseModel]
    required: tuple[str, ...]
    handler: Handler | None = None
    inflight: set[asyncio.Task[None]] = field(default_factory=set)


class RpcServer:
    """Serves a contract's RPCs on a NATS connection, in a queue group per method."""

    def __init__(
        self,
        nc: NatsClient,
        contract: Contract,
        principals: PrincipalLookup,
        *,
        queue: str | None = None,
        max_concurrency: int = 64,
        max_pending: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``max_concurrency`` handlers run at once; at most ``max_pending`` requests (by
        default 4 x ``max_concurrency``) are held, waiting plus running."""
        self._nc = nc
        self._contract = contract
        self._principals = principals
        self._queue = queue or contract.id
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        # a plain semaphore: the pending bound keeps its waiter list short
        self._gate = asyncio.Semaphore(max_concurrency)
        self.max_pending = 4 * max_concurrency if max_pending is None else max_pending
        if self.max_pending < max_concurrency:
            raise ValueError(
                f"max_pending ({self.max_pending}) must be at least max_concurrency "
                f"({max_concurrency})"
            )
        #: the most requests held at once so far, and how many were refused for the bound
        self.peak_pending = 0
        self.refused = 0
        self._clock = clock
        self._replay = ReplayGuard()
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._methods: dict[str, _Method] = {}
        self._declared_errors: dict[str, dict[str, type[TrellisError]]] = {}
        for name, spec in contract.rpc.items():
            surface = contract.model.rpc[name]
            self._methods[name] = _Method(
                name,
                surface.subject,
                spec.input,
                spec.output,
                tuple(surface.capabilities.call),
            )
            self._declared_errors[name] = {e.type: e for e in spec.errors}

    def handler(self, name: str) -> Callable[[Handler], Handler]:
        """Decorator mounting ``func(input, ctx)`` as the handler of RPC ``name``."""
        if name not in self._methods:
            raise KeyError(f"{self._contract.id} declares no RPC {name!r}")

        def mount(func: Handler) -> Handler:
            self._methods[name].handler = func
            return func

        return mount

    def mount(self, name: str, func: Handler) -> None:
        self.handler(name)(func)

    @property
    def inflight(self) -> int:
        """Requests held now, waiting for the gate or running."""
        return len(self._tasks)

    async def start(self) -> None:
        for method in self._methods.values():
            if method.handler is None:
                continue
            sub = await self._nc.subscribe(
                method.subject, queue=self._queue, cb=self._dispatcher(method)
            )
            self._subs.append(sub)
        await settle(self._nc)  # serving once start() returns

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop taking requests, then let in-flight handlers finish (up to ``drain_timeout``)."""
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection may already be gone
                log.debug("unsubscribe failed during stop", exc_info=True)
        self._subs.clear()
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=drain_timeout)
            for task in pending:
                task.cancel()

    def _dispatcher(self, method: _Method) -> Callable[[Msg], Awaitable[None]]:
        async def on_message(msg: Msg) -> None:
            headers = msg.headers
            session_key = headers.get(HEADER_SESSION_KEY) if headers else None
            reply = msg.reply
            if not session_key and reply and in_a_session_inbox(reply):
                await self._refuse(reply, _MISSING_SESSION_KEY, method)
                return
            if not _in_inbox_of(session_key, reply):
                # NATS checks the right to publish a request but not its reply subject, and
                # the responder may publish once to whatever reply it got: answering anything
                # else would let a caller make this service write into KV, events, inboxes...
                log.warning(
                    "dropped a request to %s: its reply subject is not the caller's inbox",
                    msg.subject,
                )
                return
            assert headers is not None  # a session key came in them
            if not headers.get(HEADER_PROOF):
                await self._refuse(reply, _MISSING_PROOF, method)
                return
            if len(self._tasks) >= self.max_pending:
                self.refused += 1
                await self._refuse(reply, _BUSY, method)
                return
            task = asyncio.create_task(self._serve(method, msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self.peak_pending = max(self.peak_pending, len(self._tasks))

        return on_message

    async def _refuse(
        self, reply: str, answer: tuple[bytes, dict[str, str]], method: _Method
    ) -> None:
        """Publish one of the canned error answers."""
        try:
            await self._nc.publish(reply, answer[0], headers=answer[1])
        except Exception:  # the caller may be gone; nothing to answer
            log.debug("could not refuse a request to %s", method.name, exc_info=True)

    async def _serve(self, method: _Method, msg: Msg) -> None:
        await self._gate.acquire()
        try:
            try:
                result = await self._handle(method, msg)
            except Exception:
                log.exception("handler for %s failed", method.name)
                result = Err(UnexpectedError("the handler failed unexpectedly"))
            try:
                if isinstance(result, Ok):
                    # publish, not msg.respond(): respond() would echo the request's headers
                    # (session key, proof, ...) back; the success reply is just the output JSON
                    await self._nc.publish(msg.reply, dump_payload(result.value))
                else:
                    body, headers = error_reply(result.error)
                    await self._nc.publish(msg.reply, body, headers=headers)
            except Exception:  # the caller may be gone; nothing to answer
                log.debug("could not reply to %s", method.name, exc_info=True)
        finally:
            self._gate.release()

    async def _handle(self, method: _Method, msg: Msg) -> Ok[Any] | Err[TrellisError]:
        # on_message checked both headers are there, and the key's inbox holds the reply
        headers: Mapping[str, str] = msg.headers or {}
        session_key = headers[HEADER_SESSION_KEY]
        proof = headers[HEADER_PROOF]
        request_id = headers.get(HEADER_REQUEST_ID)
        iat: int | None
        try:
            iat = int(headers.get(HEADER_IAT, ""))
        except ValueError:
            iat = None
        if iat is None or not request_id:
            return Err(AuthError("iat or request-id missing", reason="invalid_signature"))
        now = self._clock()
        if not iat_in_window(iat, now):
            return Err(
                AuthError("request iat is outside the allowed window", reason="iat_out_of_range")
            )
        digest = rpc_proof_digest(session_key, msg.subject, msg.data, iat, request_id)
        if not verify_signature(session_key, digest, proof):  # decodes the key: once a request
            return Err(AuthError("request proof does not verify", reason="invalid_signature"))
        if not self._replay.first_use(session_key, request_id, now):
            return Err(AuthError("request id was already used", reason="invalid_signature"))
        principal = self._principals.get(session_key)
        if principal is None:
            return Err(AuthError("unknown session", reason="session_not_found"))
        if principal.disabled:
            return Err(AuthError("session is disabled", reason="session_not_found"))
        if not principal.holds(method.required):
            missing = sorted(set(method.required) - set(principal.capabilities))
            return Err(
                AuthError(
                    f"missing capabilities: {', '.join(missing)}", reason="insufficient_permissions"
                )
            )
        try:
            value = method.input.model_validate_json(msg.data or b"{}")
        except PydanticValidationError as exc:
            return Err(ValidationFailed.from_pydantic(exc))
        ctx = RequestContext(
            method.name,
            msg.subject,
            principal,
            request_id,
            headers,
            headers.get(HEADER_TRACEPARENT),
        )
        assert method.handler is not None
        result = await method.handler(value, ctx)
        return self._check_result(method, result)

    def _check_result(self, method: _Method, result: Any) -> Ok[Any] | Err[TrellisError]:
        if isinstance(result, Ok):
            value = result.value
        elif isinstance(result, Err):
            error = result.error
            declared = self._declared_errors[method.name]
            if isinstance(error, TrellisError) and (
                error.type in declared or isinstance(error, AuthError | ValidationFailed)
            ):
                return Err(error)
            log.error("handler for %s returned an undeclared error: %r", method.name, error)
            return Err(UnexpectedError("the handler returned an undeclared error"))
        else:
            value = result  # a bare value is taken as success
        if isinstance(value, method.output):
            return result if isinstance(result, Ok) else Ok(value)
        try:
            return Ok(method.output.model_validate(value))
        except PydanticValidationError:
            log.error(
                "handler for %s returned output not matching %s",
                method.name,
                method.output.__name__,
            )
            return Err(UnexpectedError("the handler returned an invalid output"))


def _in_inbox_of(session_key: str | None, reply: str | None) -> bool:
    """Whether ``reply`` lies in the inbox of ``session_key`` (the key is decoded, and its
    form fully checked, by the proof verification that follows)."""
    if not session_key or not reply:
        return False
    try:
        return reply.startswith(inbox_prefix(session_key) + ".")
    except KeyFormatError:
        return False
