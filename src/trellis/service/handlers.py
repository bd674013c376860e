"""Checking an RPC handler against its contract when it is mounted.

A handler whose annotations disagree with the contract (it takes another input model,
answers another output model, or returns an error the RPC does not declare) would fail on
every request; refusing it at mount turns that into one clear message at startup.
Unannotated handlers, and annotations that cannot be resolved, are accepted as they are.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any, TypeGuard

from pydantic import BaseModel

from trellis.contracts.authoring import RpcSpec
from trellis.result import AuthError, Err, Ok, TrellisError, ValidationFailed

__all__ = ["HandlerMismatch", "check_handler"]


class HandlerMismatch(TypeError):
    """A handler's annotations do not match the RPC it is mounted for."""


def check_handler(name: str, spec: RpcSpec[Any, Any, Any], func: Callable[..., Any]) -> None:
    """Raise ``HandlerMismatch`` when ``func``'s annotations contradict ``spec``."""
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # forward references local to a function, etc.: nothing to check
        return
    where = f"handler {getattr(func, '__qualname__', func)!r} for {name}"
    params = [
        p
        for p in inspect.signature(func).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if params and params[0].name in hints:
        wanted = hints[params[0].name]
        if _is_model(wanted) and not issubclass(spec.input, wanted):
            raise HandlerMismatch(
                f"{where} takes {wanted.__name__}, but the contract's input is "
                f"{spec.input.__name__}"
            )
    if "return" not in hints:
        return
    declared = set(spec.errors)
    for kind, arg in _outcomes(hints["return"]):
        if kind == "ok" and _is_model(arg) and not issubclass(arg, spec.output):
            raise HandlerMismatch(
                f"{where} answers {arg.__name__}, but the contract's output is "
                f"{spec.output.__name__}"
            )
        if (
            kind == "err"
            and isinstance(arg, type)
            and issubclass(arg, TrellisError)
            and arg is not TrellisError
            and arg not in declared
            and not issubclass(arg, AuthError | ValidationFailed)
        ):
            names = ", ".join(e.__name__ for e in spec.errors) or "none"
            raise HandlerMismatch(
                f"{where} may return {arg.__name__}, which the RPC does not declare "
                f"(declared: {names}); add it to errors=[...] in the contract"
            )


def _is_model(value: object) -> TypeGuard[type[BaseModel]]:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _outcomes(hint: object) -> Iterator[tuple[str, object]]:
    """``("ok", model)`` and ``("err", error class)`` for each branch of a return hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(hint):
            yield from _outcomes(member)
    elif origin is Ok:
        yield from (("ok", arg) for arg in _members(typing.get_args(hint)[0]))
    elif origin is Err:
        yield from (("err", arg) for arg in _members(typing.get_args(hint)[0]))
    elif _is_model(hint):
        yield "ok", hint  # a bare value is taken as success


def _members(hint: object) -> tuple[object, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)
