"""Connect tokens are the first thing any sentinel connection hands the callout: whatever
the text, parsing and verifying end in a valid token or the typed ``ConnectTokenError``
(with a callout reason code), and no single changed field of a valid token verifies."""

from __future__ import annotations

import time
from typing import Any

import pytest
from examples.inventory.contract import inventory, inventory_cli
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.conftest import Deployed, fuzz
from tests.fuzz.strategies import DEEP_ARRAY, DEEP_OBJECT, json_text, json_values, mutated_text
from trellis.auth import (
    ConnectToken,
    ConnectTokenError,
    SessionKey,
    connect_token,
    parse_connect_token,
    verify_connect_token,
)

PARSE_REASONS = {"auth_token_required", "invalid_auth_token"}
VERIFY_REASONS = {None, "iat_out_of_range", "invalid_signature"}
KEYS = [SessionKey.generate() for _ in range(3)]
NOW = int(time.time())
#: deep nesting that fits the 4096-character bound
DEEP_TOKEN = "[" * 4000
FIELDS = ("v", "sessionKey", "contractDigest", "iat", "sig")


def _outcome(raw: str | None, now: float = NOW + 0.5) -> str | None:
    """The callout's reason code for ``raw`` (None: admitted), raising only if untyped."""
    try:
        token = parse_connect_token(raw)
    except ConnectTokenError as exc:
        assert exc.reason in PARSE_REASONS, exc.reason
        assert raw is None or raw == "" or str(exc) != raw  # never the token's text
        return exc.reason
    assert isinstance(token, ConnectToken)
    reason = verify_connect_token(token, now)
    assert reason in VERIFY_REASONS
    return reason


def _near_valid() -> st.SearchStrategy[dict[str, Any]]:
    """Token-shaped objects whose fields are each the right shape or anything at all."""
    return st.fixed_dictionaries(
        {},
        optional={
            "v": st.one_of(st.just(1), json_values),
            "sessionKey": st.one_of(st.sampled_from([k.public_key for k in KEYS]), json_values),
            "contractDigest": st.one_of(
                st.from_regex(r"[A-Za-z0-9_-]{1,130}", fullmatch=True), json_values
            ),
            "iat": st.one_of(st.integers(NOW - 100, NOW + 100), json_values),
            "sig": st.one_of(st.from_regex(r"[A-Za-z0-9_-]{86}", fullmatch=True), json_values),
            "extra": json_values,
        },
    )


@fuzz()
@given(st.one_of(st.none(), st.text(), st.binary().map(lambda b: b.decode("latin-1"))))
@example(DEEP_TOKEN)
@example(DEEP_ARRAY)
@example(DEEP_OBJECT)
@example("1" * 4000)
def test_arbitrary_text_is_a_token_or_a_typed_refusal(raw: str | None) -> None:
    _outcome(raw)


@fuzz()
@given(st.one_of(_near_valid(), json_values))
@example(
    {
        "v": 1,
        "sessionKey": KEYS[0].public_key,
        "contractDigest": "d",
        "iat": 10**400,
        "sig": "A" * 86,
    }
)
@example(
    {
        "v": 1,
        "sessionKey": KEYS[0].public_key,
        "contractDigest": "d",
        "iat": -(10**300),
        "sig": "A" * 86,
    }
)
def test_near_valid_json_is_a_token_or_a_typed_refusal(value: Any) -> None:
    _outcome(json_text(value))


def _valid(key_index: int, digest: str) -> dict[str, Any]:
    return {
        "v": 1,
        "sessionKey": KEYS[key_index].public_key,
        "contractDigest": digest,
        "iat": NOW,
        "sig": KEYS[key_index].sign_domain("nats-connect", f"{NOW}:{digest}"),
    }


@st.composite
def _one_field_changed(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    digest = draw(st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True))
    token = _valid(draw(st.integers(0, len(KEYS) - 1)), digest)
    field = draw(st.sampled_from(FIELDS))
    original = token[field]
    choices: list[st.SearchStrategy[Any]] = [json_values]
    if isinstance(original, str):
        choices.append(mutated_text(original))
    if field == "sessionKey":
        choices.append(st.sampled_from([k.public_key for k in KEYS]))
    if field == "iat":
        choices.append(st.integers(NOW - 30, NOW + 30))
    if field == "sig":  # another key's valid signature over the same value
        choices.append(
            st.sampled_from([k.sign_domain("nats-connect", f"{NOW}:{digest}") for k in KEYS])
        )
    token[field] = draw(
        st.one_of(choices).filter(lambda v: v != original or type(v) is not type(original))
    )
    return token, field


@fuzz(2)
@given(_one_field_changed())
def test_a_valid_token_with_one_field_changed_never_verifies(
    case: tuple[dict[str, Any], str],
) -> None:
    token, _field = case
    assert _outcome(json_text(token)) is not None


@fuzz(0.25)
@given(
    st.integers(0, len(KEYS) - 1),
    st.from_regex(r"[A-Za-z0-9_-]{1,128}", fullmatch=True),
    st.integers(-30, 30),
)
def test_the_unchanged_token_verifies(key_index: int, digest: str, skew: int) -> None:
    """The positive side: without a change the same tokens are admitted, so the refusals
    above are the mutation's doing."""
    assert _outcome(connect_token(KEYS[key_index], digest, NOW), NOW + skew) is None
    assert _outcome(json_text(_valid(key_index, digest)), NOW + skew) is None


# ------------------------------------------------------------------ the callout's decision


CALLOUT_REASONS = PARSE_REASONS | VERIFY_REASONS | {"session_not_found", "contract_changed"}


@pytest.mark.asyncio(loop_scope="module")
@fuzz()
@given(
    st.one_of(
        st.none(),
        st.text(),
        st.builds(json_text, st.one_of(_near_valid(), json_values)),
        st.builds(json_text, _one_field_changed().map(lambda case: case[0])),
    ),
)
@example(DEEP_TOKEN)
async def test_the_callout_decides_any_token_with_a_reason_code(
    deployed: Deployed, raw: str | None
) -> None:
    """The runtime's own decision (principal lookup and permission derivation included)
    on the module's real deployment: a reason code for everything that is not a registered
    session's valid token."""
    callout = deployed.dep.runtime.callout
    assert callout is not None
    decision = await callout.decide(raw)
    assert decision.reason in CALLOUT_REASONS
    assert decision.reason is not None


@pytest.mark.asyncio(loop_scope="module")
async def test_the_callout_admits_the_registered_sessions_valid_tokens(deployed: Deployed) -> None:
    """The positive side on the same deployment: the property above is not vacuous."""
    callout = deployed.dep.runtime.callout
    assert callout is not None
    now = int(time.time())
    for key, digest in (
        (deployed.service_key, inventory.digest),
        (deployed.user_key, inventory_cli.digest),
    ):
        decision = await callout.decide(connect_token(key, digest, now))
        assert decision.reason is None and decision.permissions is not None
