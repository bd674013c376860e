"""Typed Python SDKs from any ``trellis.contract.v1`` manifest (``trellis contract generate``).

The output is a package of two modules: ``_schemas.py`` holds the manifest's JSON Schemas
verbatim, and ``__init__.py`` holds a pydantic model per schema, a ``TrellisError`` subclass
per declared error, a typed spec per RPC, event and KV resource, and ``CONTRACT``: the same
authoring calls a person would write, so the object works with ``connect_client``,
``connect_service`` and ``CONTRACT.use(...)`` like a hand-written contract.

Each generated model pins its manifest entry (``__trellis_schema__``, see ``authoring.py``),
so building the manifest back emits the source schemas byte for byte and ``CONTRACT.digest``
is the source digest; ``generate`` checks that round trip before it writes anything.

Why a small generator and not datamodel-code-generator: contracts use a small JSON Schema
subset (what TypeBox and pydantic emit: objects, arrays, scalars with bounds, ``const``/
``enum``, ``anyOf`` unions, records as ``patternProperties``/``additionalProperties``), the
models only need to type and validate payloads because the exact schema travels beside
them, and the output must be byte-stable for the staleness test of the shipped SDKs.  That
is a few hundred lines here against a dependency tree (black, isort, jinja2, ...) whose
output changes with its versions.  A construct outside the subset (``allOf``, ``not``,
tuples, ...) becomes a ``JsonValue`` with a comment saying why, never a failure.
"""

from __future__ import annotations

import importlib.util
import json
import keyword
import re
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from pydantic import BaseModel

from trellis.contracts.manifest import capability_namespace, contract_digest
from trellis.contracts.model import Manifest
from trellis.contracts.validate import ContractError
from trellis.result import BUILTIN_ERRORS

__all__ = ["GenerateError", "GeneratedSdk", "generate", "write_sdk"]

#: sections the authoring API carries as JSON (``Contract(sections=...)``), not as specs
VERBATIM_SECTIONS = ("operations", "feeds", "state")
#: error envelope fields every ``TrellisError`` has already
_ENVELOPE_FIELDS = frozenset({"id", "type", "message", "context", "traceId", "cause"})
_IMPORTED = frozenset(
    {
        "Annotated", "Any", "BaseModel", "Capability", "ClassVar", "ConfigDict", "Contract",
        "EventSpec", "Field", "JsonValue", "KvSpec", "Literal", "Never", "RootModel",
        "RpcSpec", "SCHEMAS", "TrellisError", "Use", "Pin", "DIGEST", "CONTRACT",
        *(cls.__name__ for cls in BUILTIN_ERRORS.values()),
    }
)  # fmt: skip
#: BaseModel attributes a field must not shadow
_MODEL_ATTRS = frozenset(dir(BaseModel)) | {"schema", "json", "dict"}
_ANNOTATIONS = frozenset({"description", "title", "default", "examples", "$comment", "format"})


#: generated files are laid out by the generator (byte-stable for the staleness test)
_NO_FORMAT = "# fmt: off\n# ruff: noqa: E501, RUF100"


class GenerateError(ValueError):
    """The manifest cannot become an SDK (it is invalid, or the round trip differs)."""


@dataclass(frozen=True)
class GeneratedSdk:
    """The generated package: file name → source, and the digest both sides share."""

    files: dict[str, str]
    contract_id: str
    digest: str
    notes: tuple[str, ...]


# --- names ------------------------------------------------------------------------------


def _pascal(text: str) -> str:
    words = re.split(r"[^0-9A-Za-z]+", text)
    name = "".join(w[:1].upper() + w[1:] for w in words if w)
    return name if name and not name[0].isdigit() else f"S{name}"


def _snake(text: str) -> str:
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    s = re.sub(r"[^0-9A-Za-z]+", "_", s).strip("_").lower()
    return s if s and not s[0].isdigit() else f"f_{s}"


def _constant(text: str) -> str:
    return _snake(text).upper()


