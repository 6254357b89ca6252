"""Whatever a client sends, parsing a schema raises only InvalidSchemaError and decoding a
payload only PayloadError: the registry answers 42201 and the produce path INVALID_RECORD,
never a 500 or a dead connection."""

from __future__ import annotations

import base64
import contextlib
import json

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from millpond.registry.formats import parse_schema
from millpond.registry.schema import InvalidSchemaError
from millpond.registry.schema import PayloadError
from millpond.registry.schema import SchemaType

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "name",
                    "fields",
                    "items",
                    "values",
                    "symbols",
                    "properties",
                    "required",
                    "default",
                    "$ref",
                    "enum",
                    "size",
                    "additionalProperties",
                    "anyOf",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)
texts = st.text(max_size=200) | json_values.map(json.dumps)
protobuf_texts = st.text(
    alphabet="message{}=;0123456789 \nintstrgoptialrepeated.", max_size=120
) | st.binary(max_size=80).map(lambda raw: base64.b64encode(raw).decode())


@settings(max_examples=300, deadline=None)
@given(schema_type=st.sampled_from([SchemaType.AVRO, SchemaType.JSON]), text=texts)
def test_any_text_parses_or_is_an_invalid_schema(schema_type: SchemaType, text: str) -> None:
    with contextlib.suppress(InvalidSchemaError):
        parse_schema(schema_type, text)


@settings(max_examples=300, deadline=None)
@given(text=protobuf_texts)
def test_any_protobuf_text_parses_or_is_an_invalid_schema(text: str) -> None:
    with contextlib.suppress(InvalidSchemaError):
        parse_schema(SchemaType.PROTOBUF, text)


AVRO = json.dumps(
    {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "kind", "type": {"type": "enum", "name": "K", "symbols": ["A", "B"]}},
            {"name": "note", "type": ["null", "string"]},
            {"name": "attrs", "type": {"type": "map", "values": "double"}},
        ],
    }
)
JSON = json.dumps(
    {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "tags": {"type": "array"}},
        "required": ["id"],
    }
)
PROTO = """syntax = "proto3";
message R { int64 id = 1; repeated string tags = 2; map<string, double> attrs = 3;
  message Inner { bytes blob = 1; } Inner inner = 4; }
"""


@settings(max_examples=500, deadline=None)
@given(
    schema=st.sampled_from(
        [(SchemaType.AVRO, AVRO), (SchemaType.JSON, JSON), (SchemaType.PROTOBUF, PROTO)]
    ),
    payload=st.binary(max_size=64),
)
def test_any_payload_decodes_or_is_a_payload_error(
    schema: tuple[SchemaType, str], payload: bytes
) -> None:
    parsed = parse_schema(*schema)
    with contextlib.suppress(PayloadError):
        parsed.decode(payload)
