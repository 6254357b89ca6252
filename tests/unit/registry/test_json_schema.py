from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from millpond.registry.compatibility import CompatibilityLevel
from millpond.registry.compatibility import check_compatibility
from millpond.registry.formats.json_schema import JsonSchema
from millpond.registry.formats.json_schema import check
from millpond.registry.formats.json_schema import parse
from millpond.registry.schema import InvalidSchemaError
from millpond.registry.schema import PayloadError
from millpond.registry.schema import SchemaType

Schema = dict[str, Any] | bool


def js(schema: Schema, references: tuple[tuple[str, JsonSchema], ...] = ()) -> JsonSchema:
    return parse(json.dumps(schema), references)


def problems(reader: Schema, writer: Schema) -> list[str]:
    return check(js(reader), js(writer))


def names(messages: list[str]) -> list[str]:
    return [message.split(" at ", 1)[0] for message in messages]


def obj(properties: dict[str, Any], closed: bool = False, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, **extra}
    if closed:
        schema["additionalProperties"] = False
    return schema


def level_ok(level: CompatibilityLevel, *versions: Schema) -> bool:
    """Whether the last of `versions` may be registered after the others under `level`."""
    *existing, new = versions
    result = check_compatibility(
        js(new), [(number, js(old)) for number, old in enumerate(existing, start=1)], level
    )
    return result.is_compatible


STRING = {"type": "string"}
INTEGER = {"type": "integer"}


# Parsing


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"type": "object",', "invalid JSON"),
        ("", "invalid JSON"),
        ('{"type": "number", "maximum": NaN}', "invalid JSON"),
        ('"string"', "must be a JSON object or a boolean"),
        ("[]", "must be a JSON object or a boolean"),
        ('{"type": "nope"}', "at '#/type'"),
        ('{"properties": {"age": {"type": 5}}}', "at '#/properties/age/type'"),
        ('{"type": "string", "minLength": -1}', "at '#/minLength'"),
        ('{"type": "string", "pattern": "("}', "at '#/pattern'"),
        ('{"$schema": 7}', "$schema must be a string"),
        ('{"$ref": "#/definitions/missing"}', "unresolvable $ref '#/definitions/missing'"),
        ('{"$ref": "customer.json"}', "unresolvable $ref 'customer.json'"),
        (
            json.dumps(
                {
                    "properties": {"a": {"$ref": "#/definitions/b"}},
                    "definitions": {
                        "a": {"$ref": "#/definitions/b"},
                        "b": {"$ref": "#/definitions/a"},
                    },
                }
            ),
            "cycle",
        ),
    ],
)
def test_parse_rejects(text: str, reason: str) -> None:
    with pytest.raises(InvalidSchemaError) as raised:
        parse(text)
    assert reason in str(raised.value)


def test_parse_reports_metaschema_reason() -> None:
    with pytest.raises(InvalidSchemaError) as raised:
        parse('{"type": "nope"}')
    assert "'nope' is not valid" in str(raised.value)


def test_parse_uses_declared_draft() -> None:
    # exclusiveMaximum is a boolean in draft 4 and a number from draft 6 on.
    draft4 = '{"$schema": "http://json-schema.org/draft-04/schema#", "maximum": 3, '
    assert parse(draft4 + '"exclusiveMaximum": true}').schema_type is SchemaType.JSON
    with pytest.raises(InvalidSchemaError, match="exclusiveMaximum"):
        parse(draft4 + '"exclusiveMaximum": 3}')
    with pytest.raises(InvalidSchemaError, match="exclusiveMaximum"):
        parse('{"maximum": 3, "exclusiveMaximum": true}')  # draft 7 by default


def test_parse_accepts_boolean_schemas_and_metaschema_refs() -> None:
    assert parse("true").canonical == "true"
    assert parse(" false ").canonical == "false"
    parse('{"$ref": "http://json-schema.org/draft-07/schema#"}')


def test_parse_falls_back_to_draft7_for_unknown_dialect() -> None:
    schema = parse('{"$schema": "http://example.com/custom", "type": "string"}')
    schema.decode(b'"x"')
    with pytest.raises(PayloadError, match="is not of type 'string'"):
        schema.decode(b"1")


