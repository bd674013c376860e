"""Events: validated publishing with JetStream de-duplication, durable consumer groups and
live (ephemeral) subscriptions (PROTOCOL §4).

An event's subject is filled from its payload through the declared ``params`` pointers
(``events.v1.Items.Created.{/category}`` → ``events.v1.Items.Created.books``).  Publishing
adds ``header: {id, time}`` to the payload, sets ``Nats-Msg-Id`` to that id so a retried
publish is stored once, and waits for the stream's ack.

Durable handlers read the consumer group the runtime provisioned at install: ``Ok`` acks,
``Err`` naks with the group's backoff, and an exception naks too — a message is never lost
because a handler failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.client import JetStreamContext
from nats.js.errors import NoStreamResponseError
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from trellis.contracts.manifest import subject_wildcard
from trellis.ids import now_iso, ulid
from trellis.nats import settle
from trellis.result import Err, Ok, Result, TransportError, TrellisError, ValidationFailed
from trellis.subjects import subject_matches

__all__ = [
    "EventConsumer",
    "EventDefinition",
    "EventMessage",
    "SubscriptionRefused",
    "event_subject",
    "resolve_pointer",
]

log = logging.getLogger("trellis.events")

M = TypeVar("M")

_TOKEN = re.compile(r"^[A-Za-z0-9_\-:@+=~]+$")


@dataclass(frozen=True, slots=True)
class EventDefinition:
    """One event as this participant sees it: its subject template and payload model."""

    name: str
    contract_id: str
    template: str
    params: tuple[str, ...]
    model: type[BaseModel] | None
    #: the capabilities the owner contract requires to subscribe (for refusal messages)
    subscribe_capabilities: tuple[str, ...] = ()

    @property
    def pattern(self) -> str:
        return subject_wildcard(self.template)


@dataclass(frozen=True, slots=True)
class EventMessage(Generic[M]):
    """What an event handler receives: ``payload`` is the event's declared model."""

    name: str
    subject: str
    payload: M
    id: str | None
    time: str | None
    delivery: int


def resolve_pointer(document: Any, pointer: str) -> Any:
    node = document
    for raw in pointer.split("/")[1:]:
        token = _unescape(raw)
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        else:
            raise KeyError(pointer)
    return node


def event_subject(definition: EventDefinition, body: Mapping[str, Any]) -> str:
    """Fill each ``{/ptr}`` token from the payload; values must be safe subject tokens."""
    subject = definition.template
    for pointer in definition.params:
        value = resolve_pointer(body, pointer)
        token = str(value).lower() if isinstance(value, bool) else str(value)
        if not _TOKEN.fullmatch(token):
            raise ValueError(f"{pointer} = {token!r} cannot be a subject token")
        subject = subject.replace("{" + pointer + "}", token, 1)
    return subject


def filter_subject(definition: EventDefinition, filters: Mapping[str, Any]) -> str:
    """The subscription subject with some tokens fixed.

    A filter names a param by its pointer (``{"/category": "books"}``) or, more simply, by
    its name (``{"category": "books"}``: the pointer without its ``/``, or its last
    segment when that is unambiguous)."""
    values: dict[str, Any] = {}
    for key, value in filters.items():
        pointer = _param_pointer(definition, key)
        if pointer in values:
            raise ValueError(f"{definition.name}: param {pointer} is filtered twice")
        values[pointer] = value
    subject = definition.template
    for pointer in definition.params:
        value = values.get(pointer)
        part = "*" if value is None else str(value)
        if value is not None and not _TOKEN.fullmatch(part):
            raise ValueError(f"{pointer} = {part!r} cannot be a subject token")
        subject = subject.replace("{" + pointer + "}", part, 1)
    return subject


def _param_pointer(definition: EventDefinition, key: str) -> str:
    params = definition.params
    if key in params:
        return key
    if "/" + key in params:
        return "/" + key
    by_last = [p for p in params if _unescape(p.rsplit("/", 1)[-1]) == key]
    if len(by_last) == 1:
        return by_last[0]
    names = ", ".join(f"{p[1:]!r} ({p})" for p in params) or "none"
    raise ValueError(f"{definition.name} has no param {key!r}; its params are: {names}")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


async def publish_event(
    js: JetStreamContext,
    definition: EventDefinition,
    payload: BaseModel | Mapping[str, Any],
    *,
    timeout: float = 5.0,
    sign: Callable[[bytes], Mapping[str, str]] | None = None,
) -> Result[str, TrellisError]:
    """Validate, fill the subject, stamp ``header``, publish and await the stream's ack.

    ``sign`` gives extra headers computed from the exact bytes published (a heartbeat's
    proof)."""
    try:
        if definition.model is not None:
            model = (
                payload
                if isinstance(payload, definition.model)
                else definition.model.model_validate(
                    payload.model_dump(by_alias=True) if isinstance(payload, BaseModel) else payload
                )
            )
            body: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
        else:
            body = dict(
                payload.model_dump(mode="json", by_alias=True)
                if isinstance(payload, BaseModel)
                else payload
            )
    except PydanticValidationError as exc:
        return Err(ValidationFailed.from_pydantic(exc))
    if "header" not in body and isinstance(payload, Mapping):
        # event models rarely declare ``header``: validation drops it, but a caller-given
        # id is what makes a retried publish the same event (``Nats-Msg-Id``)
        body["header"] = payload.get("header")
    stamped = body.get("header")
    header: dict[str, Any] = stamped if isinstance(stamped, dict) else {}
    event_id = header.get("id") or ulid()
    body["header"] = {"id": event_id, "time": header.get("time") or now_iso()}
    try:
        subject = event_subject(definition, body)
    except (KeyError, ValueError) as exc:
        return Err(ValidationFailed(f"cannot build the event subject: {exc}"))
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    try:
        headers = {"Nats-Msg-Id": event_id, **(sign(data) if sign else {})}
        await js.publish(subject, data, timeout=timeout, headers=headers)
    except NoStreamResponseError:
        return Err(
            TransportError("no stream stored the event", reason="trellis.request.unavailable")
        )
    except NatsTimeoutError:
        return Err(
            TransportError(
                "the event was not acknowledged in time", reason="trellis.request.failed"
            )
        )
    except Exception as exc:
        return Err(
            TransportError(
                f"publishing {definition.name} failed: {exc}", reason="trellis.request.failed"
            )
        )
    return Ok(event_id)


