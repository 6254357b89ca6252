from __future__ import annotations

import base64
import importlib
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import timestamp_pb2

from millpond.registry.compatibility import CompatibilityLevel
from millpond.registry.compatibility import check_compatibility
from millpond.registry.formats.protobuf import ProtobufSchema
from millpond.registry.formats.protobuf import check
from millpond.registry.formats.protobuf import parse
from millpond.registry.schema import InvalidSchemaError
from millpond.registry.schema import PayloadError
from millpond.registry.schema import SchemaType

ORDER = """
syntax = "proto3";
package shop.v1;

import "google/protobuf/timestamp.proto";

// An order, as the shop writes it.
message Order {
  message Line {
    string sku = 1;
    int32 quantity = 2;
  }
  enum Status {
    STATUS_UNKNOWN = 0;
    STATUS_PAID = 1;
  }
  string id = 1;
  repeated Line lines = 2;
  map<string, Line> lines_by_sku = 3;
  Status status = 4;
  oneof payment {
    string card = 5;
    string iban = 6;
  }
  google.protobuf.Timestamp created_at = 7;
  optional string note = 8;
  reserved 20 to 30;
  reserved "legacy";
}
"""


def proto3(body: str, package: str = "acme") -> str:
    return f'syntax = "proto3";\npackage {package};\n{body}\n'


def message_class(schema: ProtobufSchema, full_name: str) -> Any:
    """The class a client would generate: built from `serialized()` alone, in its own pool."""
    pool = descriptor_pool.DescriptorPool()
    for dependency in schema.file.dependency:
        if dependency == "google/protobuf/timestamp.proto":
            pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(base64.b64decode(schema.serialized()))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))


def field_names(schema: ProtobufSchema, message: str) -> dict[str, Any]:
    file = schema.file
    (found,) = [m for m in file.message_type if m.name == message]
    return {f.name: f for f in found.field}


# --- parsing text -----------------------------------------------------------------------------


def test_text_schema_becomes_a_descriptor_with_qualified_types() -> None:
    schema = parse(ORDER)
    assert schema.schema_type is SchemaType.PROTOBUF
    file = schema.file
    assert file.syntax == "proto3"
    assert file.package == "shop.v1"
    assert list(file.dependency) == ["google/protobuf/timestamp.proto"]
    (order,) = file.message_type
    fields = {f.name: f for f in order.field}
    FDP = descriptor_pb2.FieldDescriptorProto
    assert fields["id"].type == FDP.TYPE_STRING
    assert fields["lines"].label == FDP.LABEL_REPEATED
    assert fields["lines"].type_name == ".shop.v1.Order.Line"
    assert fields["status"].type == FDP.TYPE_ENUM
    assert fields["status"].type_name == ".shop.v1.Order.Status"
    assert fields["created_at"].type_name == ".google.protobuf.Timestamp"
    # The map becomes protoc's nested entry message, declared after Line.
    assert [n.name for n in order.nested_type] == ["Line", "LinesBySkuEntry"]
    assert order.nested_type[1].options.map_entry
    assert fields["lines_by_sku"].type_name == ".shop.v1.Order.LinesBySkuEntry"
    # The declared oneof, then proto3 `optional`'s synthetic one.
    assert [o.name for o in order.oneof_decl] == ["payment", "_note"]
    assert fields["card"].oneof_index == 0
    assert fields["note"].proto3_optional
    assert fields["note"].oneof_index == 1
    assert [(r.start, r.end) for r in order.reserved_range] == [(20, 31)]
    assert list(order.reserved_name) == ["legacy"]


def test_canonical_ignores_comments_and_layout_and_reparses_to_itself() -> None:
    schema = parse(ORDER)
    squashed = " ".join(line for line in ORDER.splitlines() if not line.strip().startswith("//"))
    assert parse(squashed).canonical == schema.canonical
    assert parse(schema.canonical).canonical == schema.canonical
    assert "map<string, .shop.v1.Order.Line> lines_by_sku = 3;" in schema.canonical
    assert "optional string note = 8;" in schema.canonical
    assert "oneof payment {" in schema.canonical


def test_semantic_change_changes_canonical() -> None:
    canonical = parse(ORDER).canonical
    assert parse(ORDER.replace("int32 quantity", "int64 quantity")).canonical != canonical
    assert parse(ORDER.replace("card = 5", "card = 9")).canonical != canonical
    assert parse(ORDER.replace("repeated Line", "Line")).canonical != canonical


