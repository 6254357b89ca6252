"""Protobuf schemas: parse, normalise, check compatibility, decode payloads.

A Protobuf schema reaches the registry in one of two shapes, and both become one
`FileDescriptorProto`:

- `.proto` text, as people and most tools register it; parsed with proto_schema_parser and
  converted here into a descriptor;
- a base64-encoded serialized `FileDescriptorProto`, as confluent-kafka's Python
  `ProtobufSerializer` registers it (and as `?format=serialized` hands it back).

Every descriptor is validated by building it in a fresh `DescriptorPool` together with the files
it imports: the referenced schemas, each loaded under its reference name (the import path), and
the well-known files Confluent's clients never send as references (`google/protobuf/`,
`google/type/`, `confluent/`). The canonical text is rendered from the pool's copy of the
descriptor, so the same schema as text or as a descriptor has one canonical form.

A record's payload (after the 5-byte wire-format header) starts with the message-index array
that says which message of the file it holds:

    +---------------------+--------------------+-----+------------------------+
    | count N (zigzag     | index 0 (zigzag    | ... | the serialized message |
    | varint)             | varint)            |     |                        |
    +---------------------+--------------------+-----+------------------------+

index 0 picks a top-level message, each further index a nested message of the previous one; the
single byte 0x00 (N = 0) is shorthand for [0], the file's first message.

Compatibility follows Confluent's `ProtobufSchemaDiff`: fields are matched by number, messages
by name, and only the changes Confluent counts as incompatible are reported.
"""

from __future__ import annotations

import base64
import codecs
import functools
import hashlib
import importlib
import re
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from antlr4.error.ErrorListener import ErrorListener  # type: ignore[import-untyped]
from google.protobuf import descriptor_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from proto_schema_parser import ast
from proto_schema_parser.parser import Parser

from millpond.registry.schema import InvalidSchemaError
from millpond.registry.schema import ParsedSchema
from millpond.registry.schema import PayloadError
from millpond.registry.schema import SchemaType

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
_SCALAR_NAMES: dict[int, str] = {number: name for name, number in _SCALAR_TYPES.items()}

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
_TEXT_FILE_NAME = "schema.proto"

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


class ProtobufSchema:
    """A validated Protobuf file and the files it imports (by import path), enough to check and
    decode with this object alone."""

    __slots__ = ("_canonical", "_classes", "_dependencies", "_file", "_normalized", "_pool")

    def __init__(
        self,
        file: FileProto,
        normalized: FileProto,
        dependencies: dict[str, FileProto],
    ) -> None:
        self._file = file  # as registered; what `serialized()` returns
        self._normalized = normalized  # the pool's copy: type names resolved and qualified
        self._dependencies = dependencies  # import path -> file, transitively, renamed to it
        self._canonical = _render_file(normalized)
        self._pool: Any = None  # built on the first decode
        self._classes: dict[tuple[int, ...], Any] = {}

    @property
    def schema_type(self) -> SchemaType:
        return SchemaType.PROTOBUF

    @property
    def canonical(self) -> str:
        return self._canonical

    @property
    def file(self) -> FileProto:
        """The file descriptor as registered (callers must not mutate it)."""
        return self._file

    @property
    def dependencies(self) -> dict[str, FileProto]:
        """Every file this one imports, transitively, keyed by import path."""
        return dict(self._dependencies)

    def serialized(self) -> str:
        data: bytes = self._file.SerializeToString(deterministic=True)
        return base64.standard_b64encode(data).decode("ascii")

    def decode(self, payload: bytes) -> None:
        indexes, offset = _read_message_indexes(payload)
        message_class = self._message_class(indexes)
        try:
            message_class.FromString(payload[offset:])
        except DecodeError as e:
            path = ", ".join(map(str, indexes))
            raise PayloadError(f"message [{path}] does not decode: {e}") from e

    def _message_class(self, indexes: tuple[int, ...]) -> Any:
        cached = self._classes.get(indexes)
        if cached is not None:
            return cached
        if self._pool is None:
            self._pool = _build_pool(self._file, self._dependencies)
        full_name = _message_name_at(self._normalized, indexes)
        message_class = message_factory.GetMessageClass(self._pool.FindMessageTypeByName(full_name))
        self._classes[indexes] = message_class
        return message_class

    def __repr__(self) -> str:
        return f"ProtobufSchema({self._file.name!r})"


