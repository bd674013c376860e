"""Proof verification: the key/signature decoding, the batching worker process, its failure
modes (killed, stalled, closed) and an RpcServer that offloads under concurrent load."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import os
import random
import re
import signal
import tempfile
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from examples.inventory.contract import GetItem, Item, inventory
from hypothesis import given, settings
from hypothesis import strategies as st

from trellis.auth import SessionKey, SignatureWorker, rpc_proof
from trellis.auth import worker as worker_module
from trellis.auth.ed25519 import (
    OP_KEY,
    OP_SIGN,
    OP_VERIFY,
    READY,
    SIGN_RECORD,
    VERIFY_RECORD,
    serve,
    verify_batch,
)
from trellis.auth.keys import decode_public_key, decode_signature, verify_signature
from trellis.auth.worker import shared_signature_worker
from trellis.calls import RpcClient, rpc_targets
from trellis.encoding import b64url_decode, b64url_encode, sha256
from trellis.loop import run
from trellis.nats.server import NatsServer, free_ports
from trellis.principals import Principal, PrincipalCache
from trellis.result import Ok
from trellis.service.rpc import RequestContext, RpcServer

KEY = SessionKey.generate()
OTHER = SessionKey.generate()


def signed(i: int, key: SessionKey = KEY) -> tuple[str, bytes, str]:
    digest = sha256(f"message {i}".encode())
    return key.public_key, digest, b64url_encode(key.sign(digest))


# --------------------------------------------------------------------------- decoding


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=64, max_size=64))
def test_canonical_keys_and_signatures_decode_to_their_bytes(key: bytes, sig: bytes) -> None:
    assert decode_public_key(b64url_encode(key)) == key
    assert decode_signature(b64url_encode(sig)) == sig


@pytest.mark.parametrize(
    "text",
    ["", "A" * 42, "A" * 44, "A" * 42 + "B", "A" * 42 + "=", "A" * 42 + "+", "A" * 42 + "/"],
)
def test_non_canonical_keys_are_refused(text: str) -> None:
    # 'B' sets one of the two unused low bits of the last character: another spelling of
    # the same bytes, which a canonical decoder must refuse
    assert decode_public_key(text) is None


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_REFERENCE = {
    43: re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]"),
    86: re.compile(r"[A-Za-z0-9_-]{85}[AQgw]"),
}


@st.composite
def _near_base64url(draw: st.DrawFn, length: int) -> str:
    """Mostly canonical-looking text of about ``length`` characters, often with one flaw."""
    size = draw(st.sampled_from([length - 1, length, length, length, length + 1]))
    chars = draw(st.lists(st.sampled_from(_ALPHABET), min_size=size, max_size=size))
    if draw(st.booleans()):  # a last character that leaves the unused bits zero
        chars[-1] = draw(st.sampled_from("AQgw"))
    if draw(st.booleans()):
        odd = draw(st.sampled_from(["+", "/", "=", " ", "\n", "é", "\x00", ".", "*", ">"]))
        chars[draw(st.integers(0, len(chars) - 1))] = odd
    return "".join(chars)


@settings(max_examples=400)
@given(st.one_of(_near_base64url(43), _near_base64url(86), st.text(max_size=90)))
def test_canonical_decoding_accepts_exactly_the_canonical_spellings(text: str) -> None:
    for length, decode, size in ((43, decode_public_key, 32), (86, decode_signature, 64)):
        decoded = decode(text)
        if _REFERENCE[length].fullmatch(text) is None:
            assert decoded is None
        else:
            assert decoded is not None and len(decoded) == size
            assert b64url_encode(decoded) == text


@pytest.mark.parametrize("odd", ["+", "/", "=", " ", "\n", "é", "\x00", "."])
@pytest.mark.parametrize("where", [0, 20, -2])
def test_a_character_outside_base64url_is_refused(odd: str, where: int) -> None:
    key = KEY.public_key
    sig = b64url_encode(KEY.sign(b"x" * 32))
    for text, decode in ((key, decode_public_key), (sig, decode_signature)):
        chars = list(text)
        chars[where] = odd
        assert decode("".join(chars)) is None


def test_non_canonical_signatures_are_refused() -> None:
    good = b64url_encode(KEY.sign(b"x" * 32))
    assert decode_signature(good) is not None
    assert decode_signature(good[:-1] + "B") is None
    assert decode_signature(good + "=") is None
    assert decode_signature(good[:-1]) is None
    assert not verify_signature(KEY.public_key, b"x" * 32, good[:-1] + "B")


# --------------------------------------------------------------------------- the worker


def test_the_worker_answers_one_byte_per_record_in_order() -> None:
    records = []
    expected = []
    for i in range(10):
        public, digest, sig = signed(i)
        key = decode_public_key(public)
        raw_sig = decode_signature(sig)
        assert key is not None and raw_sig is not None
        if i % 3 == 0:
            digest = sha256(b"tampered")
        records.append(key + raw_sig + digest)
        expected.append(0 if i % 3 == 0 else 1)
    data = b"".join(records)
    assert list(verify_batch(data)) == expected
    out = io.BytesIO()
    assert serve(io.BytesIO(OP_VERIFY + len(records).to_bytes(4, "big") + data), out) == 0
    assert out.getvalue()[:1] == READY
    assert list(out.getvalue()[1:]) == expected


def test_the_worker_stops_on_a_malformed_frame() -> None:
    out = io.BytesIO()
    assert serve(io.BytesIO(OP_VERIFY + (0).to_bytes(4, "big")), out) == 2
    assert (
        serve(io.BytesIO(OP_VERIFY + (10_000).to_bytes(4, "big") + b"\0" * VERIFY_RECORD), out) == 2
    )
    assert serve(io.BytesIO(b"X" + (1).to_bytes(4, "big") + b"\0" * VERIFY_RECORD), out) == 2
    assert serve(io.BytesIO(OP_KEY + (2).to_bytes(4, "big") + b"\0" * 64), out) == 2
    # a sign for a key slot never loaded
    assert serve(io.BytesIO(OP_SIGN + (1).to_bytes(4, "big") + b"\0" * SIGN_RECORD), out) == 2
    assert out.getvalue() == READY * 5


def test_the_worker_signs_with_the_keys_it_was_given() -> None:
    seeds = [SessionKey.generate() for _ in range(2)]
    frames = b""
    for key in seeds:
        frames += OP_KEY + (1).to_bytes(4, "big") + b64url_decode(key.seed)
    digests = [sha256(f"m{i}".encode()) for i in range(3)]
    records = b"".join((i % 2).to_bytes(2, "big") + d for i, d in enumerate(digests))
    frames += OP_SIGN + (3).to_bytes(4, "big") + records
    out = io.BytesIO()
    assert serve(io.BytesIO(frames), out) == 0
    answer = out.getvalue()
    assert answer[:3] == READY + b"\x01\x01"
    signatures = [answer[3 + 64 * i : 3 + 64 * (i + 1)] for i in range(3)]
    assert signatures == [seeds[i % 2].sign(d) for i, d in enumerate(digests)]


@pytest.fixture
async def worker() -> AsyncIterator[SignatureWorker]:
    """A signature worker whose process is up and ready; closed after the test."""
    started = SignatureWorker(offload=True)
    assert await started.warm_up()
    try:
        yield started
    finally:
        started.close()


async def test_busy_verifications_go_to_the_worker_in_batches(worker: SignatureWorker) -> None:
    cases = [signed(i, KEY if i % 4 else OTHER) for i in range(150)]
    # every 4th is signed by OTHER but presented as KEY's: must fail
    results = await asyncio.gather(
        *(worker.verify(KEY.public_key, digest, sig) for _, digest, sig in cases)
    )
    assert results == [i % 4 != 0 for i in range(150)]
    assert worker.offloaded == 150
    assert worker.offloading
    # malformed input never reaches the worker and verifies as False
    assert not await worker.verify("not-a-key", b"x" * 32, "A" * 86)
    assert not await worker.verify(KEY.public_key, b"x" * 32, "garbage")


async def test_an_idle_caller_is_verified_inline_without_a_worker() -> None:
    worker = SignatureWorker(offload=True)
    public, digest, sig = signed(1)
    assert await worker.verify(public, digest, sig, busy=False)
    assert not await worker.verify(public, sha256(b"other"), sig, busy=False)
    assert worker.worker_pid is None
    worker.close()


async def test_a_killed_worker_loses_nothing_and_verification_goes_inline(
    worker: SignatureWorker,
) -> None:
    pid = worker.worker_pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # hold the batch in the pipe, then kill the worker
    pending = [asyncio.ensure_future(worker.verify(*signed(i))) for i in range(1, 40)]
    forged = asyncio.ensure_future(worker.verify(KEY.public_key, *signed(99, OTHER)[1:]))
    await asyncio.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    assert all(await asyncio.gather(*pending))
    assert not await forged
    assert worker.offloaded == 0  # the worker answered none of them
    assert not worker.offloading
    assert worker.worker_pid is None
    assert await worker.verify(*signed(100))  # inline from now on


async def test_a_stalled_worker_is_given_up_on(
    monkeypatch: pytest.MonkeyPatch, worker: SignatureWorker
) -> None:
    monkeypatch.setattr(worker_module, "STALL_SECONDS", 0.2)
    pid = worker.worker_pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    results = await asyncio.wait_for(
        asyncio.gather(*(worker.verify(*signed(i)) for i in range(1, 20))), timeout=5
    )
    assert all(results)
    assert worker.offloaded == 0
    assert not worker.offloading


async def test_close_answers_pending_verifications_and_stops_the_worker() -> None:
    worker = SignatureWorker(offload=True)
    assert await worker.warm_up()
    pid = worker.worker_pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # it cannot answer what is about to be sent
    pending = [asyncio.ensure_future(worker.verify(*signed(i))) for i in range(1, 10)]
    await asyncio.sleep(0.02)
    worker.close()
    assert all(await asyncio.gather(*pending))
    assert worker.offloaded == 0
    assert worker.worker_pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # exited and reaped by close()


async def test_busy_signatures_come_from_the_worker_and_match_inline_ones(
    worker: SignatureWorker,
) -> None:
    digests = [sha256(f"sign {i}".encode()) for i in range(120)]
    keys = [KEY if i % 3 else OTHER for i in range(120)]
    signatures = await asyncio.gather(
        *(worker.sign(key, digest) for key, digest in zip(keys, digests, strict=True))
    )
    # Ed25519 is deterministic: the worker's signatures are byte for byte the inline ones
    assert signatures == [key.sign(d) for key, d in zip(keys, digests, strict=True)]
    assert worker.offloaded == 120
    assert worker.worker_pid is not None


async def test_signing_survives_a_killed_worker(worker: SignatureWorker) -> None:
    pid = worker.worker_pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    digests = [sha256(f"late {i}".encode()) for i in range(30)]
    pending = [asyncio.ensure_future(worker.sign(KEY, d)) for d in digests]
    await asyncio.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    assert await asyncio.gather(*pending) == [KEY.sign(d) for d in digests]
    assert worker.offloaded == 0
    assert not worker.offloading


async def test_a_loop_that_cannot_watch_pipes_means_inline_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_pipes(*args: object) -> None:
        raise NotImplementedError("add_reader")

    monkeypatch.setattr(asyncio.get_running_loop(), "add_reader", no_pipes)
    worker = SignatureWorker(offload=True)
    try:
        assert not await worker.warm_up()
        assert await worker.verify(*signed(1))
        assert not await worker.verify(KEY.public_key, *signed(2, OTHER)[1:])
        digest = sha256(b"inline")
        assert await worker.sign(KEY, digest) == KEY.sign(digest)
        assert not worker.offloading
        assert worker.worker_pid is None  # the started process was stopped again
        assert worker.offloaded == 0
    finally:
        worker.close()


async def test_a_new_key_for_a_dead_worker_is_signed_inline_not_lost(
    worker: SignatureWorker,
) -> None:
    pid = worker.worker_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)  # noqa: ASYNC222 - blocking on purpose: the loop must not notice yet
    digest = sha256(b"first use of this key")
    fresh = SessionKey.generate()
    signature = await asyncio.wait_for(worker.sign(fresh, digest), timeout=5)
    assert signature == fresh.sign(digest)
    assert not worker.offloading


async def test_a_failed_worker_is_tried_again_later(
    monkeypatch: pytest.MonkeyPatch, worker: SignatureWorker
) -> None:
    monkeypatch.setattr(worker_module, "RETRY_SECONDS", 0.1)
    first = worker.worker_pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    assert all(await asyncio.gather(*(worker.verify(*signed(i)) for i in range(20))))
    assert not worker.offloading
    await asyncio.sleep(0.2)
    assert await worker.warm_up()  # a fresh worker after the back-off
    assert worker.worker_pid not in (None, first)
    before = worker.offloaded
    digests = [sha256(f"again {i}".encode()) for i in range(10)]
    assert await asyncio.gather(*(worker.sign(KEY, d) for d in digests)) == [
        KEY.sign(d) for d in digests
    ]  # key slots were reloaded into the new worker
    assert worker.offloaded == before + 10


def test_a_worker_moves_to_a_new_event_loop() -> None:
    worker = SignatureWorker(offload=True)

    async def use() -> tuple[bool, int]:
        assert await worker.warm_up()
        results = await asyncio.gather(*(worker.verify(*signed(i)) for i in range(10)))
        return all(results), worker.offloaded

    try:
        ok, count = asyncio.run(use())
        assert ok and count == 10
        ok, count = asyncio.run(use())  # the first loop is closed by now
        assert ok and count == 20
    finally:
        worker.close()


@pytest.mark.skipif(
    importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed here"
)
def test_the_worker_runs_on_uvloop() -> None:
    async def use() -> tuple[list[bool], list[bytes], int]:
        worker = SignatureWorker(offload=True)
        try:
            assert await worker.warm_up()
            verdicts = await asyncio.gather(
                *(
                    worker.verify(KEY.public_key, *signed(i, KEY if i % 2 else OTHER)[1:])
                    for i in range(20)
                )
            )
            digests = [sha256(f"uv {i}".encode()) for i in range(10)]
            signatures = await asyncio.gather(*(worker.sign(KEY, d) for d in digests))
            return verdicts, signatures, worker.offloaded
        finally:
            worker.close()

    verdicts, signatures, offloaded = run(use(), loop="uvloop")
    assert verdicts == [i % 2 == 1 for i in range(20)]
    assert signatures == [KEY.sign(sha256(f"uv {i}".encode())) for i in range(10)]
    assert offloaded == 30


# --------------------------------------------------------------------------- end to end


@pytest.fixture
async def nats_url() -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory(prefix="trellis-signatures-") as tmp:
        (port,) = free_ports(1)
        conf = Path(tmp) / "nats.conf"
        conf.write_text(f"listen: 127.0.0.1:{port}\n", encoding="utf-8")
        server = NatsServer(conf, client_port=port)
        await server.astart()
        try:
            yield server.url
        finally:
            await server.astop()


async def test_a_server_under_load_offloads_and_still_refuses_forged_proofs(
    nats_url: str,
) -> None:
    cache = PrincipalCache()
    cache.put(
        Principal(
            session_key=KEY.public_key,
            kind="user",
            name="tester",
            contract_id="test@v1",
            contract_digest="test",
            capabilities=("inventory::items.read",),
        )
    )
    snc = await nats.connect(nats_url)
    cnc = await nats.connect(nats_url, inbox_prefix=KEY.inbox_prefix)
    worker = SignatureWorker(offload=True)
    assert await worker.warm_up()
    server = RpcServer(snc, inventory, cache, signatures=worker)

    @server.handler("Items.Get")
    async def get(req: Any, ctx: RequestContext) -> Any:
        await asyncio.sleep(0.001)  # keep several requests in flight
        return Ok(Item(id=req.id, name="widget", category="tools", quantity=3))

    await server.start()
    signer = SignatureWorker(offload=True)
    assert await signer.warm_up()
    client = RpcClient(cnc, KEY, rpc_targets(inventory, include_own=True), signatures=signer)
    try:
        results = await asyncio.gather(
            *(client.call("Items.Get", GetItem(id=f"item-{i}")) for i in range(64))
        )
        assert all(isinstance(r, Ok) for r in results)
        assert [r.value.id for r in results if isinstance(r, Ok)] == [
            f"item-{i}" for i in range(64)
        ]
        assert worker.offloaded > 0  # the busy requests went to the worker

        # forged proofs mixed into concurrent traffic: signed by OTHER, sent as KEY
        subject = inventory.manifest["rpc"]["Items.Get"]["subject"]

        async def forged(i: int) -> Any:
            body = GetItem(id=f"forged-{i}").model_dump_json().encode()
            iat = int(time.time())
            request_id = f"01FORGED{i:018d}"
            headers = {
                "session-key": KEY.public_key,
                "proof": rpc_proof(OTHER, subject, body, iat, request_id),
                "iat": str(iat),
                "request-id": request_id,
            }
            reply = await cnc.request(subject, body, headers=headers, timeout=5)
            return reply

        replies = await asyncio.gather(
            *(forged(i) for i in range(16)),
            *(client.call("Items.Get", GetItem(id=f"ok-{i}")) for i in range(16)),
        )
        for reply in replies[:16]:
            assert reply.headers and reply.headers.get("status") == "error"
            assert b"invalid_signature" in reply.data
        assert all(isinstance(r, Ok) for r in replies[16:])
        assert worker.offloaded > 64
        assert signer.offloaded > 0  # concurrent calls were signed by the client's worker
    finally:
        await client.close()
        await server.stop()
        await cnc.close()
        await snc.close()
    # a worker handed in stays its owner's: stop() and close() leave it running
    assert worker.worker_pid is not None
    worker.close()
    signer.close()
    assert worker.worker_pid is None and signer.worker_pid is None


async def test_servers_and_clients_share_the_process_worker_by_default(nats_url: str) -> None:
    snc = await nats.connect(nats_url)
    try:
        server = RpcServer(snc, inventory, PrincipalCache())
        client = RpcClient(snc, KEY, rpc_targets(inventory, include_own=True))
        shared = shared_signature_worker()
        assert shared is shared_signature_worker()
        # one worker process for the whole process: a single pipe write per loop pass
        assert server._signatures is shared and client._signatures is shared
    finally:
        await snc.close()


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux-only")
async def test_the_worker_runs_as_a_batch_task() -> None:
    worker = SignatureWorker(offload=True)
    try:
        assert await worker.warm_up()
        assert worker.worker_pid is not None
        # woken by our pipe writes, it must not preempt the event loop that wrote them
        assert os.sched_getscheduler(worker.worker_pid) == os.SCHED_BATCH
    finally:
        worker.close()


def test_a_loop_that_stops_with_a_flush_pending_leaves_the_worker_usable() -> None:
    worker = SignatureWorker(offload=True)
    public, digest, sig = signed(1)
    abandoned: list[asyncio.Future[bool]] = []

    async def first() -> None:
        assert await worker.warm_up()
        # fire and forget, as the loop's main coroutine ends: its flush never runs here
        abandoned.append(asyncio.ensure_future(worker.verify(public, digest, sig)))

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(first())
    finally:
        loop.close()

    async def second() -> bool:
        assert await worker.warm_up()  # a new loop: the worker starts over
        return await asyncio.wait_for(worker.verify(public, digest, sig), 5)

    try:
        assert asyncio.run(second()) is True
        assert worker.offloaded >= 1
    finally:
        worker.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_neither_stops_nor_uses_its_parents_worker() -> None:
    worker = SignatureWorker(offload=True)
    public, digest, sig = signed(2)
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(worker.warm_up())
        parent_worker = worker.worker_pid
        parent = os.getpid()
        child = os.fork()
        if child == 0:  # the child: report through the exit code only
            code = 0
            try:
                if worker.worker_pid is not None or worker.offloading is False:
                    code = 3  # the parent's worker must have been dropped, not reused
                # what a child's shutdown may run: neither may reach the parent's worker
                worker_module._close_at_exit(weakref.ref(worker), parent)
                worker.close()
            except BaseException:
                code = 4
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0

        async def check() -> list[bool]:
            jobs = (worker.verify(public, digest, sig) for _ in range(20))
            return await asyncio.wait_for(asyncio.gather(*jobs), 5)

        before = worker.offloaded
        assert all(loop.run_until_complete(check()))
        assert worker.offloaded - before == 20  # all answered by the worker, none stalled
        assert worker.worker_pid == parent_worker
    finally:
        worker.close()
        loop.close()


def test_each_thread_gets_its_own_shared_worker() -> None:
    import threading

    here = shared_signature_worker()
    assert shared_signature_worker() is here
    seen: list[SignatureWorker] = []
    thread = threading.Thread(target=lambda: seen.append(shared_signature_worker()))
    thread.start()
    thread.join()
    # a worker follows one event loop: two threads running loops must not share one
    assert seen and seen[0] is not here
    seen[0].close()


class _ShortReads:
    """``os`` as the worker module sees it, except that reads return 1-70 bytes."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def read(self, fd: int, size: int) -> bytes:
        return os.read(fd, min(size, self._rng.randint(1, 70)))


