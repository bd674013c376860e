"""Strategies shared by the fuzz modules: JSON values, and near-valid variants of real ones."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

#: JSON scalars, with the edges decoders trip on: huge and negative integers, floats,
#: unicode (surrogates cannot be encoded, so none), empty strings
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
)

json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=12,
)

#: nesting far deeper than Python's recursion limit: ``json.loads`` raises RecursionError
DEEP_ARRAY = "[" * 5000
DEEP_OBJECT = '{"a":' * 5000


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def mutated_text(text: str) -> st.SearchStrategy[str]:
    """``text`` with one character replaced, inserted or deleted (or cut short)."""
    if not text:
        return st.text(max_size=4)
    index = st.integers(0, len(text) - 1)
    char = st.characters(exclude_categories=["Cs"])
    return st.one_of(
        st.builds(lambda i, c: text[:i] + c + text[i + 1 :], index, char),
        st.builds(lambda i, c: text[:i] + c + text[i:], index, char),
        st.builds(lambda i: text[:i] + text[i + 1 :], index),
        st.builds(lambda i: text[:i], index),
    ).filter(lambda t: t != text)
