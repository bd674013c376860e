"""Request ids and request headers: the caller's side of PROTOCOL §6."""

from __future__ import annotations

import re
import time

from trellis.auth import SessionKey, verify_rpc_proof
from trellis.ids import ulid
from trellis.wire import RequestIds, request_headers, signed_headers

ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


def test_request_ids_are_ulids_with_the_current_time() -> None:
    ids = RequestIds()
    before = time.time_ns() // 1_000_000
    value = ids.next()
    after = time.time_ns() // 1_000_000
    assert ULID.fullmatch(value)
    # the time part is ulid()'s encoding of some millisecond within the call
    assert value[:10] in {ulid(ms)[:10] for ms in range(before, after + 1)}


def test_request_ids_never_repeat_and_increase() -> None:
    ids = RequestIds()
    values = []
    for i in range(20_000):
        values.append(ids.next())
        if i % 2_000 == 0:
            time.sleep(0.002)  # cross some millisecond boundaries
    assert len(set(values)) == len(values)
    assert values == sorted(values)
    assert all(ULID.fullmatch(v) for v in values[::997])


def test_signed_headers_carry_a_proof_that_verifies() -> None:
    key = SessionKey.generate()
    body = b'{"id":"item-1"}'
    headers = request_headers(key, "rpc.v1.Items.Get", body, 1_700_000_000, "01ABC", "00-tp")
    assert set(headers) == {"session-key", "proof", "iat", "request-id", "traceparent"}
    assert verify_rpc_proof(
        key.public_key, headers["proof"], "rpc.v1.Items.Get", body, 1_700_000_000, "01ABC"
    )
    assert not verify_rpc_proof(
        key.public_key, headers["proof"], "rpc.v1.Items.Get", b"{}", 1_700_000_000, "01ABC"
    )
    assert "traceparent" not in signed_headers(key.public_key, b"\0" * 64, 1, "r", None)