def test_proto2_labels_and_defaults() -> None:
    schema = parse(
        'syntax = "proto2"; package p;'
        "message A { required string id = 1; optional int32 n = 2 [default = 7];"
        ' repeated int32 xs = 3 [packed = true]; optional string s = 4 [default = "a\\"b"]; }'
    )
    fields = field_names(schema, "A")
    FDP = descriptor_pb2.FieldDescriptorProto
    assert fields["id"].label == FDP.LABEL_REQUIRED
    assert fields["n"].default_value == "7"
    assert fields["xs"].options.packed
    assert fields["s"].default_value == 'a"b'
    assert 'optional string s = 4 [default = "a\\"b"];' in schema.canonical
    assert parse(schema.canonical).canonical == schema.canonical


def test_schema_importing_a_reference_by_its_import_path() -> None:
    other = parse(proto3("message Money { int64 units = 1; string currency = 2; }", "common"))
    schema = parse(
        proto3('import "other.proto";\nmessage Price { common.Money amount = 1; }'),
        [("other.proto", other)],
    )
    assert field_names(schema, "Price")["amount"].type_name == ".common.Money"
    assert "other.proto" in schema.dependencies


def test_reference_is_found_by_reference_name_not_its_own_file_name() -> None:
    descriptor = descriptor_pb2.FileDescriptorProto(
        name="somewhere/else/money.proto", package="common", syntax="proto3"
    )
    descriptor.message_type.add(name="Money").field.add(
        name="units", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64, label=1
    )
    other = parse(base64.b64encode(descriptor.SerializeToString()).decode())
    schema = parse(
        proto3('import "other.proto";\nmessage Price { common.Money amount = 1; }'),
        [("other.proto", other)],
    )
    assert schema.dependencies["other.proto"].name == "other.proto"


def test_two_text_references_load_into_one_pool() -> None:
    money = parse(proto3("message Money { int64 units = 1; }", "money"))
    sku = parse(proto3("message Sku { string code = 1; }", "sku"))
    schema = parse(
        proto3(
            'import "money.proto";\nimport "sku.proto";\n'
            "message Line { money.Money price = 1; sku.Sku sku = 2; }"
        ),
        [("money.proto", money), ("sku.proto", sku)],
    )
    payload = encoded_line(schema, "acme.Line")
    schema.decode(b"\x00" + payload)


def encoded_line(schema: ProtobufSchema, full_name: str) -> bytes:
    pool = descriptor_pool.DescriptorPool()
    for dependency in schema.dependencies.values():
        pool.AddSerializedFile(dependency.SerializeToString())
    pool.AddSerializedFile(schema.file.SerializeToString())
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))
    message = cls()
    message.price.units = 5
    message.sku.code = "X-1"
    data: bytes = message.SerializeToString()
    return data


def test_reference_dependencies_travel_transitively() -> None:
    base = parse(proto3("message Id { string value = 1; }", "base"))
    middle = parse(
        proto3('import "base.proto";\nmessage User { base.Id id = 1; }', "middle"),
        [("base.proto", base)],
    )
    top = parse(
        proto3('import "middle.proto";\nmessage Event { middle.User user = 1; }'),
        [("middle.proto", middle)],
    )
    assert set(top.dependencies) == {"base.proto", "middle.proto"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("message A { int32 x = ; }", "line 1, column 23"),
        ('syntax = "proto3";\nmessage A {\n  int32 x = 1\n}', "line 4, column 1"),
        ("", "empty"),
        ('edition = "2023"; message A {}', "editions are not supported"),
        ("message A { optional group G = 1 { optional int32 x = 2; } }", "groups"),
    ],
)
def test_invalid_text_names_the_parse_error(text: str, expected: str) -> None:
    with pytest.raises(InvalidSchemaError, match=expected):
        parse(text)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("message A { Missing m = 1; }", "couldn't resolve name 'Missing'"),
        ("message A { int32 x = 1; string y = 1; }", "duplicate field number"),
        ('import "nowhere.proto";\nmessage A {}', "'nowhere.proto' is neither"),
    ],
)
def test_invalid_schema_names_the_pool_error(body: str, expected: str) -> None:
    with pytest.raises(InvalidSchemaError, match=expected):
        parse(proto3(body))


