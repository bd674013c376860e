"""libsodium's Ed25519 check: the one signature verification every Trellis check goes through.

Signatures are checked inline on the event loop: a verify costs tens of microseconds, and
handing it to another process or thread measured no faster (bench/README.md).
"""

from __future__ import annotations

import nacl.bindings
import nacl.exceptions


def verify_detached(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Constant-time Ed25519 check (libsodium) of a detached signature over ``message``."""
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        return False
    return True
