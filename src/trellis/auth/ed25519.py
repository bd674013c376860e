"""libsodium's Ed25519, and the batch worker process built on it.

:func:`verify_detached` is the one signature check every Trellis verification goes through.
Run as a script (``python -I .../ed25519.py``), this module is the worker that
:class:`trellis.auth.worker.SignatureWorker` hands batches to; it imports nothing from
Trellis so it starts in a few tens of milliseconds.  Protocol on stdin/stdout, every frame
answered in order (a batch's answers are written in slices of :data:`ANSWER_SLICE` records,
so the caller's first requests move on while the rest of the batch is still being worked)::

    worker:  one READY byte once it can work
    frame:   op (1 byte) + u32 big-endian count N (1..MAX_BATCH) + N records
      V  verify  records: public key (32) | signature (64) | message (32)
                 answer:  N bytes, 1 = valid, 0 = invalid
      K  key     N = 1, record: a 32-byte seed; the worker keeps it as key slot 0, 1, ...
                 answer:  1 byte (1)
      S  sign    records: u16 big-endian key slot | message (32)
                 answer:  N signatures of 64 bytes

The worker exits at end of input (which is also what happens when its parent dies) and on
anything malformed.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import BinaryIO

import nacl.bindings
import nacl.exceptions

OP_VERIFY = b"V"
OP_KEY = b"K"
OP_SIGN = b"S"
VERIFY_RECORD = 128
SIGN_RECORD = 34
SEED_BYTES = 32
MAX_BATCH = 200
READY = b"R"
#: answers are written (and the caller woken) after at most this many records: one wake-up
#: per record would cost the caller more than the worker saves it; one per batch makes the
#: caller's requests wait for the slowest of the batch
ANSWER_SLICE = 8


def verify_detached(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Constant-time Ed25519 check (libsodium) of a detached signature over ``message``."""
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        return False
    return True


def sign_detached(secret_key: bytes, message: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``message`` with libsodium's 64-byte secret key."""
    return nacl.bindings.crypto_sign(message, secret_key)[:64]


def verify_record(record: bytes) -> bool:
    """Check one ``public key | signature | message`` record."""
    return verify_detached(record[:32], record[96:], record[32:96])


def verify_batch(data: bytes) -> bytes:
    """One result byte per verify record of ``data``."""
    return bytes(
        verify_record(data[start : start + VERIFY_RECORD])
        for start in range(0, len(data), VERIFY_RECORD)
    )


def serve(stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Answer frames until end of input (0) or a malformed frame (2)."""
    stdout.write(READY)
    stdout.flush()
    secrets: list[bytes] = []
    sizes = {OP_VERIFY: VERIFY_RECORD, OP_KEY: SEED_BYTES, OP_SIGN: SIGN_RECORD}
    while True:
        head = stdin.read(5)
        if len(head) < 5:
            return 0
        op, count = head[:1], int.from_bytes(head[1:], "big")
        size = sizes.get(op)
        if size is None or not 0 < count <= MAX_BATCH or (op == OP_KEY and count != 1):
            return 2
        body = stdin.read(count * size)
        if len(body) < count * size:
            return 0
        if op == OP_VERIFY:
            # answers go out in slices as they are ready: the caller's requests move on
            # while the rest of a big batch is still being checked
            for start in range(0, len(body), VERIFY_RECORD * ANSWER_SLICE):
                stdout.write(verify_batch(body[start : start + VERIFY_RECORD * ANSWER_SLICE]))
                stdout.flush()
            continue
        if op == OP_KEY:
            secrets.append(nacl.bindings.crypto_sign_seed_keypair(body)[1])
            answer = b"\x01"
        else:
            parts = []
            for start in range(0, len(body), SIGN_RECORD):
                slot = int.from_bytes(body[start : start + 2], "big")
                if slot >= len(secrets):
                    return 2
                parts.append(sign_detached(secrets[slot], body[start + 2 : start + SIGN_RECORD]))
                if len(parts) == ANSWER_SLICE:
                    stdout.write(b"".join(parts))
                    stdout.flush()
                    parts.clear()
            answer = b"".join(parts)
        stdout.write(answer)
        stdout.flush()


def _stay_out_of_the_way() -> None:
    """Run as a batch task: being woken by the parent's pipe write must not preempt it.

    Under SCHED_BATCH (Linux) the kernel does not let a newly woken worker preempt the
    running event loop; the worker runs on an idle CPU or when the loop next sleeps.
    """
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is not None and hasattr(os, "sched_setscheduler"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, policy, os.sched_param(0))


def main() -> int:
    _stay_out_of_the_way()
    try:
        return serve(sys.stdin.buffer, sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