@pytest.mark.parametrize("kill_at", [None, 250])
async def test_answers_split_across_reads_reach_the_right_jobs(
    monkeypatch: pytest.MonkeyPatch, kill_at: int | None
) -> None:
    rng = random.Random(kill_at or 7)
    monkeypatch.setattr(worker_module, "os", _ShortReads(rng))
    worker = SignatureWorker(offload=True)
    assert await worker.warm_up()
    keys = [SessionKey.generate() for _ in range(12)]  # new keys put key frames in between
    jobs: list[tuple[Any, asyncio.Future[Any]]] = []
    try:
        for i in range(600):
            key, message = rng.choice(keys), os.urandom(32)
            if rng.random() < 0.5:
                good = rng.random() < 0.7
                signer = key if good else OTHER
                proof = b64url_encode(signer.sign(message))
                future = asyncio.ensure_future(worker.verify(key.public_key, message, proof))
                jobs.append((good, future))
            else:
                jobs.append((key.sign(message), asyncio.ensure_future(worker.sign(key, message))))
            if i % 37 == 0:
                await asyncio.sleep(0)
            if i == kill_at and worker.worker_pid is not None:
                await asyncio.sleep(0.002)
                os.kill(worker.worker_pid, signal.SIGKILL)  # mid-frame: the rest goes inline
        results = await asyncio.wait_for(asyncio.gather(*(f for _, f in jobs)), 30)
        assert [expected for expected, _ in jobs] == results
        assert worker.offloaded > 0
    finally:
        worker.close()
