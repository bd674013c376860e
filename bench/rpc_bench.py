"""RPC benchmark: raw nats-py vs FastStream vs Trellis, in one process and across processes.

One run measures every row of :data:`bench.sides.ROWS` (the same pydantic models on both
sides, ``GetItem`` in, ``Item`` out) in two shapes:

* ``one_process``: caller and service on the same event loop;
* ``two_processes``: the service in a process of its own, as deployed (``trellis-2proc``:
  two service processes in the RPC queue group).

For each row: sequential latency (p50/p99/mean) over ``--calls`` calls after a warm-up, and
throughput with ``--inflight`` requests in flight (``--conc-calls`` calls).  Each row talks
to a nats-server of its own (several rows serve the same subjects).  Within a round the rows
run in alternating chunks, rotating who goes first, so a slow spell of a shared machine
lands on all of them; each ratio is the median of the per-round ratios.

The same run times one Ed25519 sign and one verify and prints, next to the ratios, the
goals they set (issue 9): Trellis p50 at most ``1.1 * (raw p50 + sign + verify)``;
throughput at least ``0.8 * raw * raw_cost / (raw_cost + sign + verify)`` with
``raw_cost = 1 / raw throughput``; ahead of FastStream on p50 and throughput.

Run from the repository root::

    .venv/bin/python -m bench.rpc_bench            # full run, writes bench/results/rpc.{json,md}
    .venv/bin/python -m bench.rpc_bench --quick    # smoke run, writes nothing unless --out-dir
    .venv/bin/python -m bench.rpc_bench --json     # print the JSON instead of the table
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.sides import (
    CALLERS,
    ROWS,
    ROWS_BY_NAME,
    Call,
    Row,
    service_in_process,
    service_processes,
    until_served,
)
from trellis.loop import event_loop_name
from trellis.loop import run as run_on_loop
from trellis.nats.server import NatsServer, find_nats_server, free_ports

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"
README_START = "<!-- rpc-results:start -->"
README_END = "<!-- rpc-results:end -->"

SHAPES = ("one_process", "two_processes")
#: chunks per round: each row's calls are split into this many alternating parts
CHUNKS = 5
#: (sequential calls, concurrent calls, warm-up calls, rounds)
FULL = (2000, 6400, 300, 3)
QUICK = (200, 640, 50, 1)
#: the issue's goals: p50 cap and throughput floor factors
P50_CAP_FACTOR = 1.1
THROUGHPUT_FLOOR_FACTOR = 0.8


@dataclass(frozen=True)
class Params:
    calls: int
    conc_calls: int
    warmup: int
    rounds: int
    inflight: int
    max_seconds: float
    rows: tuple[str, ...]
    shapes: tuple[str, ...] = SHAPES
    loop: str = "auto"
    crypto_count: int = 2000  # signs (and verifies) per timing of the Ed25519 costs


# --------------------------------------------------------------------------- measurement


def _percentile(sorted_values: list[float], pct: float) -> float:
    index = max(0, math.ceil(pct / 100.0 * len(sorted_values)) - 1)
    return sorted_values[index]


async def _sequential(call: Call, count: int) -> list[float]:
    """Per-call latencies in microseconds."""
    clock = time.perf_counter_ns
    out: list[float] = []
    for _ in range(count):
        start = clock()
        await call()
        out.append((clock() - start) / 1000.0)
    return out


async def _concurrent(call: Call, count: int, inflight: int) -> tuple[float, list[float]]:
    """(wall seconds, per-call latencies in µs) for ``count`` calls with ``inflight`` at once."""
    clock = time.perf_counter_ns
    latencies: list[float] = []
    per_task, extra = divmod(count, inflight)

    async def caller(n: int) -> None:
        for _ in range(n):
            start = clock()
            await call()
            latencies.append((clock() - start) / 1000.0)

    begin = time.perf_counter()
    await asyncio.gather(*(caller(per_task + (i < extra)) for i in range(inflight)))
    return time.perf_counter() - begin, latencies


def _chunks(total: int, count: int) -> list[int]:
    """``total`` split into ``count`` near-equal positive parts (fewer if total < count)."""
    count = max(1, min(count, total))
    base, extra = divmod(total, count)
    return [base + (i < extra) for i in range(count)]


async def _measure_round(calls: dict[str, Call], params: Params) -> dict[str, dict[str, float]]:
    """One round: every row measured in alternating chunks, rotating who goes first."""
    names = list(calls)
    seq: dict[str, list[float]] = {name: [] for name in names}
    conc: dict[str, list[float]] = {name: [] for name in names}
    wall: dict[str, float] = dict.fromkeys(names, 0.0)
    parts = zip(_chunks(params.calls, CHUNKS), _chunks(params.conc_calls, CHUNKS), strict=False)
    for i, (n_seq, n_conc) in enumerate(parts):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            seq[name] += await _sequential(calls[name], n_seq)
        for name in order:
            seconds, latencies = await _concurrent(calls[name], n_conc, params.inflight)
            wall[name] += seconds
            conc[name] += latencies
    out: dict[str, dict[str, float]] = {}
    for name in names:
        s, c = sorted(seq[name]), sorted(conc[name])
        out[name] = {
            "seq_p50_us": _percentile(s, 50),
            "seq_p99_us": _percentile(s, 99),
            "seq_mean_us": statistics.fmean(s),
            "throughput_rps": len(c) / wall[name],
            "conc_p50_us": _percentile(c, 50),
            "conc_p99_us": _percentile(c, 99),
        }
    return out


async def _measure_shape(
    shape: str, rows: list[Row], params: Params, tmp: Path
) -> dict[str, list[dict[str, float]]]:
    """Per-row figures of every round, with the services laid out as ``shape`` says."""
    from trellis.auth import SessionKey

    key = SessionKey.generate()
    servers: list[NatsServer] = []
    for row, port in zip(rows, free_ports(len(rows)), strict=True):
        conf = tmp / f"{shape}-{row.name}.conf"
        conf.write_text(f"listen: 127.0.0.1:{port}\n", encoding="utf-8")
        servers.append(NatsServer(conf, client_port=port))
    async with contextlib.AsyncExitStack() as stack:
        for server in servers:
            stack.push_async_callback(server.astop)
        await asyncio.gather(*(server.astart() for server in servers))
        urls = [server.url for server in servers]
        if shape == "one_process":
            for row, url in zip(rows, urls, strict=True):
                await stack.enter_async_context(service_in_process(row, url, key.public_key))
        else:
            pairs = list(zip(rows, urls, strict=True))
            await stack.enter_async_context(service_processes(pairs, key.public_key, params.loop))
        calls: dict[str, Call] = {}
        for row, url in zip(rows, urls, strict=True):
            call = await stack.enter_async_context(CALLERS[row.impl](url, key))
            await until_served(call)
            calls[row.name] = call
        for call in calls.values():
            await _sequential(call, params.warmup)
            await _concurrent(call, max(params.inflight, params.warmup), params.inflight)
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in calls}
        for _ in range(params.rounds):
            for name, figures in (await _measure_round(calls, params)).items():
                samples[name].append(figures)
    return samples


# --------------------------------------------------------------------------- figures


def crypto_costs(count: int = 2000, repeats: int = 5) -> dict[str, float]:
    """µs per Ed25519 sign and verify of a 32-byte digest, as a Trellis call does them."""
    import timeit

    from trellis.auth import SessionKey
    from trellis.auth.ed25519 import verify_detached
    from trellis.auth.keys import decode_public_key
    from trellis.encoding import sha256

    key = SessionKey.generate()
    digest = sha256(b"bench")
    signature = key.sign(digest)
    public = decode_public_key(key.public_key)
    assert public is not None

    def best(stmt: Callable[[], object]) -> float:
        return min(timeit.repeat(stmt, number=count, repeat=repeats)) / count * 1e6

    return {
        "sign_us": round(best(lambda: key.sign(digest)), 1),
        "verify_us": round(best(lambda: verify_detached(public, digest, signature)), 1),
    }


def caps(raw: dict[str, Any], crypto: dict[str, float]) -> dict[str, float]:
    """The issue's goals for Trellis/raw, from this run's raw figures and crypto costs.

    ``p50_ratio_cap``: 1.1 * (raw p50 + sign + verify) / raw p50.
    ``throughput_ratio_floor``: 0.8 * raw_cost / (raw_cost + sign + verify), raw_cost being
    raw's µs per request at full load (1 / throughput).
    """
    crypto_us = crypto["sign_us"] + crypto["verify_us"]
    raw_p50 = float(raw["seq_p50_us"])
    raw_cost = 1e6 / float(raw["throughput_rps"])
    return {
        "p50_ratio_cap": round(P50_CAP_FACTOR * (raw_p50 + crypto_us) / raw_p50, 3),
        "throughput_ratio_floor": round(
            THROUGHPUT_FLOOR_FACTOR * raw_cost / (raw_cost + crypto_us), 3
        ),
    }


def round_ratio(
    samples: dict[str, list[dict[str, float]]], mine: str, other: str, key: str
) -> float | None:
    """Median over rounds of mine/other, each round's pair measured back to back.

    A shared machine drifts by ±20 % over a run; pairing within a round cancels most of
    that, where a ratio of two independent medians would not.
    """
    ratios = [
        a[key] / b[key]
        for a, b in zip(samples.get(mine, []), samples.get(other, []), strict=False)
        if b[key]
    ]
    return round(statistics.median(ratios), 3) if ratios else None


def _ratios(samples: dict[str, list[dict[str, float]]], mine: str, other: str) -> dict[str, Any]:
    keys = {"seq_p50": "seq_p50_us", "seq_p99": "seq_p99_us", "throughput": "throughput_rps"}
    return {label: round_ratio(samples, mine, other, key) for label, key in keys.items()}


def _summarise(rounds: list[dict[str, float]]) -> dict[str, Any]:
    """The median of each figure over rounds, plus every round."""
    summary: dict[str, Any] = {
        k: round(statistics.median(r[k] for r in rounds), 1) for k in rounds[0]
    }
    summary["rounds"] = [{k: round(v, 1) for k, v in r.items()} for r in rounds]
    return summary


def shape_report(
    samples: dict[str, list[dict[str, float]]], crypto: dict[str, float]
) -> dict[str, Any]:
    """Results, ratios, caps and goals of one shape."""
    results = {name: _summarise(rounds) for name, rounds in samples.items() if rounds}
    ratios = {
        f"{mine}_vs_{other}": _ratios(samples, mine, other)
        for mine, other in (
            ("trellis", "raw"),
            ("raw-headers", "raw"),
            ("trellis", "raw-headers"),
            ("trellis", "faststream"),
            ("trellis-2proc", "trellis"),
        )
        if mine in samples and other in samples
    }
    report: dict[str, Any] = {"results": results, "ratios": ratios}
    if "raw" in results and "trellis" in results:
        cap = caps(results["raw"], crypto)
        vs_raw = ratios["trellis_vs_raw"]
        goals: dict[str, bool | None] = {
            "p50_within_cap": vs_raw["seq_p50"] <= cap["p50_ratio_cap"],
            "throughput_above_floor": vs_raw["throughput"] >= cap["throughput_ratio_floor"],
        }
        vs_fs = ratios.get("trellis_vs_faststream")
        goals["p50_ahead_of_faststream"] = None if vs_fs is None else vs_fs["seq_p50"] < 1
        goals["throughput_ahead_of_faststream"] = None if vs_fs is None else vs_fs["throughput"] > 1
        report["caps"] = cap
        report["goals"] = goals
    return report


async def run(params: Params) -> dict[str, Any]:
    """Measure every wanted row in every wanted shape; return the report."""
    rows = [row for row in ROWS if row.name in params.rows]
    crypto = crypto_costs(params.crypto_count)
    shapes: dict[str, Any] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="trellis-bench-") as tmp:
        for shape in params.shapes:
            # several service processes only make sense apart from the caller
            wanted = [r for r in rows if shape == "two_processes" or r.processes == 1]
            samples = await _measure_shape(shape, wanted, params, Path(tmp))
            shapes[shape] = shape_report(samples, crypto)
    return {
        "schema": 2,
        "benchmark": "rpc",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "elapsed_s": round(time.perf_counter() - started, 2),
        "environment": {
            "commit": _commit(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "nats_server": find_nats_server().name,
            "nats_py": importlib.metadata.version("nats-py"),
            "pydantic": importlib.metadata.version("pydantic"),
            "pynacl": importlib.metadata.version("pynacl"),
            "faststream": _version("faststream"),
            "event_loop": event_loop_name(params.loop),
        },
        "params": {
            "calls": params.calls,
            "conc_calls": params.conc_calls,
            "warmup": params.warmup,
            "rounds": params.rounds,
            "inflight": params.inflight,
        },
        "crypto": crypto,
        "shapes": shapes,
    }


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _commit() -> str | None:
    """The checked-out commit (``+`` if the tree has changes), so figures can be traced."""
    try:
        head = subprocess.run(
            ["git", "describe", "--always", "--dirty=+"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() or None


# --------------------------------------------------------------------------- output


def _cell(value: Any, fmt: str = "{:,.0f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def _yes(value: bool | None) -> str:
    return "n/a" if value is None else ("**yes**" if value else "no")


def markdown(report: dict[str, Any]) -> str:
    """The results as markdown tables (what bench/README.md includes)."""
    p, env, crypto = report["params"], report["environment"], report["crypto"]
    f2 = "{:.2f}x"
    lines = [
        f"Sequential: {p['calls']} calls after {p['warmup']} warm-up; concurrent: "
        f"{p['conc_calls']} calls with {p['inflight']} in flight; median of {p['rounds']} "
        f"round(s), commit {env.get('commit') or 'n/a'}. Python {env['python']} on "
        f"{env['event_loop']}, {env['cpus']} CPU(s), "
        f"nats-py {env['nats_py']}, pydantic {env['pydantic']}, FastStream {env['faststream']}. "
        f"Ed25519 in this run: sign {crypto['sign_us']:.0f} µs, verify "
        f"{crypto['verify_us']:.0f} µs.",
    ]
    for shape, data in report["shapes"].items():
        lines += [
            "",
            f"**{shape.replace('_', ' ')}**",
            "",
            "| row | p50 (µs) | p99 (µs) | mean (µs) | throughput (req/s) "
            "| p50 @load (µs) | p99 @load (µs) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in data["results"].items():
            lines.append(
                f"| {name} | {_cell(r['seq_p50_us'])} | {_cell(r['seq_p99_us'])} "
                f"| {_cell(r['seq_mean_us'])} | {_cell(r['throughput_rps'])} "
                f"| {_cell(r['conc_p50_us'])} | {_cell(r['conc_p99_us'])} |"
            )
        lines += ["", "| ratio | p50 | p99 | throughput | goal |", "|---|---:|---:|---:|---|"]
        cap, goals = data.get("caps", {}), data.get("goals", {})
        for label, r in data["ratios"].items():
            goal = ""
            if label == "trellis_vs_raw" and cap:
                goal = (
                    f"p50 ≤ {cap['p50_ratio_cap']:.2f}x: {_yes(goals['p50_within_cap'])}; "
                    f"throughput ≥ {cap['throughput_ratio_floor']:.2f}x: "
                    f"{_yes(goals['throughput_above_floor'])}"
                )
            elif label == "trellis_vs_faststream" and goals:
                goal = (
                    f"p50 < 1: {_yes(goals['p50_ahead_of_faststream'])}; throughput > 1: "
                    f"{_yes(goals['throughput_ahead_of_faststream'])}"
                )
            lines.append(
                f"| {label.replace('_vs_', ' / ')} | {_cell(r['seq_p50'], f2)} "
                f"| {_cell(r['seq_p99'], f2)} | {_cell(r['throughput'], f2)} | {goal} |"
            )
    return "\n".join(lines) + "\n"


def write_results(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "rpc.json"
    md_path = out_dir / "rpc.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown(report), encoding="utf-8")
    return json_path, md_path


def update_readme(report: dict[str, Any], readme: Path = README) -> bool:
    """Replace the block between the rpc-results markers in bench/README.md."""
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        return False
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_START}\n{markdown(report)}{README_END}{tail}", "utf-8")
    return True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small counts, one round")
    parser.add_argument("--json", action="store_true", help="print the JSON report to stdout")
    parser.add_argument("--calls", type=int, help="sequential calls per round")
    parser.add_argument("--conc-calls", type=int, help="concurrent calls per round")
    parser.add_argument("--warmup", type=int, help="warm-up calls per round")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (median reported)")
    parser.add_argument("--inflight", type=int, default=64, help="requests in flight")
    parser.add_argument(
        "--only", default=",".join(ROWS_BY_NAME), help=f"rows, of {','.join(ROWS_BY_NAME)}"
    )
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma list of shapes")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="hard deadline")
    parser.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="event loop for every process (auto: uvloop if installed, as Trellis runs)",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        help="where rpc.json/rpc.md go (default bench/results; --quick writes nothing unless set)",
    )
    parser.add_argument("--no-write", action="store_true", help="write no result files")
    parser.add_argument(
        "--update-readme", action="store_true", help="refresh the tables in bench/README.md"
    )
    return parser.parse_args(argv)


def params_from(args: argparse.Namespace) -> Params:
    calls, conc, warmup, rounds = QUICK if args.quick else FULL
    rows = tuple(x.strip() for x in args.only.split(",") if x.strip())
    shapes = tuple(x.strip() for x in args.shapes.split(",") if x.strip())
    if set(rows) - set(ROWS_BY_NAME) or "trellis" not in rows:
        raise SystemExit(f"--only must include trellis and name only {tuple(ROWS_BY_NAME)}")
    if not shapes or set(shapes) - set(SHAPES):
        raise SystemExit(f"--shapes must name some of {SHAPES}")
    result = Params(
        calls=args.calls or calls,
        conc_calls=args.conc_calls or conc,
        warmup=args.warmup if args.warmup is not None else warmup,
        rounds=args.rounds or rounds,
        inflight=args.inflight,
        max_seconds=args.max_seconds,
        rows=rows,
        shapes=shapes,
        loop=args.loop,
        crypto_count=200 if args.quick else 2000,
    )
    if min(result.calls, result.conc_calls, result.rounds, result.inflight) < 1:
        raise SystemExit("counts must be positive")
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = params_from(args)
    if "faststream" in params.rows and _version("faststream") is None:
        print(
            "FastStream is not installed: .venv/bin/pip install -e '.[bench]', "
            "or leave it out with --only raw,trellis",
            file=sys.stderr,
        )
        return 2

    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(run(params), timeout=params.max_seconds)

    report = run_on_loop(bounded(), loop=args.loop)
    out_dir = args.out_dir
    if out_dir is None and not args.quick:
        out_dir = RESULTS_DIR
    written = "no result files written"
    if out_dir is not None and not args.no_write:
        json_path, md_path = write_results(report, out_dir)
        written = f"wrote {json_path} and {md_path}"
    if args.update_readme:
        update_readme(report)
    print(json.dumps(report, indent=2) if args.json else markdown(report) + written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
