"""Compatibility levels as one pure function (karapace `core/compatibility/`).

Each format module answers one question, `check(reader, writer)`: can a consumer using `reader`
read every record written with `writer`? The seven levels are that question asked in a direction
against a set of registered versions:

    level                 new schema is checked as   against
    BACKWARD              reader (new reads old)     the latest version
    BACKWARD_TRANSITIVE   reader                     every version
    FORWARD               writer (old reads new)     the latest version
    FORWARD_TRANSITIVE    writer                     every version
    FULL                  reader and writer          the latest version
    FULL_TRANSITIVE       reader and writer          every version
    NONE                  nothing is checked

A schema of another type than a version it is checked against is incompatible with it.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from millpond.registry.schema import ParsedSchema
from millpond.registry.schema import SchemaType


class CompatibilityLevel(StrEnum):
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @property
    def transitive(self) -> bool:
        return self.endswith("_TRANSITIVE")

    @property
    def new_reads_old(self) -> bool:
        return self.startswith(("BACKWARD", "FULL"))

    @property
    def old_reads_new(self) -> bool:
        return self.startswith(("FORWARD", "FULL"))


@dataclass(frozen=True, slots=True)
class CompatibilityResult:
    messages: tuple[str, ...]  # empty when compatible; each says what broke and where

    @property
    def is_compatible(self) -> bool:
        return not self.messages


ReaderWriterCheck = Callable[[Any, Any], list[str]]


def _format_check(schema_type: SchemaType) -> ReaderWriterCheck:
    # Imported here so each format's library loads only when its schemas are checked.
    if schema_type is SchemaType.AVRO:
        from millpond.registry.formats import avro

        return avro.check
    if schema_type is SchemaType.JSON:
        from millpond.registry.formats import json_schema

        return json_schema.check
    from millpond.registry.formats import protobuf

    return protobuf.check


def check_compatibility(
    new: ParsedSchema,
    existing: Sequence[tuple[int, ParsedSchema]],
    level: CompatibilityLevel,
) -> CompatibilityResult:
    """Whether `new` may be registered after `existing` ((version, schema) pairs, oldest first)
    under `level`; the messages name the version and what broke."""
    if level is CompatibilityLevel.NONE or not existing:
        return CompatibilityResult(())
    against = existing if level.transitive else existing[-1:]
    messages: list[str] = []
    for version, old in reversed(against):
        if old.schema_type is not new.schema_type:
            messages.append(
                f"version {version} is {old.schema_type}; the new schema is {new.schema_type}"
            )
            continue
        check = _format_check(new.schema_type)
        if level.new_reads_old:
            messages.extend(
                f"new schema reading data written with version {version}: {message}"
                for message in check(new, old)
            )
        if level.old_reads_new:
            messages.extend(
                f"version {version} reading data written with the new schema: {message}"
                for message in check(old, new)
            )
    return CompatibilityResult(tuple(messages))
