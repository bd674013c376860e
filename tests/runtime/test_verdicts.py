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
from trellis.result import AuthError, Err
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

        subject, body = "rpc.v1.Items.Get", b'{"id":"1"}'
        body_hash = b64url_encode(hashlib.sha256(body).digest())

        def request(
            signer: SessionKey,
            payload_hash: str = body_hash,
            capabilities: tuple[str, ...] = (READ,),
        ) -> dict[str, object]:
            """What a service asks about carol's request; each with a request id of its own
            (Validate refuses one it has already seen)."""
            iat, request_id = int(time.time()), ulid()
            return {
                "sessionKey": user_key.public_key,
                "proof": rpc_proof(signer, subject, body, iat, request_id),
                "subject": subject,
                "payloadHash": payload_hash,
                "iat": iat,
                "requestId": request_id,
                "capabilities": list(capabilities),
            }

        async def verdict(asked: dict[str, object]) -> bool | str:
            """``allowed``, or the reason of the AuthError a bad proof is answered with."""
            answered = await validate.call("Auth.Requests.Validate", asked)
            if isinstance(answered, Err):
                assert isinstance(answered.error, AuthError), answered.error
                return answered.error.reason
            return bool(answered.value.allowed)

        assert await verdict(request(user_key)) is True
        assert await verdict(request(SessionKey.generate())) == "invalid_signature"  # forged
        altered = b64url_encode(hashlib.sha256(b"{}").digest())  # not the body carol signed
        assert await verdict(request(user_key, payload_hash=altered)) == "invalid_signature"
        # genuine, but asking about a capability carol does not hold
        assert await verdict(request(user_key, capabilities=("inventory::items.admin",))) is False
        # the same request asked about twice: the second is a replay
        once = request(user_key)
        assert await verdict(once) is True
        assert await verdict(once) == "invalid_signature"
