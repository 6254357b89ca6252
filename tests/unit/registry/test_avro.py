from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import avro.compatibility
import fastavro
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from millpond.registry.compatibility import CompatibilityLevel
from millpond.registry.compatibility import check_compatibility
from millpond.registry.formats.avro import AvroSchema
from millpond.registry.formats.avro import check
from millpond.registry.formats.avro import parse
from millpond.registry.schema import InvalidSchemaError
from millpond.registry.schema import PayloadError
from millpond.registry.schema import SchemaType


def record(fields: list[dict[str, Any]], name: str = "User", **extra: Any) -> str:
    return json.dumps(
        {"type": "record", "name": name, "namespace": "com.acme", "fields": fields, **extra}
    )


def encode(schema: AvroSchema, datum: object) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(json.loads(schema.canonical)), datum)
    return buffer.getvalue()


def single(messages: list[str]) -> str:
    assert len(messages) == 1, messages
    return messages[0]


# Parsing


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"type": "record", "name": "User", "fields": [', "Invalid JSON"),
        ("", "Invalid JSON"),
        ('{"type": "double", "default": NaN}', "NaN is not a JSON value"),
        ("5", "Could not make an Avro Schema object from 5"),
        ('"strng"', "unknown type 'strng'"),
        ('{"type": "strng"}', "unknown type 'strng'"),
        (record([{"name": "a", "type": "foo"}]), 'Type property "foo" not a valid Avro schema'),
        (
            record([{"name": "a", "type": "int"}, {"name": "a", "type": "long"}]),
            "Field name a already in use",
        ),
        (record([{"name": "a", "type": "int", "default": "x"}]), "Invalid default for field 'a'"),
        (
            record([{"name": "a", "type": ["string", "null"], "default": None}]),
            "null is not a valid string (a union's default must match its first branch)",
        ),
        (
            '{"type": "enum", "name": "Suit", "symbols": ["HEARTS"], "default": "CLUBS"}',
            "Enum default 'CLUBS' is not a valid member",
        ),
        ('{"type": "enum", "name": "Suit", "symbols": "AB"}', "needs a JSON array of symbols"),
        ('{"type": "enum", "name": "Suit", "symbols": ["A", "A"]}', "Duplicate symbol"),
        ('{"type": "fixed", "name": "Hash", "size": "16"}', "positive integer for size"),
        ('["string", "string"]', "string type already in Union"),
        ('{"type": "record", "name": "1User", "fields": []}', "1User"),
        ('{"type": "array"}', "Items schema (None) not a valid Avro schema"),
    ],
)
def test_parse_rejects_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidSchemaError) as raised:
        parse(text)
    assert reason in str(raised.value)


def test_parse_bounds_nesting() -> None:
    def nested(depth: int) -> str:
        return '{"type": "array", "items": ' * depth + '"int"' + "}" * depth

    parse(nested(60))
    with pytest.raises(InvalidSchemaError) as raised:
        parse(nested(65))
    assert "types nest deeper than 64" in str(raised.value)
    with pytest.raises(InvalidSchemaError) as raised:
        parse('{"type": "string", "x": ' + "[" * 5000 + "]" * 5000 + "}")
    assert "nested too deeply" in str(raised.value)


def test_parse_rejects_lone_surrogates() -> None:
    with pytest.raises(InvalidSchemaError) as raised:
        parse('{"type": "string", "doc": "\\ud800"}')
    assert "surrogates not allowed" in str(raised.value)


