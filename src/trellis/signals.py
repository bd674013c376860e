"""Waiting for SIGINT/SIGTERM inside asyncio, for processes that serve until told to stop."""

from __future__ import annotations

import asyncio
import signal

__all__ = ["wait_for_shutdown"]


async def wait_for_shutdown() -> None:
    """Return on the first SIGINT or SIGTERM (handlers removed again afterwards)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
