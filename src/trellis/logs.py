"""Warnings an outsider can trigger, bounded.

A flood of refused connects or dropped requests must not grow the log by megabytes a
second: each source gets ``burst`` records per ``window``, then one line saying how many
were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["ThrottledLog"]


class ThrottledLog:
    """At most ``burst`` warnings per ``window`` seconds; the rest are counted and reported
    once, with the first warning of the next window."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 20,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._burst = burst
        self._window = window
        self._clock = clock
        self._window_end = float("-inf")
        self._emitted = 0
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        now = self._clock()
        if now >= self._window_end:
            if self._suppressed:
                self._log.warning(
                    "%d more warnings like the ones above were left out in %.0f s",
                    self._suppressed,
                    self._window,
                )
            self._window_end = now + self._window
            self._emitted = self._suppressed = 0
        if self._emitted < self._burst:
            self._emitted += 1
            self._log.warning(message, *args, stacklevel=2)
        else:
            self._suppressed += 1