@pytest.mark.parametrize(
    ("field_type", "default"),
    [
        ("null", None),
        ("boolean", False),
        ("int", -(2**31)),
        ("long", 2**63 - 1),
        ("float", 1),
        ("double", 1.5),
        ("string", ""),
        ("bytes", "\u00ff\u0000"),
        ({"type": "fixed", "name": "Two", "size": 2}, "ab"),
        ({"type": "enum", "name": "Suit", "symbols": ["HEARTS", "CLUBS"]}, "CLUBS"),
        ({"type": "array", "items": "int"}, [1, 2]),
        ({"type": "map", "values": "string"}, {"k": "v"}),
        (["null", "string"], None),
        (["string", "null"], "x"),
        ({"type": "int", "logicalType": "date"}, 0),
        (
            {
                "type": "record",
                "name": "Inner",
                "fields": [
                    {"name": "x", "type": "int"},
                    {"name": "y", "type": "int", "default": 7},
                ],
            },
            {"x": 1},  # y may be left out: it has its own default
        ),
    ],
)
def test_parse_accepts_defaults_of_the_field_type(field_type: object, default: object) -> None:
    parse(record([{"name": "f", "type": field_type, "default": default}]))


@pytest.mark.parametrize(
    ("field_type", "default"),
    [
        ("null", 0),
        ("boolean", 1),
        ("int", True),
        ("int", 2**31),
        ("int", 1.0),
        ("long", 2**63),
        ("double", "1.5"),
        ("string", None),
        ("bytes", "\u0100"),
        ({"type": "fixed", "name": "Two", "size": 2}, "abc"),
        ({"type": "enum", "name": "Suit", "symbols": ["HEARTS"]}, "CLUBS"),
        ({"type": "array", "items": "int"}, ["1"]),
        ({"type": "map", "values": "string"}, {"k": 1}),
        (["null", "string"], "x"),
        ({"type": "record", "name": "Inner", "fields": [{"name": "x", "type": "int"}]}, {}),
    ],
)
def test_parse_rejects_defaults_of_another_type(field_type: object, default: object) -> None:
    with pytest.raises(InvalidSchemaError) as raised:
        parse(record([{"name": "f", "type": field_type, "default": default}]))
    assert "Invalid default for field 'f' of record 'com.acme.User'" in str(raised.value)