class _Names:
    """Unique identifiers within one namespace."""

    def __init__(self, taken: frozenset[str] = frozenset()) -> None:
        self._taken = set(taken)

    def claim(self, wanted: str, suffix: str = "_") -> str:
        name = wanted
        if keyword.iskeyword(name) or name in self._taken:
            name = f"{wanted}{suffix}"
        n = 2
        while keyword.iskeyword(name) or name in self._taken:
            name = f"{wanted}{suffix}{n}"
            n += 1
        self._taken.add(name)
        return name


# --- JSON Schema → Python types -----------------------------------------------------------


class _Code(str):
    """Source text that ``_lit`` writes as it is (a class name standing for a reference)."""


def _lit(value: Any, indent: int = 0, width: int = 100) -> str:
    """A Python literal for JSON ``value``, double-quoted, wrapped the way ruff formats."""
    if isinstance(value, _Code):
        return str(value)
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, str | int | float):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        items = [f"{_lit(k)}: {_lit(v, indent + 4, width)}" for k, v in value.items()]
        opening, closing = "{", "}"
    else:
        items = [_lit(v, indent + 4, width) for v in value]
        opening, closing = "[", "]"
    flat = opening + ", ".join(items) + closing
    if "\n" not in flat and indent + len(flat) <= width:
        return flat
    pad = " " * (indent + 4)
    return opening + "\n" + "".join(f"{pad}{item},\n" for item in items) + " " * indent + closing


def _tuple(values: list[str]) -> str:
    items = [_lit(v) for v in values]
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _is_any(schema: Any) -> bool:
    return schema is True or (isinstance(schema, Mapping) and not (set(schema) - _ANNOTATIONS))


def _constraints(schema: Mapping[str, Any]) -> dict[str, Any]:
    """pydantic ``Field`` constraints for the keywords it shares with JSON Schema."""
    kinds = schema.get("type")
    out: dict[str, Any] = {}
    pairs = {
        "minLength": "min_length", "maxLength": "max_length", "pattern": "pattern",
        "minimum": "ge", "maximum": "le", "exclusiveMinimum": "gt", "exclusiveMaximum": "lt",
        "multipleOf": "multiple_of", "minItems": "min_length", "maxItems": "max_length",
    }  # fmt: skip
    for key, arg in pairs.items():
        value = schema.get(key)
        if isinstance(value, bool) or value is None:
            continue
        if key in ("minItems", "maxItems") and kinds != "array":
            continue
        if key in ("minLength", "maxLength", "pattern") and kinds != "string":
            continue
        out[arg] = value
    return out


