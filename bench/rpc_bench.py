"""RPC benchmark: raw nats-py vs Trellis RpcServer/RpcClient vs FastStream, in one process.

One run starts one ``nats-server`` on a free 127.0.0.1 port and measures, for each
implementation, with the same pydantic models on both sides (``GetItem`` in, ``Item`` out):

* sequential latency (p50/p99/mean) over ``--calls`` calls after a warm-up;
* concurrent throughput with ``--inflight`` requests in flight (``--conc-calls`` calls).

A fourth row, ``unsigned``, is a diagnostic: Trellis with the proof's Ed25519 sign and
verify taken out, to show what they cost on the request path itself.

All implementations stay connected for the whole run; within each round their calls run in
alternating chunks (raw, trellis, faststream, then trellis, faststream, raw, ...), the median
round is reported, and each ratio is the median of the per-round ratios, which keeps the
drift of a busy machine from favouring one side.
Everything is bounded: fixed call counts, a 5 s per-call timeout and a ``--max-seconds``
deadline for the whole run.

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
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from pydantic import BaseModel

from trellis.loop import event_loop_name
from trellis.loop import run as run_on_loop
from trellis.nats.server import NatsServer, find_nats_server, free_ports

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"
README_START = "<!-- rpc-results:start -->"
README_END = "<!-- rpc-results:end -->"

IMPLEMENTATIONS = ("raw", "trellis", "faststream", "unsigned")
#: diagnostic rows: not a way to run Trellis, a measure of what one part of it costs
DIAGNOSTICS = ("unsigned",)
CALL_TIMEOUT = 5.0
RAW_SUBJECT = "bench.raw.items.get"
FS_SUBJECT = "bench.faststream.items.get"

#: chunks per round: each implementation's calls are split into this many alternating parts
CHUNKS = 5

#: (sequential calls, concurrent calls, warm-up calls, rounds)
FULL = (2000, 6400, 300, 3)
QUICK = (200, 640, 50, 1)

Call = Callable[[], Awaitable[None]]


class BenchError(RuntimeError):
    """A call failed or returned the wrong thing: the numbers would be meaningless."""


@dataclass(frozen=True)
class Params:
    calls: int
    conc_calls: int
    warmup: int
    rounds: int
    inflight: int
    max_seconds: float
    only: tuple[str, ...]
    loop: str = "auto"


def _models() -> tuple[type[BaseModel], type[BaseModel], Any]:
    """``GetItem``, ``Item`` and the ``inventory`` contract from examples/ (repo root on path)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from examples.inventory.contract import GetItem, Item, inventory

    return GetItem, Item, inventory


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
    per_worker, extra = divmod(count, inflight)

    async def worker(n: int) -> None:
        for _ in range(n):
            start = clock()
            await call()
            latencies.append((clock() - start) / 1000.0)

    begin = time.perf_counter()
    await asyncio.gather(*(worker(per_worker + (i < extra)) for i in range(inflight)))
    return time.perf_counter() - begin, latencies


async def _until_served(call: Call, within: float = 5.0) -> None:
    """Retry the first call until it succeeds: right after a subscribe, nats-server has been
    seen to answer "no responders" for a moment, which would abort a whole run."""
    deadline = time.monotonic() + within
    while True:
        try:
            await call()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def _warm_up(call: Call, params: Params) -> None:
    await _sequential(call, params.warmup)
    await _concurrent(call, max(params.inflight, params.warmup), params.inflight)


def _chunks(total: int, count: int) -> list[int]:
    """``total`` split into ``count`` near-equal positive parts (fewer if total < count)."""
    count = max(1, min(count, total))
    base, extra = divmod(total, count)
    return [base + (i < extra) for i in range(count)]


async def _measure_round(calls: dict[str, Call], params: Params) -> dict[str, dict[str, float]]:
    """One round: every implementation measured in alternating chunks.

    A shared machine's speed drifts within seconds; measuring raw, trellis and faststream
    one after the other in short chunks (rotating who goes first) spreads that drift over
    all of them instead of handing it to whoever ran during a slow spell.
    """
    names = list(calls)
    seq: dict[str, list[float]] = {name: [] for name in names}
    conc: dict[str, list[float]] = {name: [] for name in names}
    wall: dict[str, float] = dict.fromkeys(names, 0.0)
    for i, (n_seq, n_conc) in enumerate(
        zip(
            _chunks(params.calls, CHUNKS),
            _chunks(params.conc_calls, CHUNKS),
            strict=False,
        )
    ):
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


