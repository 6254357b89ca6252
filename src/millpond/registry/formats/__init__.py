"""One module per schema format; `parse_schema` picks the module by type.

Each module's libraries are imported only when a schema of its type is first parsed, so a
broker that never sees a Protobuf schema never loads protobuf.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Sequence

from millpond.registry.schema import InvalidSchemaError
from millpond.registry.schema import ParsedSchema
from millpond.registry.schema import SchemaType

logger = logging.getLogger(__name__)


def parse_schema(
    schema_type: SchemaType, text: str, references: Sequence[tuple[str, ParsedSchema]] = ()
) -> ParsedSchema:
    """Parse `text` as a schema of `schema_type` that may use `references` ((name, schema)
    pairs, dependencies first); raises InvalidSchemaError, whatever the text."""
    try:
        return _parse(schema_type, text, references)
    except InvalidSchemaError:
        raise
    except (ValueError, TypeError, LookupError, AttributeError, RecursionError) as error:
        # A format library tripping over hostile input is still the client's bad schema,
        # answered 42201; logged, because the format module should have said why.
        logger.warning("unexpected error parsing a %s schema", schema_type, exc_info=True)
        raise InvalidSchemaError(f"{type(error).__name__}: {error}") from error


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise InvalidSchemaError(f"the number {literal[:40]} is too large to store")
    return value


def _parse(
    schema_type: SchemaType, text: str, references: Sequence[tuple[str, ParsedSchema]]
) -> ParsedSchema:
    if schema_type is not SchemaType.PROTOBUF:
        # json.loads reads 1e400 as infinity, which no JSON text can hold: the normalised
        # schema would not read back after a restart. (Text that is not JSON at all, such as
        # a bare Avro type name, is left to the format module.)
        with contextlib.suppress(json.JSONDecodeError, RecursionError):
            json.loads(text, parse_float=_finite)
    if schema_type is SchemaType.AVRO:
        from millpond.registry.formats import avro

        return avro.parse(text, references)
    if schema_type is SchemaType.JSON:
        from millpond.registry.formats import json_schema

        return json_schema.parse(text, references)
    from millpond.registry.formats import protobuf

    return protobuf.parse(text, references)