def test_parse_rejects_ref_to_non_schema_and_deep_nesting() -> None:
    with pytest.raises(InvalidSchemaError, match="does not point at a schema"):
        parse('{"required": ["a"], "properties": {"a": {"$ref": "#/required/0"}}}')
    deep = '{"type": "array", "items": ' * 400 + "{}" + "}" * 400
    with pytest.raises(InvalidSchemaError, match="nested too deeply"):
        parse(deep)


def test_canonical_ignores_whitespace_and_key_order() -> None:
    a = parse(
        '{"type": "object", "properties": {"b": {"type": "string"}, "a": {"type": "integer"}}}'
    )
    b = parse(
        '{\n  "properties": {"a": {"type":"integer"},\n "b": {"type": "string"}},\n'
        ' "type":"object"}'
    )
    assert a.canonical == b.canonical
    assert a == b
    assert a.serialized() == a.canonical
    assert a.canonical == (
        '{"properties":{"a":{"type":"integer"},"b":{"type":"string"}},"type":"object"}'
    )


def test_canonical_keeps_array_order_and_meaning() -> None:
    assert parse('{"enum": ["a", "b"]}').canonical != parse('{"enum": ["b", "a"]}').canonical
    assert parse('{"maxLength": 1}').canonical != parse('{"maxLength": 2}').canonical


# References

CUSTOMER: dict[str, Any] = {
    "type": "object",
    "properties": {"name": STRING, "address": {"$ref": "address.json"}},
    "required": ["name"],
}
ADDRESS = {"type": "object", "properties": {"city": STRING}, "required": ["city"]}


def order(customer_ref: str = "customer.json") -> dict[str, Any]:
    return {
        "$id": "http://example.com/order.json",
        "type": "object",
        "properties": {"id": INTEGER, "customer": {"$ref": customer_ref}},
        "required": ["id", "customer"],
    }


def order_with_references(schema: dict[str, Any] | None = None) -> JsonSchema:
    address = js(ADDRESS)
    customer = js(CUSTOMER, (("address.json", address),))
    return js(schema or order(), (("customer.json", customer),))


def test_reference_by_name_resolves_transitively() -> None:
    schema = order_with_references()
    schema.decode(b'{"id": 1, "customer": {"name": "Ada", "address": {"city": "Paris"}}}')
    with pytest.raises(PayloadError, match=r"at '\$.customer.name': 5 is not of type 'string'"):
        schema.decode(b'{"id": 1, "customer": {"name": 5}}')
    with pytest.raises(PayloadError, match="'city' is a required property"):
        schema.decode(b'{"id": 1, "customer": {"name": "Ada", "address": {}}}')


def test_reference_missing_from_references_is_rejected() -> None:
    with pytest.raises(InvalidSchemaError, match=r"unresolvable \$ref 'customer\.json'"):
        js(order())
    with pytest.raises(InvalidSchemaError, match=r"unresolvable \$ref 'address\.json'"):
        js(CUSTOMER)


def test_reference_must_be_json_schema() -> None:
    class Avro:
        schema_type = SchemaType.AVRO
        canonical = '"string"'

        def serialized(self) -> str:
            return self.canonical

        def decode(self, payload: bytes) -> None:
            return None

    with pytest.raises(InvalidSchemaError, match="is a AVRO schema"):
        parse(json.dumps(order()), [("customer.json", Avro())])


def test_references_are_compared_through_refs() -> None:
    old = order_with_references()
    narrower_customer = {**CUSTOMER, "properties": {**CUSTOMER["properties"], "name": INTEGER}}
    customer_v2 = js(narrower_customer, (("address.json", js(ADDRESS)),))
    new = js(order(), (("customer.json", customer_v2),))
    assert check(old, old) == []
    messages = check(new, old)
    assert names(messages) == ["TYPE_CHANGED"]
    assert "'#/properties/customer/properties/name'" in messages[0]


def test_local_definitions_are_compared_through_refs() -> None:
    def with_age(age: dict[str, Any]) -> dict[str, Any]:
        return {
            "definitions": {"age": age},
            "type": "object",
            "properties": {"age": {"$ref": "#/definitions/age"}},
        }

    assert problems(with_age({"type": "number"}), with_age(INTEGER)) == []
    assert names(problems(with_age({"type": "integer", "maximum": 9}), with_age(INTEGER))) == [
        "MAXIMUM_ADDED"
    ]