class _Models:
    """Emits one class per object schema (nested ones named after their place)."""

    def __init__(self) -> None:
        self.names = _Names(_IMPORTED)
        #: nested object schemas (canonical JSON) → their class
        self.nested: dict[str, str] = {}
        #: class name → its source, in the order generated
        self.blocks: dict[str, str] = {}

    # a type expression for ``schema``; ``hint`` names any class it needs
    def type_of(self, schema: Any, hint: str) -> tuple[str, str | None]:
        """``(type expression, comment)``; the comment says what was not expressible."""
        if _is_any(schema):
            return "JsonValue", None
        if not isinstance(schema, Mapping):
            return "JsonValue", "unsupported schema: false"
        unsupported = sorted(
            set(schema) & {"allOf", "not", "if", "then", "else", "$ref", "prefixItems"}
        )
        if unsupported:
            return "JsonValue", f"unsupported: {', '.join(unsupported)}"
        if "const" in schema:
            return self._literal([schema["const"]])
        if "enum" in schema and isinstance(schema["enum"], list):
            return self._literal(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                return self._union(schema[key], hint, key)
        kinds = schema.get("type")
        if isinstance(kinds, list):
            parts = [self.type_of({**schema, "type": k}, hint)[0] for k in kinds]
            return " | ".join(dict.fromkeys(parts)), None
        nullable = schema.get("nullable") is True
        expr, comment = self._typed(schema, kinds, hint)
        return (f"{expr} | None" if nullable else expr), comment

    def _typed(self, schema: Mapping[str, Any], kind: Any, hint: str) -> tuple[str, str | None]:
        simple = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}
        if kind in simple:
            return simple[kind], None
        if kind == "null":
            return "None", None
        if kind == "array":
            items = schema.get("items", True)
            if isinstance(items, list):
                return "list[JsonValue]", "unsupported: tuple items"
            inner, comment = self.type_of(items, f"{hint}Item")
            return f"list[{self._annotated(items, inner)}]", comment
        if kind == "object" or (kind is None and "properties" in schema):
            return self._object(schema, hint)
        return "JsonValue", f"unsupported type {kind!r}" if kind is not None else None

    def _annotated(self, schema: Any, expr: str) -> str:
        """``expr`` with the schema's constraints, for a type nested in a container."""
        if not isinstance(schema, Mapping):
            return expr
        limits = _constraints(schema)
        if not limits:
            return expr
        args = ", ".join(f"{k}={_lit(v)}" for k, v in limits.items())
        return f"Annotated[{expr}, Field({args})]"

    def _literal(self, values: list[Any]) -> tuple[str, str | None]:
        plain = [v for v in values if v is not None]
        if not all(isinstance(v, str | int | bool) and not isinstance(v, float) for v in plain):
            return "JsonValue", "unsupported: non-scalar const/enum"
        parts = [f"Literal[{', '.join(_lit(v) for v in plain)}]"] if plain else []
        if len(plain) != len(values):
            parts.append("None")
        return " | ".join(parts), None

    def _union(self, variants: list[Any], hint: str, key: str) -> tuple[str, str | None]:
        consts = [v["const"] for v in variants if isinstance(v, Mapping) and "const" in v]
        if len(consts) == len(variants):
            return self._literal(consts)
        parts: list[str] = []
        comments: list[str] = []
        for index, variant in enumerate(variants, 1):
            tag = _variant_tag(variant)
            expr, comment = self.type_of(variant, f"{hint}{tag or index}")
            parts.append(self._annotated(variant, expr))
            if comment:
                comments.append(comment)
        note = f"{key}: " + "; ".join(comments) if comments else None
        return " | ".join(dict.fromkeys(parts)), note

    def _object(self, schema: Mapping[str, Any], hint: str) -> tuple[str, str | None]:
        props = schema.get("properties")
        pattern = schema.get("patternProperties")
        extra = schema.get("additionalProperties")
        if not isinstance(props, Mapping) or (not props and (pattern or isinstance(extra, dict))):
            if isinstance(pattern, Mapping) and len(pattern) == 1:
                (key, values), *_ = pattern.items()
                inner, comment = self.type_of(values, f"{hint}Value")
                note = None if key in ("^.*$", ".*", "^(.*)$") else f"keys match {key!r}"
                return f"dict[str, {self._annotated(values, inner)}]", comment or note
            if isinstance(extra, Mapping):
                inner, comment = self.type_of(extra, f"{hint}Value")
                return f"dict[str, {self._annotated(extra, inner)}]", comment
            if pattern:
                return "dict[str, JsonValue]", "unsupported: several patternProperties"
            if props is None:
                return "dict[str, JsonValue]", None
        known = self.nested.get(json.dumps(schema, sort_keys=True))
        if known is not None:  # the same nested shape in several places: one class
            return known, None
        title = schema.get("title")
        name = self.model(schema, title if isinstance(title, str) and title else hint)
        self.nested[json.dumps(schema, sort_keys=True)] = name
        return name, None

    # classes
    def model(
        self, schema: Mapping[str, Any], hint: str, pin: str | None = None, name: str = ""
    ) -> str:
        """Emit a ``BaseModel`` for an object schema; returns its class name."""
        name = name or self.names.claim(_pascal(hint), "Model")
        fields = _Names(_MODEL_ATTRS)
        required = set(schema.get("required") or [])
        lines = [f"class {name}(BaseModel):"]
        lines += _docstring(schema.get("description"), f"The ``{hint}`` object.")
        lines.append("")
        policy = "forbid" if schema.get("additionalProperties") is False else "allow"
        lines.append(f'    model_config = ConfigDict(populate_by_name=True, extra="{policy}")')
        if pin is not None:
            lines.append(_pin_line(pin))
        body = self._fields(schema.get("properties") or {}, required, name, fields)
        lines += body or ([] if pin is not None else ["    pass"])
        self.blocks[name] = "\n".join(lines)
        return name

    def root_model(self, schema: Any, hint: str, pin: str, name: str) -> str:
        """A ``RootModel`` for a schema that is not an object with properties."""
        expr, comment = self.type_of(schema, f"{hint}Root")
        lines = [f"class {name}(RootModel[{expr}]):"]
        lines += _docstring(
            schema.get("description") if isinstance(schema, Mapping) else None,
            f"The ``{hint}`` value.",
        )
        lines.append("")
        if comment:
            lines.append(f"    # {comment}")
        lines.append(_pin_line(pin))
        self.blocks[name] = "\n".join(lines)
        return name

    def ordered(self) -> list[str]:
        """The class sources, each after the classes its fields name."""
        done: dict[str, str] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in done or name in path:
                return
            code = [line for line in self.blocks[name].splitlines() if '"""' not in line]
            for used in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", "\n".join(code)):
                if used in self.blocks and used != name:
                    visit(used, (*path, name))
            done[name] = self.blocks[name]

        for name in self.blocks:
            visit(name, ())
        return list(done.values())

    def _fields(
        self, props: Mapping[str, Any], required: set[str], owner: str, names: _Names
    ) -> list[str]:
        lines: list[str] = []
        for json_name, prop in props.items():
            lines += self.field(json_name, prop, json_name in required, owner, names)
        return lines

    def field(
        self, json_name: str, prop: Any, required: bool, owner: str, names: _Names
    ) -> list[str]:
        snake = _snake(json_name)
        attr = names.claim(f"f_{snake}" if snake.startswith("model_") else snake)
        expr, comment = self.type_of(prop, f"{owner}{_pascal(json_name)}")
        args: list[str] = []
        schema = prop if isinstance(prop, Mapping) else {}
        has_default = "default" in schema
        if not required:
            if has_default:
                args.append(f"default={_lit(schema['default'])}")
            else:
                if expr != "JsonValue" and not expr.endswith("| None"):
                    expr = f"{expr} | None"
                args.append("default=None")
        if attr != json_name:
            args.append(f"alias={_lit(json_name)}")
        args += [f"{k}={_lit(v)}" for k, v in _constraints(schema).items()]
        if isinstance(schema.get("description"), str):
            args.append(f"description={_lit(schema['description'])}")
        lines = [f"    # {comment}"] if comment else []
        value = f" = Field({', '.join(args)})" if args else ""
        lines.append(f"    {attr}: {expr}{value}")
        return lines


