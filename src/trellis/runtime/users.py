"""Registered participant sessions (CLIs, scripts, apps) and their capability grants.

A user is a principal of kind ``user``: a session key registered with its (cli/app/agent)
contract and the capabilities an operator granted.  Services see every change through their
principal cache (a KV watch), so a grant or revoke takes effect on the next call.

Grants are checked against the active catalog: a capability no installed contract declares
is refused with the list of valid ones, because a typo (or a missing ``inventory::``
namespace) would otherwise be stored silently and fail later as a puzzling denial.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from trellis.contracts import Manifest
from trellis.contracts.manifest import PLATFORM_CAPABILITIES
from trellis.principals import Principal
from trellis.runtime.install import (
    Installer,
    InstallError,
    Kicker,
    check_key,
    check_not_reserved,
)
from trellis.runtime.state import ControlPlane

__all__ = ["Users"]


class Users:
    """Create, change and list users; every change is serialized with installs."""

    def __init__(self, cp: ControlPlane, installer: Installer) -> None:
        self.cp = cp
        self.installer = installer

    async def create(
        self,
        user_id: str,
        session_key: str,
        manifest: Mapping[str, Any],
        capabilities: list[str],
    ) -> Principal:
        """Register a participant session key with its (cli/app/agent) contract and grants.

        Registering an existing user again with the same key replaces its contract (the
        fix a client refused for ``contract_changed`` is told to run) and adds the grants to
        those it holds."""
        check_key(session_key)
        installer = self.installer
        async with self.cp.lock:
            normalized, digest = await installer.parse(manifest)
            check_not_reserved(normalized, digest)
            if normalized.kind == "service":
                raise InstallError(
                    "not_a_participant", "services are installed, not registered as users"
                )
            existing = await self.get(user_id)
            if existing is not None and existing.session_key != session_key:
                raise InstallError(
                    "exists", f"user {user_id!r} exists with another key; update it instead"
                )
            if existing is None and await self.cp.principals.get(session_key) is not None:
                raise InstallError("key_in_use", "that public key is already registered")
            await installer.check_activation(normalized, "")
            await self._check_capabilities(capabilities, {normalized.id: normalized})
            await installer.activate(normalized, digest, "")
            held = existing.capabilities if existing is not None else ()
            principal = Principal(
                session_key=session_key,
                kind="user",
                name=user_id,
                contract_id=normalized.id,
                contract_digest=digest,
                capabilities=tuple(sorted({*held, *capabilities})),
                disabled=existing.disabled if existing is not None else False,
            )
            await self.cp.principals.put(session_key, principal)
            return principal

    async def update(
        self,
        user_id: str,
        *,
        active: bool | None,
        capabilities: list[str] | None,
        grant: list[str],
        revoke: list[str],
        kick: Kicker,
    ) -> Principal:
        """Change grants or the active flag; services see it through their principal cache.

        Revoking is never checked: a capability whose contract was removed must stay
        revocable."""
        async with self.cp.lock:
            principal = await self.get(user_id)
            if principal is None:
                raise InstallError("not_found", f"no user named {user_id!r}")
            await self._check_capabilities([*(capabilities or ()), *grant])
            held = set(principal.capabilities if capabilities is None else capabilities)
            held = (held | set(grant)) - set(revoke)
            updated = principal.model_copy(
                update={
                    "capabilities": tuple(sorted(held)),
                    "disabled": principal.disabled if active is None else not active,
                }
            )
            await self.cp.principals.put(updated.session_key, updated)
        if updated.disabled and not principal.disabled:
            await kick(updated.session_key)
        return updated

    async def all(self) -> list[Principal]:
        return sorted(
            (p for p in await self.cp.principals.values() if p.kind == "user"),
            key=lambda p: p.name,
        )

    async def get(self, user_id: str) -> Principal | None:
        return next((p for p in await self.all() if p.name == user_id), None)

    async def _check_capabilities(
        self, wanted: Iterable[str], extra: Mapping[str, Manifest] | None = None
    ) -> None:
        """Refuse capabilities that no active contract (nor ``extra``) declares."""
        manifests = {**await self.cp.active_manifests(), **(extra or {})}
        valid = set(PLATFORM_CAPABILITIES)
        for manifest in manifests.values():
            valid.update(manifest.capabilities)
        unknown = sorted(set(wanted) - valid)
        if not unknown:
            return
        listed = ", ".join(sorted(valid))
        raise InstallError(
            "unknown_capability",
            f"no installed contract declares {', '.join(map(repr, unknown))}; "
            f"capabilities are namespaced by contract id (e.g. 'inventory::items.read' for "
            f"inventory@v1). Valid capabilities: {listed}",
            [_explain(cap, valid) for cap in unknown],
        )


def _explain(capability: str, valid: set[str]) -> str:
    """One line per unknown capability, suggesting the namespaced names it may mean."""
    _, sep, local = capability.rpartition("::")
    matches = sorted(v for v in valid if v.rpartition("::")[2] == local and v != capability)
    hint = f"; did you mean {' or '.join(map(repr, matches))}?" if matches else ""
    if not sep:
        return f"{capability!r} has no contract namespace (write '<contract>::{local}'){hint}"
    return f"{capability!r}: no installed contract declares it{hint}"