def test_nested_record_defaults_are_checked() -> None:
    inner = {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": "int"}]}
    inner["fields"][0]["default"] = "one"
    with pytest.raises(InvalidSchemaError) as raised:
        parse(record([{"name": "wrapper", "type": {"type": "array", "items": inner}}]))
    assert "field 'x' of record 'com.acme.Inner'" in str(raised.value)


def test_parsed_schema_meets_the_protocol() -> None:
    schema = parse(record([{"name": "id", "type": "int"}]))
    assert schema.schema_type is SchemaType.AVRO
    assert schema.serialized() == schema.canonical


# Canonical form


def test_canonical_ignores_whitespace_and_key_order() -> None:
    compact = parse(
        '{"type":"record","name":"User","namespace":"com.acme","doc":"a user","fields":'
        '[{"name":"id","type":"int","default":1,"doc":"the id"},'
        '{"name":"home","type":{"type":"record","name":"Home","fields":'
        '[{"name":"p","type":"int"}]},"default":{"p":1}}]}'
    )
    spaced = parse(
        """
        {
          "fields": [
            {"doc": "the id", "default": 1, "type": "int", "name": "id"},
            {"default": {"p": 1},
             "type": {"fields": [{"type": {"type": "int"}, "name": "p"}],
                      "name": "Home", "type": "record"},
             "name": "home"}
          ],
          "namespace": "com.acme", "doc": "a user",
          "name": "User", "type": "record"
        }
        """
    )
    assert spaced.canonical == compact.canonical
    assert spaced == compact
    assert compact.canonical.startswith('{"type":"record","name":"User","namespace":"com.acme"')
    assert " " not in compact.canonical.replace("a user", "").replace("the id", "")


def test_canonical_keys_of_defaults_and_properties_are_sorted() -> None:
    first = parse(
        record(
            [{"name": "m", "type": {"type": "map", "values": "int"}, "default": {"b": 1, "a": 2}}],
            custom={"z": 1, "y": 2},
        )
    )
    second = parse(
        record(
            [{"name": "m", "type": {"type": "map", "values": "int"}, "default": {"a": 2, "b": 1}}],
            custom={"y": 2, "z": 1},
        )
    )
    assert first.canonical == second.canonical


@pytest.mark.parametrize("text", ["string", '"string"', ' "string" ', '{"type": "string"}'])
def test_canonical_of_a_primitive_is_its_quoted_name(text: str) -> None:
    assert parse(text).canonical == '"string"'


BASE_FIELDS: list[dict[str, Any]] = [
    {"name": "id", "type": "int", "default": 1, "doc": "the id"},
    {"name": "email", "type": "string"},
]


@pytest.mark.parametrize(
    "changed",
    [
        record([{**BASE_FIELDS[0], "default": 2}, BASE_FIELDS[1]]),
        record([{**BASE_FIELDS[0], "doc": "the key"}, BASE_FIELDS[1]]),
        record([BASE_FIELDS[0], {**BASE_FIELDS[1], "aliases": ["mail"]}]),
        record([BASE_FIELDS[0], {**BASE_FIELDS[1], "type": {"type": "string", "x": 1}}]),
        record([BASE_FIELDS[1], BASE_FIELDS[0]]),  # field order is the encoding order
        record(BASE_FIELDS, doc="users"),
        record(BASE_FIELDS, name="Person"),
    ],
)
def test_canonical_keeps_semantic_differences(changed: str) -> None:
    assert parse(changed).canonical != parse(record(BASE_FIELDS)).canonical


def test_canonical_keeps_logical_types_and_enum_symbol_order() -> None:
    assert parse('{"type": "int", "logicalType": "date"}').canonical == (
        '{"type":"int","logicalType":"date"}'
    )
    hearts_first = parse('{"type": "enum", "name": "S", "symbols": ["HEARTS", "CLUBS"]}')
    clubs_first = parse('{"type": "enum", "name": "S", "symbols": ["CLUBS", "HEARTS"]}')
    assert hearts_first.canonical != clubs_first.canonical


SAMPLE_SCHEMAS = [
    record(BASE_FIELDS),
    '["null", "string", {"type": "array", "items": {"type": "map", "values": "long"}}]',
    '{"type": "fixed", "name": "Hash", "size": 16, "aliases": ["Digest"]}',
    '{"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}',
    record([{"name": "next", "type": ["null", "User"], "default": None}]),
]


@pytest.mark.parametrize("text", SAMPLE_SCHEMAS)
def test_canonical_parses_to_itself(text: str) -> None:
    canonical = parse(text).canonical
    assert parse(canonical).canonical == canonical


# References

ADDRESS = json.dumps(
    {
        "type": "record",
        "name": "Address",
        "namespace": "com.acme.common",
        "fields": [{"name": "street", "type": "string"}],
    }
)
USER_WITH_ADDRESS = record(
    [{"name": "id", "type": "int"}, {"name": "home", "type": "com.acme.common.Address"}]
)


def test_a_record_may_use_a_named_type_from_a_reference() -> None:
    address = parse(ADDRESS)
    user = parse(USER_WITH_ADDRESS, [("com.acme.common.Address", address)])
    assert set(user.named_types) == {"com.acme.common.Address", "com.acme.User"}
    user.decode(encode_with_address(user, {"id": 1, "home": {"street": "Main"}}))
    assert check(user, user) == []


def encode_with_address(schema: AvroSchema, datum: object) -> bytes:
    named: dict[str, Any] = {}
    fastavro.parse_schema(json.loads(ADDRESS), named_schemas=named)
    parsed = fastavro.parse_schema(json.loads(schema.canonical), named_schemas=named)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, datum)
    return buffer.getvalue()


def test_a_named_type_without_its_reference_is_unknown() -> None:
    with pytest.raises(InvalidSchemaError) as raised:
        parse(USER_WITH_ADDRESS)
    assert "com.acme.common.Address" in str(raised.value)


def test_references_reach_through_referenced_schemas() -> None:
    address = parse(ADDRESS)
    user = parse(USER_WITH_ADDRESS, [("com.acme.common.Address", address)])
    order = parse(
        record(
            [{"name": "buyer", "type": "User"}, {"name": "to", "type": "com.acme.common.Address"}],
            name="Order",
        ),
        [("com.acme.common.Address", address), ("com.acme.User", user)],
    )
    assert "com.acme.common.Address" in order.named_types
    order.decode(b"\x02\x02a\x02b")


