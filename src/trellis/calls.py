"""Calling RPCs: the caller side of PROTOCOL §6.

Requests go through one wildcard reply subscription under the session's inbox
(``_INBOX.<key16>.<nuid>.*``), so a call costs one publish, one future and one timer.  NATS
reports a publish permission violation asynchronously; the connection's error hook fails the
pending calls to that subject at once with ``TransportError(trellis.request.denied)`` instead
of letting them time out.

The hot path avoids ``asyncio.wait_for`` (an extra future, callback and event-loop pass per
call): the reply future is awaited directly and a ``call_later`` timer resolves it with
``None`` on timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.nuid import NUID
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from trellis.auth import SessionKey
from trellis.contracts import Contract
from trellis.contracts.authoring import BUILTIN_REGISTRY, RpcSpec
from trellis.result import Err, Ok, Result, TransportError, TrellisError, ValidationFailed
from trellis.wire import HEADER_STATUS, STATUS_ERROR, RequestIds, dump_payload, request_headers

__all__ = ["DEFAULT_TIMEOUT", "RpcClient", "RpcTarget", "rpc_targets"]

DEFAULT_TIMEOUT = 5.0
NO_RESPONDERS_RETRY = 1.0
_PERMISSION_PREFIX = "permissions violation for publish to"


@dataclass(frozen=True, slots=True)
class RpcTarget:
    """Where an RPC lives and how to encode/decode it."""

    name: str
    contract_id: str
    subject: str
    input: type[BaseModel] | None
    output: type[BaseModel] | None
    errors: Mapping[str, type[TrellisError]]


def rpc_targets(contract: Contract, *, include_own: bool = False) -> dict[str, RpcTarget]:
    """The RPCs ``contract`` may call: every ``uses.*.rpc.call`` (and its own, if asked)."""
    targets: dict[str, RpcTarget] = {}
    sources: list[tuple[Contract | None, str, list[str]]] = []
    for use in contract.uses.values():
        target = use.target or BUILTIN_REGISTRY.get(use.contract)
        sources.append((target, use.contract, list(use.rpc)))
    if include_own:
        sources.append((contract, contract.id, list(contract.rpc)))
    for target, contract_id, names in sources:
        for name in names:
            if target is not None and name in target.rpc:
                spec = target.rpc[name]
                targets[name] = RpcTarget(
                    name,
                    contract_id,
                    target.model.rpc[name].subject,
                    spec.input,
                    spec.output,
                    {e.type: e for e in spec.errors},
                )
            else:
                targets[name] = RpcTarget(name, contract_id, f"rpc.v1.{name}", None, None, {})
    return targets


class RpcClient:
    """Calls RPCs by logical name and returns ``Result`` values; never raises for failures."""

    def __init__(
        self,
        nc: NatsClient,
        key: SessionKey,
        targets: Mapping[str, RpcTarget],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._nc = nc
        self._key = key
        self._targets = dict(targets)
        self._clock = clock
        self._prefix = f"{key.inbox_prefix}.{NUID().next().decode()}."
        self._prefix_len = len(self._prefix)
        self._pending: dict[str, tuple[asyncio.Future[Msg | None], str]] = {}
        self._sub: Subscription | None = None
        self._lock = asyncio.Lock()
        self._seq = 0
        self._ids = RequestIds()

    @property
    def targets(self) -> Mapping[str, RpcTarget]:
        """The RPCs this client may call, by logical name."""
        return self._targets

    async def call(
        self,
        name: str,
        payload: BaseModel | Mapping[str, Any] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        traceparent: str | None = None,
        spec: RpcSpec[Any, Any, Any] | None = None,
    ) -> Result[Any, TrellisError]:
        """Call RPC ``name``: ``Ok(output)`` or ``Err(declared | TransportError | AuthError)``.

        With ``spec`` (the caller's typed reference) payloads are encoded and decoded with
        its models, so the result has the type the caller's checker sees even when the spec
        comes from another build of the same contract (a generated SDK).
        """
        target = self._targets.get(name)
        if target is None:
            return Err(
                TransportError(
                    f"{name!r} is not an RPC this contract uses; add it to the contract's 'uses'",
                    reason="trellis.request.denied",
                )
            )
        if spec is not None and (spec.input, spec.output) != (target.input, target.output):
            errors = {e.type: e for e in spec.errors}
            target = replace(target, input=spec.input, output=spec.output, errors=errors)
        try:
            body = self._encode(target, payload)
        except PydanticValidationError as exc:
            return Err(ValidationFailed.from_pydantic(exc))
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + timeout
        retry_until = now + min(NO_RESPONDERS_RETRY, timeout)
        delay = 0.02
        while True:
            remaining = deadline - loop.time()
            msg = await self._request(target.subject, body, remaining, traceparent)
            if isinstance(msg, TrellisError):
                if (
                    isinstance(msg, TransportError)
                    and msg.reason == "trellis.request.unavailable"
                    and loop.time() + delay < retry_until
                ):
                    await asyncio.sleep(delay)
                    delay *= 2
                    continue
                return Err(msg)
            return self._decode(target, msg)

    def _encode(self, target: RpcTarget, payload: BaseModel | Mapping[str, Any] | None) -> bytes:
        if target.input is not None:
            model = target.input
            if isinstance(payload, model):
                value = payload
            elif isinstance(payload, BaseModel):
                value = model.model_validate(payload.model_dump(by_alias=True))
            else:
                value = model.model_validate(dict(payload or {}))
            return dump_payload(value)
        if isinstance(payload, BaseModel):
            return dump_payload(payload)
        return dump_payload(dict(payload or {}))

    def _decode(self, target: RpcTarget, msg: Msg) -> Result[Any, TrellisError]:
        headers = msg.headers
        try:
            if headers and headers.get(HEADER_STATUS) == STATUS_ERROR:
                return Err(TrellisError.from_wire(json.loads(msg.data), target.errors))
            if target.output is None:
                return Ok(json.loads(msg.data))
            return Ok(target.output.model_validate_json(msg.data))
        # RecursionError: json.loads on nesting deeper than the interpreter's limit
        except (ValueError, RecursionError, PydanticValidationError):
            return Err(
                TransportError(
                    f"the reply to {target.name} does not match its contract",
                    reason="trellis.request.invalid_response",
                )
            )

    async def _ensure_sub(self) -> None:
        if self._sub is not None:
            return
        async with self._lock:
            if self._sub is None:
                self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_reply)

    async def _on_reply(self, msg: Msg) -> None:
        entry = self._pending.get(msg.subject[self._prefix_len :])
        if entry is not None and not entry[0].done():
            entry[0].set_result(msg)

    def fail_subject(self, subject: str, error: TrellisError) -> None:
        """Fail every pending call to ``subject`` (used on NATS permission violations).

        Compared without case: nats-py lower-cases the server's error text, subject included.
        """
        wanted = subject.lower()
        for future, target in list(self._pending.values()):
            if target.lower() == wanted and not future.done():
                future.set_exception(error)

    def on_nats_error(self, message: str) -> None:
        """Feed NATS async errors here; publish permission violations fail matching calls."""
        lowered = message.lower()
        if _PERMISSION_PREFIX not in lowered:
            return
        subject = message[lowered.index(_PERMISSION_PREFIX) + len(_PERMISSION_PREFIX) :]
        subject = subject.strip().strip("'\"")
        self.fail_subject(
            subject,
            TransportError(
                f"NATS refused the publish to {subject}: the contract does not grant it",
                reason="trellis.request.denied",
            ),
        )

    async def _request(
        self, subject: str, body: bytes, budget: float, traceparent: str | None
    ) -> Msg | TrellisError:
        if budget <= 0:
            return TransportError("request timed out", reason="trellis.request.failed")
        if self._sub is None:
            await self._ensure_sub()
        self._seq += 1
        token = str(self._seq)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Msg | None] = loop.create_future()
        self._pending[token] = (future, subject)
        headers = request_headers(
            self._key, subject, body, int(self._clock()), self._ids.next(), traceparent
        )
        timer: asyncio.TimerHandle | None = None
        try:
            await self._nc.publish(subject, body, reply=self._prefix + token, headers=headers)
            timer = loop.call_later(budget, _expire, future)
            msg = await future
        except TransportError as exc:
            return exc
        except Exception as exc:  # connection closed, draining, bad subject...
            return TransportError(
                f"request to {subject} failed: {exc}", reason="trellis.request.failed"
            )
        finally:
            if timer is not None:
                timer.cancel()
            self._pending.pop(token, None)
        if msg is None:
            return TransportError(
                f"no reply to {subject} within {budget:.1f}s", reason="trellis.request.failed"
            )
        headers_in = msg.headers
        if headers_in and headers_in.get("Status") == "503":
            return TransportError(
                f"no service answers {subject}", reason="trellis.request.unavailable"
            )
        return msg

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):  # the connection may be closed already
                await self._sub.unsubscribe()
            self._sub = None


def _expire(future: asyncio.Future[Msg | None]) -> None:
    """The timeout of one call: resolve its reply future with ``None`` unless answered."""
    if not future.done():
        future.set_result(None)