# --------------------------------------------------------------------------- implementations


@contextlib.asynccontextmanager
async def _raw(url: str) -> AsyncIterator[Call]:
    get_item, item, _ = _models()
    snc = await nats.connect(url)
    cnc = await nats.connect(url)
    try:

        async def serve(msg: Any) -> None:
            req = get_item.model_validate_json(msg.data)
            reply = item(id=req.id, name="widget", category="tools", quantity=3)  # type: ignore[attr-defined]
            await msg.respond(reply.model_dump_json().encode())

        await snc.subscribe(RAW_SUBJECT, queue="bench", cb=serve)
        await snc.flush()
        request = get_item(id="item-1")

        async def call() -> None:
            msg = await cnc.request(
                RAW_SUBJECT, request.model_dump_json().encode(), timeout=CALL_TIMEOUT
            )
            out = item.model_validate_json(msg.data)
            if out.id != "item-1":  # type: ignore[attr-defined]
                raise BenchError(f"raw: unexpected reply {out!r}")

        await _until_served(call)
        yield call
    finally:
        await cnc.close()
        await snc.close()


@contextlib.asynccontextmanager
async def _trellis(url: str, *, sign_and_verify: bool = True) -> AsyncIterator[Call]:
    from trellis import Ok, SessionKey
    from trellis.calls import RpcClient, rpc_targets
    from trellis.nats.fastclient import connect
    from trellis.principals import Principal, PrincipalCache
    from trellis.service.rpc import RequestContext, RpcServer

    get_item, item, inventory = _models()
    ckey = SessionKey.generate()
    cache = PrincipalCache()
    cache.put(
        Principal(
            session_key=ckey.public_key,
            kind="user",
            name="bench",
            contract_id="bench@v1",
            contract_digest="bench",
            capabilities=("inventory::items.read",),
        )
    )
    # the connection class connect_service/connect_client use
    snc = await connect(url)
    cnc = await connect(url, inbox_prefix=ckey.inbox_prefix)
    signatures = None if sign_and_verify else _unchecked_proofs()
    server = RpcServer(snc, inventory, cache, signatures=signatures)
    client = RpcClient(cnc, ckey, rpc_targets(inventory, include_own=True), signatures=signatures)
    try:

        @server.handler("Items.Get")
        async def get(req: Any, ctx: RequestContext) -> Any:
            return Ok(item(id=req.id, name="widget", category="tools", quantity=3))

        await server.start()
        request = get_item(id="item-1")

        async def call() -> None:
            result = await client.call("Items.Get", request, timeout=CALL_TIMEOUT)
            if not isinstance(result, Ok) or result.value.id != "item-1":
                raise BenchError(f"trellis: unexpected result {result!r}")

        await _until_served(call)
        yield call
    finally:
        await client.close()
        await server.stop(drain_timeout=5.0)
        await cnc.close()
        await snc.close()


@contextlib.asynccontextmanager
async def _faststream(url: str) -> AsyncIterator[Call]:
    from faststream.nats import NatsBroker

    get_item, item, _ = _models()
    server = NatsBroker(url, logger=None)
    client = NatsBroker(url, logger=None)

    @server.subscriber(FS_SUBJECT, queue="bench")
    async def serve(body: get_item) -> item:  # type: ignore[valid-type]
        return item(id=body.id, name="widget", category="tools", quantity=3)  # type: ignore[attr-defined]

    await server.start()
    await client.start()
    try:
        request = get_item(id="item-1")

        async def call() -> None:
            msg = await client.request(request, FS_SUBJECT, timeout=CALL_TIMEOUT)
            out = item.model_validate_json(msg.body)
            if out.id != "item-1":  # type: ignore[attr-defined]
                raise BenchError(f"faststream: unexpected reply {out!r}")

        await _until_served(call)
        yield call
    finally:
        await client.stop()
        await server.stop()


def _faststream_version() -> str | None:
    try:
        import faststream.nats  # noqa: F401
    except ImportError:
        return None
    return importlib.metadata.version("faststream")


