"""Request-proof verification that keeps a busy service's event loop free.

An Ed25519 verify costs about as much CPU as everything else a small RPC does in Python
(~90 µs against ~80 µs for a whole raw nats-py request/reply on the 2-core machines we
measure on; ``bench/``).  A thread does not help: libsodium releases the GIL, but every call
has to take it back from a busy event loop and waits for the interpreter's switch interval.
So under load the verifications go to a small worker process (:mod:`trellis.auth.ed25519`
run as a script) in batches: one pipe write and one read per batch, whatever its size, while
the loop goes on serving.  An idle service (one request at a time) verifies inline, because
the round trip to the worker would only add latency there.

The worker sees public material only and uses the same libsodium call.  If it dies, stalls or
cannot be started, every pending verification is redone inline and the verifier stays
inline from then on: nothing is lost and nothing is accepted unverified.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from trellis.auth import ed25519
from trellis.auth.ed25519 import MAX_BATCH, READY, verify_detached, verify_record
from trellis.auth.keys import decode_public_key, decode_signature

__all__ = ["ProofVerifier"]

log = logging.getLogger("trellis.auth.verifier")

#: a batch the worker has not answered within this many seconds marks it as failed
STALL_SECONDS = 2.0
#: a worker not ready within this many seconds is given up on (inline verification goes on)
STARTUP_SECONDS = 10.0
#: batches written but not yet answered; their bytes stay well under a 64 KiB pipe buffer
MAX_OUTSTANDING = 2


@dataclass(slots=True)
class _Job:
    future: asyncio.Future[bool]
    record: bytes  # public key | signature | message


class ProofVerifier:
    """Verifies Ed25519 signatures inline, or in a worker process when the caller is busy.

    ``offload=None`` (the default) offloads on machines with more than one CPU;
    ``False`` never does; ``True`` always may (tests use it to force the worker path).
    """

    _MAX_KEYS = 4096

    def __init__(self, *, offload: bool | None = None) -> None:
        if offload is None:
            offload = (os.cpu_count() or 1) > 1
        self._offload = offload and bool(sys.executable)
        self._keys: dict[str, bytes] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: list[_Job] = []
        self._outstanding: deque[tuple[list[_Job], asyncio.TimerHandle]] = deque()
        self._readbuf = bytearray()
        self._writebuf = bytearray()
        self._flush_scheduled = False
        self._startup_timer: asyncio.TimerHandle | None = None
        self._ready = False
        self._failed = False
        self._settled = asyncio.Event()  # set once the worker is ready or given up on
        #: signatures the worker has checked so far (the rest were checked inline)
        self.offloaded = 0

    @property
    def offloading(self) -> bool:
        """Whether busy callers are currently served by the worker process."""
        return self._offload and not self._failed

    async def warm_up(self, timeout: float = STARTUP_SECONDS) -> bool:
        """Start the worker now and wait until it is ready; ``False`` if it cannot be."""
        if not self.offloading:
            return False
        loop = asyncio.get_running_loop()
        if self._proc is None:
            self._start(loop)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), timeout)
        return self._ready and self.offloading

    @property
    def worker_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _key(self, text: str) -> bytes | None:
        key = self._keys.get(text)
        if key is None:
            key = decode_public_key(text)
            if key is None:
                return None
            if len(self._keys) >= self._MAX_KEYS:
                self._keys.clear()
            self._keys[text] = key
        return key

    def verify_now(self, public_key: str, message: bytes, signature: str) -> bool:
        """Verify inline; malformed keys or signatures verify as ``False``."""
        key = self._key(public_key)
        sig = decode_signature(signature)
        if key is None or sig is None:
            return False
        return verify_detached(key, message, sig)

    async def verify(
        self, public_key: str, message: bytes, signature: str, *, busy: bool = True
    ) -> bool:
        """Verify, in the worker when ``busy`` and offloading is on, else inline."""
        if not busy or not self.offloading or len(message) != 32:
            return self.verify_now(public_key, message, signature)
        key = self._key(public_key)
        sig = decode_signature(signature)
        if key is None or sig is None:
            return False
        loop = asyncio.get_running_loop()
        if self._proc is None:
            self._start(loop)
        if not self._ready or self._failed:  # the worker is still starting (or gone)
            return verify_detached(key, message, sig)
        job = _Job(loop.create_future(), key + sig + message)
        self._queue.append(job)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await job.future

    # ------------------------------------------------------------------ worker plumbing

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        script = Path(ed25519.__file__).resolve()
        try:
            # -I: no environment, no user site, not the script's folder on sys.path
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and file, no shell
                [sys.executable, "-I", str(script)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                close_fds=True,
            )
        except OSError as exc:
            self._fail(f"could not start the verification worker: {exc}")
            return
        assert proc.stdin is not None and proc.stdout is not None
        os.set_blocking(proc.stdin.fileno(), False)
        os.set_blocking(proc.stdout.fileno(), False)
        self._proc = proc
        self._loop = loop
        loop.add_reader(proc.stdout.fileno(), self._on_readable)
        self._startup_timer = loop.call_later(STARTUP_SECONDS, self._on_startup_timeout)

    def _on_startup_timeout(self) -> None:
        if not self._ready:
            self._fail(f"the verification worker did not start within {STARTUP_SECONDS:.0f}s")

    def _flush(self) -> None:
        """Send what is queued as one batch (or several, if more than ``MAX_BATCH``)."""
        self._flush_scheduled = False
        if self._failed or self._loop is None:
            return
        while self._queue and len(self._outstanding) < MAX_OUTSTANDING:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            self._writebuf += len(batch).to_bytes(4, "big")
            self._writebuf += b"".join(job.record for job in batch)
            timer = self._loop.call_later(STALL_SECONDS, self._on_stall)
            self._outstanding.append((batch, timer))
        self._write()

    def _write(self) -> None:
        if not self._writebuf or self._proc is None or self._proc.stdin is None:
            return
        fd = self._proc.stdin.fileno()
        try:
            written = os.write(fd, self._writebuf)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            self._fail(f"the verification worker stopped reading: {exc}")
            return
        del self._writebuf[:written]
        assert self._loop is not None
        if self._writebuf:
            self._loop.add_writer(fd, self._on_writable)

    def _on_writable(self) -> None:
        if self._loop is not None and self._proc is not None and self._proc.stdin is not None:
            self._loop.remove_writer(self._proc.stdin.fileno())
        self._write()

    def _on_readable(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            chunk = os.read(self._proc.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(f"the verification worker failed: {exc}")
            return
        if not chunk:
            self._fail("the verification worker exited")
            return
        self._readbuf += chunk
        if not self._ready:
            if self._readbuf[:1] != READY:
                self._fail("the verification worker sent something unexpected")
                return
            del self._readbuf[:1]
            self._ready = True
            self._settled.set()
            if self._startup_timer is not None:
                self._startup_timer.cancel()
        while self._outstanding and len(self._readbuf) >= len(self._outstanding[0][0]):
            batch, timer = self._outstanding.popleft()
            timer.cancel()
            results = bytes(self._readbuf[: len(batch)])
            del self._readbuf[: len(batch)]
            self.offloaded += len(batch)
            for job, ok in zip(batch, results, strict=True):
                if not job.future.done():
                    job.future.set_result(ok == 1)
        if self._queue and not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _on_stall(self) -> None:
        self._fail(f"the verification worker did not answer within {STALL_SECONDS:.0f}s")

    def _fail(self, reason: str) -> None:
        """Stop offloading; verify everything still pending inline."""
        if not self._failed:
            log.warning("%s; verifying request proofs inline from now on", reason)
        self._failed = True
        self._settled.set()
        self._settle_inline()
        self._stop_process()

    def _settle_inline(self) -> None:
        """Answer every queued or outstanding job with an inline verification."""
        pending = [job for batch, _ in self._outstanding for job in batch] + self._queue
        for _, timer in self._outstanding:
            timer.cancel()
        self._outstanding.clear()
        self._queue = []
        for job in pending:
            if not job.future.done():
                job.future.set_result(verify_record(job.record))

    def _stop_process(self) -> None:
        if self._startup_timer is not None:
            self._startup_timer.cancel()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(Exception):  # the fds may already be gone
                assert proc.stdout is not None and proc.stdin is not None
                self._loop.remove_reader(proc.stdout.fileno())
                self._loop.remove_writer(proc.stdin.fileno())
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        # end of input makes the worker exit; a stalled one is killed
        with contextlib.suppress(OSError):
            if proc.poll() is None:
                proc.kill()
        with contextlib.suppress(Exception):
            proc.wait(timeout=1.0)

    def close(self) -> None:
        """Finish pending work inline and stop the worker (idempotent)."""
        self._settle_inline()
        self._stop_process()
