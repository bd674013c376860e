"""Keep nats-py reading when a message carries header bytes it cannot decode, or too many.

nats-py (2.16) decodes a header block's inline status line (``NATS/1.0 <status>``) outside
its own error handling: a published message whose header starts ``NATS/1.0 \\xff`` raises
``UnicodeDecodeError`` in the connection's read loop, which then stops for good while the
connection still looks connected.  Anyone allowed to publish to a service's RPC subject
could make it deaf with one message (found by ``tests/fuzz/test_rpc_requests.py``).

:func:`guard_header_parsing` wraps the client's header parser, once per process: a header
block that cannot be parsed, or is longer than :data:`MAX_HEADER_BLOCK`, is left out and the
message delivered without headers: a request without its auth headers is then dropped (and
counted, with bounded logging) by the service, a reply without them is read as a plain
reply.  Nothing is logged here: anyone can send such messages, as fast as they like.
"""

from __future__ import annotations

import functools
from typing import Any

from nats.aio.client import Client

__all__ = ["MAX_HEADER_BLOCK", "guard_header_parsing"]

_GUARDED = "__trellis_guarded__"
#: a header block beyond this many bytes is left unparsed (Trellis's own headers take about
#: 500; JetStream's a few hundred): parsing a 900 KB block costs nats-py milliseconds, and a
#: flood of them slowed a service's read loop until nats-server cut it off as a slow consumer
MAX_HEADER_BLOCK = 16 * 1024


def guard_header_parsing() -> None:
    """Install the guard on nats-py's ``Client`` (idempotent)."""
    original = getattr(Client, "_process_headers", None)
    if original is None or getattr(original, _GUARDED, False):
        return  # a nats-py without this method parses headers some other way

    @functools.wraps(original)
    async def process_headers(self: Client, headers: Any) -> Any:
        if headers is not None and len(headers) > MAX_HEADER_BLOCK:
            return None
        try:
            return await original(self, headers)
        except Exception:  # the bytes came from whoever published the message
            return None

    setattr(process_headers, _GUARDED, True)
    Client._process_headers = process_headers  # type: ignore[method-assign]