def _unchecked_proofs() -> Any:
    """DIAGNOSTIC ONLY: a signature worker that signs with zeros and accepts every proof.

    The ``unsigned`` row runs Trellis's whole request path with the two Ed25519 operations
    taken out, so ``trellis - unsigned`` is what they cost in the path itself: more than
    the warm loop in :func:`crypto_costs` says, since on the request path the CPU's caches
    hold nats-py, pydantic and the kernel's network code, not libsodium's tables.
    Nothing outside this benchmark can build a server or client that skips the check.
    """
    from trellis.auth import SessionKey, SignatureWorker

    class UncheckedProofs(SignatureWorker):
        def verify_now(self, public_key: str, message: bytes, signature: str) -> bool:
            return True

        async def verify(
            self, public_key: str, message: bytes, signature: str, *, busy: bool = True
        ) -> bool:
            return True

        def sign_now(self, key: SessionKey, message: bytes) -> bytes:
            return bytes(64)

        async def sign(self, key: SessionKey, message: bytes, *, busy: bool = True) -> bytes:
            return bytes(64)

    return UncheckedProofs(offload=False)


def _unsigned(url: str) -> contextlib.AbstractAsyncContextManager[Call]:
    return _trellis(url, sign_and_verify=False)


FACTORIES: dict[str, Callable[[str], contextlib.AbstractAsyncContextManager[Call]]] = {
    "raw": _raw,
    "trellis": _trellis,
    "faststream": _faststream,
    "unsigned": _unsigned,
}


# --------------------------------------------------------------------------- the run


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


def floors(raw: dict[str, Any] | None, crypto: dict[str, float]) -> dict[str, float | None]:
    """What per-request signatures alone allow, from this run's raw figures.

    * ``seq_p50_ratio_floor``: raw p50 plus one sign and one verify on the critical path;
    * ``throughput_ratio_ceiling_inline``: raw's CPU per request (1/throughput, one busy
      event loop) plus sign and verify on that same loop;
    * ``throughput_ratio_ceiling_offloaded``: the same with the verification moved off the
      loop (the signature stays with the caller).
    """
    if not raw or not raw.get("available"):
        return {
            "seq_p50_ratio_floor": None,
            "throughput_ratio_ceiling_inline": None,
            "throughput_ratio_ceiling_offloaded": None,
        }
    sign, verify = crypto["sign_us"], crypto["verify_us"]
    per_request = 1e6 / float(raw["throughput_rps"])
    return {
        "seq_p50_ratio_floor": round((raw["seq_p50_us"] + sign + verify) / raw["seq_p50_us"], 3),
        "throughput_ratio_ceiling_inline": round(per_request / (per_request + sign + verify), 3),
        "throughput_ratio_ceiling_offloaded": round(per_request / (per_request + sign), 3),
    }


def in_path_crypto(samples: dict[str, list[dict[str, float]]]) -> dict[str, float | None]:
    """What the proofs cost on the request path, from the ``unsigned`` diagnostic row.

    Per round: ``trellis - unsigned`` p50 (µs), and the p50 floor it implies, raw p50 plus
    that cost over raw p50 (medians over rounds).
    """
    costs, floors_ = [], []
    for mine, unsigned, raw in zip(
        samples.get("trellis", []),
        samples.get("unsigned", []),
        samples.get("raw", []),
        strict=False,
    ):
        cost = mine["seq_p50_us"] - unsigned["seq_p50_us"]
        costs.append(cost)
        floors_.append((raw["seq_p50_us"] + cost) / raw["seq_p50_us"])
    if not costs:
        return {"seq_p50_crypto_us": None, "seq_p50_ratio_floor_in_path": None}
    return {
        "seq_p50_crypto_us": round(statistics.median(costs), 1),
        "seq_p50_ratio_floor_in_path": round(statistics.median(floors_), 3),
    }


