"""Result values and the error types every layer shares (PROTOCOL §6).

Expected failures travel as ``Err(error)`` values, never as exceptions across the wire.  A
``TrellisError`` is still an ``Exception`` so ``Result.or_raise()`` and ordinary ``raise`` work.
Subclasses declare wire fields as class annotations, validated by a generated pydantic model::

    class ItemNotFound(TrellisError):
        id_: str = Field(alias="itemId")   # any pydantic field

Errors serialize to the envelope ``{id, type, message, context?, traceId?, ...fields}``.
"""

from __future__ import annotations

import builtins
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, NoReturn, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic import ValidationError as PydanticValidationError

from trellis.ids import ulid

T = TypeVar("T")
U = TypeVar("U")
E = TypeVar("E")
F = TypeVar("F")
#: Ok and Err are immutable, so ``Ok[Item]`` is an ``Ok[BaseModel]`` and ``Err[ItemNotFound]``
#: an ``Err[TrellisError]``: handlers returning a narrower result type-check
T_co = TypeVar("T_co", covariant=True)
E_co = TypeVar("E_co", covariant=True)

__all__ = [
    "BUILTIN_ERRORS",
    "AuthError",
    "Err",
    "KVError",
    "Ok",
    "RemoteError",
    "Result",
    "StoreError",
    "TransferError",
    "TransportError",
    "TrellisError",
    "UnexpectedError",
    "UnwrapError",
    "ValidationFailed",
    "ValidationIssue",
]


class UnwrapError(Exception):
    """Raised by ``Err.unwrap()`` when the error value is not itself an exception."""


@dataclass(frozen=True, slots=True)
class Ok(Generic[T_co]):
    """A successful result carrying ``value``."""

    value: T_co

    def is_ok(self) -> bool:
        return True

    def is_err(self) -> bool:
        return False

    def map(self, func: Callable[[T_co], U]) -> Ok[U]:
        return Ok(func(self.value))

    def map_err(self, func: Callable[[Any], Any]) -> Ok[T_co]:
        return self

    def and_then(self, func: Callable[[T_co], Result[U, F]]) -> Result[U, F]:
        return func(self.value)

    def unwrap(self) -> T_co:
        return self.value

    def or_raise(self) -> T_co:
        return self.value

    def unwrap_or(self, default: object) -> T_co:
        return self.value


@dataclass(frozen=True, slots=True)
class Err(Generic[E_co]):
    """A failed result carrying ``error`` (usually a ``TrellisError``)."""

    error: E_co

    def is_ok(self) -> bool:
        return False

    def is_err(self) -> bool:
        return True

    def map(self, func: Callable[[Any], Any]) -> Err[E_co]:
        return self

    def map_err(self, func: Callable[[E_co], F]) -> Err[F]:
        return Err(func(self.error))

    def and_then(self, func: Callable[[Any], Any]) -> Err[E_co]:
        return self

    def unwrap(self) -> NoReturn:
        if isinstance(self.error, BaseException):
            raise self.error
        raise UnwrapError(f"called unwrap() on Err({self.error!r})")

    def or_raise(self) -> NoReturn:
        self.unwrap()

    def unwrap_or(self, default: U) -> U:
        return default


Result: TypeAlias = Ok[T] | Err[E]

_RESERVED_FIELDS = frozenset({"id", "type", "message", "context", "traceId", "cause"})
#: ``TrellisError.__init__``'s parameters besides the reserved wire names
_INIT_PARAMETERS = frozenset({"self", "trace_id"})


