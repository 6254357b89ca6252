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
- `check` follows Avro's `SchemaCompatibility` (Java), which Confluent runs, and reports each
  incompatibility with its Confluent name and JSON-pointer-like location. It walks the Apache
  `avro` schema objects itself rather than calling `avro.compatibility`, because that port
  merges results into unordered sets of messages and locations, which loses which message
  belongs to which location (and adds a spurious "/" location); the rules are the same, except
  that names are compared by full name with reader aliases resolved against the reader's
  namespace, as the Java implementation and the Avro specification do.
- `decode` reads a payload with fastavro's `schemaless_reader`, using a fastavro schema parsed
  once per schema, and requires the record to use every byte.
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

from millpond.registry.schema import InvalidSchemaError
from millpond.registry.schema import ParsedSchema
from millpond.registry.schema import PayloadError
from millpond.registry.schema import SchemaType

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

# Writer types a reader type can read besides its own (the specification's promotions).
_PROMOTIONS: Final[Mapping[str, frozenset[str]]] = {
    "long": frozenset(("int",)),
    "float": frozenset(("int", "long")),
    "double": frozenset(("int", "long", "float")),
    "bytes": frozenset(("string",)),
    "string": frozenset(("bytes",)),
}

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

    @property
    def schema_type(self) -> SchemaType:
        return SchemaType.AVRO

    def serialized(self) -> str:
        return self.canonical

    def decode(self, payload: bytes) -> None:
        """Read `payload` as one record of this schema; raises PayloadError if it is short,
        malformed, or followed by bytes the record does not use."""
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
    )


def check(reader: AvroSchema, writer: AvroSchema) -> list[str]:
    """Whether a consumer using `reader` can read every record written with `writer`: [] if
    so, otherwise one "<TYPE> at '<location>': <description>" message per incompatibility."""
    found = _Checker().compatibility(reader.schema, writer.schema, (), "")
    messages: list[str] = []
    for incompatibility in found:
        message = str(incompatibility)
        if message not in messages:
            messages.append(message)
    return messages


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
    seen = set(inherited)
    stack = [schema]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
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
                stack.append(record_field.type)
        elif isinstance(current, avro.schema.ArraySchema):
            stack.append(current.items)
        elif isinstance(current, avro.schema.MapSchema):
            stack.append(current.values)
        elif isinstance(current, avro.schema.UnionSchema):
            stack.extend(current.schemas)


def _default_expectation(schema: avro.schema.Schema) -> str:
    if isinstance(schema, avro.schema.UnionSchema):
        first = schema.schemas[0]
        return f"{_describe(first)} (a union's default must match its first branch)"
    return _describe(schema)


def _valid_default(schema: avro.schema.Schema, value: object) -> bool:
    kind = _kind(schema)
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


# Compatibility


@dataclass(frozen=True, slots=True)
class _Incompatibility:
    kind: str
    location: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return f"{self.kind} at '/{'/'.join(self.location)}': {self.message}"


