"""Smoke test for bench/rpc_bench.py: it runs end to end, in both shapes, and reports sanely.

Only the shape of the report and the arithmetic of the goals are checked, never timings (the
numbers depend on the machine).  Every row talks to its own nats-server on a free port.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURES = (
    "seq_p50_us",
    "seq_p99_us",
    "seq_mean_us",
    "throughput_rps",
    "conc_p50_us",
    "conc_p99_us",
)
#: FastStream is the ``bench`` extra; without it the run still compares raw and Trellis
ROWS = {"raw", "raw-headers", "trellis"} | (
    {"faststream"} if importlib.util.find_spec("faststream") else set()
)


def test_rpc_bench_quick_run_reports_both_shapes_and_the_goals(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.rpc_bench",
            "--quick",
            "--json",
            "--calls=10",
            "--conc-calls=16",
            "--warmup=2",
            "--rounds=1",
            "--inflight=4",
            "--only=" + ",".join(sorted(ROWS)),
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
    assert report["benchmark"] == "rpc" and report["params"]["calls"] == 10
    assert report["environment"]["event_loop"] in {"uvloop", "asyncio"}
    sign, verify = report["crypto"]["sign_us"], report["crypto"]["verify_us"]
    assert sign > 0 and verify > 0
    assert set(report["shapes"]) == {"one_process", "two_processes"}

    for shape in report["shapes"].values():
        results = shape["results"]
        assert set(results) == ROWS
        for entry in results.values():
            for key in FIGURES:
                assert isinstance(entry[key], float | int) and math.isfinite(entry[key])
                assert entry[key] > 0
            assert len(entry["rounds"]) == 1
        assert set(shape["ratios"]) == {f"trellis_vs_{row}" for row in ROWS - {"trellis"}} | {
            "raw-headers_vs_raw"
        }
        for ratios in shape["ratios"].values():
            assert set(ratios) == {"seq_p50", "seq_p99", "throughput"}
            assert all(value > 0 for value in ratios.values())
        # one round: the ratio is that round's pair
        raw, trellis = results["raw"], results["trellis"]
        assert shape["ratios"]["trellis_vs_raw"]["seq_p50"] == pytest.approx(
            trellis["seq_p50_us"] / raw["seq_p50_us"], rel=0.01
        )

        # the goals are computed from this run's raw figures and crypto costs
        raw_cost = 1e6 / raw["throughput_rps"]
        caps = shape["caps"]
        assert caps["p50_ratio_cap"] == pytest.approx(
            1.1 * (raw["seq_p50_us"] + sign + verify) / raw["seq_p50_us"], abs=0.001
        )
        assert caps["throughput_ratio_floor"] == pytest.approx(
            0.8 * raw_cost / (raw_cost + sign + verify), abs=0.001
        )
        vs_raw, vs_fs = (
            shape["ratios"]["trellis_vs_raw"],
            shape["ratios"].get("trellis_vs_faststream"),
        )
        assert shape["goals"] == {
            "p50_within_cap": vs_raw["seq_p50"] <= caps["p50_ratio_cap"],
            "throughput_above_floor": vs_raw["throughput"] >= caps["throughput_ratio_floor"],
            "p50_ahead_of_faststream": None if vs_fs is None else vs_fs["seq_p50"] < 1,
            "throughput_ahead_of_faststream": None if vs_fs is None else vs_fs["throughput"] > 1,
        }

    saved = json.loads((tmp_path / "rpc.json").read_text(encoding="utf-8"))
    assert saved["shapes"].keys() == report["shapes"].keys()
    table = (tmp_path / "rpc.md").read_text(encoding="utf-8")
    assert "**one process**" in table and "**two processes**" in table
    assert "| trellis / raw |" in table and "| raw-headers / raw |" in table
    assert "sign" in table