class _Fields(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class TrellisError(Exception):
    """Base of every error that can travel on the wire.

    ``type`` is the wire type (the class name unless ``type`` is set on the class);
    ``message`` defaults to the first line of the class docstring.
    """

    type: ClassVar[str] = "TrellisError"
    #: the machine-readable cause.  Errors whose reason travels on the wire (``AuthError``,
    #: ``KVError``, ``TransportError``) declare it as a field; for the others it is a
    #: per-class constant, the wire type unless the class sets it.
    reason: str = "TrellisError"
    _fields_model: ClassVar[builtins.type[BaseModel]] = _Fields

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "type" not in cls.__dict__:
            cls.type = cls.__name__
        own = {
            name: hint
            for name, hint in _own_annotations(cls).items()
            if not name.startswith("_") and name != "type"
        }
        reserved = _RESERVED_FIELDS.intersection(own)
        if reserved:
            raise TypeError(f"{cls.__name__}: field names {sorted(reserved)} are reserved")
        definitions: dict[str, Any] = {}
        for name, hint in own.items():
            default = cls.__dict__.get(name, ...)
            definitions[name] = (hint, default)
            if name in cls.__dict__:
                delattr(cls, name)  # the instance attribute set in __init__ wins
        cls._fields_model = create_model(
            f"{cls.__name__}Fields", __base__=cls._fields_model, **definitions
        )
        if "reason" not in cls._fields_model.model_fields and "reason" not in cls.__dict__:
            cls.reason = cls.type  # e.g. ``ItemNotFound().reason == "ItemNotFound"``

    def __init__(
        self,
        message: str | None = None,
        *,
        id: str | None = None,
        context: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
        **fields: Any,
    ) -> None:
        self.message = message or _default_message(type(self))
        self.id = id or ulid()
        self.context = dict(context) if context else None
        self.trace_id = trace_id
        self.fields = self._fields_model.model_validate(fields)
        for name, value in self.fields:
            setattr(self, name, value)
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"

    def __repr__(self) -> str:
        extra = ", ".join(f"{k}={v!r}" for k, v in self.fields)
        return f"{type(self).__name__}({self.message!r}{', ' if extra else ''}{extra})"

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, TrellisError)
            and other.to_wire() == self.to_wire()
        )

    def __hash__(self) -> int:
        return hash((self.type, self.id))

    def to_wire(self) -> dict[str, Any]:
        """The error envelope: ``{id, type, message, context?, traceId?, ...fields}``."""
        return self._envelope(self.type, self.fields.model_dump(mode="json", by_alias=True))

    def _envelope(self, wire_type: str, data: dict[str, Any]) -> dict[str, Any]:
        data.update({"id": self.id, "type": wire_type, "message": self.message})
        if self.context:
            data["context"] = self.context
        if self.trace_id:
            data["traceId"] = self.trace_id
        return data

    @classmethod
    def wire_schema(cls) -> dict[str, Any]:
        """JSON Schema of the full wire envelope, as upstream declares error data schemas."""
        from trellis.contracts.schema import model_schema

        fields = model_schema(cls._fields_model)
        properties: dict[str, Any] = {
            "id": {"type": "string"},
            "type": {"const": cls.type, "type": "string"},
            "message": {"type": "string"},
        }
        properties.update(fields.get("properties", {}))
        properties["context"] = {"type": "object"}
        properties["traceId"] = {"type": "string"}
        required = ["id", "type", "message", *fields.get("required", [])]
        return {"type": "object", "properties": properties, "required": required}

    @classmethod
    def from_wire(
        cls,
        data: Mapping[str, Any],
        declared: Mapping[str, builtins.type[TrellisError]] | None = None,
    ) -> TrellisError:
        """Rebuild an error from its envelope.

        The class is chosen by ``type`` among ``declared`` and the built-ins; an unknown type
        becomes ``RemoteError`` keeping every field.  Malformed envelopes never raise: they
        become ``UnexpectedError`` describing the problem.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("type"), str):
            return UnexpectedError("malformed error envelope from remote")
        kind = data["type"]
        target = (declared or {}).get(kind) or BUILTIN_ERRORS.get(kind)
        message = data.get("message") if isinstance(data.get("message"), str) else None
        error_id = data.get("id") if isinstance(data.get("id"), str) else None
        context = data.get("context") if isinstance(data.get("context"), Mapping) else None
        trace_id = data.get("traceId") if isinstance(data.get("traceId"), str) else None
        fields = {k: v for k, v in data.items() if k not in _RESERVED_FIELDS}
        if target is None:
            return RemoteError(
                message,
                id=error_id,
                context=context,
                trace_id=trace_id,
                remote_type=kind,
                data=fields,
            )
        # a field named like one of __init__'s own parameters would be a TypeError
        fields = {k: v for k, v in fields.items() if k not in _INIT_PARAMETERS}
        try:
            return target(message, id=error_id, context=context, trace_id=trace_id, **fields)
        except PydanticValidationError as exc:
            return UnexpectedError(
                f"remote error of type {kind!r} does not match its declared schema: "
                f"{exc.error_count()} problem(s)",
                id=error_id,
            )


def _own_annotations(cls: type) -> dict[str, Any]:
    """The class's own annotations, resolved even under postponed evaluation (PEP 563)."""
    try:
        return inspect.get_annotations(cls, eval_str=True)
    except (NameError, TypeError):
        return inspect.get_annotations(cls)


