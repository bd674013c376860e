"""The event-loop choice: uvloop when installed, asyncio on request, clear errors otherwise."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from trellis.loop import EVENT_LOOP_ENV, event_loop_name, run

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_can_always_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EVENT_LOOP_ENV, "asyncio")
    assert event_loop_name() == "asyncio"
    assert run(_loop_module()).startswith("asyncio")


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed on this platform")
def test_auto_runs_on_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EVENT_LOOP_ENV, raising=False)
    assert event_loop_name() == "uvloop"
    assert run(_loop_module()).startswith("uvloop")
    assert run(_loop_module(), loop="asyncio").startswith("asyncio")


def test_a_bad_choice_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EVENT_LOOP_ENV, "tokio")
    with pytest.raises(ValueError, match="auto, uvloop or asyncio"):
        event_loop_name()