def round_ratio(samples: dict[str, list[dict[str, float]]], other: str, key: str) -> float | None:
    """Median over rounds of trellis/other, each round's pair measured back to back.

    A shared machine drifts by ±20 % over a run; pairing within a round cancels most of
    that, where a ratio of two independent medians would not.
    """
    ratios = [
        r
        for mine, theirs in zip(samples.get("trellis", []), samples.get(other, []), strict=False)
        if (r := _ratio(mine[key], theirs[key])) is not None
    ]
    return round(statistics.median(ratios), 3) if ratios else None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def _summarise(rounds: list[dict[str, float]]) -> dict[str, Any]:
    """The median round (by throughput) plus the median of each latency figure."""
    keys = rounds[0].keys()
    summary: dict[str, Any] = {k: round(statistics.median(r[k] for r in rounds), 1) for k in keys}
    summary["rounds"] = [{k: round(v, 1) for k, v in r.items()} for r in rounds]
    return summary


async def run(params: Params) -> dict[str, Any]:
    """Start nats-server, measure every available implementation, return the report."""
    fs_version = _faststream_version()
    results: dict[str, Any] = {}
    wanted = [name for name in IMPLEMENTATIONS if name in params.only]
    if "faststream" in wanted and fs_version is None:
        results["faststream"] = {"available": False, "reason": "faststream[nats] not installed"}
        wanted.remove("faststream")
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in wanted}
    crypto = crypto_costs()
    with tempfile.TemporaryDirectory(prefix="trellis-bench-") as tmp:
        # the diagnostic row serves the same contract subjects as trellis, so it gets a
        # nats-server of its own (idle while the others run: the rows alternate)
        servers: dict[str, NatsServer] = {}
        for label, port in zip(("main", "diagnostic"), free_ports(2), strict=True):
            conf = Path(tmp) / f"{label}.conf"
            conf.write_text(f"listen: 127.0.0.1:{port}\n", encoding="utf-8")
            servers[label] = NatsServer(conf, client_port=port)
        started = time.perf_counter()
        try:
            async with contextlib.AsyncExitStack() as stack:
                calls = {}
                for name in wanted:
                    server = servers["diagnostic" if name in DIAGNOSTICS else "main"]
                    if not server.running:
                        await server.astart()
                    calls[name] = await stack.enter_async_context(FACTORIES[name](server.url))
                for call in calls.values():
                    await _warm_up(call, params)
                for _ in range(params.rounds):
                    for name, figures in (await _measure_round(calls, params)).items():
                        samples[name].append(figures)
        finally:
            for server in servers.values():
                if server.running:
                    await server.astop()
        elapsed = time.perf_counter() - started
    for name in wanted:
        results[name] = {"available": True, **_summarise(samples[name])}

    ratios = {
        other: {
            "seq_p50": round_ratio(samples, other, "seq_p50_us"),
            "seq_p99": round_ratio(samples, other, "seq_p99_us"),
            "throughput": round_ratio(samples, other, "throughput_rps"),
        }
        for other in ("raw", "faststream")
    }
    goals = {
        "trellis_p50_within_1.3x_raw": _goal(ratios["raw"]["seq_p50"], lambda r: r <= 1.3),
        "trellis_throughput_ge_0.5x_raw": _goal(ratios["raw"]["throughput"], lambda r: r >= 0.5),
        "trellis_throughput_ge_2x_faststream": _goal(
            ratios["faststream"]["throughput"], lambda r: r >= 2.0
        ),
    }
    in_path = in_path_crypto(samples)
    floor = in_path["seq_p50_ratio_floor_in_path"]
    #: whether the p50 goal is below what the proofs alone cost on the request path
    goal_below_floor = None if floor is None else floor > 1.3
    return {
        "schema": 1,
        "benchmark": "rpc",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "elapsed_s": round(elapsed, 2),
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": _cpus(),
            "nats_server": find_nats_server().name,
            "nats_py": importlib.metadata.version("nats-py"),
            "pydantic": importlib.metadata.version("pydantic"),
            "pynacl": importlib.metadata.version("pynacl"),
            "event_loop": event_loop_name(params.loop),
            "faststream": fs_version,
        },
        "params": {
            "calls": params.calls,
            "conc_calls": params.conc_calls,
            "warmup": params.warmup,
            "rounds": params.rounds,
            "inflight": params.inflight,
        },
        "results": results,
        "ratios": {"trellis_vs_raw": ratios["raw"], "trellis_vs_faststream": ratios["faststream"]},
        "crypto": crypto,
        "floors": floors(results.get("raw"), crypto),
        "in_path": {**in_path, "p50_goal_below_floor": goal_below_floor},
        "goals": goals,
    }


