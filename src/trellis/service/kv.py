"""Typed KV handles: ``service.kv.<alias>`` validated against the declared model.

Services only ever see the logical alias; the physical bucket comes from the bindings the
runtime assigned at install.  Expected failures (the key exists, the revision moved on)
come back as ``Err(KVError)``; ``get`` returns ``None`` for a missing key.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from trellis.contracts.authoring import KvSpec
from trellis.nats.kv import list_keys, watch
from trellis.result import Err, KVError, Ok, Result

__all__ = ["KvEntry", "KvHandle", "KvNamespace"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class KvEntry(Generic[M]):
    key: str
    value: M
    revision: int


class KvHandle(Generic[M]):
    def __init__(self, alias: str, kv: KeyValue, model: type[M]) -> None:
        self.alias = alias
        self._kv = kv
        self.model = model

    def _encode(self, value: M | Mapping[str, Any]) -> bytes:
        model = value if isinstance(value, self.model) else self.model.model_validate(value)
        return model.model_dump_json(by_alias=True).encode()

    def _decode(self, key: str, data: bytes | None, revision: int | None) -> KvEntry[M]:
        try:
            value = self.model.model_validate_json(data or b"")
        except PydanticValidationError as exc:
            raise KVError(
                f"stored value of {self.alias}/{key} does not match {self.model.__name__}",
                reason="invalid_value",
                key=key,
            ) from exc
        return KvEntry(key, value, revision or 0)

    async def get(self, key: str) -> KvEntry[M] | None:
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return self._decode(key, entry.value, entry.revision)

    async def put(self, key: str, value: M | Mapping[str, Any]) -> int:
        """Write ``value`` (validated against the model); returns the new revision."""
        return await self._kv.put(key, self._encode(value))

    async def create(self, key: str, value: M | Mapping[str, Any]) -> Result[int, KVError]:
        """Write only if ``key`` does not exist yet."""
        try:
            return Ok(await self._kv.create(key, self._encode(value)))
        except KeyWrongLastSequenceError:
            return Err(KVError(f"{self.alias}/{key} already exists", reason="exists", key=key))

    async def update(
        self, key: str, value: M | Mapping[str, Any], revision: int
    ) -> Result[int, KVError]:
        """Write only if the key is still at ``revision`` (optimistic concurrency)."""
        try:
            return Ok(await self._kv.update(key, self._encode(value), last=revision))
        except KeyWrongLastSequenceError:
            return Err(
                KVError(
                    f"{self.alias}/{key} is no longer at revision {revision}",
                    reason="wrong_revision",
                    key=key,
                )
            )

    async def delete(self, key: str) -> None:
        with contextlib.suppress(KeyNotFoundError):
            await self._kv.delete(key)

    async def keys(self) -> list[str]:
        """The keys that currently hold a value."""
        return await list_keys(self._kv)

    async def watch(self, keys: str = ">") -> AsyncIterator[KvEntry[M] | None]:
        """Current values, then ``None`` once they are all delivered, then every change.

        A deleted key yields nothing; watch ``keys()`` to notice deletions.
        """
        async with await watch(self._kv, keys) as watcher:
            async for change in watcher:
                if change is None:
                    yield None
                elif not change.deleted and change.value:
                    yield self._decode(change.key, change.value, change.revision)


class KvNamespace:
    """The service's KV handles: ``service.kv[ITEMS]`` with the contract's ``kv()`` spec is a
    ``KvHandle[Item]`` for the type checker; ``service.kv.items`` and ``service.kv["items"]``
    give the same handle by alias, untyped."""

    def __init__(self, handles: Mapping[str, KvHandle[Any]]) -> None:
        self._handles = dict(handles)

    def __getattr__(self, alias: str) -> KvHandle[Any]:
        try:
            return self._handles[alias]
        except KeyError:
            raise AttributeError(f"the contract declares no KV resource {alias!r}") from None

    @overload
    def __getitem__(self, alias: KvSpec[M]) -> KvHandle[M]: ...

    @overload
    def __getitem__(self, alias: str) -> KvHandle[Any]: ...

    def __getitem__(self, alias: KvSpec[Any] | str) -> KvHandle[Any]:
        return self.__getattr__(alias if isinstance(alias, str) else alias.name)

    def __iter__(self) -> Any:
        return iter(self._handles)
