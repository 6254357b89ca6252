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
from millpond.registry.formats import avro_compatibility
from millpond.registry.formats import avro_skip
from millpond.registry.formats.avro import AvroSchema
from millpond.registry.formats.avro import check
from millpond.registry.formats.avro import parse
from millpond.registry.formats.avro_skip import MAX_NESTING
from millpond.registry.formats.avro_skip import MAX_TYPE_NESTING
from millpond.registry.formats.avro_skip import MAX_ZERO_SIZE_ITEMS
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


# Decoding: payloads that claim more than their length pays for


def varint(value: int) -> bytes:
    unsigned = ((value << 1) ^ (value >> 63)) & (2**64 - 1)
    out = bytearray()
    while unsigned >= 0x80:
        out.append((unsigned & 0x7F) | 0x80)
        unsigned >>= 7
    out.append(unsigned)
    return bytes(out)


EMPTY_RECORD = {"type": "record", "name": "Empty", "fields": []}
ZERO_FIXED = {"type": "fixed", "name": "Nothing", "size": 0}
TOO_MANY = f"more than {MAX_ZERO_SIZE_ITEMS} items that take no bytes"


@pytest.mark.parametrize(
    "schema_json",
    [
        {"type": "array", "items": "null"},
        {"type": "map", "values": "null"},
        {"type": "array", "items": EMPTY_RECORD},
        {"type": "array", "items": ZERO_FIXED},
        {
            "type": "array",
            "items": {
                "type": "record",
                "name": "Nulls",
                "fields": [
                    {"name": "a", "type": "null"},
                    {"name": "b", "type": EMPTY_RECORD},
                ],
            },
        },
    ],
    ids=["array<null>", "map<null>", "array<empty record>", "array<fixed 0>", "array<nulls>"],
)
@pytest.mark.parametrize("negative_block", [False, True], ids=["count", "count and size"])
def test_decode_refuses_a_count_of_zero_size_items_past_the_limit(
    schema_json: dict[str, Any], negative_block: bool
) -> None:
    # Ten bytes claiming 2**60 items, which fastavro would build one by one without end.
    count = varint(-(2**60)) + varint(0) if negative_block else varint(2**60)
    payload = count + b"\x00"
    assert len(payload) == (11 if negative_block else 10)
    with pytest.raises(PayloadError) as raised:
        parse(json.dumps(schema_json)).decode(payload)
    assert TOO_MANY in str(raised.value)


def test_the_limit_counts_items_across_the_payload() -> None:
    schema = parse(
        record(
            [
                {"name": "a", "type": {"type": "array", "items": "null"}},
                {"name": "b", "type": {"type": "array", "items": "null"}},
            ]
        )
    )
    half = MAX_ZERO_SIZE_ITEMS // 2
    schema.decode(varint(half) + b"\x00" + varint(half) + b"\x00")
    with pytest.raises(PayloadError) as raised:
        schema.decode(varint(half) + b"\x00" + varint(half + 1) + b"\x00")
    assert TOO_MANY in str(raised.value)


def test_the_limit_is_inclusive_and_spans_blocks() -> None:
    schema = parse('{"type": "array", "items": "null"}')
    schema.decode(varint(MAX_ZERO_SIZE_ITEMS) + b"\x00")
    schema.decode(varint(-3) + varint(0) + varint(MAX_ZERO_SIZE_ITEMS - 3) + b"\x00")
    with pytest.raises(PayloadError) as raised:
        schema.decode(varint(3) + varint(MAX_ZERO_SIZE_ITEMS - 2) + b"\x00")
    assert TOO_MANY in str(raised.value)


def test_zero_size_fields_of_array_items_count_for_each_item() -> None:
    # Each item takes one byte (its boolean) and carries 50 nulls fastavro builds.
    fields = [{"name": "flag", "type": "boolean"}] + [
        {"name": f"n{index}", "type": "null"} for index in range(50)
    ]
    item = {"type": "record", "name": "Flagged", "fields": fields}
    schema = parse(json.dumps({"type": "array", "items": item}))
    schema.decode(varint(2000) + b"\x01" * 2000 + b"\x00")  # 100,000 nulls
    with pytest.raises(PayloadError) as raised:
        schema.decode(varint(2001) + b"\x01" * 2001 + b"\x00")
    assert TOO_MANY in str(raised.value)