def _goal(value: float | None, check: Callable[[float], bool]) -> bool | None:
    return None if value is None else check(value)


def _cpus() -> int | None:
    import os

    return os.cpu_count()


# --------------------------------------------------------------------------- output


def _cell(value: Any, fmt: str = "{:,.0f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def markdown(report: dict[str, Any]) -> str:
    """The results as a markdown table (what bench/README.md includes)."""
    p = report["params"]
    env = report["environment"]
    lines = [
        f"Sequential: {p['calls']} calls after {p['warmup']} warm-up; concurrent: "
        f"{p['conc_calls']} calls with {p['inflight']} in flight; median of {p['rounds']} "
        f"round(s). Python {env['python']} on {env.get('event_loop', 'asyncio')}, "
        f"{env['cpus']} CPU(s), nats-py {env['nats_py']}, "
        f"pydantic {env['pydantic']}, FastStream {env['faststream'] or 'n/a'}.",
        "",
        "| implementation | p50 (µs) | p99 (µs) | mean (µs) | throughput (req/s) "
        "| p50 @64 (µs) | p99 @64 (µs) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in IMPLEMENTATIONS:
        r = report["results"].get(name)
        if r is None:
            continue
        if not r.get("available"):
            lines.append(f"| {name} | n/a | n/a | n/a | n/a | n/a | n/a |")
            continue
        lines.append(
            f"| {name} | {_cell(r['seq_p50_us'])} | {_cell(r['seq_p99_us'])} "
            f"| {_cell(r['seq_mean_us'])} | {_cell(r['throughput_rps'])} "
            f"| {_cell(r['conc_p50_us'])} | {_cell(r['conc_p99_us'])} |"
        )
    rr = report["ratios"]["trellis_vs_raw"]
    rf = report["ratios"]["trellis_vs_faststream"]
    f2 = "{:.2f}x"
    lines += [
        "",
        "| ratio | p50 latency | p99 latency | throughput |",
        "|---|---:|---:|---:|",
        f"| Trellis / raw | {_cell(rr['seq_p50'], f2)} | {_cell(rr['seq_p99'], f2)} "
        f"| {_cell(rr['throughput'], f2)} |",
        f"| Trellis / FastStream | {_cell(rf['seq_p50'], f2)} | {_cell(rf['seq_p99'], f2)} "
        f"| {_cell(rf['throughput'], f2)} |",
        "",
        "Latency ratios below 1 mean Trellis is faster; throughput ratios above 1 mean Trellis "
        "serves more requests per second.",
    ]
    in_path = report.get("in_path") or {}
    if in_path.get("seq_p50_crypto_us") is not None:
        lines += [
            "",
            f"*unsigned* is a diagnostic, not a mode: the same Trellis path with the proof's "
            f"sign and verify taken out (only this benchmark can build it). On the request path "
            f"they cost **{in_path['seq_p50_crypto_us']:.0f} µs** of p50 here, so Trellis/raw "
            f"p50 cannot go below **{in_path['seq_p50_ratio_floor_in_path']:.2f}x** even if "
            "everything else Trellis does were free.",
        ]
    crypto = report.get("crypto")
    fl = report.get("floors") or {}
    if crypto and fl.get("seq_p50_ratio_floor") is not None:
        lines += [
            "",
            f"Ed25519 in this run: sign {crypto['sign_us']:.0f} µs, verify "
            f"{crypto['verify_us']:.0f} µs. With one of each per request (PROTOCOL §6), "
            f"Trellis/raw cannot go below **{fl['seq_p50_ratio_floor']:.2f}x** p50, nor above "
            f"**{fl['throughput_ratio_ceiling_inline']:.2f}x** throughput with both on one event "
            f"loop, or **{fl['throughput_ratio_ceiling_offloaded']:.2f}x** with the verification "
            "moved off it, even if everything else were free.",
        ]
    return "\n".join(lines) + "\n"


def table(report: dict[str, Any]) -> str:
    """A plain-text table for the terminal."""
    head = f"{'':<12}{'p50 µs':>10}{'p99 µs':>10}{'mean µs':>10}{'req/s':>10}{'p99@64 µs':>12}"
    lines = [head]
    for name in IMPLEMENTATIONS:
        r = report["results"].get(name)
        if r is None:
            continue
        if not r.get("available"):
            lines.append(f"{name:<12}{'(not available: ' + r.get('reason', '?') + ')'}")
            continue
        lines.append(
            f"{name:<12}{r['seq_p50_us']:>10,.0f}{r['seq_p99_us']:>10,.0f}"
            f"{r['seq_mean_us']:>10,.0f}{r['throughput_rps']:>10,.0f}{r['conc_p99_us']:>12,.0f}"
        )
    for label, key in (("raw", "trellis_vs_raw"), ("FastStream", "trellis_vs_faststream")):
        r = report["ratios"][key]
        lines.append(
            f"Trellis/{label}: p50 {_cell(r['seq_p50'], '{:.2f}x')}, "
            f"p99 {_cell(r['seq_p99'], '{:.2f}x')}, throughput {_cell(r['throughput'], '{:.2f}x')}"
        )
    in_path = report.get("in_path") or {}
    if in_path.get("seq_p50_crypto_us") is not None:
        lines.append(
            f"unsigned (diagnostic): the proofs cost {in_path['seq_p50_crypto_us']:.0f} µs of p50 "
            f"on the request path: p50 floor {in_path['seq_p50_ratio_floor_in_path']:.2f}x raw"
        )
    crypto, fl = report["crypto"], report["floors"]
    if fl.get("seq_p50_ratio_floor") is not None:
        lines.append(
            f"Ed25519 sign {crypto['sign_us']:.0f} µs, verify {crypto['verify_us']:.0f} µs: "
            f"p50 floor {fl['seq_p50_ratio_floor']:.2f}x raw; throughput ceiling "
            f"{fl['throughput_ratio_ceiling_inline']:.2f}x inline, "
            f"{fl['throughput_ratio_ceiling_offloaded']:.2f}x with verification offloaded"
        )
    goals = ", ".join(f"{k}={v}" for k, v in report["goals"].items())
    lines.append(f"goals (measured, not asserted): {goals}")
    return "\n".join(lines)


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
    block = f"{README_START}\n{markdown(report)}{README_END}"
    readme.write_text(head + block + tail, encoding="utf-8")
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
        "--only",
        default=",".join(IMPLEMENTATIONS),
        help="comma list: raw,trellis,faststream,unsigned (unsigned: diagnostic)",
    )
    parser.add_argument("--max-seconds", type=float, default=600.0, help="hard deadline")
    parser.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="event loop for every implementation (auto: uvloop if installed, as Trellis runs)",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        help="where rpc.json/rpc.md go (default bench/results; --quick writes nothing unless set)",
    )
    parser.add_argument("--no-write", action="store_true", help="write no result files")
    parser.add_argument(
        "--update-readme", action="store_true", help="refresh the table in bench/README.md"
    )
    return parser.parse_args(argv)


