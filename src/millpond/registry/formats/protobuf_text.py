"""Protobuf's .proto text: parsed into a `FileDescriptorProto`, and rendered back canonically.

Parsing: proto_schema_parser's ANTLR grammar builds an AST, stopped at the first syntax error,
which is converted here the way protoc would describe the file: map fields get protoc's
`<Name>Entry` nested message, proto3 `optional` fields their synthetic `_<field>` oneof,
reserved and extension ranges protoc's bounds. Type names are left as written, for the
descriptor pool to resolve; groups and editions are refused.

Rendering: `render_file` turns a descriptor (as the pool resolved it, every type name
qualified) into normalised .proto text with a fixed layout, keeping only what shapes the data
(file options and custom options are left out), and keeping nested messages in an order that
parses back to the same nested-type indexes, which payloads refer to.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any

from antlr4.error.ErrorListener import ErrorListener  # type: ignore[import-untyped]
from google.protobuf import descriptor_pb2  # type: ignore[import-untyped]
from proto_schema_parser import ast
from proto_schema_parser.parser import Parser

from millpond.registry.schema import InvalidSchemaError

FileProto = Any  # descriptor_pb2.FileDescriptorProto; protobuf ships no type stubs
MessageProto = Any  # descriptor_pb2.DescriptorProto
FieldProto = Any  # descriptor_pb2.FieldDescriptorProto

_FDP = descriptor_pb2.FieldDescriptorProto

# The scalar keywords of .proto text and their descriptor types, in both directions.
_SCALAR_TYPES: dict[str, int] = {
    "double": _FDP.TYPE_DOUBLE,
    "float": _FDP.TYPE_FLOAT,
    "int64": _FDP.TYPE_INT64,
    "uint64": _FDP.TYPE_UINT64,
    "int32": _FDP.TYPE_INT32,
    "fixed64": _FDP.TYPE_FIXED64,
    "fixed32": _FDP.TYPE_FIXED32,
    "bool": _FDP.TYPE_BOOL,
    "string": _FDP.TYPE_STRING,
    "bytes": _FDP.TYPE_BYTES,
    "uint32": _FDP.TYPE_UINT32,
    "sfixed32": _FDP.TYPE_SFIXED32,
    "sfixed64": _FDP.TYPE_SFIXED64,
    "sint32": _FDP.TYPE_SINT32,
    "sint64": _FDP.TYPE_SINT64,
}
SCALAR_NAMES: dict[int, str] = {number: name for name, number in _SCALAR_TYPES.items()}

_LABELS: dict[ast.FieldCardinality, int] = {
    ast.FieldCardinality.OPTIONAL: _FDP.LABEL_OPTIONAL,
    ast.FieldCardinality.REQUIRED: _FDP.LABEL_REQUIRED,
    ast.FieldCardinality.REPEATED: _FDP.LABEL_REPEATED,
}

# `max` in a message's reserved or extension range: field numbers stop below 2^29 (the end of a
# descriptor's range is exclusive). Enum ranges are inclusive and run to the int32 maximum.
_FIELD_NUMBER_END = 536_870_912
_ENUM_NUMBER_MAX = 2_147_483_647

# The file name a schema given as text is built under; renamed in a pool only when one of its
# dependencies is loaded under the same name.
TEXT_FILE_NAME = "schema.proto"


# --- .proto text to descriptor --------------------------------------------------------------


class _RaisingErrorListener(ErrorListener):  # type: ignore[misc]
    """Stops the ANTLR parser at its first error instead of printing it and recovering."""

    def syntaxError(
        self, recognizer: Any, offending_symbol: Any, line: int, column: int, msg: str, e: Any
    ) -> None:
        if len(msg) > 200:
            msg = msg[:200] + "..."
        raise InvalidSchemaError(f"invalid .proto text at line {line}, column {column + 1}: {msg}")


def _raise_on_errors(recognizer: Any) -> None:
    recognizer.removeErrorListeners()
    recognizer.addErrorListener(_RaisingErrorListener())


def text_to_descriptor(text: str) -> FileProto:
    """The FileDescriptorProto (named TEXT_FILE_NAME) that .proto `text` declares, its type
    names as written; raises InvalidSchemaError naming the first syntax or AST error."""
    if not text.strip():
        raise InvalidSchemaError("the schema is empty")
    try:
        tree = Parser(setup_lexer=_raise_on_errors, setup_parser=_raise_on_errors).parse(text)
    except InvalidSchemaError:
        raise
    except (ValueError, TypeError, AttributeError) as e:
        # The parser's AST builder fails on literals the grammar admits (e.g. a hex field number).
        raise InvalidSchemaError(f"invalid .proto text: {e}") from e
    if tree.edition is not None:
        raise InvalidSchemaError("protobuf editions are not supported; use proto2 or proto3")
    file = descriptor_pb2.FileDescriptorProto(name=TEXT_FILE_NAME)
    syntax = tree.syntax or "proto2"
    if syntax not in ("proto2", "proto3"):
        raise InvalidSchemaError(f"unknown syntax '{syntax}'")
    file.syntax = syntax
    proto3 = syntax == "proto3"
    for element in tree.file_elements:
        if isinstance(element, ast.Package):
            if file.package:
                raise InvalidSchemaError("the file declares more than one package")
            file.package = element.name
        elif isinstance(element, ast.Import):
            if element.public:
                file.public_dependency.append(len(file.dependency))
            if element.weak:
                file.weak_dependency.append(len(file.dependency))
            file.dependency.append(element.name)
        elif isinstance(element, ast.Message):
            _convert_message(element, file.message_type.add(), proto3)
        elif isinstance(element, ast.Enum):
            _convert_enum(element, file.enum_type.add())
        elif isinstance(element, ast.Extension):
            _convert_extension(element, file.extension)
        elif isinstance(element, ast.Service):
            _convert_service(element, file.service.add())
        # File options (java_package, go_package, ...) and comments do not change the data.
    return file


def _convert_message(message: ast.Message, out: MessageProto, proto3: bool) -> None:
    out.name = message.name
    optional_fields: list[FieldProto] = []  # proto3 `optional`: each gets a synthetic oneof
    for element in message.elements:
        if isinstance(element, ast.Field):
            field = out.field.add()
            _convert_field(element, field)
            if proto3 and element.cardinality is ast.FieldCardinality.OPTIONAL:
                field.proto3_optional = True
                optional_fields.append(field)
        elif isinstance(element, ast.MapField):
            _convert_map_field(element, out)
        elif isinstance(element, ast.OneOf):
            oneof_index = len(out.oneof_decl)
            out.oneof_decl.add(name=element.name)
            for member in element.elements:
                if isinstance(member, ast.Field):
                    field = out.field.add()
                    _convert_field(member, field)
                    field.oneof_index = oneof_index
                elif isinstance(member, ast.Group):
                    raise InvalidSchemaError(f"group '{member.name}': groups are not supported")
        elif isinstance(element, ast.Message):
            _convert_message(element, out.nested_type.add(), proto3)
        elif isinstance(element, ast.Enum):
            _convert_enum(element, out.enum_type.add())
        elif isinstance(element, ast.Reserved):
            for start, end in _ranges(element.ranges, _FIELD_NUMBER_END, exclusive_end=True):
                out.reserved_range.add(start=start, end=end)
            out.reserved_name.extend(element.names)
        elif isinstance(element, ast.ExtensionRange):
            for start, end in _ranges(element.ranges, _FIELD_NUMBER_END, exclusive_end=True):
                out.extension_range.add(start=start, end=end)
        elif isinstance(element, ast.Extension):
            _convert_extension(element, out.extension)
        elif isinstance(element, ast.Group):
            raise InvalidSchemaError(f"group '{element.name}': groups are not supported")
    # protoc names a proto3 optional field's oneof "_<field>", prefixed with X until unique,
    # and appends these after the declared oneofs.
    taken = {field.name for field in out.field} | {oneof.name for oneof in out.oneof_decl}
    for field in optional_fields:
        name = f"_{field.name}"
        while name in taken:
            name = f"X{name}"
        taken.add(name)
        field.oneof_index = len(out.oneof_decl)
        out.oneof_decl.add(name=name)


def _convert_field(source: ast.Field, out: FieldProto) -> None:
    out.name = source.name
    out.number = source.number
    if source.cardinality is None:
        out.label = _FDP.LABEL_OPTIONAL
    else:
        out.label = _LABELS[source.cardinality]
    _set_type(out, source.type)
    for option in source.options:
        if option.name == "default":
            out.default_value = _default_text(option.value, source.type)
        elif option.name == "packed" and isinstance(option.value, bool):
            out.options.packed = option.value
        elif option.name == "deprecated" and isinstance(option.value, bool):
            out.options.deprecated = option.value
        elif option.name == "json_name" and isinstance(option.value, str):
            out.json_name = option.value


def _set_type(out: FieldProto, type_name: str) -> None:
    scalar = _SCALAR_TYPES.get(type_name)
    if scalar is not None:
        out.type = scalar
    else:
        # Left as written: the pool resolves it by protobuf's scoping rules and sets message or
        # enum; its copy (the normalized descriptor) then holds the qualified ".pkg.Type" name.
        out.type_name = type_name


def _convert_map_field(source: ast.MapField, message: MessageProto) -> None:
    entry = message.nested_type.add(name=_map_entry_name(source.name))
    entry.options.map_entry = True
    key = entry.field.add(name="key", number=1, label=_FDP.LABEL_OPTIONAL)
    _set_type(key, source.key_type)
    value = entry.field.add(name="value", number=2, label=_FDP.LABEL_OPTIONAL)
    _set_type(value, source.value_type)
    field = message.field.add(
        name=source.name, number=source.number, label=_FDP.LABEL_REPEATED, type_name=entry.name
    )
    field.type = _FDP.TYPE_MESSAGE
    for option in source.options:
        if option.name == "deprecated" and isinstance(option.value, bool):
            field.options.deprecated = option.value


def _map_entry_name(field_name: str) -> str:
    """protoc's name for a map field's entry message: `my_map` -> `MyMapEntry`."""
    parts = field_name.split("_")
    head = parts[0][:1].upper() + parts[0][1:]
    return head + "".join(part[:1].upper() + part[1:] for part in parts[1:]) + "Entry"


def _convert_enum(source: ast.Enum, out: Any) -> None:
    out.name = source.name
    for element in source.elements:
        if isinstance(element, ast.EnumValue):
            value = out.value.add(name=element.name, number=element.number)
            for option in element.options:
                if option.name == "deprecated" and isinstance(option.value, bool):
                    value.options.deprecated = option.value
        elif isinstance(element, ast.Option):
            if element.name == "allow_alias" and isinstance(element.value, bool):
                out.options.allow_alias = element.value
        elif isinstance(element, ast.EnumReserved):
            for start, end in _ranges(element.ranges, _ENUM_NUMBER_MAX, exclusive_end=False):
                out.reserved_range.add(start=start, end=end)
            out.reserved_name.extend(element.names)


def _convert_extension(source: ast.Extension, out: Any) -> None:
    for element in source.elements:
        if isinstance(element, ast.Group):
            raise InvalidSchemaError(f"group '{element.name}': groups are not supported")
        if isinstance(element, ast.Field):
            field = out.add()
            _convert_field(element, field)
            field.extendee = source.typeName


def _convert_service(source: ast.Service, out: Any) -> None:
    out.name = source.name
    for element in source.elements:
        if isinstance(element, ast.Method):
            out.method.add(
                name=element.name,
                input_type=element.input_type.type,
                output_type=element.output_type.type,
                client_streaming=element.input_type.stream,
                server_streaming=element.output_type.stream,
            )


_RANGE = re.compile(r"^\s*(-?\w+)\s*(?:to\s+(-?\w+))?\s*$")


def _ranges(texts: list[str], maximum: int, *, exclusive_end: bool) -> Iterator[tuple[int, int]]:
    for text in texts:
        match = _RANGE.match(text)
        if match is None:
            raise InvalidSchemaError(f"invalid range '{text}'")
        start = _int_literal(match.group(1))
        end_text = match.group(2)
        if end_text is None:
            end = start
        elif end_text == "max":
            end = maximum - 1 if exclusive_end else maximum
        else:
            end = _int_literal(end_text)
        if end < start:
            raise InvalidSchemaError(f"range '{text}' ends before it starts")
        yield start, end + 1 if exclusive_end else end


def _int_literal(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("-").lower()
    try:
        if digits.startswith("0x"):
            return sign * int(digits, 16)
        if len(digits) > 1 and digits.startswith("0"):
            return sign * int(digits, 8)
        return sign * int(digits)
    except ValueError:
        raise InvalidSchemaError(f"'{text}' is not an integer") from None


def _default_text(value: object, type_name: str) -> str:
    """A `[default = ...]` value as a descriptor stores it: strings unescaped, bytes C-escaped
    as written, enum values and inf/nan by name."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, ast.Identifier):
        return value.name
    if isinstance(value, str) and type_name == "string":
        try:
            return codecs.escape_decode(value.encode("utf-8"))[0].decode("utf-8")
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidSchemaError(f"invalid string default {value!r}: {e}") from e
    if isinstance(value, float):
        return repr(value)
    return str(value)


