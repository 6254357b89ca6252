"""Protobuf compatibility: Confluent's `ProtobufSchemaDiff` rules.

`check(reader, writer)` compares the writer's schema (Confluent's original) with the reader's
(Confluent's update). Fields are matched by number (a rename is free), messages by name, types
in referenced files by full name. Only the changes Confluent counts as incompatible are reported:

- PACKAGE_CHANGED: the files declare different packages.
- MESSAGE_REMOVED: a writer message (top-level or nested) is missing from the reader.
- REQUIRED_FIELD_REMOVED / REQUIRED_FIELD_ADDED: a proto2 `required` field is in one side only;
  an optional or repeated field may come and go.
- ONEOF_FIELD_REMOVED: a field of a oneof both sides declare is missing from the reader.
- MULTIPLE_FIELDS_MOVED_TO_ONEOF: a reader oneof takes in more than one separate writer field.
- FIELD_MOVED_TO_EXISTING_ONEOF: a reader oneof takes in a separate writer field beside fields
  of a writer oneof.
- FIELD_KIND_CHANGED: a field is a scalar, a map or a message on one side and another on the
  other.
- FIELD_SCALAR_KIND_CHANGED: a scalar field changes between groups of types that do not read
  each other's values (general numbers with bool and enums, signed numbers, string/bytes,
  fixed32, fixed64, float, double). Map keys and values are compared the same way.
- FIELD_NAMED_TYPE_CHANGED: a message field names another message (compared without the
  package), or a message from a referenced file that itself changed incompatibly.

Enums are never compared: every enum change is compatible, as a reader keeps an unknown enum
number as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import TYPE_CHECKING
from typing import Any

from google.protobuf import descriptor_pb2  # type: ignore[import-untyped]

from millpond.registry.formats.protobuf_text import SCALAR_NAMES
from millpond.registry.formats.protobuf_text import FieldProto
from millpond.registry.formats.protobuf_text import FileProto
from millpond.registry.formats.protobuf_text import MessageProto

if TYPE_CHECKING:
    from millpond.registry.formats.protobuf import ProtobufSchema

_FDP = descriptor_pb2.FieldDescriptorProto

# Confluent's groups of scalar types that read each other's values (FieldSchemaDiff.scalarKind,
# after https://protobuf.dev/programming-guides/proto3/#updating); an enum reads as a number.
_SCALAR_KINDS: dict[str, str] = {
    "int32": "general number",
    "int64": "general number",
    "uint32": "general number",
    "uint64": "general number",
    "bool": "general number",
    "sint32": "signed number",
    "sint64": "signed number",
    "string": "string or bytes",
    "bytes": "string or bytes",
    "fixed32": "fixed32",
    "sfixed32": "fixed32",
    "fixed64": "fixed64",
    "sfixed64": "fixed64",
    "float": "float",
    "double": "double",
}


@dataclass(frozen=True, slots=True)
class _TypeInfo:
    proto: Any  # DescriptorProto or EnumDescriptorProto
    is_enum: bool
    package: str
    in_main_file: bool


def _type_table(schema: ProtobufSchema) -> dict[str, _TypeInfo]:
    """Every message and enum the schema can name, by full name without the leading dot."""
    table: dict[str, _TypeInfo] = {}

    def collect(file: FileProto, in_main_file: bool) -> None:
        def walk(messages: Sequence[MessageProto], enums: Sequence[Any], prefix: str) -> None:
            for enum in enums:
                table[prefix + enum.name] = _TypeInfo(enum, True, file.package, in_main_file)
            for message in messages:
                name = prefix + message.name
                table[name] = _TypeInfo(message, False, file.package, in_main_file)
                walk(message.nested_type, message.enum_type, name + ".")

        walk(file.message_type, file.enum_type, f"{file.package}." if file.package else "")

    for dependency in schema.dependencies.values():
        collect(dependency, False)
    collect(schema.normalized, True)
    return table


@dataclass(frozen=True, slots=True)
class _FieldType:
    kind: str  # "scalar" (enums included, as Confluent reads them as numbers), "map", "message"
    name: str  # the scalar keyword, or the message/enum full name without the leading dot
    key: _FieldType | None = None
    value: _FieldType | None = None

    def describe(self) -> str:
        if self.kind == "map" and self.key is not None and self.value is not None:
            return f"map<{self.key.describe()}, {self.value.describe()}>"
        return self.name


@dataclass(slots=True)
class _Diff:
    writer_types: dict[str, _TypeInfo]
    reader_types: dict[str, _TypeInfo]
    problems: list[str] = dataclass_field(default_factory=list)
    comparing: set[tuple[str, str]] = dataclass_field(default_factory=set)

    def add(self, error: str, path: Sequence[str], description: str) -> None:
        self.problems.append(f"{error} at '#/{'/'.join(path)}': {description}")


def check(reader: ProtobufSchema, writer: ProtobufSchema) -> list[str]:
    """[] when `reader` reads everything written with `writer`; else one message per problem.

    Follows Confluent's ProtobufSchemaDiff with the writer as the original schema and the reader
    as the update, reporting only the differences Confluent counts as incompatible."""
    diff = _Diff(_type_table(writer), _type_table(reader))
    writer_file = writer.normalized
    reader_file = reader.normalized
    if writer_file.package != reader_file.package:
        diff.add(
            "PACKAGE_CHANGED",
            (),
            f"the reader's package is '{reader_file.package}' "
            f"but the writer's is '{writer_file.package}'",
        )
    _compare_messages(
        diff,
        writer_file.message_type,
        reader_file.message_type,
        (),
        _prefix(writer_file.package),
        _prefix(reader_file.package),
    )
    return diff.problems


def _prefix(package: str) -> str:
    return f"{package}." if package else ""


def _compare_messages(
    diff: _Diff,
    writer_messages: Sequence[MessageProto],
    reader_messages: Sequence[MessageProto],
    path: tuple[str, ...],
    writer_prefix: str,
    reader_prefix: str,
) -> None:
    """Messages matched by name; enums are not compared, as every enum change is compatible in
    Confluent's rules (a reader keeps an unknown enum number as it is)."""
    reader_by_name = {message.name: message for message in reader_messages}
    for writer_message in writer_messages:
        if writer_message.options.map_entry:
            continue  # a map field's entry: compared as the map field's key and value types
        name = writer_message.name
        reader_message = reader_by_name.get(name)
        if reader_message is None:
            diff.add(
                "MESSAGE_REMOVED",
                (*path, name),
                f"the writer's message '{writer_prefix}{name}' is missing from the reader",
            )
        else:
            _compare_message(
                diff,
                writer_message,
                reader_message,
                (*path, name),
                writer_prefix + name,
                reader_prefix + name,
            )


