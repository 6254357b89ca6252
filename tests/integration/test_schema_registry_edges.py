"""The registry's hostile edges over the wire: malformed HTTP, schemas that could not be
stored faithfully, and the `_schemas` topic protected from clients (a client that could delete
its records or change its cleanup policy could make the registry hand an id out twice)."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import AlterConfigOpType
from confluent_kafka.admin import ConfigEntry
from confluent_kafka.admin import ConfigResource
from confluent_kafka.admin import NewTopic
from confluent_kafka.error import KafkaException
from google.protobuf import descriptor_pb2

from tests.integration.test_schema_registry import call
from tests.support.server import BrokerProcess
from tests.support.server import running_broker

SCHEMA = json.dumps({"type": "record", "name": "Edge", "fields": [{"name": "a", "type": "int"}]})


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    with running_broker(tmp_path_factory.mktemp("edges") / "data") as process:
        yield process


def raw(broker: BrokerProcess, request: bytes) -> bytes:
    assert broker.http_port is not None
    with socket.create_connection(("127.0.0.1", broker.http_port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_content_length_of_other_digits_is_a_bad_request(broker: BrokerProcess) -> None:
    answer = raw(
        broker,
        "POST /subjects/x/versions HTTP/1.1\r\nHost: h\r\nContent-Length: ²\r\n\r\n".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert "Traceback" not in broker.log()


def test_a_deeply_nested_body_is_a_bad_request(broker: BrokerProcess) -> None:
    body = b"[" * 100_000
    answer = call(broker, "POST", "/subjects/nested/versions", raw=body)
    assert (answer.status, answer.json["error_code"]) == (400, 400)


def test_a_path_that_is_not_utf8_is_a_bad_request(broker: BrokerProcess) -> None:
    answer = call(broker, "GET", "/subjects/%FF/versions")
    assert (answer.status, answer.json["error_code"]) == (400, 400)


def test_a_405_names_the_allowed_methods(broker: BrokerProcess) -> None:
    answer = raw(broker, b"PATCH /config HTTP/1.1\r\nHost: h\r\n\r\n")
    head = answer.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 405 ")
    assert "Allow: DELETE, GET, PUT" in head


@pytest.mark.parametrize(
    ("schema_type", "schema"),
    [
        ("JSON", '{"type": "number", "maximum": 1e400}'),
        ("AVRO", SCHEMA.replace('"int"}', '"double", "default": -1e999}')),
    ],
)
def test_numbers_past_a_double_are_refused(
    broker: BrokerProcess, schema_type: str, schema: str
) -> None:
    answer = call(
        broker, "POST", "/subjects/huge/versions", {"schema": schema, "schemaType": schema_type}
    )
    assert (answer.status, answer.json["error_code"]) == (422, 42201)


def test_a_descriptor_using_editions_is_refused(broker: BrokerProcess) -> None:
    file = descriptor_pb2.FileDescriptorProto(name="e.proto", syntax="editions")
    file.message_type.add(name="E")
    body = {
        "schema": base64.b64encode(file.SerializeToString()).decode(),
        "schemaType": "PROTOBUF",
    }
    answer = call(broker, "POST", "/subjects/editions/versions", body)
    assert (answer.status, answer.json["error_code"]) == (422, 42201)
    assert "editions" in answer.json["message"]


def test_clients_cannot_delete_or_reconfigure_schemas(broker: BrokerProcess) -> None:
    assert call(broker, "POST", "/subjects/kept/versions", {"schema": SCHEMA}).status == 200
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    deleted = admin.delete_records([TopicPartition("_schemas", 0, -1)])
    with pytest.raises(KafkaException, match="Invalid topic"):
        next(iter(deleted.values())).result(15)
    resource = ConfigResource(
        "topic",
        "_schemas",
        incremental_configs=[
            ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    with pytest.raises(KafkaException, match="internal"):
        admin.incremental_alter_configs([resource])[resource].result(15)
    created = admin.create_topics([NewTopic("_schemas", 3)])
    with pytest.raises(KafkaException, match="TOPIC_ALREADY_EXISTS"):
        created["_schemas"].result(15)


def test_a_schemas_topic_that_is_not_compacted_is_read_but_never_written(
    tmp_path: Path,
) -> None:
    """Made by hand (or by something other than this registry): its records could be deleted
    by retention, and their ids handed out again, so the registry refuses to write to it."""
    with running_broker(tmp_path / "data") as process:
        assert call(process, "POST", "/subjects/a/versions", {"schema": SCHEMA}).status == 200
    topics_file = tmp_path / "data" / "topics.json"
    topics = json.loads(topics_file.read_text())
    text = json.dumps(topics).replace('"cleanup.policy": "compact"', '"cleanup.policy": "delete"')
    assert text != json.dumps(topics)
    topics_file.write_text(text)
    with running_broker(tmp_path / "data") as process:
        assert call(process, "GET", "/subjects").json == ["a"]
        answer = call(process, "POST", "/subjects/b/versions", {"schema": SCHEMA})
        assert (answer.status, answer.json["error_code"]) == (500, 50001)
        assert "not compact" in answer.json["message"]
        assert "read-only" in process.log()