def test_well_known_types_need_no_reference() -> None:
    schema = parse(
        proto3(
            'import "google/protobuf/any.proto";\nimport "google/type/date.proto";\n'
            "message A { google.protobuf.Any payload = 1; google.type.Date day = 2; }"
        )
    )
    assert field_names(schema, "A")["day"].type_name == ".google.type.Date"


def test_reference_of_another_type_is_rejected() -> None:
    class NotProtobuf:
        schema_type = SchemaType.AVRO

    with pytest.raises(InvalidSchemaError, match="AVRO"):
        parse(proto3("message A {}"), [("a.proto", NotProtobuf())])  # type: ignore[list-item]


# --- base64 descriptors, as confluent-kafka's serializer registers them -------------------------


def test_base64_descriptor_parses_and_serialized_round_trips() -> None:
    text = base64.b64encode(timestamp_pb2.DESCRIPTOR.serialized_pb).decode()
    schema = parse(text)
    assert schema.file.name == "google/protobuf/timestamp.proto"
    assert "message Timestamp {\n  int64 seconds = 1;\n  int32 nanos = 2;\n}" in schema.canonical
    decoded = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(schema.serialized()))
    original = descriptor_pb2.FileDescriptorProto.FromString(timestamp_pb2.DESCRIPTOR.serialized_pb)
    assert decoded == original
    assert parse(schema.serialized()).canonical == schema.canonical


def test_text_and_its_serialized_descriptor_have_one_canonical() -> None:
    schema = parse(ORDER)
    assert parse(schema.serialized()).canonical == schema.canonical


def test_confluent_serializer_schema_string_matches_the_text() -> None:
    from confluent_kafka.schema_registry.common.protobuf import _schema_to_str

    schema = parse(ORDER)
    cls = message_class(schema, "shop.v1.Order")
    as_registered = parse(_schema_to_str(cls.DESCRIPTOR.file))
    assert as_registered.canonical == schema.canonical


GOOGLE_TYPE_DIR = Path(importlib.import_module("google.type.date_pb2").__file__ or "").parent


@pytest.mark.parametrize("name", ["date", "money", "latlng", "datetime", "postal_address"])
def test_protoc_descriptor_and_proto_text_agree(name: str) -> None:
    # googleapis-common-protos ships each file both as .proto text and as protoc's descriptor.
    module = importlib.import_module(f"google.type.{name}_pb2")
    from_text = parse((GOOGLE_TYPE_DIR / f"{name}.proto").read_text(encoding="utf-8"))
    from_protoc = parse(base64.b64encode(module.DESCRIPTOR.serialized_pb).decode())
    assert from_text.canonical == from_protoc.canonical


def test_base64_that_is_not_a_descriptor_is_parsed_as_text() -> None:
    with pytest.raises(InvalidSchemaError, match=r"invalid \.proto text"):
        parse("QUJD")  # base64 of b"ABC": no descriptor, and no .proto either


# --- compatibility ------------------------------------------------------------------------------


V1 = proto3(
    """
message User {
  string id = 1;
  string name = 2;
  int32 age = 3;
}
message Address { string city = 1; }
"""
)


def compatible(new: str, old: str, level: CompatibilityLevel) -> list[str]:
    return list(check_compatibility(parse(new), [(1, parse(old))], level).messages)


ALL_LEVELS = [level for level in CompatibilityLevel if level is not CompatibilityLevel.NONE]


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize(
    "change",
    [
        ("string name = 2;", "string name = 2;\n  string email = 4;"),  # add a field
        ("string name = 2;", ""),  # remove a field
        ("string name = 2;", "string full_name = 2;"),  # rename, same number
        ("int32 age = 3;", "int64 age = 3;"),  # Confluent's number group
        ("string name = 2;", "string name = 5;"),  # renumber: remove + add
        ("string name = 2;", "bytes name = 2;"),
        ("string name = 2;", "oneof contact { string name = 2; }"),  # one field into a oneof
    ],
)
def test_compatible_changes(level: CompatibilityLevel, change: tuple[str, str]) -> None:
    old, new = change
    assert compatible(V1.replace(old, new), V1, level) == []


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_string_to_int32_is_incompatible_both_ways(level: CompatibilityLevel) -> None:
    messages = compatible(V1.replace("string name = 2;", "int32 name = 2;"), V1, level)
    assert len(messages) == (2 if level.startswith("FULL") else 1)
    assert all("FIELD_SCALAR_KIND_CHANGED at '#/User/2'" in m for m in messages)


