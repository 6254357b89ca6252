"""Avro schemas: parse and normalise, check a reader against a writer, decode a payload.

- `parse` validates the text with Apache `avro` (the reference Python implementation), with the
  named types of the referenced schemas already known, so a record may use a type another
  subject defines by its full name. Apache `avro` does not check field defaults; Confluent does
  (Java Avro's `validateDefaults`), so `parse` checks each default against its field's type,
  a union's default against the union's first branch, as the Avro specification says.
- `canonical` is the submitted schema as compact JSON with a fixed key order: whitespace and
  key order never mint a new id, while docs, defaults, aliases and custom properties, which
  Confluent also keeps, make a schema different. Field order and enum symbol order stay, as
  they are part of the encoding.
- `check` (in `avro_compatibility`, re-exported here) follows Avro's `SchemaCompatibility`
  (Java), which Confluent runs, and reports each incompatibility with its Confluent name and
  JSON-pointer-like location.
- `decode` reads a payload with fastavro's `schemaless_reader`, using a fastavro schema parsed
  once per schema, and requires the record to use every byte. For the few schemas where the
  payload's length does not bound what that costs (values that take no bytes, such as an
  array of nulls, and recursive types), `avro_skip` first walks the payload without building
  anything and refuses one that claims too many such values or nests too deeply; see there.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Final
from typing import cast

import avro.errors
import avro.name
import avro.schema
import fastavro

from millpond.registry.formats import avro_skip
from millpond.registry.formats.avro_compatibility import check
from millpond.registry.formats.avro_compatibility import describe
from millpond.registry.formats.avro_compatibility import schema_kind
from millpond.registry.schema import InvalidSchemaError
from millpond.registry.schema import ParsedSchema
from millpond.registry.schema import PayloadError
from millpond.registry.schema import SchemaType

# `check` lives in avro_compatibility; the registry finds every format's `check` here.
__all__ = ["AvroSchema", "check", "parse"]

_PRIMITIVE_TYPES: Final = frozenset(
    ("null", "boolean", "int", "long", "float", "double", "bytes", "string")
)

_COMPLEX_TYPES: Final = frozenset(("record", "error", "enum", "fixed", "array", "map"))

# The order Java Avro's `Schema.toString` writes attributes in, so stored schemas read the way
# Confluent returns them; attributes not listed follow in sorted order.
_SCHEMA_KEY_ORDER: Final = (
    "type",
    "name",
    "namespace",
    "doc",
    "aliases",
    "fields",
    "symbols",
    "items",
    "values",
    "size",
    "default",
    "logicalType",
    "precision",
    "scale",
)
_FIELD_KEY_ORDER: Final = ("name", "type", "doc", "default", "order", "aliases")


# Apache avro, the checks here and fastavro recurse once or more per level of nesting; real
# schemas nest a handful of levels, and a bound keeps every walk far from Python's stack limit.
_MAX_DEPTH: Final = 64

_INT_RANGE: Final = range(-(2**31), 2**31)
_LONG_RANGE: Final = range(-(2**63), 2**63)


@dataclass(frozen=True, slots=True)
class AvroSchema:
    """A parsed Avro schema. Two AvroSchemas are equal when their canonical texts are; what the
    referenced schemas define is compared by the registry through the references."""

    canonical: str
    schema: avro.schema.Schema = field(compare=False, repr=False)
    # Every named type this schema can use, its own and its references', by full name; a
    # schema referring to this one starts from these.
    named_types: Mapping[str, avro.schema.NamedSchema] = field(compare=False, repr=False)
    _fastavro_schema: Any = field(compare=False, repr=False)
    _fastavro_named: Mapping[str, Any] = field(compare=False, repr=False)
    # None for most schemas, whose payloads fastavro reads in time and memory bounded by
    # their length.
    _skip_plan: avro_skip.SkipPlan | None = field(compare=False, repr=False)

    @property
    def schema_type(self) -> SchemaType:
        return SchemaType.AVRO

    def serialized(self) -> str:
        return self.canonical

    def decode(self, payload: bytes) -> None:
        """Read `payload` as one record of this schema; raises PayloadError if it is short,
        malformed, claims more than the limits of `avro_skip` allow, or is followed by bytes
        the record does not use."""
        if self._skip_plan is not None:
            avro_skip.skip(self._skip_plan, payload)
        stream = io.BytesIO(payload)
        try:
            fastavro.schemaless_reader(stream, self._fastavro_schema, None)
        # fastavro reports bad input as whatever its reader hit: EOFError, IndexError,
        # ValueError, UnicodeDecodeError, OverflowError, MemoryError...; all mean "not this
        # schema", and none may escape to the produce path as anything but a PayloadError.
        except Exception as error:
            reason = str(error) or "the payload ends inside the record"
            raise PayloadError(
                f"payload is not a valid Avro record of the schema "
                f"({type(error).__name__}: {reason})"
            ) from error
        trailing = len(payload) - stream.tell()
        if trailing:
            raise PayloadError(f"{trailing} trailing bytes after the record")


def parse(text: str, references: Sequence[tuple[str, ParsedSchema]] = ()) -> AvroSchema:
    """Parse `text` as an Avro schema that may use the named types of `references` (already
    parsed Avro schemas, dependencies first). Returns the AvroSchema; raises
    InvalidSchemaError saying what is wrong."""
    document = _load_json(text)
    try:
        normal = _normal_schema(document, 0)
        canonical = json.dumps(normal, separators=(",", ":"), ensure_ascii=False)
        canonical.encode()
    except RecursionError as error:  # a default or property nested past the stack limit
        raise InvalidSchemaError("Invalid JSON: nested too deeply") from error
    except UnicodeEncodeError as error:
        raise InvalidSchemaError(f"Invalid JSON: {error.reason} in a string") from error

    inherited_types, inherited_fastavro = _inherited_named_types(references)
    names = avro.name.Names()
    names.names.update(inherited_types)
    schema = _avro_parse(normal, names)
    _check_definitions(schema, frozenset(id(named) for named in inherited_types.values()))

    fastavro_named = dict(inherited_fastavro)
    # fastavro's reader looks a bare name up among the named types of the schema it is given,
    # so a schema that is just a referenced name is given as that type's definition.
    source = fastavro_named.get(normal, normal) if isinstance(normal, str) else normal
    try:
        fastavro_schema = fastavro.parse_schema(cast(Any, source), named_schemas=fastavro_named)
    # fastavro accepts what Apache avro accepted in practice; if it ever refuses, the schema
    # could not be used to decode, so it is invalid here too.
    except Exception as error:
        raise InvalidSchemaError(f"Invalid Avro schema: {error}") from error
    return AvroSchema(
        canonical=canonical,
        schema=schema,
        named_types=dict(names.names),
        _fastavro_schema=fastavro_schema,
        _fastavro_named=fastavro_named,
        _skip_plan=avro_skip.plan(schema),
    )


# Parsing


def _reject_constant(constant: str) -> object:
    raise InvalidSchemaError(f"Invalid JSON: {constant} is not a JSON value")


def _load_json(text: str) -> object:
    stripped = text.strip()
    # Confluent accepts a primitive schema written without JSON quotes.
    if stripped in _PRIMITIVE_TYPES:
        return stripped
    try:
        return json.loads(stripped, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise InvalidSchemaError(
            f"Invalid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from error
    except RecursionError as error:
        raise InvalidSchemaError("Invalid JSON: nested too deeply") from error


def _inherited_named_types(
    references: Sequence[tuple[str, ParsedSchema]],
) -> tuple[dict[str, avro.schema.NamedSchema], dict[str, Any]]:
    avro_types: dict[str, avro.schema.NamedSchema] = {}
    fastavro_types: dict[str, Any] = {}
    for reference_name, referenced in references:
        if not isinstance(referenced, AvroSchema):
            raise InvalidSchemaError(
                f"Reference '{reference_name}' is a {referenced.schema_type} schema; an Avro "
                f"schema can only reference Avro schemas"
            )
        for fullname, named in referenced.named_types.items():
            known = avro_types.setdefault(fullname, named)
            # The same type reached through two references is fine; two different types of
            # one name would make the name ambiguous.
            if known is not named and known != named:
                raise InvalidSchemaError(
                    f"Reference '{reference_name}' defines '{fullname}' differently from "
                    f"another reference"
                )
        for fullname, fastavro_named in referenced._fastavro_named.items():
            fastavro_types.setdefault(fullname, fastavro_named)
    return avro_types, fastavro_types


def _avro_parse(document: object, names: avro.name.Names) -> avro.schema.Schema:
    # Apache avro parses a bare name only inside a record, union or collection; a schema that
    # is just a referenced type is looked up here.
    if isinstance(document, str) and document not in _PRIMITIVE_TYPES:
        named = names.names.get(document)
        if named is None:
            raise InvalidSchemaError(f"Invalid Avro schema: unknown type '{document}'")
        return named
    try:
        # avro warns (IgnoredLogicalType) and parses the underlying type when a logical type
        # is malformed, as Java Avro does silently; the warning is not the caller's concern.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            schema: avro.schema.Schema = avro.schema.make_avsc_object(
                document, names, validate_enum_symbols=True, validate_names=True
            )
    except InvalidSchemaError:
        raise
    # avro reports malformed input through SchemaParseException and its relatives, but also
    # through TypeError, AttributeError or RecursionError for shapes it does not expect.
    except Exception as error:
        raise InvalidSchemaError(f"Invalid Avro schema: {error}") from error
    return schema


# Canonical form


def _ordered_keys(node: Mapping[str, Any], order: Sequence[str]) -> list[str]:
    first = [key for key in order if key in node]
    return first + sorted(key for key in node if key not in order)


def _normal_schema(node: object, depth: int) -> object:
    if depth > _MAX_DEPTH:
        raise InvalidSchemaError(f"Invalid Avro schema: types nest deeper than {_MAX_DEPTH}")
    if isinstance(node, list):
        return [_normal_schema(branch, depth + 1) for branch in node]
    if not isinstance(node, dict):
        return node
    # {"type": "string"} is the primitive "string" (or a reference to a named type); a complex
    # type keyword stays an object so that avro says what the type is missing.
    if (
        node.keys() == {"type"}
        and isinstance(node["type"], str)
        and node["type"] not in _COMPLEX_TYPES
    ):
        return node["type"]
    normal: dict[str, object] = {}
    for key in _ordered_keys(node, _SCHEMA_KEY_ORDER):
        value = node[key]
        if key == "fields" and isinstance(value, list):
            normal[key] = [_normal_field(item, depth + 1) for item in value]
        elif key in ("items", "values"):
            normal[key] = _normal_schema(value, depth + 1)
        else:
            normal[key] = _normal_data(value)
    return normal


def _normal_field(node: object, depth: int) -> object:
    if not isinstance(node, dict):
        return node
    normal: dict[str, object] = {}
    for key in _ordered_keys(node, _FIELD_KEY_ORDER):
        value = node[key]
        normal[key] = _normal_schema(value, depth) if key == "type" else _normal_data(value)
    return normal


def _normal_data(node: object) -> object:
    """Defaults and custom properties: JSON values whose object key order means nothing."""
    if isinstance(node, dict):
        return {key: _normal_data(node[key]) for key in sorted(node)}
    if isinstance(node, list):
        return [_normal_data(item) for item in node]
    return node


# Defaults


def _check_definitions(schema: avro.schema.Schema, inherited: frozenset[int]) -> None:
    """Check what Apache avro lets through in the types `schema` defines (not those it
    inherits): every field default, and that enum symbols are a list (avro takes any
    sequence, so "AB" would be the symbols A and B)."""
    for current in avro_skip.reachable_types(schema, skip=inherited):
        if isinstance(current, avro.schema.EnumSchema) and not isinstance(current.symbols, list):
            raise InvalidSchemaError(
                f"Invalid Avro schema: enum '{current.fullname}' needs a JSON array of symbols"
            )
        if isinstance(current, avro.schema.RecordSchema):
            for record_field in current.fields:
                if record_field.has_default and not _valid_default(
                    record_field.type, record_field.default
                ):
                    raise InvalidSchemaError(
                        f"Invalid default for field '{record_field.name}' of record "
                        f"'{current.fullname}': {json.dumps(record_field.default)} is not a "
                        f"valid {_default_expectation(record_field.type)}"
                    )


def _default_expectation(schema: avro.schema.Schema) -> str:
    if isinstance(schema, avro.schema.UnionSchema):
        first = schema.schemas[0]
        return f"{describe(first)} (a union's default must match its first branch)"
    return describe(schema)


def _valid_default(schema: avro.schema.Schema, value: object) -> bool:
    kind = schema_kind(schema)
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("int", "long"):
        bounds = _INT_RANGE if kind == "int" else _LONG_RANGE
        return isinstance(value, int) and not isinstance(value, bool) and value in bounds
    if kind in ("float", "double"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind in ("bytes", "fixed"):
        # Bytes defaults are strings of code points 0-255, one per byte.
        if not isinstance(value, str) or any(ord(char) > 0xFF for char in value):
            return False
        return not isinstance(schema, avro.schema.FixedSchema) or len(value) == schema.size
    if isinstance(schema, avro.schema.EnumSchema):
        return isinstance(value, str) and value in schema.symbols
    if isinstance(schema, avro.schema.ArraySchema):
        return isinstance(value, list) and all(_valid_default(schema.items, v) for v in value)
    if isinstance(schema, avro.schema.MapSchema):
        return isinstance(value, dict) and all(
            _valid_default(schema.values, v) for v in value.values()
        )
    if isinstance(schema, avro.schema.UnionSchema):
        return bool(schema.schemas) and _valid_default(schema.schemas[0], value)
    if isinstance(schema, avro.schema.RecordSchema):
        if not isinstance(value, dict):
            return False
        for record_field in schema.fields:
            if record_field.name in value:
                if not _valid_default(record_field.type, value[record_field.name]):
                    return False
            elif not record_field.has_default:
                return False
        return True
    return False
