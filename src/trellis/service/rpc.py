"""Serving RPCs: the handler side of PROTOCOL §6.

One request, in order: drop it unanswered unless its reply subject lies in the inbox of
the session key it names, it carries a proof, and its headers are within their bounds;
refuse it at once with ``TransportError(trellis.request.unavailable)`` if the server already
holds ``max_pending`` requests (waiting plus running); then, in a task of its own: verify the
proof over the body actually received (inline: handing one Ed25519 verify elsewhere costs
more than it saves, see bench/README.md) and drop the request if it does not verify; check
``iat`` freshness, refuse a replayed request id, resolve the caller (local cache, no round
trip), check the method's ``capabilities.call``, validate the input into its model, run the
handler under the ``max_concurrency`` gate, and reply with the output JSON or the error
envelope.  A handler that raises is logged with its trace and answered as
``UnexpectedError``: a caller never waits for a timeout because a handler failed.

Why nothing is answered before the proof verifies (docs/protocol.md): the reply subject is
the caller's choice and no proof covers it, so only a verified proof shows that the caller
holds the key whose inbox the answer goes to.  The one exception is the request bound's
canned answer: a flood must cost the service a header check and a fixed reply per request,
not a task, a verification and memory that grows with it.
"""

from __future__ import annotations

import asyncio
import functools
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
from trellis.auth.keys import KeyFormatError, verify_signature
from trellis.contracts import Contract
from trellis.logs import ThrottledLog
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
#: header bounds: a request beyond them is dropped before anything is kept of it
_MAX_HEADER = {
    HEADER_SESSION_KEY: 43,
    HEADER_PROOF: 86,
    HEADER_IAT: 16,
    HEADER_REQUEST_ID: 128,
    HEADER_TRACEPARENT: 128,
}


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
    was big (a million pairs: about 0.4 s).  The server also prunes on a timer, so a burst
    is forgotten even when no request follows it, and the table holds at most
    ``max_entries`` pairs (request ids are at most 128 characters): when it is full, new
    requests are refused rather than remembered.
    """

    def __init__(self, window: float = 60.0, max_entries: int = 1_000_000) -> None:
        self._window = window
        self.max_entries = max_entries
        #: session key + request id (a session key is 43 characters: never ambiguous)
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def full(self) -> bool:
        return len(self._seen) >= self.max_entries

    def prune(self, now: float) -> None:
        """Forget the pairs whose window has passed."""
        seen = self._seen
        while seen:
            oldest = next(iter(seen))
            if seen[oldest] > now:
                break
            del seen[oldest]

    def first_use(self, session_key: str, request_id: str, now: float) -> bool:
        self.prune(now)
        key = session_key + request_id
        if key in self._seen:
            return False
        self._seen[key] = now + self._window
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
        max_pending_per_caller: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``max_concurrency`` handlers run at once; at most ``max_pending`` requests (by
        default 4 x ``max_concurrency``) are held, waiting plus running, and at most
        ``max_pending_per_caller`` (default a quarter of ``max_pending``) of one session key,
        so that one caller's flood leaves room for everyone else."""
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
        self.max_pending_per_caller = (
            max(1, self.max_pending // 4)
            if max_pending_per_caller is None
            else max_pending_per_caller
        )
        if not 1 <= self.max_pending_per_caller <= self.max_pending:
            raise ValueError(
                f"max_pending_per_caller ({self.max_pending_per_caller}) must lie between 1 "
                f"and max_pending ({self.max_pending})"
            )
        #: requests held per claimed session key (the count is what bounds it; a key that
        #: others claim falsely only shares its own quota, never anyone else's)
        self._per_caller: dict[str, int] = {}
        #: the most requests held at once so far, and how many were refused for the bound
        self.peak_pending = 0
        self.refused = 0
        #: requests dropped unanswered (no verifiable proof for their reply subject)
        self.dropped = 0
        self._drops = ThrottledLog(log)  # anyone may send them: the warnings are bounded
        self._pruner: asyncio.Task[None] | None = None
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
        self._pruner = asyncio.create_task(self._prune_replays(), name="trellis-replay-prune")
        await settle(self._nc)  # serving once start() returns

    async def _prune_replays(self, every: float = 5.0) -> None:
        while True:
            await asyncio.sleep(every)
            self._replay.prune(self._clock())

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop taking requests, then let in-flight handlers finish (up to ``drain_timeout``)."""
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection may already be gone
                log.debug("unsubscribe failed during stop", exc_info=True)
        self._subs.clear()
        if self._pruner is not None:
            self._pruner.cancel()
            self._pruner = None
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=drain_timeout)
            for task in pending:
                task.cancel()

    def _dispatcher(self, method: _Method) -> Callable[[Msg], Awaitable[None]]:
        async def on_message(msg: Msg) -> None:
            headers = msg.headers
            problem = _unanswerable(headers, msg.reply)
            if problem is not None:
                self._drop(msg.subject, problem)
                return
            caller = headers[HEADER_SESSION_KEY]  # type: ignore[index]  # checked above
            held = self._per_caller.get(caller, 0)
            if len(self._tasks) >= self.max_pending or held >= self.max_pending_per_caller:
                self.refused += 1
                await self._refuse(msg.reply, _BUSY, method)
                return
            self._per_caller[caller] = held + 1
            task = asyncio.create_task(self._serve(method, msg))
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._release, caller))
            self.peak_pending = max(self.peak_pending, len(self._tasks))

        return on_message

    def _release(self, caller: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        left = self._per_caller[caller] - 1
        if left:
            self._per_caller[caller] = left
        else:
            del self._per_caller[caller]

    def _drop(self, subject: str, why: str) -> None:
        self.dropped += 1
        self._drops.warning("dropped a request to %s unanswered: %s", subject, why)

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
            if result is None:
                return  # not verified: nothing shows the reply subject is the caller's
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

    async def _handle(self, method: _Method, msg: Msg) -> Ok[Any] | Err[TrellisError] | None:
        """The answer to a request, or ``None`` when its proof does not verify."""
        # on_message checked the headers' presence and bounds, and the reply's inbox
        headers: Mapping[str, str] = msg.headers or {}
        session_key = headers[HEADER_SESSION_KEY]
        request_id = headers.get(HEADER_REQUEST_ID)
        try:
            iat = int(headers.get(HEADER_IAT, ""))
        except ValueError:
            iat = None
        if iat is None or not request_id:
            self._drop(msg.subject, "iat or request-id missing")
            return None
        digest = rpc_proof_digest(session_key, msg.subject, msg.data, iat, request_id)
        if not verify_signature(session_key, digest, headers[HEADER_PROOF]):  # decodes the key
            self._drop(msg.subject, "its proof does not verify")
            return None
        now = self._clock()
        if not iat_in_window(iat, now):
            return Err(
                AuthError("request iat is outside the allowed window", reason="iat_out_of_range")
            )
        if self._replay.full:
            return Err(
                TransportError(
                    "the service remembers too many recent requests; retry later",
                    reason="trellis.request.unavailable",
                )
            )
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
                    f"missing capabilities: {', '.join(missing)}",
                    reason="insufficient_permissions",
                    # what upstream's services put there too
                    context={
                        "requiredCapabilities": list(method.required),
                        "userCapabilities": list(principal.capabilities),
                    },
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


def _unanswerable(headers: Mapping[str, str] | None, reply: str | None) -> str | None:
    """Why a request gets no answer at all, or ``None``: its reply subject must lie in the
    inbox of the key it names (the key's form is fully checked by the proof verification),
    it must carry a proof, and its headers must be within their bounds."""
    session_key = headers.get(HEADER_SESSION_KEY) if headers else None
    if not headers or not session_key:
        return "no session-key header"
    if not headers.get(HEADER_PROOF):
        return "no proof header"
    for name, bound in _MAX_HEADER.items():
        value = headers.get(name)
        if value is not None and len(value) > bound:
            return f"its {name} header is longer than {bound} characters"
    try:
        if reply and reply.startswith(inbox_prefix(session_key) + "."):
            return None
    except KeyFormatError:
        pass
    return "its reply subject is not the inbox of its session key"
