from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import conformance
from trellis.auth import (
    ConnectTokenError,
    KeyFormatError,
    SessionKey,
    connect_token,
    inbox_prefix,
    parse_connect_token,
    proof_input,
    rpc_proof,
    verify_connect_token,
    verify_domain_signature,
    verify_rpc_proof,
)
from trellis.encoding import b64url_encode, sha256


def test_every_field_of_the_upstream_auth_proof_vectors() -> None:
    vectors = conformance("upstream/auth-proof.json")
    assert len(vectors) >= 2
    for v in vectors:
        key = SessionKey.from_seed(v["seed"])
        assert key.seed == v["seed"]
        assert key.public_key == v["sessionKey"]
        oauth = v["oauthInit"]
        assert key.sign_domain("oauth-init", oauth["redirectTo"] + ":null") == oauth["sig"]
        assert verify_domain_signature(
            key.public_key, "oauth-init", oauth["redirectTo"] + ":null", oauth["sig"]
        )
        flow = v["flowBind"]
        assert key.sign_domain("bind-flow", flow["flowId"]) == flow["sig"]
        nc = v["natsConnect"]
        assert (
            key.sign_domain("nats-connect", f"{nc['iat']}:{nc['contractDigest']}") == nc["iatSig"]
        )
        assert connect_token(key, nc["contractDigest"], nc["iat"]) == nc["runtimeToken"]
        rp = v["rpcProof"]
        payload = rp["payload"].encode()
        assert b64url_encode(sha256(payload)) == rp["payloadHashBase64url"]
        inp = proof_input(key.public_key, rp["subject"], payload, rp["iat"], rp["requestId"])
        assert inp.hex() == rp["proofInputHex"]
        assert b64url_encode(sha256(inp)) == rp["proofDigestBase64url"]
        assert rpc_proof(key, rp["subject"], payload, rp["iat"], rp["requestId"]) == rp["proof"]
        assert verify_rpc_proof(
            key.public_key, rp["proof"], rp["subject"], payload, rp["iat"], rp["requestId"]
        )


def test_keys_are_43_chars_and_signatures_86() -> None:
    key = SessionKey.generate()
    assert len(key.seed) == 43 and len(key.public_key) == 43
    assert len(key.sign_domain("bind-flow", "x")) == 86
    assert SessionKey.from_seed(key.seed).public_key == key.public_key


def test_seed_never_shows_in_repr_or_str() -> None:
    key = SessionKey.generate()
    assert key.seed not in repr(key) and key.seed not in str(key)
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(key)


@pytest.mark.parametrize("bad", ["", "short", "A" * 44, "!" * 43, "A" * 42 + "="])
def test_malformed_seeds_raise_without_echoing(bad: str) -> None:
    with pytest.raises(KeyFormatError) as info:
        SessionKey.from_seed(bad)
    if len(bad) > 5:
        assert bad not in str(info.value)


def test_seed_file_is_0600_and_not_overwritten(tmp_path: Path) -> None:
    key = SessionKey.generate()
    path = key.save(tmp_path / "k.seed")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert SessionKey.load(path).public_key == key.public_key
    with pytest.raises(FileExistsError):
        SessionKey.generate().save(path)
    assert SessionKey.load(path).public_key == key.public_key


def test_connect_token_round_trip_and_checks() -> None:
    key = SessionKey.generate()
    token = parse_connect_token(connect_token(key, "digest-x", 1000))
    assert token.session_key == key.public_key
    assert verify_connect_token(token, now=1010) is None
    assert verify_connect_token(token, now=1031) == "iat_out_of_range"
    assert verify_connect_token(token, now=969) == "iat_out_of_range"
    forged = json.loads(connect_token(key, "digest-x", 1000))
    forged["contractDigest"] = "digest-y"
    assert (
        verify_connect_token(parse_connect_token(json.dumps(forged)), now=1000)
        == "invalid_signature"
    )
    other = SessionKey.generate()
    forged["contractDigest"], forged["sessionKey"] = "digest-x", other.public_key
    assert (
        verify_connect_token(parse_connect_token(json.dumps(forged)), now=1000)
        == "invalid_signature"
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "auth_token_required"),
        ("", "auth_token_required"),
        ("not json", "invalid_auth_token"),
        ("[]", "invalid_auth_token"),
        (
            '{"v":2,"sessionKey":"'
            + "A" * 43
            + '","contractDigest":"d","iat":1,"sig":"'
            + "A" * 86
            + '"}',
            "invalid_auth_token",
        ),
        (
            '{"v":1,"sessionKey":"short","contractDigest":"d","iat":1,"sig":"' + "A" * 86 + '"}',
            "invalid_auth_token",
        ),
        (
            '{"v":1,"sessionKey":"'
            + "A" * 43
            + '","contractDigest":"d","iat":"1","sig":"'
            + "A" * 86
            + '"}',
            "invalid_auth_token",
        ),
        ("x" * 5000, "invalid_auth_token"),
    ],
)
def test_malformed_connect_tokens_have_reason_codes(raw: str | None, reason: str) -> None:
    with pytest.raises(ConnectTokenError) as info:
        parse_connect_token(raw)
    assert info.value.reason == reason


KEY = SessionKey.generate()


@settings(max_examples=60)
@given(
    subject=st.text(min_size=1, max_size=40),
    payload=st.binary(max_size=200),
    iat=st.integers(min_value=0, max_value=2**40),
    request_id=st.text(min_size=1, max_size=30),
    field=st.sampled_from(["subject", "payload", "iat", "request_id", "key"]),
)
def test_proofs_verify_and_fail_on_any_changed_field(
    subject: str, payload: bytes, iat: int, request_id: str, field: str
) -> None:
    proof = rpc_proof(KEY, subject, payload, iat, request_id)
    assert verify_rpc_proof(KEY.public_key, proof, subject, payload, iat, request_id)
    args = {
        "key": KEY.public_key,
        "subject": subject,
        "payload": payload,
        "iat": iat,
        "request_id": request_id,
    }
    if field == "subject":
        args["subject"] = subject + "x"
    elif field == "payload":
        args["payload"] = payload + b"\x00"
    elif field == "iat":
        args["iat"] = iat + 1
    elif field == "request_id":
        args["request_id"] = request_id + "x"
    else:
        args["key"] = SessionKey.generate().public_key
    assert not verify_rpc_proof(
        str(args["key"]),
        proof,
        str(args["subject"]),
        bytes(args["payload"]),  # type: ignore[arg-type]
        int(args["iat"]),
        str(args["request_id"]),  # type: ignore[call-overload]
    )


def test_malformed_proofs_verify_false_not_raise() -> None:
    assert not verify_rpc_proof(KEY.public_key, "garbage", "s", b"", 1, "r")
    assert not verify_rpc_proof("not-a-key", "A" * 86, "s", b"", 1, "r")


def test_inbox_prefix_is_the_first_16_key_characters_and_refuses_wildcards() -> None:
    key = SessionKey.generate()
    assert key.inbox_prefix == inbox_prefix(key.public_key) == "_INBOX." + key.public_key[:16]
    for bad in ("short", "A" * 15 + ">" + "A" * 27, "A" * 8 + ".*" + "A" * 33):
        with pytest.raises(KeyFormatError):
            inbox_prefix(bad)