def test_2020_12_defs_and_nullable_fields() -> None:
    # The shape pydantic and other generators emit: $defs, and anyOf [T, null] for optional.
    def generated(extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": {"Address": obj({"city": STRING}, required=["city"])},
            "type": "object",
            "properties": {
                "address": {"$ref": "#/$defs/Address"},
                "nickname": {"anyOf": [STRING, {"type": "null"}], "default": None},
                **extra,
            },
        }

    old, new = generated({}), generated({"age": {"anyOf": [INTEGER, {"type": "null"}]}})
    assert not level_ok(CompatibilityLevel.BACKWARD, old, new)  # open content model
    assert level_ok(CompatibilityLevel.FORWARD, old, new)
    nullable_dropped = generated({})
    nullable_dropped["properties"]["nickname"] = STRING
    assert names(problems(nullable_dropped, old)) == ["TYPE_CHANGED"]
    assert problems(old, nullable_dropped) == []
    js(old).decode(b'{"address": {"city": "Oslo"}, "nickname": null}')
    with pytest.raises(PayloadError, match=r"at '\$.address'"):
        js(old).decode(b'{"address": {}}')


def test_recursive_schemas_terminate() -> None:
    def linked_list(value: dict[str, Any]) -> dict[str, Any]:
        return {
            "definitions": {
                "node": obj({"value": value, "next": {"$ref": "#/definitions/node"}}),
            },
            "$ref": "#/definitions/node",
        }

    assert problems(linked_list(INTEGER), linked_list(INTEGER)) == []
    assert names(problems(linked_list(STRING), linked_list(INTEGER))) == ["TYPE_CHANGED"]


# Compatibility: the classic evolutions, by level (as Confluent documents them)

CLOSED_V1 = obj({"name": STRING}, closed=True)
CLOSED_V2 = obj({"name": STRING, "email": STRING}, closed=True)
OPEN_V1 = obj({"name": STRING})
OPEN_V2 = obj({"name": STRING, "email": STRING})


def test_closed_model_adding_optional_property() -> None:
    assert level_ok(CompatibilityLevel.BACKWARD, CLOSED_V1, CLOSED_V2)
    assert not level_ok(CompatibilityLevel.FORWARD, CLOSED_V1, CLOSED_V2)
    assert names(check(js(CLOSED_V1), js(CLOSED_V2))) == [
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"
    ]


def test_closed_model_removing_property() -> None:
    assert level_ok(CompatibilityLevel.FORWARD, CLOSED_V2, CLOSED_V1)
    assert not level_ok(CompatibilityLevel.BACKWARD, CLOSED_V2, CLOSED_V1)
    result = check_compatibility(js(CLOSED_V1), [(1, js(CLOSED_V2))], CompatibilityLevel.BACKWARD)
    assert result.messages == (
        "new schema reading data written with version 1: PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"
        " at '#/properties/email': the reader's closed content model does not accept property "
        "'email'; the writer writes it",
    )


def test_open_model_adding_property() -> None:
    assert not level_ok(CompatibilityLevel.BACKWARD, OPEN_V1, OPEN_V2)
    assert level_ok(CompatibilityLevel.FORWARD, OPEN_V1, OPEN_V2)
    assert names(check(js(OPEN_V2), js(OPEN_V1))) == ["PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"]
    assert "'#/properties/email'" in check(js(OPEN_V2), js(OPEN_V1))[0]


def test_open_model_removing_property() -> None:
    assert level_ok(CompatibilityLevel.BACKWARD, OPEN_V2, OPEN_V1)
    assert not level_ok(CompatibilityLevel.FORWARD, OPEN_V2, OPEN_V1)


def test_open_model_adding_unconstrained_property_is_compatible() -> None:
    assert problems(obj({"name": STRING, "note": {}}), OPEN_V1) == []


def test_adding_required_property() -> None:
    closed = obj({"name": STRING, "email": STRING}, closed=True, required=["email"])
    assert not level_ok(CompatibilityLevel.BACKWARD, CLOSED_V1, closed)
    assert names(check(js(closed), js(CLOSED_V1))) == [
        "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"
    ]
    made_required = obj({"name": STRING}, required=["name"])
    assert not level_ok(CompatibilityLevel.BACKWARD, OPEN_V1, made_required)
    assert names(check(js(made_required), js(OPEN_V1))) == ["REQUIRED_ATTRIBUTE_ADDED"]
    assert level_ok(CompatibilityLevel.FORWARD, OPEN_V1, made_required)