def _real_oneof_fields(message: MessageProto) -> dict[str, list[FieldProto]]:
    """The message's declared oneofs (not proto3 `optional`'s synthetic ones) and their fields."""
    oneofs: dict[str, list[FieldProto]] = {}
    for field in message.field:
        if field.HasField("oneof_index") and not field.proto3_optional:
            oneofs.setdefault(message.oneof_decl[field.oneof_index].name, []).append(field)
    return oneofs


def _compare_message(
    diff: _Diff,
    writer: MessageProto,
    reader: MessageProto,
    path: tuple[str, ...],
    writer_name: str,
    reader_name: str,
) -> None:
    if (writer_name, reader_name) in diff.comparing:
        return  # a recursive type, already being compared further up
    diff.comparing.add((writer_name, reader_name))
    writer_oneofs = _real_oneof_fields(writer)
    reader_oneofs = _real_oneof_fields(reader)
    writer_oneof_of = {f.number: name for name, fs in writer_oneofs.items() for f in fs}
    reader_oneof_of = {f.number: name for name, fs in reader_oneofs.items() for f in fs}
    writer_all = {field.number: field for field in writer.field}
    reader_all = {field.number: field for field in reader.field}
    writer_top = {n: f for n, f in writer_all.items() if n not in writer_oneof_of}
    reader_top = {n: f for n, f in reader_all.items() if n not in reader_oneof_of}

    # A reader oneof may take in one writer field (the writer sets it alone), but not two
    # (a writer record setting both loses one), nor one beside fields of a writer oneof.
    for oneof_name, fields in reader_oneofs.items():
        moved = [f for f in fields if f.number in writer_top]
        existing = [f for f in fields if f.number not in writer_top and f.number in writer_oneof_of]
        for field in moved:
            del writer_top[field.number]  # moved, not removed
        if len(moved) > 1:
            numbers = ", ".join(f"'{f.name}' ({f.number})" for f in moved)
            diff.add(
                "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
                (*path, oneof_name),
                f"the reader's oneof '{oneof_name}' holds fields {numbers}, "
                "which are separate fields in the writer",
            )
        elif moved and existing:
            diff.add(
                "FIELD_MOVED_TO_EXISTING_ONEOF",
                (*path, oneof_name),
                f"the reader's oneof '{oneof_name}' takes the writer's field "
                f"'{moved[0].name}' ({moved[0].number}) into a oneof the writer already had",
            )

    for oneof_name, writer_fields in writer_oneofs.items():
        reader_fields = {f.number: f for f in reader_oneofs.get(oneof_name, ())}
        if oneof_name not in reader_oneofs:
            continue  # a removed oneof: its fields are compared below wherever they went
        for field in sorted(writer_fields, key=lambda f: f.number):
            reader_field = reader_fields.get(field.number)
            if reader_field is not None:
                _compare_field(diff, field, reader_field, (*path, oneof_name, str(field.number)))
            elif field.number not in reader_all:
                diff.add(
                    "ONEOF_FIELD_REMOVED",
                    (*path, oneof_name, str(field.number)),
                    f"field '{field.name}' ({field.number}) of the writer's oneof "
                    f"'{oneof_name}' is missing from the reader",
                )

    for number in sorted(writer_top.keys() | reader_top.keys()):
        writer_field = writer_top.get(number)
        reader_field = reader_top.get(number)
        field_path = (*path, str(number))
        if reader_field is None and writer_field is not None:
            if writer_field.label == _FDP.LABEL_REQUIRED:
                diff.add(
                    "REQUIRED_FIELD_REMOVED",
                    field_path,
                    f"the writer's required field '{writer_field.name}' ({number}) "
                    "is missing from the reader",
                )
        elif writer_field is None and reader_field is not None:
            if reader_field.label == _FDP.LABEL_REQUIRED:
                diff.add(
                    "REQUIRED_FIELD_ADDED",
                    field_path,
                    f"the reader requires field '{reader_field.name}' ({number}), "
                    "which the writer does not have",
                )
        elif writer_field is not None and reader_field is not None:
            _compare_field(diff, writer_field, reader_field, field_path)

    # Fields whose oneof membership changed (moved in or out of a oneof, or the oneof renamed)
    # were skipped by both passes above; their types still have to agree.
    for number in sorted(writer_all.keys() & reader_all.keys()):
        writer_oneof = writer_oneof_of.get(number)
        reader_oneof = reader_oneof_of.get(number)
        if writer_oneof == reader_oneof:
            continue
        _compare_field(diff, writer_all[number], reader_all[number], (*path, str(number)))

    _compare_messages(
        diff, writer.nested_type, reader.nested_type, path, writer_name + ".", reader_name + "."
    )
    diff.comparing.discard((writer_name, reader_name))