def test_a_schema_may_be_just_a_referenced_name() -> None:
    address = parse(ADDRESS)
    alias = parse('"com.acme.common.Address"', [("com.acme.common.Address", address)])
    alias.decode(b"\x04ok")
    assert check(alias, address) == []


def test_a_schema_may_not_redefine_a_referenced_type() -> None:
    with pytest.raises(InvalidSchemaError) as raised:
        parse(ADDRESS, [("com.acme.common.Address", parse(ADDRESS))])
    assert "already in use" in str(raised.value)


def test_a_reference_must_be_an_avro_schema() -> None:
    class JsonSchemaStub:
        schema_type = SchemaType.JSON
        canonical = "{}"

        def serialized(self) -> str:
            return "{}"

        def decode(self, payload: bytes) -> None:
            return None

    with pytest.raises(InvalidSchemaError) as raised:
        parse(USER_WITH_ADDRESS, [("address.json", JsonSchemaStub())])
    assert "Reference 'address.json' is a JSON schema" in str(raised.value)


def test_check_compares_referenced_types() -> None:
    address_v1 = parse(ADDRESS)
    address_v2 = parse(
        json.dumps(
            {
                "type": "record",
                "name": "Address",
                "namespace": "com.acme.common",
                "fields": [
                    {"name": "street", "type": "string"},
                    {"name": "city", "type": "string"},
                ],
            }
        )
    )
    user_v1 = parse(USER_WITH_ADDRESS, [("com.acme.common.Address", address_v1)])
    user_v2 = parse(USER_WITH_ADDRESS, [("com.acme.common.Address", address_v2)])
    assert user_v1.canonical == user_v2.canonical  # the difference is in the reference
    assert single(check(user_v2, user_v1)) == (
        "READER_FIELD_MISSING_DEFAULT_VALUE at '/fields/1/type/fields/1': reader field "
        "'home.city' of record 'com.acme.common.Address' has no default value and is "
        "missing from the writer"
    )
    assert check(user_v1, user_v2) == []


# Compatibility levels, end to end

LEVELS = list(CompatibilityLevel)


def user(*fields: dict[str, Any]) -> AvroSchema:
    return parse(record(list(fields)))


def suit(*symbols: str, default: str | None = None) -> AvroSchema:
    enum: dict[str, Any] = {"type": "enum", "name": "Suit", "symbols": list(symbols)}
    if default is not None:
        enum["default"] = default
    return parse(record([{"name": "suit", "type": enum}]))


ID = {"name": "id", "type": "int"}
NAME = {"name": "name", "type": "string"}
NAME_WITH_DEFAULT = {"name": "name", "type": "string", "default": ""}

# (case, old, new, new reads old (BACKWARD), old reads new (FORWARD), error types expected).
EVOLUTIONS: list[tuple[str, AvroSchema, AvroSchema, bool, bool, set[str]]] = [
    ("add field with default", user(ID), user(ID, NAME_WITH_DEFAULT), True, True, set()),
    (
        "add field without default",
        user(ID),
        user(ID, NAME),
        False,
        True,
        {"READER_FIELD_MISSING_DEFAULT_VALUE at '/fields/1'"},
    ),
    ("remove field with default", user(ID, NAME_WITH_DEFAULT), user(ID), True, True, set()),
    (
        "remove field without default",
        user(ID, NAME),
        user(ID),
        True,
        False,
        {"READER_FIELD_MISSING_DEFAULT_VALUE at '/fields/1'"},
    ),
    (
        "widen int to long",
        user(ID),
        user({"name": "id", "type": "long"}),
        True,
        False,
        {"TYPE_MISMATCH at '/fields/0/type'"},
    ),
    (
        "rename field without alias",
        user(ID, NAME),
        user(ID, {"name": "full_name", "type": "string"}),
        False,
        False,
        {"READER_FIELD_MISSING_DEFAULT_VALUE at '/fields/1'"},
    ),
    (
        "rename field with alias",
        user(ID, NAME),
        user(ID, {"name": "full_name", "type": "string", "aliases": ["name"]}),
        True,
        False,
        {"READER_FIELD_MISSING_DEFAULT_VALUE at '/fields/1'"},
    ),
    (
        "add enum symbol",
        suit("HEARTS"),
        suit("HEARTS", "CLUBS"),
        True,
        False,
        {"MISSING_ENUM_SYMBOLS at '/fields/0/type/symbols'"},
    ),
    (
        "add enum symbol, enum has a default",
        suit("HEARTS", default="HEARTS"),
        suit("HEARTS", "CLUBS", default="HEARTS"),
        True,
        True,
        set(),
    ),
    (
        "remove enum symbol",
        suit("HEARTS", "CLUBS"),
        suit("HEARTS"),
        False,
        True,
        {"MISSING_ENUM_SYMBOLS at '/fields/0/type/symbols'"},
    ),
]


