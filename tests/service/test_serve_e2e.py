"""``trellis serve MODULE:ATTR --processes N`` through the real stack: N service processes in
the queue group, stopped together by SIGTERM, and a crashed child reported."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime.support import eventually
from tests.service.conftest import Inventory
from trellis.cli.loading import SourceError
from trellis.cli.serve import load_entry_point
from trellis.result import Ok

ROOT = Path(__file__).resolve().parents[2]
TRELLIS = str(Path(sys.executable).parent / "trellis")


def _serve(inv: Inventory, seed: Path, processes: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            TRELLIS,
            "serve",
            "examples.inventory.service:serve",
            f"--processes={processes}",
            f"--seed={seed}",
            f"--trellis={inv.dep.runtime_url}",
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


async def _children(proc: subprocess.Popen[str]) -> list[int]:
    assert proc.stderr is not None
    line = await asyncio.to_thread(proc.stderr.readline)
    found = re.search(r"processes: \[([\d, ]+)\]", line)
    assert found, line
    return [int(pid) for pid in found.group(1).split(",")]


async def _until_connected(inv: Inventory, count: int, within: float = 15.0) -> None:
    """Wait until ``count`` connections of the service's key are admitted and tracked."""
    tracker = inv.dep.runtime.tracker
    assert tracker is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while len(await tracker.list(inv.key.public_key)) != count:
        if loop.time() > deadline:
            pytest.fail(f"{count} service connections not seen within {within} s")
        await asyncio.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0
    except FileNotFoundError:
        return False


async def test_serve_runs_n_processes_and_sigterm_stops_them_all(
    inv: Inventory, tmp_path: Path
) -> None:
    seed = inv.key.save(tmp_path / "inventory.seed")
    proc = _serve(inv, seed, 2)
    try:
        pids = await _children(proc)
        assert len(set(pids)) == 2
        await _until_connected(inv, 2)  # both processes admitted by the callout
        client = await inv.client()
        for n in range(4):
            created = await client.call(
                "Items.Create", {"id": f"i{n}", "name": "n", "category": "books"}, timeout=10
            )
            assert isinstance(created, Ok), created

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
        await eventually(lambda: not any(_alive(pid) for pid in pids), what="children gone")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_a_crashed_child_is_reported_and_the_others_stopped(
    inv: Inventory, tmp_path: Path
) -> None:
    seed = inv.key.save(tmp_path / "inventory.seed")
    proc = _serve(inv, seed, 2)
    try:
        first, second = await _children(proc)
        os.kill(first, signal.SIGKILL)
        assert await asyncio.to_thread(proc.wait, 30) == 1
        assert proc.stderr is not None
        assert f"process {first} exited with status -9" in proc.stderr.read()
        await eventually(lambda: not _alive(second), what="the other child stopped")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_entry_point_must_be_an_async_function_of_key_and_url() -> None:
    assert load_entry_point("examples.inventory.service:serve")
    for bad, reason in (
        ("examples.inventory.service", "MODULE:ATTR"),
        ("examples.no_such_module:serve", "cannot import"),
        ("examples.inventory.service:nothing", "no attribute"),
        ("examples.inventory.service:mount", "async function"),
        ("examples.inventory.service:main", "async function"),
    ):
        with pytest.raises(SourceError, match=reason):
            load_entry_point(bad)


async def test_children_stop_when_the_supervisor_is_killed(inv: Inventory, tmp_path: Path) -> None:
    seed = inv.key.save(tmp_path / "inventory.seed")
    proc = _serve(inv, seed, 2)
    try:
        pids = await _children(proc)
        proc.kill()  # SIGKILL, while the children start: no chance to stop them
        proc.wait()
        await eventually(
            lambda: not any(_alive(pid) for pid in pids), within=20, what="orphans gone"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