# --- the canonical text ---------------------------------------------------------------------


def render_file(file: FileProto) -> str:
    """A normalised .proto text of `file`: fixed layout, qualified type names, only what shapes
    the data (file options and custom options are left out)."""
    lines = [f'syntax = "{file.syntax or "proto2"}";']
    if file.package:
        lines.append(f"package {file.package};")
    public = set(file.public_dependency)
    weak = set(file.weak_dependency)
    for index, name in enumerate(file.dependency):
        modifier = "public " if index in public else "weak " if index in weak else ""
        lines.append(f'import {modifier}"{_escape(name)}";')
    proto3 = file.syntax == "proto3"
    for message in file.message_type:
        lines.extend(_render_message(message, proto3, 0))
    for enum in file.enum_type:
        lines.extend(_render_enum(enum, 0))
    lines.extend(_render_extensions(file.extension, proto3, 0))
    for service in file.service:
        lines.append(f"service {service.name} {{")
        for method in service.method:
            request = ("stream " if method.client_streaming else "") + method.input_type
            response = ("stream " if method.server_streaming else "") + method.output_type
            lines.append(f"  rpc {method.name} ({request}) returns ({response});")
        lines.append("}")
    return "\n".join(lines) + "\n"


def _render_message(message: MessageProto, proto3: bool, depth: int) -> list[str]:
    pad = "  " * (depth + 1)
    lines = [f"{'  ' * depth}message {message.name} {{"]
    entries = {nested.name: nested for nested in message.nested_type if nested.options.map_entry}
    # Nested messages go where they keep their order relative to map entries, so that text
    # rendered here parses back to the same nested-type indexes (payloads refer to them).
    pending_nested = list(message.nested_type)
    emitted_oneofs: set[int] = set()

    def emit_nested_before(entry_name: str) -> None:
        while pending_nested:
            nested = pending_nested.pop(0)
            if nested.name == entry_name:
                return
            if not nested.options.map_entry:
                lines.extend(_render_message(nested, proto3, depth + 1))

    for field in message.field:
        entry = _map_entry_of(field, entries)
        if entry is not None:
            emit_nested_before(entry.name)
        if field.HasField("oneof_index") and not field.proto3_optional:
            if field.oneof_index in emitted_oneofs:
                continue
            emitted_oneofs.add(field.oneof_index)
            lines.append(f"{pad}oneof {message.oneof_decl[field.oneof_index].name} {{")
            for member in message.field:
                if member.HasField("oneof_index") and member.oneof_index == field.oneof_index:
                    lines.append(f"{pad}  {_render_field(member, proto3, entries, label=False)}")
            lines.append(f"{pad}}}")
        else:
            lines.append(pad + _render_field(field, proto3, entries, label=True))
    for nested in pending_nested:
        if not nested.options.map_entry:
            lines.extend(_render_message(nested, proto3, depth + 1))
    for enum in message.enum_type:
        lines.extend(_render_enum(enum, depth + 1))
    lines.extend(_render_extensions(message.extension, proto3, depth + 1))
    if message.extension_range:
        ranges = _render_ranges(message.extension_range, _FIELD_NUMBER_END - 1, exclusive=True)
        lines.append(f"{pad}extensions {ranges};")
    if message.reserved_range:
        ranges = _render_ranges(message.reserved_range, _FIELD_NUMBER_END - 1, exclusive=True)
        lines.append(f"{pad}reserved {ranges};")
    if message.reserved_name:
        lines.append(f"{pad}reserved {', '.join(_quote(n) for n in message.reserved_name)};")
    lines.append(f"{'  ' * depth}}}")
    return lines