def _is_object_model(schema: Any) -> TypeGuard[Mapping[str, Any]]:
    """A manifest schema that becomes a ``BaseModel`` with fields (others: ``RootModel``)."""
    return (
        isinstance(schema, Mapping)
        and schema.get("type", "object") == "object"
        and isinstance(schema.get("properties"), Mapping)
        and not set(schema) & {"allOf", "anyOf", "oneOf", "not", "$ref"}
    )


def _variant_tag(variant: Any) -> str | None:
    """A name for a union member from its first ``const`` property (``kind: "user"``)."""
    if isinstance(variant, Mapping):
        for prop in (variant.get("properties") or {}).values():
            if isinstance(prop, Mapping) and isinstance(prop.get("const"), str):
                return _pascal(prop["const"])
    return None


def _docstring(text: Any, default: str) -> list[str]:
    body = text if isinstance(text, str) and text.strip() else default
    body = body.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').strip()
    return [f'    """{body}"""']


def _pin_line(schema_name: str) -> str:
    return f"    __trellis_schema__: ClassVar[Pin] = pin({_lit(schema_name)})"


# --- the module -------------------------------------------------------------------------


def generate(data: Mapping[str, Any], *, verify: bool = True) -> GeneratedSdk:
    """Generate the SDK package sources for manifest ``data``.

    Raises ``GenerateError`` when the manifest is invalid or, with ``verify``, when the
    generated contract does not rebuild the same digest.
    """
    from trellis.contracts.builtin import BUILTIN_CONTRACTS

    known = {c.id: c.model for c in BUILTIN_CONTRACTS.values()}
    try:
        manifest = Manifest.parse(data, known)
    except ContractError as exc:
        raise GenerateError(str(exc)) from None
    digest = contract_digest(manifest.dump())
    sdk = _Module(manifest, digest).render()
    if verify:
        rebuilt = _rebuilt_digest(sdk.files)
        if rebuilt != digest:
            raise GenerateError(
                f"the generated contract digests as {rebuilt}, not {digest}: "
                + ("; ".join(sdk.notes) or "a manifest feature the generator does not carry")
            )
    return sdk


