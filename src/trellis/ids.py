"""Identifiers: ULIDs for request ids, error ids and physical resource names."""

from __future__ import annotations

import base64
import datetime as dt
import os
import time

_B32 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_CROCKFORD = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TO_CROCKFORD = bytes.maketrans(_B32, _CROCKFORD)


def ulid(timestamp_ms: int | None = None) -> str:
    """A 26-character ULID: 48-bit millisecond time then 80 random bits, Crockford base32."""
    ms = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
    # 26 base32 chars are 130 bits: two zero bits, then the 128-bit value (17 bytes = 136 bits)
    raw = (ms << 80 | int.from_bytes(os.urandom(10), "big")) << 6
    text = base64.b32encode(raw.to_bytes(17, "big"))[:26]
    return text.translate(_TO_CROCKFORD).decode("ascii")


def now_iso() -> str:
    """UTC now as ISO 8601 with milliseconds and a ``Z`` (event headers, records)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