def _default_message(cls: type[TrellisError]) -> str:
    doc = (cls.__doc__ or "").strip().splitlines()
    return doc[0] if doc else cls.type


class ValidationIssue(BaseModel):
    """One validation problem: a JSON-pointer-like ``path`` and a message."""

    path: str
    message: str


class ValidationFailed(TrellisError):
    """The input did not match the declared schema.

    Its wire type is ``ValidationError`` (as upstream's); the Python name differs so that
    it never needs aliasing against pydantic's ``ValidationError``.
    """

    type = "ValidationError"
    reason = "invalid_input"
    issues: list[ValidationIssue] = Field(default_factory=list)

    @classmethod
    def from_pydantic(cls, exc: PydanticValidationError, prefix: str = "") -> ValidationFailed:
        issues = [
            ValidationIssue(
                path=prefix + "/" + "/".join(str(p) for p in err["loc"]), message=err["msg"]
            )
            for err in exc.errors(include_url=False, include_input=False)
        ]
        return cls(f"{len(issues)} validation issue(s)", issues=issues)


class UnexpectedError(TrellisError):
    """The remote side failed in a way its contract does not declare."""

    reason = "unexpected"


class TransportError(TrellisError):
    """The request did not complete: ``reason`` is ``trellis.request.failed`` (timeout),
    ``trellis.request.unavailable`` (no responders, or the service is at its bound),
    ``trellis.request.denied`` (NATS refused the publish) or
    ``trellis.request.invalid_response``."""

    reason: str = "trellis.request.failed"


class AuthError(TrellisError):
    """The caller is not allowed to do this."""

    reason: str = "insufficient_permissions"


class KVError(TrellisError):
    """A KV operation failed: ``reason`` is ``exists``, ``wrong_revision``, ``invalid_value``,
    ``value_too_large``, ``bucket_full`` or ``unavailable``."""

    reason: str = "unavailable"
    key: str | None = None


class StoreError(TrellisError):
    """An object store operation failed (upstream's built-in ``StoreError``)."""

    operation: str | None = None


class TransferError(TrellisError):
    """A byte transfer failed (upstream's built-in ``TransferError``)."""

    operation: str | None = None


class RemoteError(TrellisError):
    """An error whose type this side does not know; ``remote_type`` and ``data`` keep it."""

    remote_type: str = "RemoteError"
    data: dict[str, Any] = Field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return self._envelope(self.remote_type, dict(self.data))


BUILTIN_ERRORS: dict[str, type[TrellisError]] = {
    cls.type: cls
    for cls in (
        ValidationFailed,
        UnexpectedError,
        TransportError,
        AuthError,
        KVError,
        StoreError,
        TransferError,
    )
}