def _map_entry_of(field: FieldProto, entries: dict[str, MessageProto]) -> MessageProto | None:
    if field.label != _FDP.LABEL_REPEATED or field.type != _FDP.TYPE_MESSAGE:
        return None
    return entries.get(field.type_name.rsplit(".", 1)[-1])


def _render_field(
    field: FieldProto, proto3: bool, entries: dict[str, MessageProto], *, label: bool
) -> str:
    entry = _map_entry_of(field, entries)
    if entry is not None:
        key, value = sorted(entry.field, key=lambda f: f.number)
        type_text = f"map<{_type_text(key)}, {_type_text(value)}>"
        prefix = ""
    else:
        type_text = _type_text(field)
        prefix = ""
        if label:
            if field.label == _FDP.LABEL_REPEATED:
                prefix = "repeated "
            elif field.label == _FDP.LABEL_REQUIRED:
                prefix = "required "
            elif not proto3 or field.proto3_optional:
                prefix = "optional "
    options: list[str] = []
    if field.HasField("default_value"):
        options.append(f"default = {_default_literal(field)}")
    if field.options.HasField("packed"):
        options.append(f"packed = {str(field.options.packed).lower()}")
    if field.options.deprecated:
        options.append("deprecated = true")
    suffix = f" [{', '.join(options)}]" if options else ""
    return f"{prefix}{type_text} {field.name} = {field.number}{suffix};"


