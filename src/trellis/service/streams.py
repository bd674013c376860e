"""Stream resources (our ``resources.streams`` extension): ``service.streams.<alias>``.

A contract declares subjects relative to the stream (``orders.*``); the runtime provisions a
stream with a physical name and physical subjects (``tr.<stream>.orders.*``) at install.
The handle maps relative subjects both ways, so services never see physical names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.client import JetStreamContext
from pydantic import BaseModel

from trellis.result import Err, Ok, Result, TransportError, ValidationFailed
from trellis.subjects import subject_matches
from trellis.wire import dump_payload

__all__ = ["StreamHandle", "StreamMessage", "StreamNamespace"]


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """A stored message: its relative subject, data, and ack/nak/term of the underlying msg."""

    subject: str
    data: bytes
    sequence: int
    delivery: int
    msg: Msg

    async def ack(self) -> None:
        await self.msg.ack()

    async def nak(self, delay: float | None = None) -> None:
        await self.msg.nak(delay=delay)

    async def term(self) -> None:
        await self.msg.term()


class StreamHandle:
    def __init__(self, alias: str, js: JetStreamContext, stream: str, subjects: list[str]) -> None:
        self.alias = alias
        self._js = js
        self._stream = stream
        self._prefix = f"tr.{stream}."
        self._patterns = list(subjects)

    @property
    def subjects(self) -> list[str]:
        """The declared subjects, relative to the stream."""
        return [p[len(self._prefix) :] for p in self._patterns]

    def _physical(self, relative: str, *, pattern: bool = False) -> str:
        """The physical subject (or, with ``pattern``, filter) of a relative one."""
        physical = self._prefix + relative
        wildcard = any(t in ("*", ">") for t in relative.split("."))
        if not any(subject_matches(physical, p) for p in self._patterns) or (
            wildcard and not pattern
        ):
            where = "within" if pattern else "one of"
            raise ValueError(f"{relative!r} is not {where} {self.alias}'s subjects {self.subjects}")
        return physical

    async def publish(
        self,
        relative: str,
        payload: bytes | BaseModel | Mapping[str, Any],
        *,
        msg_id: str | None = None,
    ) -> Result[int, ValidationFailed | TransportError]:
        """Store a message; returns its stream sequence. ``msg_id`` de-duplicates retries."""
        try:
            subject = self._physical(relative)
        except ValueError as exc:
            return Err(ValidationFailed(str(exc)))
        data = payload if isinstance(payload, bytes) else dump_payload(payload)
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        try:
            ack = await self._js.publish(subject, data, headers=headers)
        except Exception as exc:
            return Err(TransportError(f"storing to {self.alias} failed: {exc}"))
        return Ok(ack.seq)

    async def fetch(
        self, durable: str, *, batch: int = 10, wait: float = 1.0, filter_subject: str | None = None
    ) -> list[StreamMessage]:
        """Pull up to ``batch`` messages for the durable consumer ``durable`` (created on first
        use, explicit acks); returns what arrived within ``wait`` seconds."""
        physical_filter = self._physical(filter_subject, pattern=True) if filter_subject else ""
        config = ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT)
        sub = await self._js.pull_subscribe(
            physical_filter, durable=durable, stream=self._stream, config=config
        )
        try:
            msgs = await sub.fetch(batch, timeout=wait)
        except Exception as exc:
            if type(exc).__name__ in ("TimeoutError", "FetchTimeoutError"):
                return []
            raise
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return [
            StreamMessage(
                m.subject[len(self._prefix) :],
                m.data,
                m.metadata.sequence.stream if m.metadata else 0,
                m.metadata.num_delivered if m.metadata else 1,
                m,
            )
            for m in msgs
        ]


class StreamNamespace:
    """``service.streams.<alias>``."""

    def __init__(self, handles: Mapping[str, StreamHandle]) -> None:
        self._handles = dict(handles)

    def __getattr__(self, alias: str) -> StreamHandle:
        try:
            return self._handles[alias]
        except KeyError:
            raise AttributeError(f"the contract declares no stream resource {alias!r}") from None

    __getitem__ = __getattr__
