"""Protobuf schemas: the parsed schema object, its validation and payload decoding.

A Protobuf schema reaches the registry in one of two shapes, and both become one
`FileDescriptorProto`:

- `.proto` text, as people and most tools register it; converted into a descriptor by
  `protobuf_text`;
- a base64-encoded serialized `FileDescriptorProto`, as confluent-kafka's Python
  `ProtobufSerializer` registers it (and as `?format=serialized` hands it back).

Every descriptor is validated by building it in a fresh `DescriptorPool` together with the files
it imports: the referenced schemas, each loaded under its reference name (the import path), and
the well-known files Confluent's clients never send as references (`google/protobuf/`,
`google/type/`, `confluent/`). The canonical text is rendered (by `protobuf_text`) from the
pool's copy of the descriptor, so the same schema as text or as a descriptor has one canonical
form.

A record's payload (after the 5-byte wire-format header) starts with the message-index array
that says which message of the file it holds:

    +---------------------+--------------------+-----+------------------------+
    | count N (zigzag     | index 0 (zigzag    | ... | the serialized message |
    | varint)             | varint)            |     |                        |
    +---------------------+--------------------+-----+------------------------+

index 0 picks a top-level message, each further index a nested message of the previous one; the
single byte 0x00 (N = 0) is shorthand for [0], the file's first message.

`check`, re-exported here, follows Confluent's compatibility rules; it lives in
`protobuf_compatibility`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib
from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

from millpond.registry.formats.protobuf_compatibility import check
from millpond.registry.formats.protobuf_text import TEXT_FILE_NAME
from millpond.registry.formats.protobuf_text import FileProto
from millpond.registry.formats.protobuf_text import render_file
from millpond.registry.formats.protobuf_text import text_to_descriptor
from millpond.registry.schema import InvalidSchemaError
from millpond.registry.schema import ParsedSchema
from millpond.registry.schema import PayloadError
from millpond.registry.schema import SchemaType

# `check` is part of this module's interface (compatibility.py calls `protobuf.check`).
__all__ = ["ProtobufSchema", "check", "parse"]


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
        self._canonical = render_file(normalized)
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
    def normalized(self) -> FileProto:
        """The file descriptor as the pool resolved it, every type name qualified (callers must
        not mutate it)."""
        return self._normalized

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
    if file is not None and file.syntax not in ("", "proto2", "proto3"):
        raise InvalidSchemaError(f"syntax {file.syntax!r} is not supported (proto2 or proto3)")
    from_text = file is None
    if file is None:
        file = text_to_descriptor(text)
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
        if not (file.name or file.message_type or file.enum_type):
            return None
    except (DecodeError, UnicodeDecodeError):  # descriptor.proto is proto2: strings unchecked
        return None
    if not file.name:
        file.name = TEXT_FILE_NAME
    return file


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
