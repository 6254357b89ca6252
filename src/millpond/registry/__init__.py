"""Millpond's schema registry: Confluent Schema Registry's REST API on the HTTP listener.

- `schema.py`: the types every format shares (SchemaType, Reference, ParsedSchema, errors).
- `formats/`: one module per format (avro, json_schema, protobuf): parse and normalise a schema,
  check a reader against a writer, decode a payload. Pure; no HTTP, no Kafka.
- `compatibility.py`: the seven compatibility levels as one pure function over those checks.
- `store.py`: the registry's state, a view rebuilt by replaying the compacted topic `_schemas`.
- `service.py`: the operations (register, look up, delete, configure), each appended durably.
- `routes.py`: the REST routes and Confluent's error codes.
- `validation.py`: produce-time checks for topics with `confluent.value.schema.validation`.
"""
