"""Running Trellis programs on the fastest event loop available.

uvloop (libuv) runs asyncio's callbacks, futures, tasks and timers in C.  A Trellis RPC uses
more of those than a bare request/reply (a task per request, a future and a timer per
call), so it gains the most from it: ``bench/`` measures every
implementation on the same loop and records which.  Where uvloop is missing (Windows, PyPy)
or ``TRELLIS_EVENT_LOOP=asyncio`` is set, the standard asyncio loop runs.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["EVENT_LOOP_ENV", "event_loop_name", "run"]

EVENT_LOOP_ENV = "TRELLIS_EVENT_LOOP"

T = TypeVar("T")


def event_loop_name(choice: str | None = None) -> str:
    """``"uvloop"`` or ``"asyncio"``: what :func:`run` uses for ``choice`` (or the env)."""
    wanted = (choice or os.environ.get(EVENT_LOOP_ENV) or "auto").strip().lower()
    if wanted not in {"auto", "uvloop", "asyncio"}:
        raise ValueError(f"{EVENT_LOOP_ENV} must be auto, uvloop or asyncio, not {wanted!r}")
    if wanted == "asyncio":
        return "asyncio"
    available = importlib.util.find_spec("uvloop") is not None
    if wanted == "uvloop" and not available:
        raise ValueError("uvloop was asked for but is not installed")
    return "uvloop" if available else "asyncio"


def run(main: Coroutine[Any, Any, T], *, loop: str | None = None) -> T:
    """``asyncio.run(main)`` on uvloop when available (see :func:`event_loop_name`)."""
    if event_loop_name(loop) == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
