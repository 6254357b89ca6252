"""The schema registry through confluent-kafka's own SchemaRegistryClient and its Avro, JSON
Schema and Protobuf serializers, over real topics with produce-time validation: register,
evolve, break, restart (clean and kill -9)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from confluent_kafka import KafkaError
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import NewTopic
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField
from confluent_kafka.serialization import SerializationContext
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import timestamp_pb2

from tests.support.server import BrokerProcess
from tests.support.server import running_broker

pytestmark = pytest.mark.compat

ORDER_V1 = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"}],
}
ORDER_V2 = {  # adds a field with a default: BACKWARD compatible
    **ORDER_V1,
    "fields": [*ORDER_V1["fields"], {"name": "quantity", "type": "int", "default": 1}],
}
ORDER_RENAMED = {  # renames a field without an alias: refused under BACKWARD
    **ORDER_V1,
    "fields": [{"name": "id", "type": "long"}, {"name": "product", "type": "string"}],
}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with running_broker(tmp_path / "data") as process:
        yield process


def registry_client(broker: BrokerProcess) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": broker.http_url})


def create_validated_topic(broker: BrokerProcess, name: str, *, keys: bool = False) -> None:
    configs = {"confluent.value.schema.validation": "true"}
    if keys:
        configs["confluent.key.schema.validation"] = "true"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, 1, config=configs)])[name].result(15)


def produce(broker: BrokerProcess, topic: str, values: list[bytes | None]) -> list[int | None]:
    """Produce each value; returns each one's delivery error code (None when stored)."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    errors: list[int | None] = [None] * len(values)

    def delivered(index: int) -> Any:
        def report(error: KafkaError | None, _message: Any) -> None:
            errors[index] = None if error is None else error.code()

        return report

    for index, value in enumerate(values):
        producer.produce(topic, value=value, on_delivery=delivered(index))
        producer.flush(15)  # one batch per record, so one refusal doesn't take the others
    assert producer.flush(15) == 0
    return errors


def consume(broker: BrokerProcess, topic: str, count: int) -> list[bytes | None]:
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": f"reader-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes | None] = []
    try:
        while len(values) < count:
            message = consumer.poll(15)
            assert message is not None, f"only {len(values)} of {count} records arrived"
            assert message.error() is None, message.error()
            values.append(message.value())
    finally:
        consumer.close()
    return values


def value_context(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


def test_avro_register_evolve_break_and_restart(broker: BrokerProcess) -> None:
    client = registry_client(broker)
    topic = "orders"
    create_validated_topic(broker, topic)
    context = value_context(topic)

    v1 = AvroSerializer(client, json.dumps(ORDER_V1))
    first = v1({"id": 1, "item": "pen"}, context)
    v2 = AvroSerializer(client, json.dumps(ORDER_V2))
    second = v2({"id": 2, "item": "ink", "quantity": 3}, context)
    assert produce(broker, topic, [first, second, b"not avro"]) == [
        None,
        None,
        KafkaError.INVALID_RECORD,
    ]
    assert client.get_versions(f"{topic}-value") == [1, 2]

    # A breaking change is refused by the registry and never reaches the topic.
    with pytest.raises(SchemaRegistryError) as refused:
        AvroSerializer(client, json.dumps(ORDER_RENAMED))({"id": 3, "product": "x"}, context)
    assert refused.value.http_status_code == 409
    assert "product" in refused.value.error_message
    verdict = client.test_compatibility(
        f"{topic}-value", Schema(json.dumps(ORDER_RENAMED), "AVRO"), verbose=True
    )
    assert verdict is False or getattr(verdict, "is_compatible", None) is False

    broker.restart()
    broker.restart(hard=True)
    fresh = registry_client(broker)  # nothing cached: every answer comes from the broker
    latest = fresh.get_latest_version(f"{topic}-value")
    assert (latest.version, json.loads(latest.schema.schema_str)) == (2, ORDER_V2)
    reader = AvroDeserializer(fresh, json.dumps(ORDER_V2))
    decoded = [reader(value, context) for value in consume(broker, topic, 2)]
    # The v1 record is read with v2's default: the evolution the registry allowed.
    assert decoded == [
        {"id": 1, "item": "pen", "quantity": 1},
        {"id": 2, "item": "ink", "quantity": 3},
    ]
    third = AvroSerializer(fresh, json.dumps(ORDER_V1))({"id": 4, "item": "cap"}, context)
    assert produce(broker, topic, [third]) == [None]


def test_a_kill_right_after_registering_loses_nothing(broker: BrokerProcess) -> None:
    client = registry_client(broker)
    registered = client.register_schema("kill-value", Schema(json.dumps(ORDER_V1), "AVRO"))
    client.set_compatibility("kill-value", "FULL_TRANSITIVE")
    broker.restart(hard=True)
    fresh = registry_client(broker)
    assert fresh.get_schema(registered).schema_str == json.dumps(ORDER_V1, separators=(",", ":"))
    assert fresh.get_compatibility("kill-value") == "FULL_TRANSITIVE"
    assert fresh.lookup_schema("kill-value", Schema(json.dumps(ORDER_V1), "AVRO")).version == 1


def test_validation_refuses_ids_of_other_subjects_and_undecodable_values(
    broker: BrokerProcess,
) -> None:
    client = registry_client(broker)
    create_validated_topic(broker, "payments", keys=True)
    # Another schema (one schema has one id, whichever subjects hold it).
    elsewhere = AvroSerializer(client, json.dumps(ORDER_RENAMED))(
        {"id": 1, "product": "pen"}, value_context("elsewhere")
    )
    key_serializer = AvroSerializer(client, '"string"')
    key = key_serializer("k1", SerializationContext("payments", MessageField.KEY))
    value = AvroSerializer(client, json.dumps(ORDER_V1))(
        {"id": 1, "item": "pen"}, value_context("payments")
    )
    assert value is not None and elsewhere is not None and key is not None
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    outcomes: list[KafkaError | None] = []
    cases = [
        (key, value),  # both registered under their subjects: stored
        (key, elsewhere),  # an id registered under another subject only
        (key, value[:-2]),  # a truncated payload
        (b"plain", value),  # the key is not in the wire format
        (key, None),  # a tombstone: no payload to check
    ]
    for case_key, case_value in cases:
        producer.produce(
            "payments",
            key=case_key,
            value=case_value,
            on_delivery=lambda error, _message: outcomes.append(error),
        )
        producer.flush(15)
    codes = [None if error is None else error.code() for error in outcomes]
    assert codes == [
        None,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_RECORD,
        None,
    ]


def test_json_schema_serializers_through_a_validated_topic(broker: BrokerProcess) -> None:
    client = registry_client(broker)
    topic = "events"
    create_validated_topic(broker, topic)
    context = value_context(topic)
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Event",
        "type": "object",
        "properties": {"kind": {"type": "string"}, "at": {"type": "integer"}},
        "required": ["kind"],
        "additionalProperties": False,
    }
    serializer = JSONSerializer(json.dumps(schema), client)
    good = serializer({"kind": "click", "at": 5}, context)
    assert good is not None
    # A value in the wire format with the right id whose JSON breaks the schema is refused.
    broken = good[:5] + json.dumps({"kind": 7}).encode()
    assert produce(broker, topic, [good, broken]) == [
        None,
        KafkaError.INVALID_RECORD,
    ]
    broker.restart()
    client = registry_client(broker)
    reader = JSONDeserializer(json.dumps(schema), schema_registry_client=client)
    assert [reader(v, context) for v in consume(broker, topic, 1)] == [{"kind": "click", "at": 5}]

    # Closed content model: adding an optional property is BACKWARD compatible...
    wider = {**schema, "properties": {**schema["properties"], "source": {"type": "string"}}}
    assert client.register_schema(f"{topic}-value", Schema(json.dumps(wider), "JSON")) > 0
    # ...making it required is not.
    stricter = {**wider, "required": ["kind", "source"]}
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(f"{topic}-value", Schema(json.dumps(stricter), "JSON"))
    assert refused.value.http_status_code == 409


