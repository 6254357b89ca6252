"""The types every schema format shares.

A schema arrives as text (plus its type and references), is parsed by its format module into a
ParsedSchema, and from then on is only compared, checked and used to decode payloads. The
registry stores `canonical`: two registrations whose canonical forms (and references) are equal
are the same schema and get the same id, so whitespace or key order in the submitted text never
mints a new id.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class SchemaType(StrEnum):
    AVRO = "AVRO"
    JSON = "JSON"
    PROTOBUF = "PROTOBUF"


@dataclass(frozen=True, slots=True)
class Reference:
    """A schema's use of another registered schema: `name` is how the schema refers to it (an
    Avro full name, a JSON Schema `$ref` URL, a .proto import path)."""

    name: str
    subject: str
    version: int


class InvalidSchemaError(ValueError):
    """The schema text does not parse, or is not a valid schema of its type; the message says
    where and why (Confluent's error 42201)."""


class PayloadError(ValueError):
    """A record's payload does not decode with its schema; the message says why."""


class ParsedSchema(Protocol):
    """A schema parsed by its format module."""

    @property
    def schema_type(self) -> SchemaType: ...

    @property
    def canonical(self) -> str:
        """The normalised text: what is stored, returned and compared for identity."""
        ...

    def serialized(self) -> str:
        """The text for `?format=serialized` (Protobuf: a base64 FileDescriptorProto); other
        formats return `canonical`."""
        ...

    def decode(self, payload: bytes) -> None:
        """Check that `payload` (what follows the 5-byte wire-format header) decodes with this
        schema; raises PayloadError naming what is wrong."""
        ...
