"""Typed KV handles: ``service.kv.<alias>`` validated against the declared model.

Services only ever see the logical alias; the physical bucket comes from the bindings the
runtime assigned at install.  Expected failures (the key exists, the revision moved on, the
value is over a declared limit) come back as ``Err(KVError)`` from ``create``/``update`` and
are raised as ``KVError`` by ``put``; ``get`` returns ``None`` for a missing key.

The resource's ``maxValueBytes`` is checked here on the value itself, before anything is
sent: NATS counts a write's headers against the bucket's maximum too, so the bucket has a
little room above it (``KV_HEADER_ROOM``) and a conditional write of a value within the
declared limit is never refused for its header.  The other limits are NATS's alone: the
bucket's byte and message limits, the account's storage, the connection's maximum payload.
A write NATS refuses stores nothing, so the key keeps its previous value; the refusal
becomes a ``KVError`` whose ``reason`` says which kind of limit:
``value_too_large`` (this value can never be stored: a smaller one can) or ``bucket_full``
(no room now).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from nats.errors import MaxPayloadError
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from trellis.contracts.authoring import KvSpec
from trellis.nats.kv import list_keys, watch
from trellis.result import Err, KVError, Ok, Result

__all__ = ["KvEntry", "KvHandle", "KvNamespace"]

M = TypeVar("M", bound=BaseModel)

#: JetStream API error codes of a write refused for a limit (nats-server's errors.json)
_VALUE_TOO_LARGE = 10054  # JSStreamMessageExceedsMaximumErr: over the bucket's max value size
_NO_ROOM = {
    10077,  # JSStreamStoreFailedF: "maximum bytes exceeded", "maximum messages exceeded"
    10002,  # JSAccountResourcesExceededErr
    10023,  # JSInsufficientResourcesErr
    10028,  # JSMemoryResourcesExceededErr
    10047,  # JSStorageResourcesExceededErr
}


@dataclass(frozen=True, slots=True)
class KvEntry(Generic[M]):
    key: str
    value: M
    revision: int


class KvHandle(Generic[M]):
    def __init__(
        self, alias: str, kv: KeyValue, model: type[M], *, max_value_bytes: int | None = None
    ) -> None:
        self.alias = alias
        self._kv = kv
        self.model = model
        #: the resource's declared ``maxValueBytes`` (``None``: only NATS's limits apply)
        self.max_value_bytes = max_value_bytes

    def _encode(self, value: M | Mapping[str, Any]) -> bytes:
        model = value if isinstance(value, self.model) else self.model.model_validate(value)
        return model.model_dump_json(by_alias=True).encode()

    def _too_large(self, key: str, data: bytes) -> KVError | None:
        """The declared limit, checked on the value before anything is sent."""
        if self.max_value_bytes is None or len(data) <= self.max_value_bytes:
            return None
        return KVError(
            f"the value for {self.alias}/{key} ({len(data)} bytes) is over the declared "
            f"maxValueBytes ({self.max_value_bytes})",
            reason="value_too_large",
            key=key,
        )

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

    def _refused(self, key: str, data: bytes, exc: Exception) -> KVError | None:
        """The typed error for a write NATS refused for a limit, else ``None``."""
        if isinstance(exc, MaxPayloadError) or (
            isinstance(exc, APIError) and exc.err_code == _VALUE_TOO_LARGE
        ):
            return KVError(
                f"the value for {self.alias}/{key} ({len(data)} bytes) is over the maximum "
                "value size",
                reason="value_too_large",
                key=key,
            )
        if isinstance(exc, APIError) and exc.err_code in _NO_ROOM:
            return KVError(
                f"{self.alias} has no room for {key}: {exc.description or 'limit reached'}",
                reason="bucket_full",
                key=key,
            )
        return None

    async def put(self, key: str, value: M | Mapping[str, Any]) -> int:
        """Write ``value`` (validated against the model); returns the new revision.

        Raises ``KVError`` (``value_too_large``, ``bucket_full``) when a limit refuses it."""
        data = self._encode(value)
        if (error := self._too_large(key, data)) is not None:
            raise error
        try:
            return await self._kv.put(key, data)
        except (MaxPayloadError, APIError) as exc:
            if (error := self._refused(key, data, exc)) is not None:
                raise error from None
            raise

    async def create(self, key: str, value: M | Mapping[str, Any]) -> Result[int, KVError]:
        """Write only if ``key`` does not exist yet."""
        data = self._encode(value)
        if (error := self._too_large(key, data)) is not None:
            return Err(error)
        try:
            return Ok(await self._kv.create(key, data))
        except KeyWrongLastSequenceError:
            return Err(KVError(f"{self.alias}/{key} already exists", reason="exists", key=key))
        except (MaxPayloadError, APIError) as exc:
            if (error := self._refused(key, data, exc)) is not None:
                return Err(error)
            raise

    async def update(
        self, key: str, value: M | Mapping[str, Any], revision: int
    ) -> Result[int, KVError]:
        """Write only if the key is still at ``revision`` (optimistic concurrency)."""
        data = self._encode(value)
        if (error := self._too_large(key, data)) is not None:
            return Err(error)
        try:
            return Ok(await self._kv.update(key, data, last=revision))
        except KeyWrongLastSequenceError:
            return Err(
                KVError(
                    f"{self.alias}/{key} is no longer at revision {revision}",
                    reason="wrong_revision",
                    key=key,
                )
            )
        except (MaxPayloadError, APIError) as exc:
            if (error := self._refused(key, data, exc)) is not None:
                return Err(error)
            raise

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
