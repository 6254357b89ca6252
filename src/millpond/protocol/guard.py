"""A structural pre-check of request bodies, run before kio decodes them.

kio's native decoder reserves memory for an array's declared length before reading its
elements, so a 23-byte request claiming 2^32 - 2 topics made the Rust side abort the whole
process, beyond any `except`. This walk reads only lengths and counts, in Python, following
kio's own schema for the (api, version), and refuses what cannot fit:

    array     count <= bytes left (each element takes at least one byte; fixed-size elements
              their full size); null only where the schema allows it
    string    length <= bytes left; null only where allowed
    bytes     (and records) likewise
    flexible  compact forms (unsigned varint N + 1, 0 = null) and a tagged-field section after
              every struct, skipped by its sizes

It raises ProtocolError, which closes the connection, as any malformed request does.
"""

from __future__ import annotations

import struct
from dataclasses import fields
from functools import cache

from kio.serial._introspect import EntityField
from kio.serial._introspect import EntityTupleField
from kio.serial._introspect import PrimitiveTupleField
from kio.serial._introspect import classify_field
from kio.serial._introspect import get_field_tag
from kio.serial._introspect import is_optional
from kio.static.protocol import Entity

from millpond.protocol.varint import read_uvarint


class GuardError(ValueError):
    """The request's lengths or counts cannot be right."""


_FIXED_SIZES = {
    "bool": 1,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "error_code": 2,
    "int32": 4,
    "uint32": 4,
    "timedelta_i32": 4,
    "int64": 8,
    "uint64": 8,
    "float64": 8,
    "timedelta_i64": 8,
    "datetime_i64": 8,
    "uuid": 16,
}
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")

# A step: (kind, nullable, size, nested plan). For _ARRAY, size is the element's fixed size,
# or 0 for an array of structs (nested = their plan), or -1 for an array of strings/bytes
# (nested = the element's one step); _STRUCT is one inline struct (nested = its plan).
_FIXED, _STRING, _BYTES, _ARRAY, _STRUCT = 0, 1, 2, 3, 4
_Step = tuple[int, bool, int, "tuple[_Step, ...] | None"]


@cache
def _plan(entity: type[Entity]) -> tuple[_Step, ...]:
    steps: list[_Step] = []
    for field in fields(entity):
        if get_field_tag(field) is not None:
            continue  # tagged fields live in the tagged section, skipped by size
        kind = classify_field(field)
        nullable = is_optional(field)
        if isinstance(kind, EntityTupleField):
            steps.append((_ARRAY, nullable, 0, _plan(kind.type_)))
        elif isinstance(kind, EntityField):
            steps.append((_STRUCT, nullable, 0, _plan(kind.type_)))
        else:
            kafka_type = field.metadata["kafka_type"]
            size = _FIXED_SIZES.get(kafka_type)
            if isinstance(kind, PrimitiveTupleField):
                if size is not None:
                    steps.append((_ARRAY, nullable, size, None))
                else:
                    steps.append((_ARRAY, nullable, -1, (_variable_step(kafka_type, False),)))
            elif size is not None:
                steps.append((_FIXED, False, size, None))
            else:
                steps.append(_variable_step(kafka_type, nullable))
    return tuple(steps)


def _variable_step(kafka_type: str, nullable: bool) -> _Step:
    if kafka_type == "string":
        return (_STRING, nullable, 0, None)
    if kafka_type in ("bytes", "records"):
        return (_BYTES, nullable, 0, None)
    raise TypeError(f"unknown kafka_type {kafka_type!r}")  # pragma: no cover


def check_request(
    entity: type[Entity], buffer: bytes | bytearray | memoryview, offset: int
) -> None:
    """Raise GuardError unless every length and count in the body at `offset` can fit."""
    try:
        _walk(_plan(entity), entity.__flexible__, buffer, offset, len(buffer))
    except GuardError:
        raise
    except (IndexError, ValueError, struct.error) as error:
        raise GuardError(f"request ends inside a length or count: {error}") from error


def _length(
    flexible: bool, wide: bool, buffer: bytes | bytearray | memoryview, position: int
) -> tuple[int, int]:
    """A length or count, -1 for null: compact in flexible versions, else int32 (arrays,
    bytes) or int16 (strings)."""
    if flexible:
        raw, position = read_uvarint(buffer, position)
        return raw - 1, position
    if wide:
        value: int = _INT32.unpack_from(buffer, position)[0]
        return value, position + 4
    short: int = _INT16.unpack_from(buffer, position)[0]
    return short, position + 2


def _skip_variable(
    step: _Step, flexible: bool, buffer: bytes | bytearray | memoryview, position: int
) -> int:
    kind, nullable = step[0], step[1]
    length, position = _length(flexible, kind == _BYTES, buffer, position)
    if length < 0:
        if length != -1 or not nullable:
            raise GuardError("a null or negative length where the schema forbids it")
        return position
    return position + length


def _walk(
    plan: tuple[_Step, ...],
    flexible: bool,
    buffer: bytes | bytearray | memoryview,
    position: int,
    end: int,
) -> int:
    for step in plan:
        kind, nullable, size, nested = step
        if kind == _FIXED:
            position += size
        elif kind in (_STRING, _BYTES):
            position = _skip_variable(step, flexible, buffer, position)
        elif kind == _STRUCT:
            assert nested is not None
            position = _walk(nested, flexible, buffer, position, end)
        else:
            count, position = _length(flexible, True, buffer, position)
            if count < 0:
                if count != -1 or not nullable:
                    raise GuardError("a null or negative array count where the schema forbids it")
                continue
            if count * max(size, 1) > end - position:
                raise GuardError(f"an array of {count} cannot fit in {end - position} bytes")
            if size > 0:
                position += count * size
            elif size == -1:
                assert nested is not None
                for _ in range(count):
                    position = _skip_variable(nested[0], flexible, buffer, position)
            else:
                assert nested is not None
                for _ in range(count):
                    position = _walk(nested, flexible, buffer, position, end)
        if position > end:
            raise GuardError("a field runs past the end of the request")
    if flexible:
        position = _skip_tags(buffer, position, end)
    return position


def _skip_tags(buffer: bytes | bytearray | memoryview, position: int, end: int) -> int:
    count, position = read_uvarint(buffer, position)
    if count > end - position:
        raise GuardError("more tagged fields than bytes")
    for _ in range(count):
        _tag, position = read_uvarint(buffer, position)
        size, position = read_uvarint(buffer, position)
        position += size
        if position > end:
            raise GuardError("a tagged field runs past the end of the request")
    return position