def expected_compatible(level: CompatibilityLevel, backward: bool, forward: bool) -> bool:
    # Confluent's definitions; with one registered version a transitive level is its base.
    if level is CompatibilityLevel.NONE:
        return True
    if level.startswith("BACKWARD"):
        return backward
    if level.startswith("FORWARD"):
        return forward
    return backward and forward


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(
    ("old", "new", "backward", "forward", "errors"),
    [case[1:] for case in EVOLUTIONS],
    ids=[case[0] for case in EVOLUTIONS],
)
def test_evolution_at_each_level(
    level: CompatibilityLevel,
    old: AvroSchema,
    new: AvroSchema,
    backward: bool,
    forward: bool,
    errors: set[str],
) -> None:
    result = check_compatibility(new, [(1, old)], level)
    assert result.is_compatible is expected_compatible(level, backward, forward)
    found = {message.split(": ", 1)[1].split("':", 1)[0] + "'" for message in result.messages}
    assert found <= errors
    if not result.is_compatible:
        assert found == errors


def test_transitive_levels_check_every_version() -> None:
    v1 = user(ID)
    v2 = user(ID, NAME_WITH_DEFAULT)
    v3 = user(ID, NAME)  # reads v2 (which has the field) but not v1 (which lacks it)
    history = [(1, v1), (2, v2)]
    assert check_compatibility(v3, history, CompatibilityLevel.BACKWARD).is_compatible
    transitive = check_compatibility(v3, history, CompatibilityLevel.BACKWARD_TRANSITIVE)
    assert transitive.messages == (
        "new schema reading data written with version 1: READER_FIELD_MISSING_DEFAULT_VALUE "
        "at '/fields/1': reader field 'name' of record 'com.acme.User' has no default value "
        "and is missing from the writer",
    )
    assert not check_compatibility(v3, history, CompatibilityLevel.FULL_TRANSITIVE).is_compatible
    assert check_compatibility(v3, history, CompatibilityLevel.FORWARD_TRANSITIVE).is_compatible
    assert check_compatibility(v3, history, CompatibilityLevel.NONE).is_compatible


@pytest.mark.parametrize(
    ("reader", "writer"),
    [(case[2], case[1]) for case in EVOLUTIONS] + [(case[1], case[2]) for case in EVOLUTIONS],
)
def test_verdicts_agree_with_apache_avro(reader: AvroSchema, writer: AvroSchema) -> None:
    apache = avro.compatibility.ReaderWriterCompatibilityChecker().get_compatibility(
        reader.schema, writer.schema
    )
    apache_compatible = (
        apache.compatibility is avro.compatibility.SchemaCompatibilityType.compatible
    )
    assert (check(reader, writer) == []) is apache_compatible


# Reader/writer rules


