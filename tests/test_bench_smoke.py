"""Smoke test for bench/rpc_bench.py: it runs end to end and writes sane structured output.

Only the shape of the report is checked: no timing thresholds (the numbers depend on the
machine).  The run talks to its own nats-server on a free 127.0.0.1 port.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = (
    "seq_p50_us",
    "seq_p99_us",
    "seq_mean_us",
    "throughput_rps",
    "conc_p50_us",
    "conc_p99_us",
)


def test_rpc_bench_quick_run_produces_a_report(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.rpc_bench",
            "--quick",
            "--json",
            "--calls=20",
            "--conc-calls=64",
            "--warmup=5",
            "--rounds=1",
            "--inflight=8",
            "--max-seconds=120",
            f"--out-dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["benchmark"] == "rpc"
    assert report["params"]["calls"] == 20
    results = report["results"]
    assert set(results) == {"raw", "trellis", "faststream", "unsigned"}
    for name in ("raw", "trellis", "unsigned"):
        assert results[name]["available"] is True
    for entry in results.values():
        if not entry["available"]:
            continue
        for key in FIGURES:
            assert isinstance(entry[key], float | int) and math.isfinite(entry[key])
            assert entry[key] > 0
        assert len(entry["rounds"]) == 1
    for ratios in report["ratios"].values():
        assert set(ratios) == {"seq_p50", "seq_p99", "throughput"}
        for value in ratios.values():
            assert value is None or value > 0
    assert report["ratios"]["trellis_vs_raw"]["seq_p50"] is not None
    assert all(v is None or isinstance(v, bool) for v in report["goals"].values())
    assert report["environment"]["event_loop"] in {"uvloop", "asyncio"}
    crypto = report["crypto"]
    assert crypto["sign_us"] > 0 and crypto["verify_us"] > 0
    floors = report["floors"]
    assert floors["seq_p50_ratio_floor"] > 1
    assert (
        0
        < floors["throughput_ratio_ceiling_inline"]
        < floors["throughput_ratio_ceiling_offloaded"]
        < 1
    )

    in_path = report["in_path"]  # what the proofs cost on the request path (diagnostic row)
    assert isinstance(in_path["seq_p50_crypto_us"], float | int)
    assert in_path["seq_p50_ratio_floor_in_path"] > 0
    assert in_path["p50_goal_below_floor"] is (in_path["seq_p50_ratio_floor_in_path"] > 1.3)

    saved = json.loads((tmp_path / "rpc.json").read_text(encoding="utf-8"))
    assert saved["results"].keys() == results.keys()
    table = (tmp_path / "rpc.md").read_text(encoding="utf-8")
    assert "| implementation |" in table and "| trellis |" in table
    assert "Ed25519 in this run" in table
