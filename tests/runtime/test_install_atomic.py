"""Install and remove are all-or-nothing, names are matched whole, and the ``trellis.*``
contract ids belong to Trellis (issue 11 item 5), on a real nats-server and runtime.

Failures part-way are real ones, made by NATS itself: a stream an operator created over the
subjects the install's stream needs, and a consumer whose settings the server refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nats.js.api import StreamConfig
from nats.js.client import JetStreamContext
from pydantic import BaseModel

from trellis.auth import SessionKey
from trellis.client import TrellisClient
from trellis.contracts import Contract, consumer, event, kv, rpc, stream
from trellis.contracts.builtin import DeploymentError, trellis_cli
from trellis.testing import LocalDeployment, local_deployment


class Item(BaseModel):
    id: str
    category: str


def _depot(*, max_deliver: int | None = None, extra_kv: bool = False) -> Contract:
    """A service that makes one of everything an install provisions."""
    buckets = {"items": kv(Item, purpose="Items")}
    if extra_kv:
        buckets["archive"] = kv(Item, purpose="Archived items")
    return Contract(
        "depot@v1",
        kind="service",
        display_name="Depot",
        description="Keeps items.",
        rpc={"Items.Get": rpc(Item, Item, call=["service"])},
        events={"Items.Moved": event(Item, params=["/category"])},
        kv=buckets,
        streams={"orders": stream(purpose="Orders", subjects=["placed"])},
        event_consumers={
            "audit": consumer(
                self_events=["Items.Moved"],
                max_deliver=max_deliver,
                # NATS refuses a consumer with more backoff steps than deliveries
                backoff_ms=[1000, 2000, 3000] if max_deliver else None,
            )
        },
    )


def _depot_without_stream() -> Contract:
    return Contract(
        "depot@v1",
        kind="service",
        display_name="Depot",
        description="Keeps items.",
        rpc={"Items.Get": rpc(Item, Item, call=["service"])},
        kv={"items": kv(Item, purpose="Items")},
    )


async def _jetstream(stack: LocalDeployment) -> JetStreamContext:
    return (await stack.raw_runtime()).jetstream()


async def _snapshot(stack: LocalDeployment) -> dict[str, Any]:
    """Every stream (KV buckets are streams too) and consumer on the server, and every
    control-plane record an install writes, except the content-addressed contract records."""
    js = await _jetstream(stack)
    streams = sorted(s.config.name or "" for s in await js.streams_info())
    consumers = {
        name: sorted(c.name for c in await js.consumers_info(name))
        for name in streams
        if not name.startswith("KV_trellis_")
    }
    cp = stack.runtime.cp
    assert cp is not None
    return {
        "streams": streams,
        "consumers": consumers,
        "active": sorted(a.model_dump_json() for a in await cp.active.values()),
        "deployments": await cp.deployments.keys(),
        "bindings": sorted(b.model_dump_json() for b in await cp.bindings.values()),
        "principals": await cp.principals.keys(),
    }


async def _create(
    admin: TrellisClient, name: str, contract: Contract, key: SessionKey, *, upgrade: bool = False
) -> Any:
    rpc_name = "Auth.Deployments.Upgrade" if upgrade else "Auth.Deployments.Create"
    return await admin.call(
        rpc_name, {"name": name, "contract": contract.manifest, "publicKey": key.public_key}
    )


def _refusal(result: Any) -> DeploymentError:
    assert result.is_err(), result
    error = result.error
    assert isinstance(error, DeploymentError), error
    return error


# --------------------------------------------------------------------------- names


async def test_installing_as_wedge_newline_is_refused_and_the_valid_name_still_installs(
    tmp_path: Path,
) -> None:
    """The issue's reproduction: ``"wedge\\n"`` passed ``re.match("^...$")``, provisioned and
    activated, then crashed; ``wedge`` was then refused and remove said ``not_found``."""
    async with local_deployment(tmp_path / "b") as stack:
        admin = await stack.admin()
        key = SessionKey.generate()
        before = await _snapshot(stack)

        error = _refusal(await _create(admin, "wedge\n", _depot(), key))
        assert error.reason == "invalid_name", error
        assert await _snapshot(stack) == before

        (await _create(admin, "wedge", _depot(), key)).unwrap()
        assert (await admin.call("Auth.Deployments.Remove", {"name": "wedge"})).is_ok()
        assert await _snapshot(stack) == before


# --------------------------------------------------------------------------- rollback


async def test_a_stream_squatting_on_the_service_subjects_fails_install_and_rolls_it_back(
    tmp_path: Path,
) -> None:
    """The install creates the KV bucket, then NATS refuses its stream (the subjects overlap
    a stream that was there first): the bucket goes again, nothing is active or recorded,
    and the name installs once the obstacle is gone."""
    async with local_deployment(tmp_path / "b") as stack:
        admin = await stack.admin()
        js = await _jetstream(stack)
        await js.add_stream(StreamConfig(name="squat", subjects=["tr.>"]))
        key = SessionKey.generate()
        before = await _snapshot(stack)

        result = await _create(admin, "depot", _depot(), key)
        assert await _snapshot(stack) == before
        error = _refusal(result)
        assert error.reason == "provisioning_failed", error
        assert "rolled back" in str(error)

        await js.delete_stream("squat")
        deployment = (await _create(admin, "depot", _depot(), key)).unwrap().deployment
        assert deployment.name == "depot"


async def test_a_consumer_that_nats_refuses_rolls_back_the_bucket_and_stream_before_it(
    tmp_path: Path,
) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        admin = await stack.admin()
        key = SessionKey.generate()
        before = await _snapshot(stack)

        result = await _create(admin, "depot", _depot(max_deliver=2), key)
        assert await _snapshot(stack) == before
        assert _refusal(result).reason == "provisioning_failed", result
        catalog = (await admin.call("Trellis.Catalog", {})).unwrap()
        assert "depot@v1" not in {c.id for c in catalog.contracts}

        (await _create(admin, "depot", _depot(), key)).unwrap()


async def test_a_failed_upgrade_puts_back_the_version_it_replaced_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        admin = await stack.admin()
        key = SessionKey.generate()
        old = _depot_without_stream()
        (await _create(admin, "depot", old, key)).unwrap()
        cp = stack.runtime.cp
        assert cp is not None
        bindings = await cp.bindings.get("depot")
        assert bindings is not None
        js = await _jetstream(stack)
        bucket = await js.key_value(bindings.kv[0].bucket)
        await bucket.put("a", b'{"id":"a","category":"books"}')
        await js.add_stream(StreamConfig(name="squat", subjects=["tr.>"]))
        before = await _snapshot(stack)

        # the new version adds a bucket (made) and a stream (refused by NATS)
        newer = _depot(extra_kv=True)
        result = await _create(admin, "depot", newer, key, upgrade=True)
        assert await _snapshot(stack) == before
        assert _refusal(result).reason == "provisioning_failed", result
        deployment = (await admin.call("Auth.Deployments.Get", {"name": "depot"})).unwrap()
        assert deployment.deployment.contract_digest == old.digest
        principal = await cp.principals.get(key.public_key)
        assert principal is not None and principal.contract_digest == old.digest
        entry = await bucket.get("a")
        assert entry.value == b'{"id":"a","category":"books"}'


# --------------------------------------------------------------------------- remove


async def test_removing_a_service_deletes_everything_its_install_made(tmp_path: Path) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        admin = await stack.admin()
        key = SessionKey.generate()
        before = await _snapshot(stack)
        (await _create(admin, "depot", _depot(), key)).unwrap()
        installed = await _snapshot(stack)
        made = set(installed["streams"]) - set(before["streams"])
        assert len(made) == 2  # the bucket's stream and the service's own stream
        assert len(installed["consumers"]["trellis"]) == len(before["consumers"]["trellis"]) + 1

        assert (await admin.call("Auth.Deployments.Remove", {"name": "depot"})).is_ok()
        assert await _snapshot(stack) == before
        again = await admin.call("Auth.Deployments.Remove", {"name": "depot"})
        assert _refusal(again).reason == "not_found"
        # the name and the contract are free again, and a new install starts empty
        (await _create(admin, "depot", _depot(), SessionKey.generate())).unwrap()


# --------------------------------------------------------------------------- trellis.*


def _named(contract_id: str, kind: str) -> Contract:
    return Contract(contract_id, kind=kind, display_name="Mine", description="Not Trellis's.")


async def test_a_user_contract_cannot_take_a_trellis_contract_id(tmp_path: Path) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        admin = await stack.admin()
        before = await _snapshot(stack)
        for contract_id in ("trellis.billing@v1", "trellis@v1", "trellis.auth@v2"):
            service = _named(contract_id, "service")
            error = _refusal(await _create(admin, "mine", service, SessionKey.generate()))
            assert error.reason == "reserved_id", (contract_id, error)
            assert "reserved" in str(error)
            user = _named(contract_id, "cli")
            registered = await admin.call(
                "Auth.Users.Create",
                {
                    "id": "mallory",
                    "sessionKey": SessionKey.generate().public_key,
                    "contract": user.manifest,
                    "capabilities": [],
                },
            )
            assert _refusal(registered).reason == "reserved_id", contract_id
        # an edited copy of a built-in is not the built-in
        edited = _named("trellis.cli@v1", "cli")
        assert edited.digest != trellis_cli.digest
        registered = await admin.call(
            "Auth.Users.Create",
            {
                "id": "mallory",
                "sessionKey": SessionKey.generate().public_key,
                "contract": edited.manifest,
                "capabilities": [],
            },
        )
        assert _refusal(registered).reason == "reserved_id"
        assert await _snapshot(stack) == before
        # the built-in CLI contract exactly as Trellis ships it stays registrable
        await stack.user("operator", trellis_cli)