@pytest.mark.parametrize(
    ("reader", "writer", "compatible"),
    [
        ("long", "int", True),
        ("float", "int", True),
        ("float", "long", True),
        ("double", "int", True),
        ("double", "long", True),
        ("double", "float", True),
        ("string", "bytes", True),
        ("bytes", "string", True),
        ("int", "long", False),
        ("long", "float", False),
        ("float", "double", False),
        ("int", "string", False),
        ("boolean", "int", False),
        ("null", "boolean", False),
    ],
)
def test_type_promotions(reader: str, writer: str, compatible: bool) -> None:
    messages = check(parse(f'"{reader}"'), parse(f'"{writer}"'))
    if compatible:
        assert messages == []
    else:
        assert single(messages) == (
            f"TYPE_MISMATCH at '/': reader type {reader} cannot read writer type {writer}"
        )


def test_record_names_must_match() -> None:
    messages = check(parse(record([ID], name="Person")), parse(record([ID])))
    assert single(messages) == (
        "NAME_MISMATCH at '/name': reader record 'com.acme.Person' does not match writer name "
        "'com.acme.User' (no reader alias names it)"
    )


@pytest.mark.parametrize("alias", ["User", "com.acme.User"])
def test_a_reader_alias_matches_the_writer_name(alias: str) -> None:
    assert check(parse(record([ID], name="Person", aliases=[alias])), parse(record([ID]))) == []


def test_a_namespace_change_is_a_name_mismatch() -> None:
    moved = json.dumps({"type": "record", "name": "User", "namespace": "org.x", "fields": [ID]})
    assert single(check(parse(moved), parse(record([ID])))).startswith("NAME_MISMATCH at '/name'")


def test_fixed_sizes_must_match() -> None:
    messages = check(
        parse('{"type": "fixed", "name": "Hash", "size": 32}'),
        parse('{"type": "fixed", "name": "Hash", "size": 16}'),
    )
    assert single(messages) == (
        "FIXED_SIZE_MISMATCH at '/size': reader fixed 'Hash' has size 32, writer size 16"
    )


def test_enum_messages_name_the_missing_symbols() -> None:
    assert single(check(suit("HEARTS"), suit("HEARTS", "CLUBS", "SPADES"))) == (
        "MISSING_ENUM_SYMBOLS at '/fields/0/type/symbols': reader enum 'com.acme.Suit' lacks "
        "writer symbols CLUBS, SPADES and has no default symbol"
    )


def test_a_reader_union_reads_a_writer_branch_it_has() -> None:
    assert check(parse('["null", "string"]'), parse('"string"')) == []
    assert check(parse('["null", "long"]'), parse('["null", "int"]')) == []
    assert single(check(parse('["null", "string"]'), parse('"int"'))) == (
        "MISSING_UNION_BRANCH at '/': reader union lacks a branch that can read writer type int"
    )


def test_a_writer_union_branch_the_reader_lacks_is_reported_at_its_index() -> None:
    messages = check(
        parse(record([{"name": "v", "type": ["null", "string"]}])),
        parse(record([{"name": "v", "type": ["null", "int", "string"]}])),
    )
    assert single(messages) == (
        "MISSING_UNION_BRANCH at '/fields/0/type/1': field 'v': reader union lacks a branch "
        "that can read writer branch 1 (int)"
    )


def test_a_non_union_reader_must_read_every_writer_branch() -> None:
    messages = check(parse('"string"'), parse('["null", "string"]'))
    assert (
        single(messages) == "TYPE_MISMATCH at '/': reader type string cannot read writer type null"
    )


def test_nested_locations() -> None:
    def tags(items: str) -> AvroSchema:
        array = {"type": "array", "items": items}
        return parse(record([{"name": "tags", "type": {"type": "map", "values": array}}]))

    assert single(check(tags("int"), tags("long"))) == (
        "TYPE_MISMATCH at '/fields/0/type/values/items': field 'tags': reader type int cannot "
        "read writer type long"
    )


def test_recursive_types_are_checked() -> None:
    node = record(
        [
            {"name": "value", "type": "int"},
            {"name": "next", "type": ["null", "User"], "default": None},
        ]
    )
    wider = record(
        [
            {"name": "value", "type": "long"},
            {"name": "next", "type": ["null", "User"], "default": None},
        ]
    )
    assert check(parse(node), parse(node)) == []
    assert check(parse(wider), parse(node)) == []
    assert single(check(parse(node), parse(wider))).startswith("TYPE_MISMATCH at '/fields/0/type'")