def test_string_to_int32_message_names_the_field_and_both_types() -> None:
    (message,) = compatible(
        V1.replace("string name = 2;", "int32 name = 2;"), V1, CompatibilityLevel.BACKWARD
    )
    assert message == (
        "new schema reading data written with version 1: FIELD_SCALAR_KIND_CHANGED at "
        "'#/User/2': field 'name' (2) is int32 in the reader but string in the writer, "
        "which do not read each other's values"
    )


def test_removing_a_message_breaks_backward_only() -> None:
    new = V1.replace("message Address { string city = 1; }", "")
    (message,) = compatible(new, V1, CompatibilityLevel.BACKWARD)
    assert "MESSAGE_REMOVED at '#/Address'" in message
    assert "acme.Address" in message
    assert compatible(new, V1, CompatibilityLevel.FORWARD) == []


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_changing_the_package_is_incompatible(level: CompatibilityLevel) -> None:
    messages = compatible(V1.replace("package acme;", "package acme.v2;"), V1, level)
    assert messages
    assert all("PACKAGE_CHANGED" in m for m in messages)


def test_moving_two_fields_into_a_new_oneof_breaks_backward() -> None:
    new = V1.replace(
        "string name = 2;\n  int32 age = 3;", "oneof who { string name = 2; int32 age = 3; }"
    )
    (message,) = compatible(new, V1, CompatibilityLevel.BACKWARD)
    assert message.startswith("new schema reading data written with version 1: ")
    assert "MULTIPLE_FIELDS_MOVED_TO_ONEOF at '#/User/who'" in message
    # Data written with the oneof sets at most one of them, which the old reader reads fine.
    assert compatible(new, V1, CompatibilityLevel.FORWARD) == []


def test_moving_a_field_into_an_existing_oneof() -> None:
    old = proto3("message A { string a = 1; oneof o { string b = 2; } }")
    new = proto3("message A { oneof o { string a = 1; string b = 2; } }")
    (message,) = check(parse(new), parse(old))
    assert message.startswith("FIELD_MOVED_TO_EXISTING_ONEOF at '#/A/o'")


def test_removing_a_oneof_field() -> None:
    old = proto3("message A { oneof o { string a = 1; string b = 2; } }")
    new = proto3("message A { oneof o { string a = 1; } }")
    (message,) = check(parse(new), parse(old))
    assert message.startswith("ONEOF_FIELD_REMOVED at '#/A/o/2'")
    assert check(parse(old), parse(new)) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("string x = 1;", "Other x = 1;", "FIELD_KIND_CHANGED"),
        ("Other x = 1;", "Another x = 1;", "FIELD_NAMED_TYPE_CHANGED"),
        ("map<string, int32> x = 1;", "repeated string x = 1;", "FIELD_KIND_CHANGED"),
        ("map<string, int32> x = 1;", "map<string, string> x = 1;", "FIELD_SCALAR_KIND_CHANGED"),
        ("sint32 x = 1;", "int32 x = 1;", "FIELD_SCALAR_KIND_CHANGED"),
        ("fixed32 x = 1;", "fixed64 x = 1;", "FIELD_SCALAR_KIND_CHANGED"),
        ("float x = 1;", "double x = 1;", "FIELD_SCALAR_KIND_CHANGED"),
    ],
)
def test_incompatible_field_type_changes(old: str, new: str, expected: str) -> None:
    types = "message Other { string s = 1; }\nmessage Another { string s = 1; }\n"
    writer = parse(proto3(types + f"message A {{ {old} }}"))
    reader = parse(proto3(types + f"message A {{ {new} }}"))
    (message,) = check(reader, writer)
    assert message.startswith(f"{expected} at '#/A/1': field 'x' (1)")
    assert "reader" in message
    assert "writer" in message


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("fixed32 x = 1;", "sfixed32 x = 1;"),
        ("sint32 x = 1;", "sint64 x = 1;"),
        ("bool x = 1;", "uint64 x = 1;"),
        ("E x = 1;", "int32 x = 1;"),  # Confluent reads an enum as a number
        ("map<string, int32> x = 1;", "map<string, int64> x = 1;"),
    ],
)
def test_compatible_field_type_changes(old: str, new: str) -> None:
    types = "enum E { E_ZERO = 0; }\n"
    writer = parse(proto3(types + f"message A {{ {old} }}"))
    reader = parse(proto3(types + f"message A {{ {new} }}"))
    assert check(reader, writer) == []
    assert check(writer, reader) == []


