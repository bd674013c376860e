from __future__ import annotations

import pytest

from trellis import (
    AuthError,
    Err,
    KVError,
    Ok,
    RemoteError,
    Result,
    TransportError,
    TrellisError,
    UnexpectedError,
    ValidationFailed,
)
from trellis.result import UnwrapError


class ItemNotFound(TrellisError):
    """No such item."""

    item_id: str


def describe(result: Result[int, TrellisError]) -> str:
    match result:
        case Ok(value):
            return f"ok {value}"
        case Err(ItemNotFound(item_id=item_id)):
            return f"missing {item_id}"
        case Err(error):
            return f"error {error.type}"
    return "unreachable"


def test_ok_and_err_work_with_match() -> None:
    assert describe(Ok(3)) == "ok 3"
    assert describe(Err(ItemNotFound(item_id="7"))) == "missing 7"
    assert describe(Err(AuthError(reason="x"))) == "error AuthError"


def test_helpers() -> None:
    assert Ok(2).map(lambda v: v * 5).unwrap() == 10
    assert Ok(2).and_then(lambda v: Err(v)).is_err()
    err: Err[TrellisError] = Err(ItemNotFound(item_id="1"))
    assert err.map(lambda v: v).is_err()
    assert err.unwrap_or(9) == 9
    assert err.map_err(lambda e: e.type).error == "ItemNotFound"
    with pytest.raises(ItemNotFound):
        err.or_raise()
    with pytest.raises(UnwrapError):
        Err("plain").unwrap()
    assert Ok(1).or_raise() == 1


def test_wire_round_trip_of_declared_and_builtin_errors() -> None:
    error = ItemNotFound(item_id="42", context={"shelf": 3}, trace_id="t1")
    wire = error.to_wire()
    assert wire["type"] == "ItemNotFound" and wire["message"] == "No such item."
    assert wire["item_id"] == "42" and wire["context"] == {"shelf": 3} and wire["traceId"] == "t1"
    assert isinstance(wire["id"], str) and len(wire["id"]) == 26
    back = TrellisError.from_wire(wire, {"ItemNotFound": ItemNotFound})
    assert back == error and isinstance(back, ItemNotFound)
    issues = ValidationFailed(issues=[{"path": "/id", "message": "required"}])
    assert TrellisError.from_wire(issues.to_wire()) == issues
    denied = TrellisError.from_wire(TransportError(reason="trellis.request.denied").to_wire())
    assert denied.reason == "trellis.request.denied"
    assert (
        TrellisError.from_wire(AuthError(reason="iat_out_of_range").to_wire()).reason
        == "iat_out_of_range"
    )  # type: ignore[attr-defined]


def test_unknown_types_become_remote_errors_keeping_fields() -> None:
    wire = {"id": "1", "type": "Exotic", "message": "m", "weight": 3}
    remote = TrellisError.from_wire(wire)
    assert (
        isinstance(remote, RemoteError)
        and remote.remote_type == "Exotic"
        and remote.data == {"weight": 3}
    )
    assert remote.to_wire() == wire


@pytest.mark.parametrize("bad", [None, [], {"message": "no type"}, {"type": 5}])
def test_malformed_envelopes_become_unexpected_errors(bad: object) -> None:
    assert isinstance(TrellisError.from_wire(bad), UnexpectedError)  # type: ignore[arg-type]


def test_envelope_violating_the_declared_schema_is_unexpected() -> None:
    wire = {"id": "1", "type": "ItemNotFound", "message": "m"}
    assert isinstance(TrellisError.from_wire(wire, {"ItemNotFound": ItemNotFound}), UnexpectedError)


def test_reserved_field_names_are_refused() -> None:
    with pytest.raises(TypeError, match="reserved"):

        class Clash(TrellisError):
            message: str  # type: ignore[misc]


def test_every_error_has_one_reason() -> None:
    assert ItemNotFound(item_id="1").reason == "ItemNotFound"
    assert "reason" not in ItemNotFound(item_id="1").to_wire()  # a constant, not a field
    assert ValidationFailed().reason == "invalid_input"
    assert ValidationFailed().type == "ValidationError"  # the wire type is upstream's
    assert UnexpectedError().reason == "unexpected"
    assert AuthError(reason="session_not_found").reason == "session_not_found"
    assert AuthError().to_wire()["reason"] == "insufficient_permissions"
    assert TransportError().reason == "trellis.request.failed"
    assert KVError(reason="exists").reason == "exists"
