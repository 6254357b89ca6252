"""One module per schema format; `parse_schema` picks the module by type.

Each module's libraries are imported only when a schema of its type is first parsed, so a
broker that never sees a Protobuf schema never loads protobuf.
"""

from __future__ import annotations

from collections.abc import Sequence

from millpond.registry.schema import ParsedSchema
from millpond.registry.schema import SchemaType


def parse_schema(
    schema_type: SchemaType, text: str, references: Sequence[tuple[str, ParsedSchema]] = ()
) -> ParsedSchema:
    """Parse `text` as a schema of `schema_type` that may use `references` ((name, schema)
    pairs, dependencies first); raises InvalidSchemaError."""
    if schema_type is SchemaType.AVRO:
        from millpond.registry.formats import avro

        return avro.parse(text, references)
    if schema_type is SchemaType.JSON:
        from millpond.registry.formats import json_schema

        return json_schema.parse(text, references)
    from millpond.registry.formats import protobuf

    return protobuf.parse(text, references)
