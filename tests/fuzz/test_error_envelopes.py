"""``TrellisError.from_wire`` reads whatever a service (or anyone answering in its place)
sent as an error envelope: every mapping and every other JSON value becomes a
``TrellisError``, never an exception."""

from __future__ import annotations

from typing import Any

from examples.inventory.contract import ItemNotFound
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.conftest import fuzz
from tests.fuzz.strategies import json_values
from trellis.result import BUILTIN_ERRORS, TrellisError

#: keys that mean something to the envelope or to ``TrellisError.__init__``
KEYS = st.sampled_from(
    [
        "id",
        "type",
        "message",
        "context",
        "traceId",
        "cause",
        "reason",
        "issues",
        "key",
        "operation",
        "remote_type",
        "data",
        "fields",
        "self",
        "trace_id",
        "itemId",
        "item_id",
    ]
)
TYPES = st.sampled_from([*BUILTIN_ERRORS, "ItemNotFound", "Nope", "TrellisError"])
DECLARED = {ItemNotFound.type: ItemNotFound}


@fuzz(2)
@given(
    st.one_of(
        json_values,
        st.dictionaries(st.one_of(KEYS, st.text(max_size=10)), json_values, max_size=6).flatmap(
            lambda d: st.one_of(st.just(d), TYPES.map(lambda t: {**d, "type": t}))
        ),
    )
)
@example({"type": "AuthError", "trace_id": "x"})
@example({"type": "ItemNotFound", "self": 1})
@example({"type": "Nope", "trace_id": "x", "self": 1})
def test_any_envelope_becomes_a_trellis_error(envelope: Any) -> None:
    error = TrellisError.from_wire(envelope, DECLARED)
    assert isinstance(error, TrellisError)
    assert isinstance(error.to_wire(), dict)  # and can be sent on again (a proxy, a log)