def write_sdk(sdk: GeneratedSdk, package: Path) -> list[Path]:
    """Write the package files into ``package`` (created if needed)."""
    package.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sdk.files.items():
        path = package / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _rebuilt_digest(files: Mapping[str, str]) -> str:
    """Import the generated package from a scratch directory and read its digest."""
    with tempfile.TemporaryDirectory() as scratch:
        pkg = Path(scratch) / f"trellis_generated_{Path(scratch).name.lstrip('_')}"
        write_sdk(GeneratedSdk(dict(files), "", "", ()), pkg)
        spec = importlib.util.spec_from_file_location(pkg.name, pkg / "__init__.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[pkg.name] = module
        try:
            spec.loader.exec_module(module)
            return str(module.CONTRACT.digest)
        except ContractError as exc:
            raise GenerateError(f"the generated contract is refused: {exc}") from None
        except Exception as exc:  # a generator bug: report it, never a traceback
            raise GenerateError(f"the generated module does not import: {exc!r}") from exc
        finally:
            for name in (pkg.name, f"{pkg.name}._schemas"):
                sys.modules.pop(name, None)


class _Module:
    def __init__(self, manifest: Manifest, digest: str) -> None:
        self.m = manifest
        #: the normalized JSON: what the source writes, where the model fills in defaults
        self.raw = manifest.dump()
        self.digest = digest
        self.models = _Models()
        self.classes: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.consts = _Names(_IMPORTED)
        self.specs: list[str] = []
        self.exported: list[str] = []

    def render(self) -> GeneratedSdk:
        # manifest schemas claim their names first; a nested copy of one reuses its class
        names = {n: self.models.names.claim(_pascal(n), "Model") for n in self.m.schemas}
        for name, schema in self.m.schemas.items():
            if _is_object_model(schema):
                self.models.nested.setdefault(json.dumps(schema, sort_keys=True), names[name])
        for name, schema in self.m.schemas.items():
            if _is_object_model(schema):
                self.classes[name] = self.models.model(schema, name, pin=name, name=names[name])
            else:
                self.classes[name] = self.models.root_model(schema, name, name, names[name])
        error_blocks = [self._error(key) for key in self.m.errors]
        rpc = {name: self._rpc(name) for name in self.m.rpc}
        events = {name: self._event(name) for name in self.m.events}
        kv = {alias: self._kv(alias) for alias in self.m.resources.kv}
        notes = [
            f"errors.{key} is keyed apart from its type {d.type!r}, or has no schema"
            for key, d in self.m.errors.items()
            if key != d.type or d.schema_ref is None
        ]
        notes += [
            f"uses.{alias} names operations or feeds"
            for alias, use, _ in self.m.dependencies()
            if use.operations.call or use.feeds.subscribe
        ]
        parts = [
            "# --- payload models (one per manifest schema) ---",
            *self.models.ordered(),
            "# --- declared errors ---" if error_blocks else "",
            *error_blocks,
            "# --- typed specs: pass them to call / publish / subscribe / service.kv ---",
            "\n".join(self.specs),
            self._contract(rpc, events, kv),
            self._all(),
        ]
        body = "\n\n\n".join(p for p in parts if p) + "\n"
        init = self._header(body) + "\n\n\n" + body
        schemas = (
            f'"""The JSON Schemas of ``{self.m.id}``, verbatim from its manifest (generated)."""'
            f"\n\n{_NO_FORMAT}\n\nfrom typing import Any\n\n"
            f"SCHEMAS: dict[str, Any] = {_lit(dict(self.m.schemas))}\n"
        )
        return GeneratedSdk(
            {"__init__.py": init, "_schemas.py": schemas}, self.m.id, self.digest, tuple(notes)
        )

    def _error(self, key: str) -> str:
        decl = self.m.errors[key]
        cls = self.models.names.claim(_pascal(key), "Error")
        self.errors[decl.type] = cls
        lines = [f"class {cls}(TrellisError):"]
        lines += _docstring(None, f"The ``{decl.type}`` error declared by ``{self.m.id}``.")
        lines.append("")
        lines.append(f"    type = {_lit(decl.type)}")
        if decl.schema_ref is not None:
            schema = self.m.schemas.get(decl.schema_ref.name)
            lines.append(_pin_line(decl.schema_ref.name))
            if isinstance(schema, Mapping):
                props = {
                    k: v
                    for k, v in (schema.get("properties") or {}).items()
                    if k not in _ENVELOPE_FIELDS
                }
                required = set(schema.get("required") or [])
                names = _Names(_MODEL_ATTRS | {"reason_"})
                for json_name, prop in props.items():
                    lines += self.models.field(json_name, prop, json_name in required, cls, names)
        return "\n".join(lines)

    def _error_class(self, error_type: str) -> str:
        if error_type in self.errors:
            return self.errors[error_type]
        return BUILTIN_ERRORS[error_type].__name__

    def _caps(self, caps: list[str]) -> str:
        prefix = f"{capability_namespace(self.m.id)}::"
        local = [c[len(prefix) :] if c in self.m.capabilities else c for c in caps]
        return _lit(local)

    def _spec(self, const: str, annotation: str, call: str) -> str:
        name = self.consts.claim(const, "_SPEC")
        self.specs.append(f"{name}: {annotation} = {call}")
        return name

    def _rpc(self, name: str) -> str:
        r = self.m.rpc[name]
        inp, outp = self.classes[r.input.name], self.classes[r.output.name]
        errors = [self._error_class(e.type) for e in r.errors]
        args = [inp, outp]
        if errors:
            args.append(f"errors=[{', '.join(errors)}]")
        written = self.raw["rpc"][name].get("capabilities", {})
        if "call" not in written:
            args.append("call=None")  # the source leaves it unwritten
        elif r.capabilities.call:
            args.append(f"call={self._caps(r.capabilities.call)}")
        if r.version != "v1":
            args.append(f"version={_lit(r.version)}")
        if r.docs is not None:
            args.append(f"docs={_lit(r.docs.markdown)}")
        if r.transfer is not None and r.transfer.direction is not None:
            args.append(f"transfer={_lit(r.transfer.direction)}")
        err_type = " | ".join(dict.fromkeys(errors)) or "Never"
        return self._spec(
            _constant(name), f"RpcSpec[{inp}, {outp}, {err_type}]", f"rpc({', '.join(args)})"
        )

    def _event(self, name: str) -> str:
        e = self.m.events[name]
        model = self.classes[e.event.name]
        args = [model]
        raw = self.raw["events"][name]
        if "params" not in raw:
            args.append("params=None")  # unwritten in the source, as the two below
        elif e.params:
            args.append(f"params={_lit(list(e.params))}")
        for action in ("publish", "subscribe"):
            caps = getattr(e.capabilities, action)
            if action not in raw.get("capabilities", {}):
                args.append(f"{action}=None")
            elif caps:
                args.append(f"{action}={self._caps(caps)}")
        if e.version != "v1":
            args.append(f"version={_lit(e.version)}")
        if e.docs is not None:
            args.append(f"docs={_lit(e.docs.markdown)}")
        return self._spec(_constant(name), f"EventSpec[{model}]", f"event({', '.join(args)})")

    def _kv(self, alias: str) -> str:
        k = self.m.resources.kv[alias]
        model = self.classes[k.schema_ref.name]
        args = [
            model,
            f"purpose={_lit(k.purpose)}",
            f"required={_lit(k.required)}",
            f"history={_lit(k.history)}",
            f"ttl_ms={_lit(k.ttl_ms)}",
        ]
        if k.max_value_bytes is not None:
            args.append(f"max_value_bytes={_lit(k.max_value_bytes)}")
        return self._spec(f"{_constant(alias)}_KV", f"KvSpec[{model}]", f"kv({', '.join(args)})")

    def _header(self, body: str) -> str:
        """Docstring and the imports ``body`` uses (nothing unused, in ruff's order)."""
        m = self.m
        text = (
            f"{m.display_name} (``{m.id}``): a typed SDK generated by "
            f"``trellis contract generate``.\n\n{m.description}\n\n"
            "Do not edit: regenerate from the manifest.  ``CONTRACT`` rebuilds the manifest it\n"
            f"was generated from: its digest is ``{self.digest}``."
        )
        doc = '"""' + text.replace("\\", "\\\\").replace('"""', '\\"""') + '\n"""'
        used = {
            name
            for name in re.findall(r"[A-Za-z_]+", body)
            if name[0].isupper() or re.search(rf"\b{name}\(", body)
        } | {"Any"}
        groups = {
            "typing": ["Annotated", "Any", "ClassVar", "Literal", "Never"],
            "pydantic": ["BaseModel", "ConfigDict", "Field", "JsonValue", "RootModel"],
            "trellis.contracts.authoring": [
                "Capability", "Contract", "EventSpec", "KvSpec", "RpcSpec", "Use",
                "consumer", "event", "job", "kv", "rpc", "store", "stream",
            ],
            "trellis.result": sorted(
                [*(cls.__name__ for cls in BUILTIN_ERRORS.values()), "TrellisError"]
            ),
        }  # fmt: skip
        lines = ["from __future__ import annotations", ""]
        for module, names in groups.items():
            wanted = [n for n in names if n in used]
            if not wanted:
                continue
            one = f"from {module} import {', '.join(wanted)}"
            if len(one) > 100:
                one = f"from {module} import (\n" + "".join(f"    {n},\n" for n in wanted) + ")"
            lines.append(one)
            if module in ("typing", "pydantic"):
                lines.append("")
        lines += [
            "",
            "from ._schemas import SCHEMAS",
            "",
            f"DIGEST = {_lit(self.digest)}",
            '"""The digest of the manifest this module was generated from."""',
            "",
            "#: a model's manifest entry: ``(schema name, JSON Schema)``, emitted verbatim",
            "Pin = tuple[str, Any]",
            "",
            "",
            "def pin(name: str) -> Pin:",
            "    return name, SCHEMAS[name]",
        ]
        return doc + "\n\n" + _NO_FORMAT + "\n\n" + "\n".join(lines)

    def _contract(self, rpc: dict[str, str], events: dict[str, str], kv: dict[str, str]) -> str:
        m = self.m
        args = [
            _lit(m.id),
            f"kind={_lit(m.kind)}",
            f"display_name={_lit(m.display_name)}",
            f"description={_lit(m.description)}",
        ]
        if m.docs is not None:
            args.append(f"docs={_lit(m.docs.markdown)}")
        if m.capabilities:
            prefix = f"{m.namespace}::"
            caps = []
            for key, decl in m.capabilities.items():
                extra = f", {_lit(decl.consequence)}" if decl.consequence else ""
                caps.append(
                    f"        {_lit(key.removeprefix(prefix))}: Capability("
                    f"{_lit(decl.display_name)}, {_lit(decl.description)}{extra}),"
                )
            args.append("capabilities={\n" + "\n".join(caps) + "\n    }")
        for label, table in (("rpc", rpc), ("events", events), ("kv", kv)):
            if table:
                body = "\n".join(f"        {_lit(k)}: {v}," for k, v in table.items())
                args.append(f"{label}={{\n{body}\n    }}")
        self._resources(args)
        uses = [self._use(alias, use, required) for alias, use, required in m.dependencies()]
        if uses:
            args.append("uses={\n" + "\n".join(uses) + "\n    }")
        if m.exports.schemas:
            args.append(f"exports=[{', '.join(self.classes[s] for s in m.exports.schemas)}]")
        args.append("baseline_uses=False")
        verbatim = {k: self._refs(self.raw[k]) for k in VERBATIM_SECTIONS if k in self.raw}
        if verbatim:
            args.append(f"sections={_lit(verbatim, 4)}")
        body = ",\n".join(f"    {a}" for a in args)
        head = "#: the contract, rebuilt from the manifest with the authoring API"
        return f"{head}\nCONTRACT = Contract(\n{body},\n)"

    def _resources(self, args: list[str]) -> None:
        m = self.m
        if m.resources.store:
            items = []
            for alias, s in m.resources.store.items():
                opt = [f"purpose={_lit(s.purpose)}", f"required={_lit(s.required)}"]
                opt.append(f"ttl_ms={s.ttl_ms}")
                if s.max_object_bytes is not None:
                    opt.append(f"max_object_bytes={s.max_object_bytes}")
                if s.max_total_bytes is not None:
                    opt.append(f"max_total_bytes={s.max_total_bytes}")
                items.append(f"        {_lit(alias)}: store({', '.join(opt)}),")
            args.append("store={\n" + "\n".join(items) + "\n    }")
        if m.resources.streams:
            items = []
            for alias, st in m.resources.streams.items():
                opt = [
                    f"purpose={_lit(st.purpose)}",
                    f"subjects={_lit(list(st.subjects))}",
                    f"retention={_lit(st.retention)}",
                    f"required={_lit(st.required)}",
                ]
                if st.max_age_ms is not None:
                    opt.append(f"max_age_ms={st.max_age_ms}")
                if st.max_bytes is not None:
                    opt.append(f"max_bytes={st.max_bytes}")
                items.append(f"        {_lit(alias)}: stream({', '.join(opt)}),")
            args.append("streams={\n" + "\n".join(items) + "\n    }")
        raw_jobs = self.m.model_dump(by_alias=True, exclude_unset=True).get("jobs", {})
        if m.jobs:
            items = []
            for queue, j in m.jobs.items():
                opt = [self.classes[j.payload.name]]
                if j.result is not None:
                    opt.append(self.classes[j.result.name])
                for key, value in raw_jobs[queue].items():
                    if key not in ("payload", "result", "docs"):
                        opt.append(f"{_snake(key)}={_lit(value)}")
                items.append(f"        {_lit(queue)}: job({', '.join(opt)}),")
            args.append("jobs={\n" + "\n".join(items) + "\n    }")
        if m.event_consumers:
            items = []
            for group, c in m.event_consumers.items():
                opt = []
                if c.uses:
                    opt.append(f"uses={_lit({a: list(e) for a, e in c.uses.items()})}")
                if c.self_events:
                    opt.append(f"self_events={_lit(list(c.self_events))}")
                opt += [f"replay={_lit(c.replay)}", f"concurrency={c.concurrency}"]
                for attr in ("ack_wait_ms", "max_deliver", "backoff_ms"):
                    value = getattr(c, attr)
                    if value is not None:
                        opt.append(f"{attr}={_lit(value)}")
                items.append(f"        {_lit(group)}: consumer({', '.join(opt)}),")
            args.append("event_consumers={\n" + "\n".join(items) + "\n    }")

    def _refs(self, value: Any) -> Any:
        """``value`` with each ``{"schema": name}`` reference replaced by its class."""
        if isinstance(value, Mapping):
            if set(value) == {"schema"} and value["schema"] in self.classes:
                return _Code(self.classes[value["schema"]])
            return {k: self._refs(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._refs(v) for v in value]
        return value

    def _use(self, alias: str, use: Any, required: bool) -> str:
        opt = [_lit(use.contract)]
        if use.rpc.call:
            opt.append(f"rpc={_tuple(use.rpc.call)}")
        if use.events.publish:
            opt.append(f"publish={_tuple(use.events.publish)}")
        if use.events.subscribe:
            opt.append(f"subscribe={_tuple(use.events.subscribe)}")
        if not required:
            opt.append("optional=True")
        return f"        {_lit(alias)}: Use({', '.join(opt)}),"

    def _all(self) -> str:
        names = ["CONTRACT", "DIGEST", "SCHEMAS", "Pin", "pin"]
        names += [*self.classes.values(), *self.errors.values()]
        names += [line.split(":", 1)[0] for line in self.specs]
        ordered = sorted(dict.fromkeys(names), key=lambda n: (not n.isupper(), n[0].islower(), n))
        body = "\n".join(f"    {_lit(n)}," for n in ordered)
        return f"__all__ = [\n{body}\n]"
