"""Manifests arrive over the network (``Auth.Deployments.Create``, ``Auth.Users.Create``):
``Manifest.parse`` on any JSON, and on real manifests with one part changed, returns a
manifest or raises ``ContractError`` listing the problems, and a manifest it accepts has a
digest."""

from __future__ import annotations

import copy
from typing import Any

from examples.inventory.contract import inventory, inventory_cli
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.conftest import fuzz
from tests.fuzz.strategies import json_values
from trellis.contracts import trellis_core
from trellis.contracts.manifest import contract_digest
from trellis.contracts.model import Manifest
from trellis.contracts.validate import ContractError

REAL = [inventory.manifest, inventory_cli.manifest, trellis_core.manifest]
KNOWN = {c.id: Manifest.parse(c.manifest) for c in (inventory, trellis_core)}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``value`` (dict keys and list indexes)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, (*prefix, index))
    return out


@st.composite
def changed_manifests(draw: st.DrawFn) -> Any:
    """A real manifest with one to three values replaced, removed or given a sibling."""
    manifest = copy.deepcopy(draw(st.sampled_from(REAL)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(manifest)))
        if not path:
            return draw(json_values)
        parent = manifest
        for step in path[:-1]:
            parent = parent[step]
        change = draw(st.sampled_from(["replace", "remove", "add"]))
        if change == "replace":
            parent[path[-1]] = draw(json_values)
        elif change == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(json_values)
        else:
            parent.append(draw(json_values))
    return manifest


def _parse(data: Any) -> Manifest | None:
    try:
        model = Manifest.parse(data, KNOWN)
    except ContractError as exc:
        assert exc.problems  # a refusal says why
        return None
    assert isinstance(contract_digest(model.dump()), str)
    return model


def _quantity_maximum(maximum: int) -> dict[str, Any]:
    """The inventory's manifest with a ``maximum`` on ``Item.quantity``."""
    manifest = copy.deepcopy(inventory.manifest)
    manifest["schemas"]["Item"]["properties"]["quantity"]["maximum"] = maximum
    return manifest


#: 10**400 has no double: it broke the digest (OverflowError) of a manifest that parsed
HUGE = _quantity_maximum(10**400)


@fuzz(2)
@given(st.one_of(changed_manifests(), json_values))
@example(HUGE)
def test_any_manifest_parses_or_raises_contract_error(data: Any) -> None:
    _parse(data)


def test_the_unchanged_manifests_parse() -> None:
    """The positive side: the manifests the changes start from are valid."""
    for manifest in REAL:
        assert _parse(copy.deepcopy(manifest)) is not None
    assert _parse(_quantity_maximum(10**300)) is not None
    assert _parse(HUGE) is None