def parse(text: str, references: Sequence[tuple[str, ParsedSchema]] = ()) -> ProtobufSchema:
    """Parse `text` (.proto text or a base64 FileDescriptorProto) importing `references`
    ((import path, parsed schema) pairs); raises InvalidSchemaError saying what is wrong."""
    dependencies: dict[str, FileProto] = {}
    for name, referenced in references:
        if not isinstance(referenced, ProtobufSchema):
            raise InvalidSchemaError(
                f"reference '{name}' is a {referenced.schema_type} schema, not PROTOBUF"
            )
        for dependency_name, dependency in referenced._dependencies.items():
            dependencies.setdefault(dependency_name, dependency)
        renamed = descriptor_pb2.FileDescriptorProto()
        renamed.CopyFrom(referenced._file)
        renamed.name = name
        dependencies[name] = renamed
    file = _decode_descriptor(text)
    from_text = file is None
    if file is None:
        file = _text_to_descriptor(text)
    pool = _build_pool(file, dependencies)
    normalized = descriptor_pb2.FileDescriptorProto()
    pool.FindFileByName(_pool_file_name(file, dependencies)).CopyToProto(normalized)
    normalized.name = file.name
    # A text schema is kept as the pool resolved it, every type name qualified; a descriptor is
    # kept as sent, options and all, so `serialized()` hands its client back what it registered.
    return ProtobufSchema(normalized if from_text else file, normalized, dependencies)


# --- base64 descriptors -------------------------------------------------------------------


