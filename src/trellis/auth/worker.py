"""Ed25519 work that keeps a busy event loop free: signing and verifying request proofs.

An Ed25519 verify costs about as much CPU as everything else a small RPC does in Python, and a
signature about a third of that (``bench/`` prints both).  A thread does not help: libsodium
releases the GIL, but every call has to take it back from a busy event loop and waits for the
interpreter's switch interval.  So under load the work goes to a small worker process
(:mod:`trellis.auth.ed25519` run as a script) in batches: one pipe write per event-loop pass
for everything queued in it, and answers back in slices, while the loop goes on serving.
A process has one worker (per thread running an event loop: :func:`shared_signature_worker`);
a forked child drops what it inherited and starts its own.  A caller that is not busy (one
request at a time) works inline: the round trip would only add latency there.

What crosses the pipe: public keys, digests and signatures, plus, for signing, the seed of a
key this process already holds (never in argv, environment, files or logs).  If the worker
dies, stalls or cannot be started, every pending job is redone inline and the worker is
retried later (with back-off): nothing is lost and nothing is accepted unverified.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import subprocess
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trellis.auth import ed25519
from trellis.auth.ed25519 import (
    MAX_BATCH,
    OP_KEY,
    OP_SIGN,
    OP_VERIFY,
    READY,
    verify_detached,
    verify_record,
)
from trellis.auth.keys import SessionKey, decode_public_key, decode_signature
from trellis.encoding import b64url_decode

__all__ = ["SignatureWorker", "shared_signature_worker"]

log = logging.getLogger("trellis.auth.worker")

#: a worker not ready within this many seconds is given up on (inline work goes on)
STARTUP_SECONDS = 10.0
#: a frame the worker has not answered within this many seconds marks it as failed
STALL_SECONDS = 2.0
#: frames written but not yet answered; their bytes stay well under a 64 KiB pipe buffer
MAX_OUTSTANDING = 2
#: after a failure the worker is tried again this many seconds later, doubling each time
RETRY_SECONDS = 30.0
RETRY_MAX_SECONDS = 600.0


def usable_cpus() -> int:
    """CPUs this process may run on (affinity and container limits included where known)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: (future, record, the signing key for a sign job or None for a verification); a plain
#: tuple because one is made per request
_Job = tuple[asyncio.Future[Any], bytes, SessionKey | None]


def _do_inline(job: _Job) -> Any:
    """The job's work done in this process (when the worker cannot)."""
    _, record, key = job
    return verify_record(record) if key is None else key.sign(record[2:])


@dataclass(slots=True)
class _Frame:
    jobs: list[_Job]
    answer_size: int  # bytes per job (or in all, for a job-less key frame)
    decode: Callable[[bytes], Any]
    timer: asyncio.TimerHandle
    answered: int = 0  # jobs answered so far: the worker sends answers in slices


def _decode_verdict(answer: bytes) -> bool:
    return answer == b"\x01"