def test_adding_required_property_with_default_is_compatible() -> None:
    with_default = obj({"name": STRING, "email": {**STRING, "default": ""}}, closed=True)
    with_default["required"] = ["email"]
    assert level_ok(CompatibilityLevel.BACKWARD, CLOSED_V1, with_default)


def test_changing_property_type_is_incompatible_both_ways() -> None:
    old = obj({"age": STRING})
    new = obj({"age": INTEGER})
    for level in (CompatibilityLevel.BACKWARD, CompatibilityLevel.FORWARD, CompatibilityLevel.FULL):
        assert not level_ok(level, old, new)
    assert check(js(new), js(old)) == [
        "TYPE_CHANGED at '#/properties/age': reader type integer is not compatible with writer "
        "type string"
    ]


def test_integer_to_number_widening() -> None:
    old = obj({"age": INTEGER})
    new = obj({"age": {"type": "number"}})
    assert level_ok(CompatibilityLevel.BACKWARD, old, new)
    assert not level_ok(CompatibilityLevel.FORWARD, old, new)
    assert names(check(js(old), js(new))) == ["TYPE_NARROWED"]


def test_enum_value_added() -> None:
    old = obj({"color": {"enum": ["red", "green"]}})
    new = obj({"color": {"enum": ["red", "green", "blue"]}})
    assert level_ok(CompatibilityLevel.BACKWARD, old, new)
    assert not level_ok(CompatibilityLevel.FORWARD, old, new)
    assert check(js(old), js(new)) == [
        "ENUM_ARRAY_NARROWED at '#/properties/color': the reader does not accept the writer's "
        'value(s) "blue"'
    ]


def test_max_length_tightened() -> None:
    old = obj({"name": {"type": "string", "maxLength": 10}})
    new = obj({"name": {"type": "string", "maxLength": 5}})
    assert not level_ok(CompatibilityLevel.BACKWARD, old, new)
    assert level_ok(CompatibilityLevel.FORWARD, old, new)
    assert names(check(js(new), js(old))) == ["MAX_LENGTH_DECREASED"]
    assert names(problems(new["properties"]["name"], STRING)) == ["MAX_LENGTH_ADDED"]


def test_transitive_checks_every_version() -> None:
    # v1 -> v2 -> v3 is each step BACKWARD compatible, but v3 cannot read v1's data.
    v1 = {"type": "string"}
    v2 = {"type": ["string", "integer"]}
    v3 = {"type": "integer"}
    assert level_ok(CompatibilityLevel.BACKWARD, v1, v2)
    assert not level_ok(CompatibilityLevel.BACKWARD, v2, v3)
    closed_v3 = obj({"name": STRING, "email": STRING, "phone": STRING}, closed=True)
    assert level_ok(CompatibilityLevel.BACKWARD, CLOSED_V1, CLOSED_V2, closed_v3)
    assert level_ok(CompatibilityLevel.BACKWARD_TRANSITIVE, CLOSED_V1, CLOSED_V2, closed_v3)
    # Removing a property then re-adding it with another type passes step by step only.
    open_v3 = obj({"name": STRING, "email": INTEGER})
    assert level_ok(CompatibilityLevel.FORWARD, OPEN_V2, OPEN_V1, open_v3)
    assert not level_ok(CompatibilityLevel.FORWARD_TRANSITIVE, OPEN_V2, OPEN_V1, open_v3)
    assert level_ok(CompatibilityLevel.FULL, OPEN_V1, OPEN_V1)
    assert not level_ok(CompatibilityLevel.FULL_TRANSITIVE, OPEN_V2, OPEN_V1, open_v3)


@pytest.mark.parametrize(
    ("old", "new"),
    [(STRING, INTEGER), (OPEN_V1, OPEN_V2), (CLOSED_V2, CLOSED_V1), (True, False)],
)
def test_none_is_always_compatible(old: Schema, new: Schema) -> None:
    assert level_ok(CompatibilityLevel.NONE, old, new)


# Compatibility: individual rules


