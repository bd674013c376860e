from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import conformance
from trellis.canonical import canonical_json, json_digest


def test_upstream_canonical_vectors() -> None:
    vectors = conformance("upstream/canonical-json.json")
    assert vectors
    for vector in vectors:
        assert canonical_json(vector["input"]) == vector["canonical"], vector["name"]
        assert json_digest(vector["input"]) == vector["digest"], vector["name"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (123.456, "123.456"),
        (-2.5e-10, "-2.5e-10"),
        (0.1, "0.1"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (12345678901234567890, "12345678901234567000"),
        (2**53, "9007199254740992"),
        (0, "0"),
        (0.0, "0"),
        (-7, "-7"),
        (True, "true"),
        (None, "null"),
    ],
)
def test_numbers_format_like_javascript(value: object, expected: str) -> None:
    assert canonical_json(value) == expected


def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    # U+FF61 sorts before U+1F600 by code point but after it by UTF-16 units (0xD83D < 0xFF61)
    value = {"\uff61": 1, "\U0001f600": 2, "a": 3, "B": 4}
    assert canonical_json(value) == '{"B":4,"a":3,"\U0001f600":2,"\uff61":1}'


def test_strings_escape_like_json_stringify() -> None:
    text = 'q"b\\s\b\f\n\r\t\x01\x1f\x7f\u2028é\U0001f600'
    assert canonical_json(text) == '"q\\"b\\\\s\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\u2028é\U0001f600"'
    assert canonical_json("\ud800") == '"\\ud800"'


def test_no_whitespace_and_arrays_keep_order() -> None:
    assert canonical_json({"z": [3, 1, {"b": [], "a": {}}]}) == '{"z":[3,1,{"a":{},"b":[]}]}'


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -0.0, {"a": [float("nan")]}])
def test_non_finite_and_negative_zero_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match=r"finite|-0\.0"):
        canonical_json(bad)


@pytest.mark.parametrize("bad", [{1: "x"}, {"a": b"bytes"}, {"a": object()}, {"a": {1, 2}}])
def test_non_json_values_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError):
        canonical_json(bad)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False).filter(
        lambda f: not (f == 0 and math.copysign(1, f) < 0)
    )
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@given(json_values)
def test_canonical_is_idempotent_through_a_parse(value: object) -> None:
    text = canonical_json(value)
    assert canonical_json(json.loads(text)) == text


@given(st.dictionaries(st.text(max_size=6), st.integers(), max_size=8), st.randoms())
def test_canonical_is_stable_under_key_reordering(value: dict[str, int], rnd: object) -> None:
    items = list(value.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    assert canonical_json(dict(items)) == canonical_json(value)


@given(st.sampled_from([math.nan, math.inf, -math.inf, -0.0]), st.text(max_size=4))
def test_non_finite_numbers_are_rejected_anywhere(bad: float, key: str) -> None:
    with pytest.raises(ValueError):
        canonical_json({"outer": [1, {key: bad}]})


def test_the_project_carries_the_conformance_vectors_its_tests_use() -> None:
    """The vector tests skip when their files are absent: a fresh clone must not."""
    from tests.conftest import OWN_CONFORMANCE

    for relative in (
        "upstream/canonical-json.json",
        "upstream/contract-digest.json",
        "upstream/auth-proof.json",
        "schemas/trellis.contract.v1.schema.json",
    ):
        assert (OWN_CONFORMANCE / relative).is_file(), relative
