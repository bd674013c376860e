"""Bounded warnings: a flood an outsider triggers costs the log a few lines per window."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import nats
import pytest
from examples.inventory.contract import inventory

from tests.runtime.support import decisions, eventually
from trellis.auth import SessionKey, connect_token
from trellis.logs import ThrottledLog
from trellis.runtime.bundle import init_bundle
from trellis.testing import local_deployment


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_per_window_then_one_line_counting_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    throttled = ThrottledLog(logging.getLogger("test.throttled"), burst=3, window=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.throttled"):
        for n in range(100):
            throttled.warning("refused %d", n)
        assert [r.getMessage() for r in caplog.records] == ["refused 0", "refused 1", "refused 2"]
        clock.now = 10.0
        throttled.warning("refused %d", 100)
    assert [r.getMessage() for r in caplog.records[3:]] == [
        "97 more warnings like the ones above were left out in 10 s",
        "refused 100",
    ]


async def test_a_flood_of_refused_connects_logs_a_bounded_number_of_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        await stack.install(inventory)
        stranger = SessionKey.generate()
        before = decisions(stack).get("session_not_found", 0)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="trellis.runtime.callout"):
            for _ in range(30):
                token = connect_token(stranger, inventory.digest, int(time.time()))
                with pytest.raises(nats.errors.Error, match=r"(?i)authorization violation"):
                    await stack.raw_sentinel(token)
            await eventually(
                lambda: decisions(stack).get("session_not_found", 0) == before + 30,
                what="30 refusals counted",
            )
        windows = 1 + int((time.monotonic() - started) // 10)  # a slow machine spans more
        refusals = [r for r in caplog.records if "refused connection" in r.getMessage()]
        assert len(refusals) == min(30, 20 * windows)  # 20 per window; the rest are counted


async def test_nats_servers_log_rotates_and_keeps_a_bounded_number_of_files(
    tmp_path: Path,
) -> None:
    """nats-server writes a line per refused connect: the bundle makes it rotate its log
    (here at 4 KB instead of 10 MB, to see it happen) and keep ``log_max_files`` files."""
    home = tmp_path / "b"
    bundle = init_bundle(home)
    conf = bundle.nats_config_path
    limit = f"logfile_size_limit: {bundle.config.log_max_bytes}"
    assert limit in conf.read_text()
    conf.write_text(conf.read_text().replace(limit, "logfile_size_limit: 4000"))
    async with local_deployment(home) as stack:
        stranger = SessionKey.generate()
        for _ in range(80):  # about 260 bytes of nats-server log each
            token = connect_token(stranger, inventory.digest, int(time.time()))
            with pytest.raises(nats.errors.Error, match=r"(?i)authorization violation"):
                await stack.raw_sentinel(token)
        logs = sorted(home.glob("nats-server.log*"))
        assert len(logs) == bundle.config.log_max_files  # the live file and 4 rotated ones
        assert all(path.stat().st_size < 8000 for path in logs)