@pytest.mark.parametrize(
    ("reader", "writer", "expected"),
    [
        # types
        (STRING, STRING, []),
        ({"type": ["string", "null"]}, STRING, []),
        (STRING, {"type": ["string", "null"]}, ["TYPE_NARROWED"]),
        (INTEGER, {"type": "number"}, ["TYPE_NARROWED"]),
        ({"type": "number"}, INTEGER, []),
        ({"type": "boolean"}, STRING, ["TYPE_CHANGED"]),
        ({"type": "string"}, {"type": "boolean"}, ["TYPE_CHANGED"]),
        ({"type": ["string", "null"]}, {"type": "null"}, []),
        ({"maxLength": 3}, INTEGER, []),  # no type: reads any type
        # enum and const
        ({"enum": ["a", "b"]}, {"enum": ["b"]}, []),
        ({"enum": ["a"]}, {"enum": ["a", "b"]}, ["ENUM_ARRAY_NARROWED"]),
        ({"enum": ["a"]}, STRING, ["ENUM_ARRAY_NARROWED"]),
        (STRING, {"enum": ["a", "b"]}, []),
        ({"type": "string", "maxLength": 1}, {"enum": ["a", "bb"]}, ["ENUM_ARRAY_NARROWED"]),
        ({"const": 1}, {"const": 1}, []),
        ({"const": 1}, {"const": 2}, ["ENUM_ARRAY_NARROWED"]),
        ({"enum": [1, 2]}, {"const": 2}, []),
        ({"type": "boolean"}, {"const": True}, []),
        # numbers
        ({"type": "number", "maximum": 10}, {"type": "number", "maximum": 5}, []),
        (
            {"type": "number", "maximum": 5},
            {"type": "number", "maximum": 10},
            ["MAXIMUM_DECREASED"],
        ),
        ({"type": "number", "maximum": 5}, {"type": "number"}, ["MAXIMUM_ADDED"]),
        ({"type": "number", "minimum": 5}, {"type": "number", "minimum": 1}, ["MINIMUM_INCREASED"]),
        ({"type": "number", "minimum": 0}, {"type": "number"}, ["MINIMUM_ADDED"]),
        ({"type": "number", "minimum": 0}, {"type": "number", "exclusiveMinimum": 0}, []),
        (
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "number", "minimum": 0},
            ["MINIMUM_EXCLUSIVE_INCREASED"],
        ),
        (
            {"type": "number", "exclusiveMaximum": 10},
            {"type": "number"},
            ["MAXIMUM_EXCLUSIVE_ADDED"],
        ),
        ({"type": "number", "exclusiveMaximum": 10}, {"type": "number", "maximum": 9}, []),
        ({"type": "number", "multipleOf": 2}, {"type": "number", "multipleOf": 4}, []),
        (
            {"type": "number", "multipleOf": 4},
            {"type": "number", "multipleOf": 2},
            ["MULTIPLE_EXPANDED"],
        ),
        (
            {"type": "number", "multipleOf": 3},
            {"type": "number", "multipleOf": 4},
            ["MULTIPLE_CHANGED"],
        ),
        ({"type": "number", "multipleOf": 0.1}, {"type": "number", "multipleOf": 0.3}, []),
        ({"type": "number", "multipleOf": 2}, {"type": "number"}, ["MULTIPLE_ADDED"]),
        ({"type": "number", "multipleOf": 0.5}, INTEGER, []),
        # strings
        ({"type": "string", "maxLength": 9}, {"type": "string", "maxLength": 5}, []),
        ({"type": "string", "minLength": 2}, STRING, ["MIN_LENGTH_ADDED"]),
        (
            {"type": "string", "minLength": 2},
            {"type": "string", "minLength": 1},
            ["MIN_LENGTH_INCREASED"],
        ),
        ({"type": "string", "minLength": 0}, STRING, []),
        ({"type": "string", "pattern": "^a"}, STRING, ["PATTERN_ADDED"]),
        (
            {"type": "string", "pattern": "^a"},
            {"type": "string", "pattern": "^b"},
            ["PATTERN_CHANGED"],
        ),
        (STRING, {"type": "string", "pattern": "^b"}, []),
        ({"type": "string", "format": "email"}, STRING, []),
        # arrays
        ({"type": "array", "items": {"type": "number"}}, {"type": "array", "items": INTEGER}, []),
        ({"type": "array", "items": INTEGER}, {"type": "array", "items": STRING}, ["TYPE_CHANGED"]),
        ({"type": "array", "items": INTEGER}, {"type": "array"}, ["ADDITIONAL_ITEMS_NARROWED"]),
        ({"type": "array"}, {"type": "array", "items": STRING}, []),
        ({"type": "array", "maxItems": 2}, {"type": "array"}, ["MAX_ITEMS_ADDED"]),
        (
            {"type": "array", "maxItems": 2},
            {"type": "array", "maxItems": 3},
            ["MAX_ITEMS_DECREASED"],
        ),
        (
            {"type": "array", "minItems": 2},
            {"type": "array", "minItems": 1},
            ["MIN_ITEMS_INCREASED"],
        ),
        ({"type": "array", "minItems": 1}, {"type": "array"}, ["MIN_ITEMS_ADDED"]),
        ({"type": "array", "uniqueItems": True}, {"type": "array"}, ["UNIQUE_ITEMS_ADDED"]),
        ({"type": "array"}, {"type": "array", "uniqueItems": True}, []),
        (
            {"type": "array", "items": [STRING], "additionalItems": False},
            {"type": "array", "items": [STRING, INTEGER]},
            ["ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL", "ADDITIONAL_ITEMS_REMOVED"],
        ),
        (
            {"type": "array", "items": [STRING, INTEGER]},
            {"type": "array", "items": [STRING]},
            ["ITEM_ADDED_TO_OPEN_CONTENT_MODEL"],
        ),
        (
            {"type": "array", "items": [STRING, INTEGER]},
            {"type": "array", "items": [STRING], "additionalItems": False},
            [],
        ),
        (
            {"type": "array", "items": [STRING, INTEGER]},
            {"type": "array", "items": [STRING], "additionalItems": STRING},
            ["ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "TYPE_CHANGED"],
        ),
        (
            {"type": "array", "items": {"type": "number"}},
            {"type": "array", "items": [INTEGER, {"type": "number"}], "additionalItems": False},
            [],
        ),
        (
            {"type": "array", "items": [STRING], "additionalItems": False},
            {"type": "array", "items": STRING, "maxItems": 1},
            [],
        ),
        # objects
        (
            obj({"a": STRING}, additionalProperties=STRING),
            obj({"a": STRING, "b": STRING}, closed=True),
            [],
        ),
        (
            obj({"a": STRING}, additionalProperties=STRING),
            obj({"a": STRING, "b": INTEGER}, closed=True),
            ["PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "TYPE_CHANGED"],
        ),
        (
            obj({"a": STRING, "b": INTEGER}),
            obj({"a": STRING}, additionalProperties=STRING),
            ["PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "TYPE_CHANGED"],
        ),
        (obj({}, additionalProperties=STRING), obj({}), ["ADDITIONAL_PROPERTIES_NARROWED"]),
        (obj({}, closed=True), obj({}), ["ADDITIONAL_PROPERTIES_NARROWED"]),
        (obj({}), obj({}, closed=True), []),
        (
            obj({}, additionalProperties={"type": "number"}),
            obj({}, additionalProperties=INTEGER),
            [],
        ),
        (
            obj({}, additionalProperties=INTEGER),
            obj({}, additionalProperties={"type": "number"}),
            ["TYPE_NARROWED"],
        ),
        (
            obj({}, patternProperties={"^x-": STRING}),
            obj({"x-a": STRING}, closed=True),
            [],
        ),
        (
            obj({}, patternProperties={"^x-": INTEGER}, additionalProperties=False),
            obj({"x-a": STRING}, closed=True),
            ["PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "TYPE_CHANGED"],
        ),
        ({"type": "object", "maxProperties": 2}, {"type": "object"}, ["MAX_PROPERTIES_ADDED"]),
        (
            {"type": "object", "minProperties": 2},
            {"type": "object", "minProperties": 1},
            ["MIN_PROPERTIES_INCREASED"],
        ),
        (
            obj({"a": STRING, "b": STRING}, dependencies={"a": ["b"]}),
            obj({"a": STRING, "b": STRING}),
            ["DEPENDENCY_ARRAY_ADDED"],
        ),
        (
            obj({"a": STRING, "b": STRING, "c": STRING}, dependencies={"a": ["b", "c"]}),
            obj({"a": STRING, "b": STRING, "c": STRING}, dependencies={"a": ["b"]}),
            ["DEPENDENCY_ARRAY_EXTENDED"],
        ),
        (
            obj({"a": STRING, "b": STRING}),
            obj({"a": STRING, "b": STRING}, dependentRequired={"a": ["b"]}),
            [],
        ),
        (
            obj({"a": STRING}, dependencies={"a": {"required": ["b"]}}),
            obj({"a": STRING}),
            ["DEPENDENCY_SCHEMA_ADDED"],
        ),
        (
            {"type": "object", "propertyNames": {"maxLength": 3}},
            {"type": "object"},
            ["MAX_LENGTH_ADDED"],
        ),
        # combined schemas
        ({"anyOf": [STRING, INTEGER]}, STRING, []),
        ({"oneOf": [STRING, INTEGER]}, INTEGER, []),
        ({"anyOf": [STRING, INTEGER]}, {"type": "boolean"}, ["TYPE_CHANGED"]),
        (STRING, {"anyOf": [STRING, INTEGER]}, ["TYPE_CHANGED"]),
        ({"anyOf": [STRING, INTEGER]}, {"anyOf": [INTEGER, STRING]}, []),
        ({"anyOf": [STRING, INTEGER, {"type": "null"}]}, {"anyOf": [STRING, INTEGER]}, []),
        ({"anyOf": [STRING]}, {"anyOf": [STRING, INTEGER]}, ["SUM_TYPE_NARROWED"]),
        (
            {"anyOf": [STRING, {"type": "boolean"}]},
            {"anyOf": [STRING, INTEGER]},
            ["COMBINED_TYPE_SUBSCHEMAS_CHANGED"],
        ),
        ({"oneOf": [STRING, INTEGER]}, {"anyOf": [STRING, INTEGER]}, ["COMBINED_TYPE_CHANGED"]),
        ({"anyOf": [STRING, INTEGER]}, {"oneOf": [STRING, INTEGER]}, []),
        ({"allOf": [STRING, {"maxLength": 5}]}, {"allOf": [STRING, {"maxLength": 3}]}, []),
        (
            {"allOf": [STRING, {"maxLength": 5}, {"minLength": 1}]},
            {"allOf": [STRING, {"maxLength": 5}]},
            ["PRODUCT_TYPE_EXTENDED", "MIN_LENGTH_ADDED"],
        ),
        ({"allOf": [STRING]}, STRING, []),
        (STRING, {"allOf": [STRING, {"maxLength": 3}]}, []),
        ({"type": "string", "maxLength": 3}, {"allOf": [STRING, {"maxLength": 3}]}, []),
        # boolean schemas and not
        (True, STRING, []),
        ({}, False, []),
        (STRING, False, []),
        (False, STRING, ["TYPE_CHANGED"]),
        (STRING, True, ["TYPE_NARROWED"]),
        (STRING, {}, ["TYPE_NARROWED"]),
        ({"not": STRING}, INTEGER, []),
        ({"not": STRING}, STRING, ["NOT_TYPE_EXTENDED"]),
        ({"not": {"type": ["string", "integer"]}}, {"not": STRING}, ["NOT_TYPE_EXTENDED"]),
        ({"not": STRING}, {"not": {"type": ["string", "integer"]}}, []),
    ],
)
def test_rule(reader: Schema, writer: Schema, expected: list[str]) -> None:
    assert names(problems(reader, writer)) == expected


def test_messages_name_reader_and_writer_and_pointer() -> None:
    messages = problems(
        obj({"tags": {"type": "array", "maxItems": 2}}), obj({"tags": {"type": "array"}})
    )
    assert messages == ["MAX_ITEMS_ADDED at '#/properties/tags': the reader added maxItems 2"]
    messages = problems(obj({"a/b": INTEGER}), obj({"a/b": STRING}))
    assert "'#/properties/a~1b'" in messages[0]


def test_draft4_exclusive_bounds() -> None:
    draft4 = "http://json-schema.org/draft-04/schema#"
    reader = {"$schema": draft4, "type": "number", "maximum": 10, "exclusiveMaximum": True}
    writer = {"$schema": draft4, "type": "number", "maximum": 10}
    assert names(problems(reader, writer)) == ["MAXIMUM_EXCLUSIVE_DECREASED"]
    assert problems(writer, reader) == []


def test_2020_12_prefix_items() -> None:
    draft = "https://json-schema.org/draft/2020-12/schema"
    reader = {"$schema": draft, "type": "array", "prefixItems": [STRING], "items": False}
    writer = {"$schema": draft, "type": "array", "prefixItems": [STRING, INTEGER]}
    assert names(problems(reader, writer)) == [
        "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        "ADDITIONAL_ITEMS_REMOVED",
    ]
    assert problems(writer, reader) == []


# Decoding


def test_decode_valid_payloads() -> None:
    schema = js(obj({"name": STRING, "age": INTEGER}, required=["name"]))
    schema.decode(b'{"name": "Ada", "age": 36}')
    schema.decode('{"name": "Zoë"}'.encode())
    js(True).decode(b"[1, 2]")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"name": "Ada", "age": "x"}', "at '$.age': 'x' is not of type 'integer'"),
        (b'{"age": 1}', "at '$': 'name' is a required property"),
        (b'"Ada"', "at '$': 'Ada' is not of type 'object'"),
        (b'{"name": "Ada"', "payload is not JSON"),
        (b"", "payload is not JSON"),
        (b'{"name": "Ada", "age": NaN}', "payload is not JSON"),
        (b'{"name": "\xff"}', "payload is not UTF-8"),
    ],
)
def test_decode_rejects(payload: bytes, reason: str) -> None:
    schema = js(obj({"name": STRING, "age": INTEGER}, required=["name"]))
    with pytest.raises(PayloadError) as raised:
        schema.decode(payload)
    assert reason in str(raised.value)


