"""The RPC server's concurrency gate: a bound that holds, and slots never lost to
cancellation."""

from __future__ import annotations

import asyncio

import pytest

from trellis.service.rpc import _Gate


def test_a_gate_needs_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        _Gate(0)


async def test_the_gate_bounds_concurrency_and_lets_everyone_through() -> None:
    gate = _Gate(2)
    running = 0
    peak = 0
    done: list[int] = []

    async def job(i: int) -> None:
        nonlocal running, peak
        await gate.acquire()
        try:
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1
            done.append(i)
        finally:
            gate.release()

    await asyncio.gather(*(job(i) for i in range(7)))
    assert peak == 2
    assert sorted(done) == list(range(7))
    assert gate._free == 2 and not gate._waiters


async def test_a_cancelled_waiter_passes_its_slot_on() -> None:
    gate = _Gate(1)
    await gate.acquire()  # held by "A"
    b = asyncio.ensure_future(gate.acquire())
    c = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0)
    gate.release()  # handed to B, which has not run yet
    b.cancel()
    await asyncio.sleep(0)
    assert b.cancelled()
    await asyncio.wait_for(c, timeout=1)  # B's slot went on to C
    gate.release()
    assert gate._free == 1 and not gate._waiters


async def test_a_waiter_cancelled_before_its_turn_is_skipped() -> None:
    gate = _Gate(1)
    await gate.acquire()
    b = asyncio.ensure_future(gate.acquire())
    c = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0)
    b.cancel()
    await asyncio.sleep(0)
    gate.release()
    await asyncio.wait_for(c, timeout=1)
    gate.release()
    assert gate._free == 1 and not gate._waiters
