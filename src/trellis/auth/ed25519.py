"""libsodium's Ed25519 verification, and the batch worker process built on it.

:func:`verify_detached` is the one signature check every Trellis verification goes through.
Run as a script (``python -I .../ed25519.py``), this module is the worker that
:class:`trellis.auth.verifier.ProofVerifier` hands batches to; it imports nothing from Trellis
so it starts in a few tens of milliseconds.  Protocol on stdin/stdout::

    worker:   writes one READY byte once it can verify
    request:  u32 big-endian count N (1..MAX_BATCH), then N records of
              public key (32) | signature (64) | message (32)
    reply:    N bytes, 1 = valid, 0 = invalid, in request order

Only public material crosses the pipe.  The worker exits at end of input (which is also what
happens when its parent dies) and on a malformed frame.
"""

from __future__ import annotations

import sys
from typing import BinaryIO

import nacl.bindings
import nacl.exceptions

RECORD = 128
MAX_BATCH = 200
READY = b"R"


def verify_detached(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Constant-time Ed25519 check (libsodium) of a detached signature over ``message``."""
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        return False
    return True


def verify_record(record: bytes) -> bool:
    """Check one ``public key | signature | message`` record."""
    return verify_detached(record[:32], record[96:], record[32:96])


def verify_batch(data: bytes) -> bytes:
    """One result byte per record of ``data``."""
    return bytes(
        verify_record(data[start : start + RECORD]) for start in range(0, len(data), RECORD)
    )


def serve(stdin: BinaryIO, stdout: BinaryIO) -> int:
    stdout.write(READY)
    stdout.flush()
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return 0
        count = int.from_bytes(head, "big")
        if not 0 < count <= MAX_BATCH:
            return 2
        body = stdin.read(count * RECORD)
        if len(body) < count * RECORD:
            return 0
        stdout.write(verify_batch(body))
        stdout.flush()


def main() -> int:
    try:
        return serve(sys.stdin.buffer, sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
