"""Refusals that a deleted check would turn into admissions: the callout's reason codes for
inactive users and overload, and the verdict of
``Auth.Requests.Validate`` on a forged proof.  Each test also shows the sound case admitted."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from examples.inventory.contract import inventory, inventory_cli

from tests.runtime.support import refused
from trellis.auth import SessionKey, connect_token, rpc_proof
from trellis.calls import RpcClient, rpc_targets
from trellis.contracts import builtin
from trellis.encoding import b64url_encode
from trellis.ids import ulid
from trellis.testing import local_deployment

READ = "inventory::items.read"
WRITE = "inventory::items.write"


async def test_a_deactivated_user_is_refused_at_connect_as_user_inactive(tmp_path: Path) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        await stack.install(inventory)
        key = await stack.user("alice", inventory_cli, [READ, WRITE])
        admin = await stack.admin()
        (await admin.call("Auth.Users.Update", {"id": "alice", "active": False})).unwrap()
        token = connect_token(key, inventory_cli.digest, int(time.time()))
        await refused(stack, token, "user_inactive")
        (await admin.call("Auth.Users.Update", {"id": "alice", "active": True})).unwrap()
        nc = await stack.raw_sentinel(connect_token(key, inventory_cli.digest, int(time.time())))
        assert nc.is_connected


async def test_connects_beyond_the_callouts_capacity_are_refused_as_rate_limited(
    tmp_path: Path,
) -> None:
    async with local_deployment(tmp_path / "b") as stack:
        key = await stack.install(inventory)
        callout = stack.runtime.callout
        assert callout is not None
        capacity, callout.capacity = callout.capacity, 0
        await refused(stack, connect_token(key, inventory.digest, int(time.time())), "rate_limited")
        callout.capacity = capacity
        nc = await stack.raw_sentinel(connect_token(key, inventory.digest, int(time.time())))
        assert nc.is_connected


async def test_auth_requests_validate_denies_a_forged_or_altered_proof(tmp_path: Path) -> None:
    """A service asks the runtime to check a caller's proof: only the genuine one, over the
    body the service received, is allowed."""
    async with local_deployment(tmp_path / "b") as stack:
        service_key = await stack.install(inventory)
        user_key = await stack.user("carol", inventory_cli, [READ, WRITE])
        nc = await stack.raw_participant(service_key, inventory.digest)
        target = rpc_targets(builtin.trellis_auth, include_own=True)["Auth.Requests.Validate"]
        validate = RpcClient(nc, service_key, {"Auth.Requests.Validate": target})

        subject, body, iat, request_id = "rpc.v1.Items.Get", b'{"id":"1"}', int(time.time()), ulid()
        genuine = {
            "sessionKey": user_key.public_key,
            "proof": rpc_proof(user_key, subject, body, iat, request_id),
            "subject": subject,
            "payloadHash": b64url_encode(hashlib.sha256(body).digest()),
            "iat": iat,
            "requestId": request_id,
            "capabilities": [READ],
        }
        forger = SessionKey.generate()
        forged = {**genuine, "proof": rpc_proof(forger, subject, body, iat, request_id)}
        altered = {**genuine, "payloadHash": b64url_encode(hashlib.sha256(b"{}").digest())}

        async def allowed(request: dict[str, object]) -> bool:
            verdict = (await validate.call("Auth.Requests.Validate", request)).unwrap()
            return bool(verdict.allowed)

        assert await allowed(genuine)
        assert not await allowed(forged)
        assert not await allowed(altered)
        # genuine, but asking about a capability carol does not hold
        assert not await allowed({**genuine, "capabilities": ["inventory::items.admin"]})