def test_a_payload_may_hold_one_zero_size_item_per_byte() -> None:
    schema = parse(
        record(
            [
                {"name": "nothing", "type": "null"},
                {"name": "maybe", "type": {"type": "array", "items": ["null", "int"]}},
            ]
        )
    )
    many = MAX_ZERO_SIZE_ITEMS + 50_000
    schema.decode(varint(many) + b"\x00" * many + b"\x00")  # a null per byte, and one more


def test_a_named_type_used_twice_a_level_cannot_multiply_values() -> None:
    # Record i holds two record i-1: 2**30 nulls that take no bytes at all.
    current: dict[str, Any] = {
        "type": "record",
        "name": "L0",
        "fields": [{"name": "n", "type": "null"}],
    }
    for level in range(1, 31):
        current = {
            "type": "record",
            "name": f"L{level}",
            "fields": [{"name": "a", "type": current}, {"name": "b", "type": f"L{level - 1}"}],
        }
    with pytest.raises(PayloadError) as raised:
        parse(json.dumps(current)).decode(b"")
    assert TOO_MANY in str(raised.value)


LINKED_LIST = record([{"name": "value", "type": "int"}, {"name": "next", "type": ["null", "User"]}])


def test_decode_bounds_the_nesting_of_recursive_types() -> None:
    schema = parse(LINKED_LIST)
    node_count = MAX_NESTING // 2 - 1
    schema.decode(b"\x02\x02" * node_count + b"\x02\x00")
    # fastavro recurses on the C stack per node: 20,000 of them ended the process.
    with pytest.raises(PayloadError) as raised:
        schema.decode(b"\x02\x02" * 20_000 + b"\x02\x00")
    assert f"nests values deeper than {MAX_NESTING} levels" in str(raised.value)


@pytest.mark.parametrize(
    ("schema_json", "payload", "reason"),
    [
        ({"type": "array", "items": "null"}, varint(1), "ends inside the record"),
        ({"type": "array", "items": "int"}, varint(1000) + b"\x00", "ends inside the record"),
        ({"type": "array", "items": ["null", "int"]}, varint(1) + varint(2) + b"\x00", "branch 2"),
        (
            {"type": "array", "items": {"type": "enum", "name": "E", "symbols": ["A"]}},
            varint(1) + varint(1) + b"\x00",
            "enum index 1",
        ),
        ({"type": "array", "items": "bytes"}, varint(1) + varint(-1) + b"\x00", "negative length"),
        ({"type": "array", "items": "long"}, varint(1) + b"\xff" * 10 + b"\x00", "varint longer"),
    ],
)
def test_the_walk_names_what_is_malformed(
    schema_json: dict[str, Any], payload: bytes, reason: str
) -> None:
    # A null field makes each schema one the walk runs for.
    schema = parse(
        record([{"name": "nothing", "type": "null"}, {"name": "value", "type": schema_json}])
    )
    with pytest.raises(PayloadError) as raised:
        schema.decode(payload)
    assert "not a valid Avro record" in str(raised.value)
    assert reason in str(raised.value)


@pytest.mark.parametrize(
    ("text", "walked"),
    [
        (DECODE_SCHEMA, False),
        ('["null", "string"]', False),
        (json.dumps(["null", EMPTY_RECORD]), False),
        (json.dumps({"type": "map", "values": {"type": "array", "items": "long"}}), False),
        ('"null"', True),
        ('{"type": "array", "items": "null"}', True),
        (json.dumps({"type": "map", "values": ZERO_FIXED}), True),
        (record([{"name": "n", "type": "null"}]), True),
        (
            json.dumps(
                [
                    "null",
                    {"type": "record", "name": "Two", "fields": [{"name": "a", "type": "null"}]},
                ]
            ),
            True,
        ),
        (LINKED_LIST, True),
    ],
)
def test_only_schemas_that_need_it_are_walked(text: str, walked: bool) -> None:
    assert (avro_skip.plan(parse(text).schema) is not None) is walked


WALKED = parse(
    json.dumps(
        {
            "type": "record",
            "name": "Node",
            "fields": [
                {"name": "nulls", "type": {"type": "array", "items": "null"}},
                {"name": "empties", "type": {"type": "map", "values": EMPTY_RECORD}},
                {"name": "nothings", "type": {"type": "array", "items": ZERO_FIXED}},
                {
                    "name": "flags",
                    "type": {
                        "type": "array",
                        "items": {
                            "type": "record",
                            "name": "Flag",
                            "fields": [
                                {"name": "on", "type": "boolean"},
                                {"name": "why", "type": "null"},
                            ],
                        },
                    },
                },
                {"name": "suit", "type": {"type": "enum", "name": "Suit", "symbols": ["A", "B"]}},
                {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 2}},
                {"name": "numbers", "type": {"type": "array", "items": ["null", "long", "double"]}},
                {"name": "blobs", "type": {"type": "map", "values": "bytes"}},
                {"name": "next", "type": ["null", "Node"]},
            ],
        }
    )
)