def decode_event(definitions: list[EventDefinition], msg: Msg, delivery: int) -> EventMessage[Any]:
    data = json.loads(msg.data)
    definition = next((d for d in definitions if subject_matches(msg.subject, d.pattern)), None)
    if definition is None:
        raise ValueError(f"no declared event matches {msg.subject}")
    payload: Any = data
    if definition.model is not None:
        payload = definition.model.model_validate(data)
    header = data.get("header") if isinstance(data, dict) else None
    header = header if isinstance(header, dict) else {}
    return EventMessage(
        definition.name, msg.subject, payload, header.get("id"), header.get("time"), delivery
    )


#: a durable handler acks on ``Ok``/``None`` and naks on ``Err``; live handlers' results
#: are ignored
EventHandler = Callable[[EventMessage[Any]], Awaitable[Any]]


class EventConsumer:
    """Pulls from one durable consumer group and dispatches to its handler (at least once)."""

    def __init__(
        self,
        js: JetStreamContext,
        group: str,
        stream: str,
        consumer: str,
        definitions: list[EventDefinition],
        handler: EventHandler,
        *,
        concurrency: int = 1,
        backoff_ms: tuple[int, ...] = (1000, 5000, 30000),
    ) -> None:
        self._js = js
        self.group = group
        self._stream = stream
        self._consumer = consumer
        self._definitions = definitions
        self._handler = handler
        self._concurrency = max(1, concurrency)
        self._backoff = backoff_ms or (1000,)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._sub = await self._js.pull_subscribe_bind(self._consumer, self._stream)
        self._task = asyncio.create_task(self._loop(), name=f"trellis-consumer-{self.group}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                msgs = await self._sub.fetch(self._concurrency, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("consumer group %s: fetch failed: %s", self.group, exc)
                await asyncio.sleep(1.0)
                continue
            await asyncio.gather(*(self._handle(m) for m in msgs))

    async def _handle(self, msg: Msg) -> None:
        delivery = int(msg.metadata.num_delivered) if msg.metadata else 1
        try:
            event = decode_event(self._definitions, msg, delivery)
        except (ValueError, PydanticValidationError) as exc:
            log.error(
                "consumer group %s: dropping undecodable event on %s: %s",
                self.group,
                msg.subject,
                exc,
            )
            await msg.term()
            return
        try:
            result = await self._handler(event)
        except Exception:
            log.exception("consumer group %s: handler failed on %s", self.group, event.name)
            result = Err(None)
        if isinstance(result, Err):
            delay = self._backoff[min(delivery - 1, len(self._backoff) - 1)] / 1000
            await msg.nak(delay=delay)
        else:
            await msg.ack()


class SubscriptionRefused(Exception):
    """NATS refused a subscription: this session's permissions do not include the subject."""

    def __init__(self, definition: EventDefinition, subject: str) -> None:
        caps = ", ".join(definition.subscribe_capabilities) or "no capability"
        super().__init__(
            f"NATS refused the subscription to {subject} ({definition.contract_id} event "
            f"{definition.name}): the session needs the event in its contract's uses "
            f"(subscribe=[{definition.name!r}]) and, at connect time, {caps} "
            f"(trellis user grant USER CAPABILITY, then reconnect)"
        )
        self.subject = subject
        self.event = definition.name
        self.contract_id = definition.contract_id
        self.capabilities = definition.subscribe_capabilities


async def live_subscribe(
    nc: NatsClient,
    definition: EventDefinition,
    handler: EventHandler,
    filters: Mapping[str, Any] | None = None,
) -> Subscription:
    """A core-NATS subscription: only events published while it exists, no acks.

    NATS reports a refused subscription only asynchronously, so this flushes (the server
    answers the SUB before the PING) and raises ``SubscriptionRefused`` if the connection's
    last error became a permissions violation for this subject."""
    subject = filter_subject(definition, filters or {})

    async def on_message(msg: Msg) -> None:
        try:
            event = decode_event([definition], msg, 1)
        except (ValueError, PydanticValidationError) as exc:
            log.warning("ignoring undecodable event on %s: %s", msg.subject, exc)
            return
        try:
            await handler(event)
        except Exception:
            log.exception("live event handler failed on %s", definition.name)

    before = nc.last_error
    sub = await nc.subscribe(subject, cb=on_message)
    await settle(nc)
    error = nc.last_error
    if error is not None and error is not before and _refuses(str(error), subject):
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        raise SubscriptionRefused(definition, subject)
    return sub


def _refuses(error: str, subject: str) -> bool:
    """nats-py lower-cases the server's ``Permissions Violation for Subscription to "x"``."""
    text = error.lower()
    return "permissions violation for subscription" in text and f'"{subject.lower()}"' in text
