"""The auth callout's input: a sealed, server-signed ``authorization_request`` JWT.

Whatever reaches it, opening the seal ends in the bytes or ``XKeyError``, and decoding the
JWT in a request or ``JwtError``; a request the server did sign, whatever its claims, is
either refused with ``JwtError`` or decoded into one the callout can answer (a signed deny
that decodes again).  A changed character of a signed request never yields other claims.
"""

from __future__ import annotations

import json
import time
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.conftest import fuzz
from tests.fuzz.strategies import DEEP_ARRAY, DEEP_OBJECT, json_values, mutated_text
from trellis.encoding import b64url_encode
from trellis.nats.callout import (
    AuthorizationRequest,
    callout_deny,
    decode_authorization_request,
)
from trellis.nats.jwt import JwtError, decode_jwt, encode_jwt
from trellis.nats.nkey import KeyRole, NKeyPair
from trellis.nats.xkey import XKeyError, XKeyPair

SERVER = NKeyPair.generate(KeyRole.SERVER)
AUTH = NKeyPair.generate(KeyRole.ACCOUNT)
AUTH_SIGNING = NKeyPair.generate(KeyRole.ACCOUNT)
USER = NKeyPair.generate(KeyRole.USER)
OURS, THEIRS = XKeyPair.generate(), XKeyPair.generate()
HEADER = b64url_encode(b'{"typ":"JWT","alg":"ed25519-nkey"}')


def _request_claims(**nats: Any) -> dict[str, Any]:
    return {
        "aud": "nats-authorization-request",
        "sub": AUTH.public_key,
        "exp": int(time.time()) + 3600,
        "nats": {
            "server_id": {"name": "srv", "id": SERVER.public_key, "xkey": THEIRS.public_key},
            "user_nkey": USER.public_key,
            "client_info": {"host": "127.0.0.1", "id": 5},
            "connect_opts": {"auth_token": "token", "protocol": 1},
            "type": "authorization_request",
            "version": 2,
            **nats,
        },
    }


VALID = encode_jwt(_request_claims(), SERVER)


def _decode(token: str) -> AuthorizationRequest | None:
    """The decoded request, or None when refused with the typed error (and only it)."""
    try:
        request = decode_authorization_request(token)
    except JwtError:
        return None
    # what the callout does with every decoded request it cannot admit: a signed deny
    deny = callout_deny(
        request, response_signer=AUTH_SIGNING, callout_account=AUTH.public_key, error="x"
    )
    assert decode_jwt(deny, expected_type="authorization_response").nats["error"] == "x"
    return request


def _b64_json(text: str) -> str:
    return b64url_encode(text.encode())


@fuzz()
@given(st.text())
@example(f"{_b64_json(DEEP_ARRAY)}.{_b64_json('{}')}.{'A' * 86}")
@example(f"{HEADER}.{_b64_json(DEEP_OBJECT)}.{'A' * 86}")
@example(f"{HEADER}.{_b64_json('[1]')}.{'A' * 86}")
def test_arbitrary_text_is_refused_with_jwt_error(token: str) -> None:
    assert _decode(token) is None


@fuzz()
@given(
    st.one_of(
        st.just(HEADER),
        st.binary().map(b64url_encode),
        json_values.map(lambda v: _b64_json(json.dumps(v))),
    ),
    st.one_of(st.binary().map(b64url_encode), json_values.map(lambda v: _b64_json(json.dumps(v)))),
    st.one_of(st.binary().map(b64url_encode), st.just(VALID.rsplit(".", 1)[1])),
)
def test_unsigned_parts_are_refused_with_jwt_error(header: str, claims: str, sig: str) -> None:
    assert _decode(f"{header}.{claims}.{sig}") is None


_nats_claims = st.fixed_dictionaries(
    {},
    optional={
        "server_id": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {"id": st.one_of(st.just(SERVER.public_key), json_values)},
                optional={"name": json_values, "xkey": json_values},
            ),
        ),
        "user_nkey": st.one_of(st.just(USER.public_key), json_values),
        "client_info": json_values,
        "connect_opts": st.one_of(
            json_values, st.fixed_dictionaries({}, optional={"auth_token": json_values})
        ),
        "type": st.one_of(st.just("authorization_request"), json_values),
        "version": json_values,
    },
)


@fuzz()
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "aud": st.one_of(st.just("nats-authorization-request"), json_values),
            "sub": json_values,
            "exp": json_values,
            "nbf": json_values,
            "iat": json_values,
            "nats": st.one_of(_nats_claims, json_values),
        },
    )
)
def test_any_server_signed_claims_decode_or_are_refused(claims: dict[str, Any]) -> None:
    request = _decode(encode_jwt(claims, SERVER))
    if request is not None:
        assert request.user_nkey == USER.public_key
        assert request.auth_token is None or isinstance(request.auth_token, str)


@fuzz()
@given(mutated_text(VALID))
def test_a_changed_character_never_yields_other_claims(token: str) -> None:
    request = _decode(token)
    if request is not None:  # a spelling the decoder tolerates (whitespace, padding)
        assert decode_jwt(token).claims == decode_jwt(VALID).claims


@fuzz()
@given(st.binary(max_size=200), st.one_of(st.just(THEIRS.public_key), st.text(max_size=60)))
def test_opening_arbitrary_bytes_raises_only_xkey_error(sealed: bytes, sender: str) -> None:
    try:
        OURS.open(sealed, sender)
    except XKeyError:
        return
    raise AssertionError("arbitrary bytes opened")


@fuzz(0.5)
@given(st.binary(min_size=1, max_size=100), st.data())
def test_a_changed_byte_of_a_sealed_request_never_opens(plain: bytes, data: st.DataObject) -> None:
    sealed = bytearray(THEIRS.seal(plain, OURS.public_key))
    assert OURS.open(bytes(sealed), THEIRS.public_key) == plain
    index = data.draw(st.integers(0, len(sealed) - 1))
    sealed[index] ^= data.draw(st.integers(1, 255))
    try:
        OURS.open(bytes(sealed), THEIRS.public_key)
    except XKeyError:
        return
    raise AssertionError(f"a sealed message with byte {index} changed opened")


def test_the_unchanged_request_decodes() -> None:
    """The positive side of the properties above."""
    request = _decode(VALID)
    assert request is not None and request.auth_token == "token"