def _order_message_class() -> Any:
    """A Protobuf message type built at run time (no generated code in the repository). It
    imports a file of ours, which the serializer registers as a schema of its own and
    references, and a well-known type, which the registry knows without a reference."""
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    kinds = descriptor_pb2.FieldDescriptorProto
    money = descriptor_pb2.FileDescriptorProto(
        name="shop/money.proto", package="shop", syntax="proto3"
    )
    money.message_type.add(name="Money").field.add(
        name="cents", number=1, type=kinds.TYPE_INT64, label=optional
    )
    file = descriptor_pb2.FileDescriptorProto(
        name="shop/order.proto",
        package="shop",
        syntax="proto3",
        dependency=["shop/money.proto", "google/protobuf/timestamp.proto"],
    )
    message = file.message_type.add(name="Order")
    message.field.add(name="id", number=1, type=kinds.TYPE_INT64, label=optional)
    message.field.add(name="item", number=2, type=kinds.TYPE_STRING, label=optional)
    message.field.add(
        name="at",
        number=3,
        type=kinds.TYPE_MESSAGE,
        label=optional,
        type_name=".google.protobuf.Timestamp",
    )
    message.field.add(
        name="price", number=4, type=kinds.TYPE_MESSAGE, label=optional, type_name=".shop.Money"
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(money)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))


def test_protobuf_serializers_through_a_validated_topic(broker: BrokerProcess) -> None:
    client = registry_client(broker)
    topic = "shipments"
    create_validated_topic(broker, topic)
    context = value_context(topic)
    order_class = _order_message_class()
    serializer = ProtobufSerializer(order_class, client, {"use.deprecated.format": False})
    order = order_class(id=7, item="pen")
    order.at.seconds = 1_700_000_000
    order.price.cents = 250
    value = serializer(order, context)
    assert value is not None
    assert produce(broker, topic, [value, value[:6] + b"\xff\xff"]) == [
        None,
        KafkaError.INVALID_RECORD,
    ]
    # The import was registered as a schema of its own and referenced.
    assert sorted(client.get_subjects()) == ["shipments-value", "shop/money.proto"]
    latest = client.get_latest_version(f"{topic}-value")
    assert [reference.name for reference in latest.schema.references] == ["shop/money.proto"]
    assert 'import "shop/money.proto";' in latest.schema.schema_str
    reader = ProtobufDeserializer(
        order_class, {"use.deprecated.format": False}, schema_registry_client=client
    )
    [decoded] = [reader(v, context) for v in consume(broker, topic, 1)]
    assert (decoded.id, decoded.item, decoded.at.seconds, decoded.price.cents) == (
        7,
        "pen",
        1_700_000_000,
        250,
    )
    # After kill -9 the schemas come back from _schemas: a fresh client decodes the record
    # and the serializer's schema is still the registered one (same id, no new version).
    broker.restart(hard=True)
    fresh = registry_client(broker)
    reader = ProtobufDeserializer(
        order_class, {"use.deprecated.format": False}, schema_registry_client=fresh
    )
    [decoded] = [reader(v, context) for v in consume(broker, topic, 1)]
    assert decoded.price.cents == 250
    again = ProtobufSerializer(order_class, fresh, {"use.deprecated.format": False})(order, context)
    assert again == value
    assert fresh.get_versions(f"{topic}-value") == [1]