def test_enum_value_removal_is_compatible() -> None:
    writer = parse(proto3("enum E { A = 0; B = 1; }\nmessage M { E e = 1; }"))
    reader = parse(proto3("enum E { A = 0; }\nmessage M { E e = 1; }"))
    assert check(reader, writer) == []


def test_required_fields_in_proto2() -> None:
    old = 'syntax = "proto2"; message A { optional string a = 1; }'
    new = 'syntax = "proto2"; message A { optional string a = 1; required int32 b = 2; }'
    (added,) = check(parse(new), parse(old))
    assert added.startswith("REQUIRED_FIELD_ADDED at '#/A/2'")
    (removed,) = check(parse(old), parse(new))
    assert removed.startswith("REQUIRED_FIELD_REMOVED at '#/A/2'")


def test_nested_messages_are_compared_by_full_name() -> None:
    old = proto3("message A { message B { string s = 1; } B b = 1; }")
    new = proto3("message A { message B { int32 s = 1; } B b = 1; }")
    (message,) = check(parse(new), parse(old))
    assert message.startswith("FIELD_SCALAR_KIND_CHANGED at '#/A/B/1'")


def test_referenced_type_change_breaks_the_field_using_it() -> None:
    def with_money(money_body: str) -> ProtobufSchema:
        money = parse(proto3(money_body, "common"))
        return parse(
            proto3('import "money.proto";\nmessage Price { common.Money amount = 1; }'),
            [("money.proto", money)],
        )

    old = with_money("message Money { int64 units = 1; }")
    new = with_money("message Money { string units = 1; }")
    messages = check(new, old)
    assert any(m.startswith("FIELD_SCALAR_KIND_CHANGED at '#/Money/1'") for m in messages)
    assert any(m.startswith("FIELD_NAMED_TYPE_CHANGED at '#/Price/1'") for m in messages)
    assert check(with_money("message Money { int64 units = 1; string c = 2; }"), old) == []


def test_recursive_messages_terminate() -> None:
    old = parse(proto3("message Node { repeated Node children = 1; string v = 2; }"))
    new = parse(proto3("message Node { repeated Node children = 1; bytes v = 2; }"))
    assert check(new, old) == []


# --- decoding -----------------------------------------------------------------------------------


def test_decode_first_message_with_the_short_index() -> None:
    schema = parse(ORDER)
    order = message_class(schema, "shop.v1.Order")(id="o-1", card="4111")
    order.lines.add(sku="X", quantity=2)
    order.lines_by_sku["X"].quantity = 2
    order.created_at.seconds = 1_700_000_000
    schema.decode(b"\x00" + order.SerializeToString())
    # The long form of the same path: count 1, index 0.
    schema.decode(b"\x02\x00" + order.SerializeToString())


def test_decode_nested_index_path() -> None:
    schema = parse(ORDER)
    line = message_class(schema, "shop.v1.Order.Line")(sku="X", quantity=3)
    schema.decode(b"\x04\x00\x00" + line.SerializeToString())  # [0, 0]: Order.Line


def test_decode_second_top_level_message() -> None:
    schema = parse(V1)
    address = message_class(schema, "acme.Address")(city="Ghent")
    schema.decode(b"\x02\x02" + address.SerializeToString())  # [1]: Address


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\x00\xff", "does not decode"),
        (b"\x00\x0a\x05ab", "does not decode"),  # a string field cut short
        (b"\x02\x0a", "message index 5 out of range"),
        (b"\x04\x00\x0a", "message index 5 out of range: the schema has 2 message"),
        (b"\x02", "truncated varint"),
        (b"\x80", "truncated varint"),
        (b"", "truncated varint"),
        (b"\x01", "negative message-index count"),
        (b"\x02\x01", "negative message index"),
        (b"\xff" * 11, "longer than 10 bytes"),
    ],
)
def test_decode_rejects_bad_payloads(payload: bytes, expected: str) -> None:
    with pytest.raises(PayloadError, match=expected):
        parse(ORDER).decode(payload)


def test_decode_caches_the_message_class() -> None:
    schema = parse(ORDER)
    schema.decode(b"\x00")
    schema.decode(b"\x04\x00\x00")
    first = schema._classes[(0,)]
    schema.decode(b"\x00")
    assert schema._classes[(0,)] is first
    assert set(schema._classes) == {(0,), (0, 0)}