def test_decode_ignores_format() -> None:
    js({"type": "string", "format": "email"}).decode(b'"not an email"')


def test_decode_false_schema_rejects_everything() -> None:
    with pytest.raises(PayloadError, match="False schema does not allow"):
        js(False).decode(b"1")


def test_validator_is_built_once() -> None:
    schema = js(obj({"name": STRING}))
    validator = schema.validator
    schema.decode(b'{"name": "a"}')
    assert schema.validator is validator


# Properties: a compatible verdict must hold on concrete instances.

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from([0.5, 2.5]), st.text(max_size=3)
)
INSTANCES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "c"]), children, max_size=3),
    ),
    max_leaves=6,
)
LEAF_SCHEMAS = st.one_of(
    st.sampled_from(
        [
            True,
            False,
            STRING,
            INTEGER,
            {"type": "number"},
            {"type": "null"},
            {"type": ["string", "null"]},
            {"type": "string", "maxLength": 2},
            {"type": "integer", "minimum": 0},
            {"type": "number", "maximum": 3, "multipleOf": 0.5},
            {"enum": ["a", 1, None]},
            {"const": "a"},
        ]
    )
)
SCHEMAS = st.recursive(
    LEAF_SCHEMAS,
    lambda children: st.one_of(
        st.builds(lambda items: {"type": "array", "items": items}, children),
        st.builds(
            lambda props, closed, required: obj(
                props, closed=closed, required=sorted(set(required) & props.keys())
            ),
            st.dictionaries(st.sampled_from(["a", "b", "c"]), children, max_size=3),
            st.booleans(),
            st.lists(st.sampled_from(["a", "b", "c"]), max_size=2),
        ),
        st.builds(lambda branches: {"anyOf": branches}, st.lists(children, min_size=1, max_size=3)),
    ),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None)
@given(reader=SCHEMAS, writer=SCHEMAS, instances=st.lists(INSTANCES, max_size=10))
def test_compatible_reader_accepts_what_writer_accepts(
    reader: Schema, writer: Schema, instances: list[Any]
) -> None:
    parsed_reader, parsed_writer = js(reader), js(writer)
    if check(parsed_reader, parsed_writer):
        return
    for instance in instances:
        if parsed_writer.validator.is_valid(instance):
            assert parsed_reader.validator.is_valid(instance), (reader, writer, instance)


@settings(max_examples=200, deadline=None)
@given(schema=SCHEMAS)
def test_every_schema_reads_its_own_data(schema: Schema) -> None:
    assert check(js(schema), js(schema)) == []