def _field_type(field: FieldProto, types: dict[str, _TypeInfo]) -> _FieldType:
    scalar = SCALAR_NAMES.get(field.type)
    if scalar is not None:
        return _FieldType("scalar", scalar)
    name = field.type_name.removeprefix(".")
    info = types.get(name)
    if field.type == _FDP.TYPE_ENUM or (info is not None and info.is_enum):
        return _FieldType("scalar", name)
    if info is not None and info.proto.options.map_entry:
        by_number = {entry_field.number: entry_field for entry_field in info.proto.field}
        if 1 in by_number and 2 in by_number:
            return _FieldType(
                "map",
                name,
                _field_type(by_number[1], types),
                _field_type(by_number[2], types),
            )
    return _FieldType("message", name)


def _compare_field(
    diff: _Diff, writer: FieldProto, reader: FieldProto, path: tuple[str, ...]
) -> None:
    """A field matched by number; its name may change freely."""

    def describe(what: str) -> str:
        if reader.name == writer.name:
            return f"field '{reader.name}' ({reader.number}) {what}"
        return (
            f"field {reader.number} ('{reader.name}' in the reader, '{writer.name}' in the "
            f"writer) {what}"
        )

    _compare_types(
        diff,
        _field_type(writer, diff.writer_types),
        _field_type(reader, diff.reader_types),
        path,
        describe,
    )