def nodes() -> st.SearchStrategy[dict[str, Any]]:
    def node(next_node: st.SearchStrategy[dict[str, Any] | None]) -> st.SearchStrategy[Any]:
        return st.fixed_dictionaries(
            {
                "nulls": st.lists(st.none(), max_size=300),
                "empties": st.dictionaries(st.text(max_size=3), st.just({}), max_size=5),
                "nothings": st.lists(st.just(b""), max_size=300),
                "flags": st.lists(
                    st.fixed_dictionaries({"on": st.booleans(), "why": st.none()}), max_size=5
                ),
                "suit": st.sampled_from(["A", "B"]),
                "hash": st.binary(min_size=2, max_size=2),
                "numbers": st.lists(
                    st.none() | st.integers(-(2**63), 2**63 - 1) | st.floats(), max_size=5
                ),
                "blobs": st.dictionaries(st.text(max_size=3), st.binary(max_size=5), max_size=3),
                "next": next_node,
            }
        )

    return st.recursive(st.none(), node, max_leaves=5).filter(lambda datum: datum is not None)


@settings(max_examples=150, deadline=None)
@given(datum=nodes())
def test_decode_accepts_whatever_fastavro_writes_with_zero_size_items(
    datum: dict[str, Any],
) -> None:
    assert avro_skip.plan(WALKED.schema) is not None
    WALKED.decode(encode(WALKED, datum))


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=64))
def test_what_the_walk_passes_fastavro_reads_to_the_same_end(payload: bytes) -> None:
    skip_plan = avro_skip.plan(WALKED.schema)
    assert skip_plan is not None
    try:
        end = avro_skip.skip(skip_plan, payload)
    except PayloadError:
        return
    # The schema has no strings or logical types, the checks fastavro makes and the walk
    # does not; so whatever the walk passes, fastavro reads, using the same bytes.
    stream = io.BytesIO(payload)
    fastavro.schemaless_reader(stream, fastavro.parse_schema(json.loads(WALKED.canonical)), None)
    assert stream.tell() == end


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=64))
def test_decode_of_a_walked_schema_raises_only_payload_errors(payload: bytes) -> None:
    with contextlib.suppress(PayloadError):
        WALKED.decode(payload)


def test_check_is_the_compatibility_modules() -> None:
    assert check is avro_compatibility.check


def nested_arrays(items: object, depth: int) -> object:
    for _ in range(depth):
        items = {"type": "array", "items": items}
    return items


def deep_record(name: str, fields: list[tuple[str, object]]) -> str:
    return json.dumps(
        {"type": "record", "name": name, "fields": [{"name": n, "type": t} for n, t in fields]}
    )


def test_types_nested_through_references_are_bounded() -> None:
    references: list[tuple[str, Any]] = []
    previous: object = "int"
    for level in range(2):
        text = deep_record(f"R{level}", [("x", nested_arrays(previous, 60))])
        references.append((f"R{level}", parse(text, references)))
        previous = f"R{level}"
    with pytest.raises(InvalidSchemaError) as raised:
        parse(deep_record("R2", [("x", nested_arrays(previous, 60))]), references)
    assert f"types nest deeper than {MAX_TYPE_NESTING} levels" in str(raised.value)


def test_a_type_reached_again_deeper_down_is_walked() -> None:
    r0 = parse(deep_record("R0", [("x", nested_arrays("int", 60))]))
    r1 = parse(deep_record("R1", [("a", "R0"), ("b", nested_arrays("R0", 60))]), [("R0", r0)])
    r2 = parse(
        deep_record("R2", [("a", "R0"), ("b", nested_arrays("R1", 10))]),
        [("R0", r0), ("R1", r1)],
    )
    assert avro_skip.plan(r1.schema) is None  # 122 levels at most
    assert avro_skip.plan(r2.schema) is not None  # 133
    r2.decode(b"\x00" + b"\x00")  # R0 with an empty array, then an empty array of R1
