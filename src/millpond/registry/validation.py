"""Produce-time schema validation (Confluent's `confluent.value.schema.validation` and
`confluent.key.schema.validation` topic configs).

A validated key or value must be in the registry's wire format, and its schema must be one
registered under the topic's subject (TopicNameStrategy: `<topic>-value`, `<topic>-key`):

    byte 0      magic, always 0
    bytes 1..4  schema id, int32 big-endian
    bytes 5..   the payload: Avro binary; JSON text; Protobuf message indexes then the message

and the payload must decode with that schema. A null key or value (a tombstone) carries no
payload and passes. The produce handler calls in only for topics with a flag set, so other
topics pay nothing.
"""

from __future__ import annotations

import logging
import struct

from millpond.protocol.record_codec import iter_records
from millpond.protocol.records import BatchHeader
from millpond.registry.schema import PayloadError
from millpond.registry.service import RegistryError
from millpond.registry.service import SchemaRegistry

logger = logging.getLogger(__name__)

MAGIC = 0
HEADER = struct.Struct(">bI")


class SchemaValidator:
    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry

    def check_batch(
        self,
        topic: str,
        buffer: bytes | bytearray | memoryview,
        batch: BatchHeader,
        *,
        keys: bool,
        values: bool,
    ) -> str | None:
        """Why the batch must be refused, or None; raises InvalidRecordError if its records do
        not decode at all."""
        key_ids = self._registered_ids(f"{topic}-key") if keys else set()
        value_ids = self._registered_ids(f"{topic}-value") if values else set()
        for index, record in enumerate(iter_records(buffer, batch)):
            checks = (
                (keys, "key", record.key, key_ids),
                (values, "value", record.value, value_ids),
            )
            for wanted, part, payload, ids in checks:
                if not wanted or payload is None:
                    continue
                problem = self._check(topic, part, payload, ids)
                if problem is not None:
                    return f"record {index} of the batch: {problem}"
        return None

    def _registered_ids(self, subject: str) -> set[int]:
        return {entry.id for entry in self.registry.state.versions(subject)}

    def _check(self, topic: str, part: str, payload: bytes, ids: set[int]) -> str | None:
        subject = f"{topic}-{part}"
        if len(payload) < HEADER.size or payload[0] != MAGIC:
            return (
                f"the {part} is not in the schema registry's wire format (magic byte 0 and a "
                "4-byte schema id) required by "
                f"confluent.{part}.schema.validation=true"
            )
        _magic, schema_id = HEADER.unpack_from(payload)
        if schema_id not in ids:
            return f"the {part}'s schema id {schema_id} is not registered under subject {subject!r}"
        try:
            self.registry.parsed(schema_id).decode(payload[HEADER.size :])
        except PayloadError as error:
            return f"the {part} does not decode with schema {schema_id}: {error}"
        except RegistryError as error:
            return f"the {part}'s schema {schema_id} cannot be used: {error.message}"
        except Exception:  # a decoder bug must refuse one batch, not fail the whole request
            logger.exception("decoding a %s with schema %d failed unexpectedly", part, schema_id)
            return f"the {part} could not be checked against schema {schema_id}"
        return None