class _Checker:
    """One reader/writer comparison. Pairs already compared are remembered, so a recursive
    type (a list node holding the next node) is compared once and the walk ends."""

    def __init__(self) -> None:
        # (id(reader), id(writer)) -> what was found; None while the pair is being compared,
        # which (as in Java Avro) counts as compatible for the recursive use.
        self._seen: dict[tuple[int, int], list[_Incompatibility] | None] = {}

    def compatibility(
        self,
        reader: avro.schema.Schema,
        writer: avro.schema.Schema,
        location: tuple[str, ...],
        field_path: str,
    ) -> list[_Incompatibility]:
        pair = (id(reader), id(writer))
        if pair in self._seen:
            return self._seen[pair] or []
        self._seen[pair] = None
        found = self._calculate(reader, writer, location, field_path)
        self._seen[pair] = found
        return found

    def _calculate(
        self,
        reader: avro.schema.Schema,
        writer: avro.schema.Schema,
        location: tuple[str, ...],
        field_path: str,
    ) -> list[_Incompatibility]:
        reader_kind = _kind(reader)
        writer_kind = _kind(writer)
        if reader_kind == writer_kind:
            return self._calculate_same_kind(reader, writer, location, field_path)
        if isinstance(writer, avro.schema.UnionSchema):
            # Every branch the writer may choose must be readable.
            found: list[_Incompatibility] = []
            for branch in writer.schemas:
                found.extend(self.compatibility(reader, branch, location, field_path))
            return found
        if writer_kind in _PROMOTIONS.get(reader_kind, ()):
            return []
        if isinstance(reader, avro.schema.UnionSchema):
            for branch in reader.schemas:
                if not self.compatibility(branch, writer, location, field_path):
                    return []
            return [
                _Incompatibility(
                    "MISSING_UNION_BRANCH",
                    location,
                    f"{_field_prefix(field_path)}reader union lacks a branch that can read "
                    f"writer type {_describe(writer)}",
                )
            ]
        return [
            _Incompatibility(
                "TYPE_MISMATCH",
                location,
                f"{_field_prefix(field_path)}reader type {_describe(reader)} cannot read "
                f"writer type {_describe(writer)}",
            )
        ]

    def _calculate_same_kind(
        self,
        reader: avro.schema.Schema,
        writer: avro.schema.Schema,
        location: tuple[str, ...],
        field_path: str,
    ) -> list[_Incompatibility]:
        if isinstance(reader, avro.schema.ArraySchema) and isinstance(
            writer, avro.schema.ArraySchema
        ):
            return self.compatibility(reader.items, writer.items, (*location, "items"), field_path)
        if isinstance(reader, avro.schema.MapSchema) and isinstance(writer, avro.schema.MapSchema):
            return self.compatibility(
                reader.values, writer.values, (*location, "values"), field_path
            )
        if isinstance(reader, avro.schema.FixedSchema) and isinstance(
            writer, avro.schema.FixedSchema
        ):
            return _check_names(reader, writer, location) + _check_size(reader, writer, location)
        if isinstance(reader, avro.schema.EnumSchema) and isinstance(
            writer, avro.schema.EnumSchema
        ):
            return _check_names(reader, writer, location) + _check_symbols(reader, writer, location)
        if isinstance(reader, avro.schema.RecordSchema) and isinstance(
            writer, avro.schema.RecordSchema
        ):
            return _check_names(reader, writer, location) + self._check_fields(
                reader, writer, location, field_path
            )
        if isinstance(reader, avro.schema.UnionSchema) and isinstance(
            writer, avro.schema.UnionSchema
        ):
            return self._check_unions(reader, writer, location, field_path)
        # Primitives (with or without a logical type) read their own kind.
        return []

    def _check_unions(
        self,
        reader: avro.schema.UnionSchema,
        writer: avro.schema.UnionSchema,
        location: tuple[str, ...],
        field_path: str,
    ) -> list[_Incompatibility]:
        found: list[_Incompatibility] = []
        for index, branch in enumerate(writer.schemas):
            branch_location = (*location, str(index))
            if self.compatibility(reader, branch, branch_location, field_path):
                found.append(
                    _Incompatibility(
                        "MISSING_UNION_BRANCH",
                        branch_location,
                        f"{_field_prefix(field_path)}reader union lacks a branch that can "
                        f"read writer branch {index} ({_describe(branch)})",
                    )
                )
        return found

    def _check_fields(
        self,
        reader: avro.schema.RecordSchema,
        writer: avro.schema.RecordSchema,
        location: tuple[str, ...],
        field_path: str,
    ) -> list[_Incompatibility]:
        found: list[_Incompatibility] = []
        writer_fields = {writer_field.name: writer_field for writer_field in writer.fields}
        for index, reader_field in enumerate(reader.fields):
            field_location = (*location, "fields", str(index))
            path = f"{field_path}.{reader_field.name}" if field_path else reader_field.name
            writer_field = _writer_field(writer_fields, reader_field)
            if writer_field is None:
                # Java Avro also treats a missing enum field whose enum has a default symbol
                # as a (type) mismatch: the enum's default covers unknown symbols, not an
                # absent field, so either way the field needs its own default.
                if not reader_field.has_default:
                    found.append(
                        _Incompatibility(
                            "READER_FIELD_MISSING_DEFAULT_VALUE",
                            field_location,
                            f"reader field '{path}' of record '{reader.fullname}' has no "
                            f"default value and is missing from the writer",
                        )
                    )
                continue
            found.extend(
                self.compatibility(
                    reader_field.type, writer_field.type, (*field_location, "type"), path
                )
            )
        return found


def _writer_field(
    writer_fields: Mapping[str, avro.schema.Field], reader_field: avro.schema.Field
) -> avro.schema.Field | None:
    direct = writer_fields.get(reader_field.name)
    if direct is not None:
        return direct
    for alias in _string_list(reader_field.get_prop("aliases")):
        aliased = writer_fields.get(alias)
        if aliased is not None:
            return aliased
    return None


def _check_names(
    reader: avro.schema.NamedSchema, writer: avro.schema.NamedSchema, location: tuple[str, ...]
) -> list[_Incompatibility]:
    if reader.fullname == writer.fullname or writer.fullname in _full_aliases(reader):
        return []
    return [
        _Incompatibility(
            "NAME_MISMATCH",
            (*location, "name"),
            f"reader {_kind(reader)} '{reader.fullname}' does not match writer name "
            f"'{writer.fullname}' (no reader alias names it)",
        )
    ]


def _full_aliases(schema: avro.schema.NamedSchema) -> set[str]:
    namespace = schema.namespace
    return {
        alias if "." in alias or not namespace else f"{namespace}.{alias}"
        for alias in _string_list(schema.get_prop("aliases"))
    }


def _check_size(
    reader: avro.schema.FixedSchema, writer: avro.schema.FixedSchema, location: tuple[str, ...]
) -> list[_Incompatibility]:
    if reader.size == writer.size:
        return []
    return [
        _Incompatibility(
            "FIXED_SIZE_MISMATCH",
            (*location, "size"),
            f"reader fixed '{reader.fullname}' has size {reader.size}, writer size {writer.size}",
        )
    ]


def _check_symbols(
    reader: avro.schema.EnumSchema, writer: avro.schema.EnumSchema, location: tuple[str, ...]
) -> list[_Incompatibility]:
    missing = [symbol for symbol in writer.symbols if symbol not in reader.symbols]
    # A reader enum with a default symbol reads unknown writer symbols as that default.
    if not missing or reader.get_prop("default") in reader.symbols:
        return []
    return [
        _Incompatibility(
            "MISSING_ENUM_SYMBOLS",
            (*location, "symbols"),
            f"reader enum '{reader.fullname}' lacks writer symbols {', '.join(missing)} and "
            f"has no default symbol",
        )
    ]


# Shared helpers


def _kind(schema: avro.schema.Schema) -> str:
    """The schema's type, with Avro IDL's error records counted as records."""
    kind: str = schema.type
    return "record" if kind == "error" else kind


def _describe(schema: avro.schema.Schema) -> str:
    if isinstance(schema, avro.schema.NamedSchema):
        return f"{_kind(schema)} '{schema.fullname}'"
    return _kind(schema)


def _field_prefix(field_path: str) -> str:
    return f"field '{field_path}': " if field_path else ""


def _string_list(value: object) -> list[str]:
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []
