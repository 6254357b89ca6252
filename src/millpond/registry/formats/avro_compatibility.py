"""Avro compatibility: can a consumer using the reader schema read what the writer wrote?

`check` follows Avro's `SchemaCompatibility` (Java), which Confluent runs, and reports each
incompatibility with its Confluent name and a JSON-pointer-like location into the reader schema.
It walks the Apache `avro` schema objects itself rather than calling `avro.compatibility`,
because that port merges results into unordered sets of messages and locations, which loses
which message belongs to which location (and adds a spurious "/" location). The rules:
- same kind: primitives (with or without a logical type) read their own kind; arrays compare
  their items and maps their values; fixed types need the same name and size
  (NAME_MISMATCH, FIXED_SIZE_MISMATCH); enums the same name and every writer symbol, unless
  the reader enum has a default symbol (MISSING_ENUM_SYMBOLS); records the same name and, for
  each reader field, a writer field of the same name or of one of its aliases whose type it
  reads, or else a default (READER_FIELD_MISSING_DEFAULT_VALUE). Writer fields the reader
  lacks are skipped.
- names: compared by full name; a reader alias counts, resolved against the reader's namespace
  when it has no dots, as the Java implementation and the Avro specification do.
- promotions: int is read as long, float or double; long as float or double; float as
  double; string as bytes and bytes as string.
- unions: every branch of a writer union must be readable; against a reader union each writer
  branch (or the writer type) needs one reader branch that reads it (MISSING_UNION_BRANCH);
  anything else is TYPE_MISMATCH.
- recursive types: a pair already under comparison counts as compatible the second time round,
  so the walk ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Final

import avro.schema

if TYPE_CHECKING:
    from millpond.registry.formats.avro import AvroSchema

# Writer types a reader type can read besides its own (the specification's promotions).
_PROMOTIONS: Final[Mapping[str, frozenset[str]]] = {
    "long": frozenset(("int",)),
    "float": frozenset(("int", "long")),
    "double": frozenset(("int", "long", "float")),
    "bytes": frozenset(("string",)),
    "string": frozenset(("bytes",)),
}


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
        reader_kind = schema_kind(reader)
        writer_kind = schema_kind(writer)
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
                    f"writer type {describe(writer)}",
                )
            ]
        return [
            _Incompatibility(
                "TYPE_MISMATCH",
                location,
                f"{_field_prefix(field_path)}reader type {describe(reader)} cannot read "
                f"writer type {describe(writer)}",
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
                        f"read writer branch {index} ({describe(branch)})",
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
            f"reader {schema_kind(reader)} '{reader.fullname}' does not match writer name "
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


def _field_prefix(field_path: str) -> str:
    return f"field '{field_path}': " if field_path else ""


def _string_list(value: object) -> list[str]:
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


# Shared with the parser, whose messages name types the same way


def schema_kind(schema: avro.schema.Schema) -> str:
    """The schema's type, with Avro IDL's error records counted as records."""
    kind: str = schema.type
    return "record" if kind == "error" else kind


def describe(schema: avro.schema.Schema) -> str:
    """How messages name a type: its kind, and its full name if it has one."""
    if isinstance(schema, avro.schema.NamedSchema):
        return f"{schema_kind(schema)} '{schema.fullname}'"
    return schema_kind(schema)