def _type_text(field: FieldProto) -> str:
    scalar = SCALAR_NAMES.get(field.type)
    if scalar is not None:
        return scalar
    return str(field.type_name)


def _default_literal(field: FieldProto) -> str:
    if field.type == _FDP.TYPE_STRING:
        return _quote(field.default_value)
    if field.type == _FDP.TYPE_BYTES:
        return f'"{field.default_value}"'  # a descriptor keeps bytes defaults C-escaped
    return str(field.default_value)


def _render_enum(enum: Any, depth: int) -> list[str]:
    pad = "  " * (depth + 1)
    lines = [f"{'  ' * depth}enum {enum.name} {{"]
    if enum.options.allow_alias:
        lines.append(f"{pad}option allow_alias = true;")
    for value in enum.value:
        suffix = " [deprecated = true]" if value.options.deprecated else ""
        lines.append(f"{pad}{value.name} = {value.number}{suffix};")
    if enum.reserved_range:
        ranges = _render_ranges(enum.reserved_range, _ENUM_NUMBER_MAX, exclusive=False)
        lines.append(f"{pad}reserved {ranges};")
    if enum.reserved_name:
        lines.append(f"{pad}reserved {', '.join(_quote(n) for n in enum.reserved_name)};")
    lines.append(f"{'  ' * depth}}}")
    return lines


def _render_extensions(extensions: Sequence[FieldProto], proto3: bool, depth: int) -> list[str]:
    lines: list[str] = []
    by_extendee: dict[str, list[FieldProto]] = {}
    for extension in extensions:
        by_extendee.setdefault(extension.extendee, []).append(extension)
    for extendee, fields in by_extendee.items():
        lines.append(f"{'  ' * depth}extend {extendee} {{")
        lines.extend(
            f"{'  ' * (depth + 1)}{_render_field(f, proto3, {}, label=True)}" for f in fields
        )
        lines.append(f"{'  ' * depth}}}")
    return lines


def _render_ranges(ranges: Sequence[Any], maximum: int, *, exclusive: bool) -> str:
    parts: list[str] = []
    for item in ranges:
        last = item.end - 1 if exclusive else item.end
        if last == item.start:
            parts.append(str(item.start))
        else:
            parts.append(f"{item.start} to {'max' if last >= maximum else last}")
    return ", ".join(parts)


def _quote(text: str) -> str:
    return f'"{_escape(text)}"'


def _escape(text: str) -> str:
    out: list[str] = []
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\{ord(char):03o}")
        else:
            out.append(char)
    return "".join(out)
