"""Listing and watching KV buckets without nats-py's two ``KeyValue.watch`` problems.

1. **A lost race that ends the initial values early.** nats-py decides "no initial values"
   when the ordered consumer's info says ``num_pending == 0`` and its subscription has not
   received anything yet.  But the server pushes the consumer's messages and answers the
   info request on different paths: the info reply can overtake messages the consumer has
   already sent (``num_pending`` is already 0).  The end-of-initial-values marker then comes
   first and ``KeyValue.keys()`` returns an empty list (``NoKeysError``) for a bucket that
   has keys.  Under load this happened often enough to make the runtime report an installed
   contract as "not installed" and to make a principal cache "ready" while still empty.
   Here the marker comes from the messages' own ``num_pending``; only a consumer that had
   nothing to deliver at all (``delivered.consumer_seq == 0`` and ``num_pending == 0``
   in its info) marks "no initial values" at once.
2. **A consumer left behind per call.** Unsubscribing an ordered consumer does not delete
   it; the server keeps it for its inactivity threshold (nats-py: 5 minutes), so about a
   thousand ``keys()`` calls within five minutes exhaust the stream's consumers.  Here the
   consumer is deleted when the watch stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from nats.aio.msg import Msg
from nats.js import api
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

__all__ = ["KvChange", "KvWatcher", "list_keys", "watch"]

log = logging.getLogger("trellis.nats.kv")

_OPERATION = "KV-Operation"
_MARKER_REASON = "Nats-Marker-Reason"  # nats-server 2.11+ TTL/removal markers
_MARKER_OPERATIONS = {"MaxAge": "PURGE", "Purge": "PURGE", "Remove": "DEL"}
#: how long an abandoned watch consumer outlives its client (a stopped watch deletes it)
_INACTIVE_THRESHOLD = 120.0
#: the server's heartbeat on a watch: nats-py recreates an ordered consumer after two missed
#: ones, so a watch whose consumer was deleted resumes within about 2 s (at 5 s: 10-12 s)
_IDLE_HEARTBEAT = 1.0


@dataclass(frozen=True, slots=True)
class KvChange:
    """One key's latest state: ``operation`` is ``None`` for a value, ``DEL``/``PURGE``."""

    key: str
    value: bytes
    revision: int
    operation: str | None

    @property
    def deleted(self) -> bool:
        return self.operation is not None


class _Stop:
    pass


_STOP = _Stop()


class KvWatcher:
    """Yields each key's current state, then ``None`` once, then every change.

    Use with ``async for``; ``stop()`` (or leaving ``async with``) ends the iteration and
    deletes the server-side consumer.
    """

    def __init__(self, kv: KeyValue, *, delete_on_stop: bool = True) -> None:
        self._js: JetStreamContext = kv._js
        self._stream: str = kv._stream
        self._prefix: str = kv._pre
        self._queue: asyncio.Queue[KvChange | _Stop | None] = asyncio.Queue()
        self._initial_done = False
        self._sub: Any = None
        self._stopped = False
        self._delete_on_stop = delete_on_stop

    async def _open(self, keys: str, *, meta_only: bool) -> None:
        self._sub = await self._js.subscribe(
            self._prefix + keys,
            stream=self._stream,
            cb=self._on_message,
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
            headers_only=meta_only,
            inactive_threshold=_INACTIVE_THRESHOLD,
            idle_heartbeat=_IDLE_HEARTBEAT,
        )
        try:
            info = await self._sub.consumer_info()
        except BaseException:
            await self.stop()
            raise
        if info.num_pending == 0 and (info.delivered is None or not info.delivered.consumer_seq):
            self._mark_initial_done()  # the consumer had nothing to deliver: an empty bucket

    def _mark_initial_done(self) -> None:
        if not self._initial_done:
            self._initial_done = True
            self._queue.put_nowait(None)

    async def _on_message(self, msg: Msg) -> None:
        meta = msg.metadata
        headers = msg.headers or {}
        operation = headers.get(_OPERATION)
        if operation is None and _MARKER_REASON in headers:
            operation = _MARKER_OPERATIONS.get(headers[_MARKER_REASON], "PURGE")
        self._queue.put_nowait(
            KvChange(
                msg.subject[len(self._prefix) :],
                msg.data,
                int(meta.sequence.stream),
                operation,
            )
        )
        if meta.num_pending == 0:
            self._mark_initial_done()

    def __aiter__(self) -> AsyncIterator[KvChange | None]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[KvChange | None]:
        while True:
            item = await self._queue.get()
            if isinstance(item, _Stop):
                return
            yield item

    async def next(self, timeout: float | None = None) -> KvChange | None:
        """The next item (``asyncio.TimeoutError`` after ``timeout``); not after ``stop()``."""
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if isinstance(item, _Stop):
            raise RuntimeError("the watcher is stopped")
        return item

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._queue.put_nowait(_STOP)
        sub, self._sub = self._sub, None
        if sub is None:
            return
        consumer = getattr(sub, "_consumer", None)
        with contextlib.suppress(Exception):  # the connection may be gone already
            await sub.unsubscribe()
        if consumer and self._delete_on_stop:
            try:
                await self._js.delete_consumer(self._stream, consumer)
            except Exception as exc:  # it expires on its own after the inactivity threshold
                log.debug("could not delete watch consumer %s: %s", consumer, exc)

    async def __aenter__(self) -> KvWatcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def watch(
    kv: KeyValue, keys: str = ">", *, meta_only: bool = False, delete_on_stop: bool = True
) -> KvWatcher:
    """Watch ``keys`` (a subject pattern below the bucket) of ``kv``.  ``delete_on_stop=False``
    for a session that may not delete consumers: the consumer then expires on its own."""
    watcher = KvWatcher(kv, delete_on_stop=delete_on_stop)
    await watcher._open(keys, meta_only=meta_only)
    return watcher


async def list_keys(kv: KeyValue, keys: str = ">", *, timeout: float = 10.0) -> list[str]:
    """Every key of ``kv`` that currently holds a value (``[]`` for an empty bucket)."""
    found: dict[str, None] = {}
    async with await watch(kv, keys, meta_only=True) as watcher:
        while True:
            change = await watcher.next(timeout)
            if change is None:
                return list(found)
            if change.deleted:
                found.pop(change.key, None)
            else:
                found[change.key] = None