def _decode_descriptor(text: str) -> FileProto | None:
    """The FileDescriptorProto `text` encodes in base64, or None when it is not one."""
    try:
        data = base64.b64decode(text.strip(), validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII character
        return None
    file = descriptor_pb2.FileDescriptorProto()
    try:
        file.ParseFromString(data)
    except DecodeError:
        return None
    if not (file.name or file.message_type or file.enum_type):
        return None
    if not file.name:
        file.name = _TEXT_FILE_NAME
    return file


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


def _text_to_descriptor(text: str) -> FileProto:
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
    file = descriptor_pb2.FileDescriptorProto(name=_TEXT_FILE_NAME)
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


# --- the descriptor pool --------------------------------------------------------------------


# The modules whose files Confluent's clients load without a reference (their `_init_pool`):
# google/protobuf/ from protobuf, google/type/ from googleapis-common-protos and confluent/ from
# confluent-kafka, the last two present with confluent-kafka's schema-registry extras.
_WELL_KNOWN_MODULES = (
    *(
        f"google.protobuf.{name}_pb2"
        for name in (
            "any",
            "api",
            "descriptor",
            "duration",
            "empty",
            "field_mask",
            "source_context",
            "struct",
            "timestamp",
            "type",
            "wrappers",
        )
    ),
    *(
        f"google.type.{name}_pb2"
        for name in (
            "calendar_period",
            "color",
            "date",
            "datetime",
            "dayofweek",
            "expr",
            "fraction",
            "latlng",
            "money",
            "month",
            "postal_address",
            "quaternion",
            "timeofday",
        )
    ),
    "confluent_kafka.schema_registry.confluent.meta_pb2",
    "confluent_kafka.schema_registry.confluent.type.decimal_pb2",
)


@functools.cache
def _well_known_files() -> dict[str, bytes]:
    """The serialized well-known files by name, loaded once per process."""
    files: dict[str, bytes] = {}
    for module_name in _WELL_KNOWN_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        files[module.DESCRIPTOR.name] = module.DESCRIPTOR.serialized_pb
    return files


def _pool_file_name(file: FileProto, dependencies: dict[str, FileProto]) -> str:
    """The name `file` is built under: its own, unless a file it imports is loaded by it."""
    if file.name not in dependencies and file.name not in _imported_names(file, dependencies):
        return str(file.name)
    digest = hashlib.sha256(file.SerializeToString(deterministic=True)).hexdigest()[:16]
    return f"millpond-{digest}.proto"


def _imported_names(file: FileProto, dependencies: dict[str, FileProto]) -> set[str]:
    names: set[str] = set()
    pending = list(file.dependency)
    well_known = _well_known_files()
    while pending:
        name = pending.pop()
        if name in names:
            continue
        names.add(name)
        dependency = dependencies.get(name)
        if dependency is not None:
            pending.extend(dependency.dependency)
        elif name in well_known:
            parsed = descriptor_pb2.FileDescriptorProto()
            parsed.ParseFromString(well_known[name])
            pending.extend(parsed.dependency)
    return names


def _build_pool(file: FileProto, dependencies: dict[str, FileProto]) -> Any:
    """A fresh pool holding `file` and what it imports; InvalidSchemaError when it does not
    build (an unknown type, a duplicate field number, a missing import...)."""
    pool = descriptor_pool.DescriptorPool()
    well_known = _well_known_files()
    added: set[str] = set()

    def add_imports(importer: FileProto, chain: tuple[str, ...]) -> None:
        for name in importer.dependency:
            if name in added:
                continue
            if name in chain:
                raise InvalidSchemaError(f"import cycle: {' -> '.join((*chain, name))}")
            dependency = dependencies.get(name)
            if dependency is None and name in well_known:
                dependency = descriptor_pb2.FileDescriptorProto()
                dependency.ParseFromString(well_known[name])
            if dependency is None:
                raise InvalidSchemaError(
                    f"import '{name}' is neither a schema reference nor a well-known file"
                )
            add_imports(dependency, (*chain, name))
            add(dependency, name)

    def add(added_file: FileProto, name: str) -> None:
        try:
            pool.AddSerializedFile(added_file.SerializeToString())
        except TypeError as e:
            reason = str(e).removeprefix("Couldn't build proto file into descriptor pool: ")
            raise InvalidSchemaError(f"invalid schema ({name}): {reason}") from e
        added.add(name)

    add_imports(file, (file.name,))
    main_name = _pool_file_name(file, dependencies)
    if main_name != file.name:
        renamed = descriptor_pb2.FileDescriptorProto()
        renamed.CopyFrom(file)
        renamed.name = main_name
        file = renamed
    add(file, main_name)
    return pool


# --- decoding -------------------------------------------------------------------------------


def _read_message_indexes(payload: bytes) -> tuple[tuple[int, ...], int]:
    """The message-index path at the start of `payload` and the offset of the message."""
    count, offset = _read_zigzag(payload, 0)
    if count < 0:
        raise PayloadError(f"negative message-index count {count}")
    if count == 0:
        return (0,), offset
    indexes: list[int] = []
    for _ in range(count):
        index, offset = _read_zigzag(payload, offset)
        if index < 0:
            raise PayloadError(f"negative message index {index}")
        indexes.append(index)
    return tuple(indexes), offset


def _read_zigzag(data: bytes, offset: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if offset >= len(data):
            raise PayloadError("truncated varint in the message-index array")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), offset
        shift += 7
        if shift >= 64:
            raise PayloadError("varint longer than 10 bytes in the message-index array")


def _message_name_at(file: FileProto, indexes: tuple[int, ...]) -> str:
    messages = file.message_type
    names: list[str] = [file.package] if file.package else []
    for depth, index in enumerate(indexes):
        if index >= len(messages):
            where = "at the top level" if depth == 0 else f"nested in {'.'.join(names)}"
            raise PayloadError(
                f"message index {index} out of range: the schema has {len(messages)} "
                f"message(s) {where}"
            )
        message = messages[index]
        names.append(message.name)
        messages = message.nested_type
    return ".".join(names)


# --- the canonical text ---------------------------------------------------------------------


def _render_file(file: FileProto) -> str:
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
    scalar = _SCALAR_NAMES.get(field.type)
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


# --- compatibility --------------------------------------------------------------------------


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

    for dependency in schema._dependencies.values():
        collect(dependency, False)
    collect(schema._normalized, True)
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
    writer_file = writer._normalized
    reader_file = reader._normalized
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
    scalar = _SCALAR_NAMES.get(field.type)
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