def test_messages_name_reader_and_writer() -> None:
    for _, old, new, _, _, _ in EVOLUTIONS:
        for message in check(new, old) + check(old, new):
            assert "reader" in message
            assert "writer" in message


# Decoding

DECODE_SCHEMA = record(
    [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "score", "type": ["null", "double"], "default": None},
    ]
)

DECODE_PARSED = parse(DECODE_SCHEMA)
FUZZ_SCHEMA = parse(
    record(
        [
            {"name": "id", "type": "long"},
            {"name": "name", "type": ["null", "string", "bytes"]},
            {
                "name": "tags",
                "type": {"type": "map", "values": {"type": "array", "items": "float"}},
            },
            {"name": "suit", "type": {"type": "enum", "name": "Suit", "symbols": ["A", "B"]}},
            {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}},
            {"name": "when", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9}},
        ]
    )
)


def test_decode_accepts_a_record_of_the_schema() -> None:
    schema = parse(DECODE_SCHEMA)
    schema.decode(encode(schema, {"id": 7, "name": "ann", "tags": ["a", "b"], "score": 1.5}))


def test_decode_rejects_a_truncated_record() -> None:
    schema = parse(DECODE_SCHEMA)
    payload = encode(schema, {"id": 7, "name": "ann", "tags": ["a"], "score": 1.5})
    for cut in range(len(payload)):
        with pytest.raises(PayloadError) as raised:
            schema.decode(payload[:cut])
        assert "not a valid Avro record" in str(raised.value)


def test_decode_rejects_trailing_bytes() -> None:
    schema = parse(DECODE_SCHEMA)
    payload = encode(schema, {"id": 7, "name": "ann", "tags": [], "score": None})
    with pytest.raises(PayloadError) as raised:
        schema.decode(payload + b"\x00\x01\x02")
    assert str(raised.value) == "3 trailing bytes after the record"


def test_decode_rejects_a_record_of_another_schema() -> None:
    schema = parse(DECODE_SCHEMA)
    other = parse(record([{"name": "flag", "type": "boolean"}, {"name": "blob", "type": "bytes"}]))
    with pytest.raises(PayloadError):
        schema.decode(encode(other, {"flag": True, "blob": b"\xff\xfe"}))


@pytest.mark.parametrize(
    ("schema_text", "payload"),
    [
        ('"string"', b"\x04\xff\xfe"),  # not UTF-8
        ('["null", "int"]', b"\x04"),  # no union branch 2
        ('{"type": "enum", "name": "E", "symbols": ["A"]}', b"\x02"),  # no symbol 1
        ('"long"', b"\xff" * 11),  # a varint that never ends
        ('"int"', b""),
    ],
)
def test_decode_rejects_malformed_values(schema_text: str, payload: bytes) -> None:
    with pytest.raises(PayloadError):
        parse(schema_text).decode(payload)


def test_decode_of_an_empty_record_takes_no_bytes() -> None:
    parse('"null"').decode(b"")
    with pytest.raises(PayloadError):
        parse('"null"').decode(b"\x00")


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=64))
def test_decode_raises_only_payload_errors(payload: bytes) -> None:
    with contextlib.suppress(PayloadError):
        FUZZ_SCHEMA.decode(payload)


@settings(max_examples=100, deadline=None)
@given(
    datum=st.fixed_dictionaries(
        {
            "id": st.integers(-(2**63), 2**63 - 1),
            "name": st.text(max_size=10),
            "tags": st.lists(st.text(max_size=5), max_size=5),
            "score": st.none() | st.floats(allow_nan=False),
        }
    )
)
def test_decode_accepts_whatever_fastavro_writes(datum: dict[str, Any]) -> None:
    DECODE_PARSED.decode(encode(DECODE_PARSED, datum))