def params_from(args: argparse.Namespace) -> Params:
    calls, conc, warmup, rounds = QUICK if args.quick else FULL
    only = tuple(x.strip() for x in args.only.split(",") if x.strip())
    unknown = set(only) - set(IMPLEMENTATIONS)
    if unknown or "trellis" not in only:
        raise SystemExit(f"--only must include trellis and name only {IMPLEMENTATIONS}")
    result = Params(
        calls=args.calls or calls,
        conc_calls=args.conc_calls or conc,
        warmup=args.warmup if args.warmup is not None else warmup,
        rounds=args.rounds or rounds,
        inflight=args.inflight,
        max_seconds=args.max_seconds,
        only=only,
        loop=args.loop,
    )
    if min(result.calls, result.conc_calls, result.rounds, result.inflight) < 1:
        raise SystemExit("counts must be positive")
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = params_from(args)

    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(run(params), timeout=params.max_seconds)

    report = run_on_loop(bounded(), loop=args.loop)
    out_dir = args.out_dir
    if out_dir is None and not args.quick:
        out_dir = RESULTS_DIR
    if out_dir is not None and not args.no_write:
        json_path, md_path = write_results(report, out_dir)
        report_paths = f"wrote {json_path} and {md_path}"
    else:
        report_paths = "no result files written"
    if args.update_readme:
        update_readme(report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(report))
        print(report_paths)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