def _compare_types(
    diff: _Diff,
    writer: _FieldType,
    reader: _FieldType,
    path: tuple[str, ...],
    describe: Callable[[str], str],
) -> None:
    if writer.kind != reader.kind:
        diff.add(
            "FIELD_KIND_CHANGED",
            path,
            describe(
                f"is a {reader.kind} ({reader.describe()}) in the reader "
                f"but a {writer.kind} ({writer.describe()}) in the writer"
            ),
        )
    elif writer.kind == "scalar":
        if _scalar_kind(writer.name) != _scalar_kind(reader.name):
            diff.add(
                "FIELD_SCALAR_KIND_CHANGED",
                path,
                describe(
                    f"is {reader.describe()} in the reader but {writer.describe()} in the "
                    f"writer, which do not read each other's values"
                ),
            )
    elif writer.kind == "map":
        if writer.key is not None and reader.key is not None:
            _compare_types(diff, writer.key, reader.key, path, lambda w: describe(f"key {w}"))
        if writer.value is not None and reader.value is not None:
            _compare_types(diff, writer.value, reader.value, path, lambda w: describe(f"value {w}"))
    else:
        _compare_message_types(diff, writer.name, reader.name, path, describe)


def _scalar_kind(name: str) -> str:
    return _SCALAR_KINDS.get(name, "general number")  # an enum is read as a number


def _local_name(name: str, types: dict[str, _TypeInfo]) -> str:
    info = types.get(name)
    if info is None or not info.package:
        return name
    return name.removeprefix(info.package + ".")


def _compare_message_types(
    diff: _Diff, writer: str, reader: str, path: tuple[str, ...], describe: Callable[[str], str]
) -> None:
    writer_local = _local_name(writer, diff.writer_types)
    reader_local = _local_name(reader, diff.reader_types)
    if writer_local != reader_local:
        diff.add(
            "FIELD_NAMED_TYPE_CHANGED",
            path,
            describe(f"is a '{reader}' in the reader but a '{writer}' in the writer"),
        )
        return
    writer_info = diff.writer_types.get(writer)
    reader_info = diff.reader_types.get(reader)
    if writer_info is None or reader_info is None:
        return  # a well-known type: the same in both
    if writer_info.in_main_file and reader_info.in_main_file:
        return  # compared where it is declared
    # A type from a referenced file: its changes break this field.
    before = len(diff.problems)
    _compare_message(diff, writer_info.proto, reader_info.proto, (reader_local,), writer, reader)
    if len(diff.problems) > before:
        diff.add(
            "FIELD_NAMED_TYPE_CHANGED",
            path,
            describe(f"has type '{reader}', which the reader reads incompatibly"),
        )
