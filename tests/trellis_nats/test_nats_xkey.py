from __future__ import annotations

import base64

import nacl.bindings
import nacl.public
import pytest

from trellis.nats.nkey import KeyRole, NKeyError, decode_public_key, decode_seed
from trellis.nats.xkey import XKEY_VERSION, XKeyError, XKeyPair, decode_xkey


def test_xkey_encoding() -> None:
    kp = XKeyPair.generate()
    assert kp.public_key.startswith("X") and len(kp.public_key) == 56
    assert kp.seed.startswith("SX") and len(kp.seed) == 58
    role, raw_seed = decode_seed(kp.seed)
    assert role is KeyRole.CURVE
    role, raw_public = decode_public_key(kp.public_key)
    assert role is KeyRole.CURVE
    assert raw_public == nacl.bindings.crypto_scalarmult_base(raw_seed)
    assert decode_xkey(kp.public_key) == raw_public
    # Prefix byte 23 << 3 in the first decoded byte.
    assert base64.b32decode(kp.public_key)[0] == 23 << 3
    assert XKeyPair(kp.seed).public_key == kp.public_key
    assert kp.seed not in repr(kp)


def test_seal_open_round_trip() -> None:
    alice, bob = XKeyPair.generate(), XKeyPair.generate()
    sealed = alice.seal(b"hello server", bob.public_key)
    assert sealed.startswith(XKEY_VERSION)
    assert len(sealed) == 4 + 24 + 16 + len(b"hello server")
    assert bob.open(sealed, alice.public_key) == b"hello server"
    # Fresh nonce each time.
    assert alice.seal(b"x", bob.public_key) != alice.seal(b"x", bob.public_key)


def test_sealed_format_is_a_plain_nacl_box() -> None:
    alice, bob = XKeyPair.generate(), XKeyPair.generate()
    nonce = bytes(range(24))
    sealed = alice.seal(b"payload", bob.public_key, nonce=nonce)
    _, bob_seed = decode_seed(bob.seed)
    box = nacl.public.Box(
        nacl.public.PrivateKey(bob_seed), nacl.public.PublicKey(decode_xkey(alice.public_key))
    )
    assert sealed[4:28] == nonce
    assert box.decrypt(sealed[28:], nonce) == b"payload"


@pytest.mark.parametrize("index", [0, 5, 30, -1])
def test_tampering_rejected(index: int) -> None:
    alice, bob = XKeyPair.generate(), XKeyPair.generate()
    sealed = bytearray(alice.seal(b"important", bob.public_key))
    sealed[index] ^= 0x01
    with pytest.raises(XKeyError):
        bob.open(bytes(sealed), alice.public_key)


def test_wrong_keys_rejected() -> None:
    alice, bob, eve = XKeyPair.generate(), XKeyPair.generate(), XKeyPair.generate()
    sealed = alice.seal(b"secret", bob.public_key)
    with pytest.raises(XKeyError):
        eve.open(sealed, alice.public_key)
    with pytest.raises(XKeyError):
        bob.open(sealed, eve.public_key)
    with pytest.raises(XKeyError):
        bob.open(b"xkv1short", alice.public_key)
    with pytest.raises(XKeyError):
        bob.open(b"eyJhbGciOi" + bytes(60), alice.public_key)


def test_bad_keys() -> None:
    from trellis.nats.nkey import NKeyPair

    account = NKeyPair.generate(KeyRole.ACCOUNT)
    with pytest.raises(XKeyError):
        decode_xkey(account.public_key)
    with pytest.raises(XKeyError):
        XKeyPair(account.seed)
    with pytest.raises(XKeyError):
        XKeyPair.generate().seal(b"x", "Xnot-a-key")
    with pytest.raises(NKeyError):
        NKeyPair.from_seed(XKeyPair.generate().seed)
