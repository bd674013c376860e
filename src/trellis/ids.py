"""Identifiers: ULIDs for request ids, error ids and physical resource names.

A ULID is 26 Crockford base32 characters: two zero bits, 48 bits of milliseconds, then 80
random bits. Both generators here format through :func:`_chars40`.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time

__all__ = ["RequestIds", "now_iso", "ulid"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: every 10-bit value as two Crockford base32 characters
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)


def _chars40(value: int) -> str:
    """The low 40 bits of ``value`` as eight characters (unrolled: request ids are hot)."""
    pairs = _PAIRS
    return (
        pairs[(value >> 30) & 1023]
        + pairs[(value >> 20) & 1023]
        + pairs[(value >> 10) & 1023]
        + pairs[value & 1023]
    )


def ulid(timestamp_ms: int | None = None) -> str:
    """A 26-character ULID with fresh randomness from the OS."""
    ms = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
    value = ms << 80 | int.from_bytes(os.urandom(10), "big")
    head = _PAIRS[(value >> 120) & 1023]
    return head + _chars40(value >> 80) + _chars40(value >> 40) + _chars40(value)


class RequestIds:
    """Monotonic ULIDs (the ULID spec's monotonic mode) for one caller's request ids.

    Within one millisecond each id is the previous one plus one, so ids from one generator
    never repeat.  A new millisecond draws fresh randomness: 40 high bits, formatted once,
    and 39 low bits that the increments count up from (they can never carry into the high
    part: that would take 2^39 ids in one millisecond).  Per id only the low 40 bits are
    formatted.
    """

    __slots__ = ("_low", "_ms", "_pid", "_prefix", "_rng")

    def __init__(self) -> None:
        self._ms = -1
        self._prefix = ""
        self._low = 0
        self._seed()

    def _seed(self) -> None:
        # uniqueness, not secrecy, is what a request id needs: the proof signs it and the
        # replay guard refuses repeats; a CSPRNG-seeded generator avoids a syscall per id
        self._rng = random.Random(os.urandom(32))  # noqa: S311 - ids are not secrets
        self._pid = os.getpid()

    def next(self) -> str:
        ms = time.time_ns() // 1_000_000
        if ms != self._ms:
            if os.getpid() != self._pid:  # a forked child must not replay its parent's ids
                self._seed()
            self._ms = ms
            # 48 bits of milliseconds, then 40 random bits: ten characters each
            high = self._rng.getrandbits(40)
            self._prefix = _PAIRS[(ms >> 40) & 1023] + _chars40(ms) + _chars40(high)
            self._low = self._rng.getrandbits(39)
        else:
            self._low += 1
        return self._prefix + _chars40(self._low)


def now_iso() -> str:
    """UTC now as ISO 8601 with milliseconds and a ``Z`` (event headers, records)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
