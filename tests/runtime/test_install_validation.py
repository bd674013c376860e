"""Every name an install validates is matched whole (issue 11 item 5): Python's ``$`` also
matches before a final newline, so ``re.match("^name$")`` let ``"wedge\\n"`` through.

The pydantic ``pattern=`` fields (user ids, session keys, digests) use pydantic-core's Rust
regex engine, whose ``$`` is the end of the text; the last test keeps that true."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pydantic
import pytest
from pydantic import BaseModel

from trellis.contracts import Contract, check_manifest, event, kv, rpc, stream
from trellis.contracts.builtin import UserCreateInput
from trellis.events import EventDefinition, event_subject, filter_subject


class Item(BaseModel):
    id: str
    category: str


BASE = Contract(
    "depot@v1",
    kind="service",
    display_name="Depot",
    description="Keeps items.",
    capabilities={"items.read": "Read items"},
    rpc={"Items.Get": rpc(Item, Item, call=["depot::items.read"])},
    events={"Items.Moved": event(Item, params=["/category"])},
    kv={"items": kv(Item, purpose="Items")},
    streams={"orders": stream(purpose="Orders", subjects=["placed"])},
).manifest


def _renamed(section: dict[str, Any], old: str, new: str) -> None:
    section[new] = section.pop(old)


def _edit(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    manifest = copy.deepcopy(BASE)
    change(manifest)
    return manifest


#: field → (the change, the path of the problem it must raise)
EDITS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "contract id": (lambda m: m.update(id="depot@v1\n"), "id"),
    "capability name": (
        lambda m: m["capabilities"].update({"depot::x\n": m["capabilities"]["depot::items.read"]}),
        "capabilities.depot::x\n",
    ),
    "rpc name": (lambda m: _renamed(m["rpc"], "Items.Get", "Items.Get\n"), "rpc.Items.Get\n"),
    "rpc version": (
        lambda m: m["rpc"]["Items.Get"].update(version="v1\n"),
        "rpc.Items.Get.version",
    ),
    "rpc subject": (
        lambda m: m["rpc"]["Items.Get"].update(subject="rpc.v1.Items.Get\n"),
        "rpc.Items.Get.subject",
    ),
    "kv alias": (
        lambda m: _renamed(m["resources"]["kv"], "items", "items\n"),
        "resources.kv.items\n",
    ),
    "stream subject": (
        lambda m: m["resources"]["streams"]["orders"].update(subjects=["placed\n"]),
        "resources.streams.orders.subjects[0]",
    ),
    "uses contract": (
        lambda m: m.update(uses={"required": {"core": {"contract": "trellis.core@v1\n"}}}),
        "uses.required.core.contract",
    ),
    "uses alias": (
        lambda m: m.update(uses={"required": {"core\n": {"contract": "trellis.core@v1"}}}),
        "uses.required.core\n",
    ),
}


def test_the_base_manifest_is_valid() -> None:
    assert check_manifest(BASE) == []


@pytest.mark.parametrize("field", sorted(EDITS))
def test_a_trailing_newline_in_a_contract_name_is_refused(field: str) -> None:
    change, path = EDITS[field]
    problems = check_manifest(_edit(change))
    assert path in {p.path for p in problems}, problems


def test_a_trailing_newline_in_an_event_param_never_reaches_a_subject() -> None:
    definition = EventDefinition(
        "Items.Moved", "depot@v1", "events.v1.Items.Moved.{/category}", ("/category",), None
    )
    with pytest.raises(ValueError, match="subject token"):
        event_subject(definition, {"id": "1", "category": "books\n"})
    with pytest.raises(ValueError, match="subject token"):
        filter_subject(definition, {"category": "books\n"})


@pytest.mark.parametrize(
    "field", [{"id": "alice\n"}, {"sessionKey": "A" * 43 + "\n"}], ids=["id", "sessionKey"]
)
def test_pydantic_patterns_refuse_a_trailing_newline(field: dict[str, str]) -> None:
    data = {"id": "alice", "sessionKey": "A" * 43, "contract": {}, "capabilities": [], **field}
    with pytest.raises(pydantic.ValidationError, match="String should match pattern"):
        UserCreateInput.model_validate(data)
