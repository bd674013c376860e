"""Bounds on what an unauthenticated HTTP client can make the runtime do.

The bootstrap endpoints answer anyone, before any credential is checked, so every request
is bounded before the application sees it: its body (a bootstrap request is a few hundred
bytes; a body is refused as soon as it passes ``max_body`` bytes, whether or not it
announced its length) and the rate of requests per source address (a token bucket; the
table of sources is bounded too).  Refusals use the endpoints' ``{reason, message,
serverNow}`` shape and never echo what was sent.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["RequestGuard"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestGuard:
    """ASGI middleware: ``max_body`` bytes per request; ``rate`` requests per second per
    source address with bursts of ``burst``; at most ``max_sources`` addresses tracked."""

    def __init__(
        self,
        app: App,
        *,
        max_body: int = 16 * 1024,
        rate: float = 20.0,
        burst: int = 40,
        max_sources: int = 4096,
        clock: Callable[[], float] = time.monotonic,
        server_now: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self._clock = clock
        self._server_now = server_now
        #: source address → (tokens, when they were counted); least recently seen first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        #: requests refused, by reason (for tests and operators)
        self.refused: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._admit(scope):
            await self._refuse(send, 429, "rate_limited", "too many requests; retry shortly")
            return
        announced = _content_length(scope)
        if announced is not None and announced > self.max_body:
            await self._refuse(send, 413, "request_too_large", self._too_large)
            return
        body = bytearray()  # a bootstrap body is small: read it whole, refuse it past the bound
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > self.max_body:
                await self._refuse(send, 413, "request_too_large", self._too_large)
                return
            if not message.get("more_body", False):
                break
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # after the body: wait for the disconnect
            delivered = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    @property
    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_body} bytes"

    def _admit(self, scope: Scope) -> bool:
        client = scope.get("client")
        source = str(client[0]) if client else "?"
        now = self._clock()
        tokens, then = self._buckets.pop(source, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        admitted = tokens >= 1.0
        self._buckets[source] = (tokens - 1.0 if admitted else tokens, now)
        if len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)  # the source seen least recently
        return admitted

    async def _refuse(self, send: Send, status: int, reason: str, message: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        body = json.dumps(
            {"reason": reason, "message": message, "serverNow": int(self._server_now())}
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        if status == 429:
            headers.append((b"retry-after", b"1"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