class SignatureWorker:
    """Signs and verifies Ed25519 inline, or in a worker process when the caller is busy.

    ``offload=None`` (the default) uses the worker on machines with more than one CPU;
    ``False`` never does; ``True`` always may (tests use it to force the worker path).
    """

    _MAX_KEYS = 4096

    def __init__(self, *, offload: bool | None = None) -> None:
        if offload is None:
            offload = usable_cpus() > 1
        self._offload = offload and bool(sys.executable)
        self._public_keys: dict[str, bytes] = {}
        self._slots: dict[str, int] = {}  # public key -> the worker's key slot
        self._proc: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: dict[bytes, list[_Job]] = {OP_VERIFY: [], OP_SIGN: []}
        self._outstanding: deque[_Frame] = deque()
        self._readbuf = bytearray()
        self._writebuf = bytearray()
        self._flush_handle: asyncio.Handle | None = None  # a _flush() waiting to run
        self._startup_timer: asyncio.TimerHandle | None = None
        self._ready = False
        self._failed = False
        self._failures = 0
        self._retry_at = 0.0  # loop time after which a failed worker may be started again
        self._settled = asyncio.Event()  # set once the worker is ready or given up on
        #: jobs the worker has answered so far (the rest were done inline)
        self.offloaded = 0
        _INSTANCES.add(self)

    @property
    def offloading(self) -> bool:
        """Whether busy callers are currently served by the worker process."""
        return self._offload and not self._failed

    @property
    def worker_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def warm_up(self, timeout: float = STARTUP_SECONDS) -> bool:
        """Start the worker now and wait until it is ready; ``False`` if it cannot be."""
        if not self._usable() and self._proc is None:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), timeout)
        return self._ready and self.offloading

    # ------------------------------------------------------------------ verification

    def public_key(self, text: str) -> bytes | None:
        """The 32 bytes of a canonical base64url session key (cached: callers repeat), or None."""
        key = self._public_keys.get(text)
        if key is None:
            key = decode_public_key(text)
            if key is None:
                return None
            if len(self._public_keys) >= self._MAX_KEYS:
                self._public_keys.clear()
            self._public_keys[text] = key
        return key

    def verify_now(self, public_key: str, message: bytes, signature: str) -> bool:
        """Verify inline; malformed keys or signatures verify as ``False``."""
        key = self.public_key(public_key)
        sig = decode_signature(signature)
        if key is None or sig is None:
            return False
        return verify_detached(key, message, sig)

    async def verify(
        self, public_key: str, message: bytes, signature: str, *, busy: bool = True
    ) -> bool:
        """Verify ``signature`` over the 32-byte ``message``: in the worker when ``busy``."""
        if not busy or len(message) != 32 or not self._usable():
            return self.verify_now(public_key, message, signature)
        key = self.public_key(public_key)
        sig = decode_signature(signature)
        if key is None or sig is None:
            return False
        return bool(await self._enqueue(OP_VERIFY, key + sig + message, None))

    # ------------------------------------------------------------------ signing

    def sign_now(self, key: SessionKey, message: bytes) -> bytes:
        """Sign inline (a caller with nothing else in flight)."""
        return key.sign(message)

    async def sign(self, key: SessionKey, message: bytes, *, busy: bool = True) -> bytes:
        """The signature of the 32-byte ``message`` with ``key``: in the worker when ``busy``."""
        if not busy or len(message) != 32 or not self._usable():
            return self.sign_now(key, message)
        slot = self._slots.get(key.public_key)
        if slot is None:
            if len(self._slots) >= 65535:
                return key.sign(message)
            slot = self._slots[key.public_key] = len(self._slots)
            # the seed goes down the pipe once; frames are answered in order, so the signs
            # queued after it find their slot
            self._send_frame(OP_KEY, _raw_seed(key), [], 1, _decode_verdict)
            self._write()
            if self._failed:  # writing the key found the worker gone
                return key.sign(message)
        return bytes(await self._enqueue(OP_SIGN, slot.to_bytes(2, "big") + message, key))

    # ------------------------------------------------------------------ worker plumbing

    def _usable(self) -> bool:
        """Whether to queue for the worker now (starting it if need be)."""
        if not self._offload:
            return False
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            # the worker's pipes are watched by another (likely closed) loop: start over here
            self.close()
            self._loop = None
        if self._failed:
            if loop.time() < self._retry_at:
                return False
            self._failed = False  # try the worker again
        if self._proc is None:
            self._start(loop)
        return self._ready and not self._failed

    def _enqueue(self, op: bytes, record: bytes, key: SessionKey | None) -> asyncio.Future[Any]:
        """Queue a job for the next batch; its future gets the worker's answer."""
        loop = self._loop
        if self._failed or loop is None:  # it failed after the caller checked
            loop = asyncio.get_running_loop()
            done: asyncio.Future[Any] = loop.create_future()
            done.set_result(_do_inline((done, record, key)))
            return done
        future: asyncio.Future[Any] = loop.create_future()
        self._queues[op].append((future, record, key))
        if self._flush_handle is None:
            self._flush_handle = loop.call_soon(self._flush)
        return future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._settled = asyncio.Event()
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
            self._fail(f"could not start the signature worker: {exc}")
            return
        assert proc.stdin is not None and proc.stdout is not None
        self._proc = proc
        self._loop = loop
        try:
            os.set_blocking(proc.stdin.fileno(), False)
            os.set_blocking(proc.stdout.fileno(), False)
            loop.add_reader(proc.stdout.fileno(), self._on_readable)
        except (OSError, NotImplementedError, ValueError) as exc:
            # e.g. an event loop without add_reader for pipes (Windows' proactor)
            self._fail(f"cannot watch the signature worker's pipe: {exc!r}")
            return
        self._startup_timer = loop.call_later(STARTUP_SECONDS, self._on_startup_timeout)

    def _on_startup_timeout(self) -> None:
        if not self._ready:
            self._fail(f"the signature worker did not start within {STARTUP_SECONDS:.0f}s")

    def _send_frame(
        self,
        op: bytes,
        payload: bytes,
        jobs: list[_Job],
        answer_size: int,
        decode: Callable[[bytes], Any],
    ) -> None:
        assert self._loop is not None
        count = max(len(jobs), 1)
        self._writebuf += op + count.to_bytes(4, "big") + payload
        timer = self._loop.call_later(STALL_SECONDS, self._on_stall)
        self._outstanding.append(_Frame(jobs, answer_size, decode, timer))

    def _flush(self) -> None:
        """Send what is queued, a frame per operation (more if over ``MAX_BATCH``)."""
        self._flush_handle = None
        if self._failed or self._loop is None:
            self._settle_inline()
            return
        for op, size, decode in (
            (OP_VERIFY, 1, _decode_verdict),
            (OP_SIGN, 64, bytes),
        ):
            queue = self._queues[op]
            while queue and len(self._outstanding) < MAX_OUTSTANDING:
                batch = queue[:MAX_BATCH]
                del queue[:MAX_BATCH]
                payload = b"".join(job[1] for job in batch)
                self._send_frame(op, payload, batch, size, decode)
        self._write()  # every frame of this pass in one write: one wake-up of the worker

    def _write(self) -> None:
        if not self._writebuf or self._proc is None or self._proc.stdin is None:
            return
        fd = self._proc.stdin.fileno()
        try:
            written = os.write(fd, self._writebuf)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            self._fail(f"the signature worker stopped reading: {exc}")
            return
        del self._writebuf[:written]
        if self._writebuf and self._loop is not None:
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
            self._fail(f"the signature worker failed: {exc}")
            return
        if not chunk:
            self._fail("the signature worker exited")
            return
        self._readbuf += chunk
        if not self._ready:
            if self._readbuf[:1] != READY:
                self._fail("the signature worker sent something unexpected")
                return
            del self._readbuf[:1]
            self._ready = True
            self._settled.set()
            if self._startup_timer is not None:
                self._startup_timer.cancel()
        buf = self._readbuf
        while self._outstanding:
            frame = self._outstanding[0]
            step = frame.answer_size
            jobs = frame.jobs
            if not jobs:  # a key frame: one answer in all
                if len(buf) < step:
                    break
                del buf[:step]
            else:
                first = frame.answered
                take = min(len(buf) // step, len(jobs) - first)
                if take == 0:
                    break
                answer = bytes(buf[: take * step])
                del buf[: take * step]
                frame.answered = first + take
                self.offloaded += take
                decode = frame.decode
                for i in range(take):
                    future = jobs[first + i][0]
                    if not future.done():
                        future.set_result(decode(answer[i * step : (i + 1) * step]))
                if frame.answered < len(jobs):
                    break
            self._outstanding.popleft()
            frame.timer.cancel()
        if any(self._queues.values()) and self._flush_handle is None and self._loop is not None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _on_stall(self) -> None:
        self._fail(f"the signature worker did not answer within {STALL_SECONDS:.0f}s")

    def _fail(self, reason: str) -> None:
        """Stop using the worker; do everything still pending inline."""
        if not self._failed:
            self._failures += 1
            delay = min(RETRY_SECONDS * 2 ** (self._failures - 1), RETRY_MAX_SECONDS)
            if self._loop is not None and not self._loop.is_closed():
                self._retry_at = self._loop.time() + delay
            log.warning("%s; signing and verifying inline, retrying in %.0fs", reason, delay)
        self._failed = True
        self._ready = False
        self._settled.set()
        self._settle_inline()
        self._stop_process()

    def _settle_inline(self) -> None:
        """Answer every queued or outstanding job by doing its work here."""
        pending = [job for frame in self._outstanding for job in frame.jobs]
        for frame in self._outstanding:
            frame.timer.cancel()
        self._outstanding.clear()
        for queue in self._queues.values():
            pending += queue
            queue.clear()
        for job in pending:
            if not job[0].done():
                with contextlib.suppress(RuntimeError):  # its event loop may be closed
                    job[0].set_result(_do_inline(job))

    def _stop_process(self) -> None:
        """Stop the worker and forget its state (key slots, buffers); a new one starts clean."""
        if self._startup_timer is not None:
            self._startup_timer.cancel()
        if self._flush_handle is not None:
            # a loop that stopped before running it must not leave the next one waiting
            self._flush_handle.cancel()
            self._flush_handle = None
        self._forget_worker_state()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            assert proc.stdout is not None and proc.stdin is not None
            with contextlib.suppress(Exception):  # the fd may already be gone
                self._loop.remove_reader(proc.stdout.fileno())
            with contextlib.suppress(Exception):
                self._loop.remove_writer(proc.stdin.fileno())
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        # the worker holds nothing worth a graceful end: stop it now
        with contextlib.suppress(OSError):
            if proc.poll() is None:
                proc.kill()
        with contextlib.suppress(Exception):
            proc.wait(timeout=1.0)

    def _forget_inherited(self) -> None:
        """In a forked child: drop the parent's worker without touching it.

        The pipes, the process and the event loop (whose epoll instance the child shares
        with the parent) are the parent's; closing or unwatching them here would cut the
        parent off from its worker.  Only this process's copies of the pipe ends are
        closed; a new worker starts when the child next needs one.
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    if stream is not None:
                        stream.close()  # our copy of the fd; nothing is buffered in it
            proc.returncode = 0  # not our child: nothing to wait for or kill
        self._loop = None
        self._flush_handle = None
        self._startup_timer = None
        self._outstanding.clear()
        for queue in self._queues.values():
            queue.clear()
        self._forget_worker_state()
        self._failed = False
        self._settled = asyncio.Event()

    def _forget_worker_state(self) -> None:
        """What belonged to one worker process: its key slots and pipe buffers."""
        self._slots.clear()
        self._ready = False
        self._readbuf.clear()
        self._writebuf.clear()

    def close(self) -> None:
        """Finish pending work inline and stop the worker (idempotent)."""
        self._settle_inline()
        self._stop_process()
        self._settled.set()  # wake anyone in warm_up()


#: every worker of this process, so a forked child can drop what it inherited
_INSTANCES: weakref.WeakSet[SignatureWorker] = weakref.WeakSet()
_local = threading.local()


def shared_signature_worker() -> SignatureWorker:
    """This thread's :class:`SignatureWorker`, used by every RPC server and client that is
    not handed one.

    One worker process per Trellis process (per thread running an event loop), not one per
    server or client: every batch of a loop pass, verifications and signatures alike, goes
    down one pipe in one write, and a 2-core machine is not crowded with idle workers.  A
    worker serves one event loop at a time; a forked child starts its own.
    """
    worker: SignatureWorker | None = getattr(_local, "worker", None)
    if worker is None or getattr(_local, "pid", None) != os.getpid():
        worker = _local.worker = SignatureWorker()
        _local.pid = os.getpid()
        # a weak reference: the worker of a thread that ended goes with it (its pipes
        # close, so its process sees end of input and exits)
        atexit.register(_close_at_exit, weakref.ref(worker), os.getpid())
    return worker


def _close_at_exit(ref: weakref.ref[SignatureWorker], pid: int) -> None:
    worker = ref()
    if worker is not None and os.getpid() == pid:  # never a forked child's inherited copy
        worker.close()


def _forget_inherited_workers() -> None:
    for worker in list(_INSTANCES):
        worker._forget_inherited()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_workers)


def _raw_seed(key: SessionKey) -> bytes:
    """The raw 32-byte seed of ``key`` (only ever written to the worker's pipe)."""
    return b64url_decode(key.seed)
