"""The schema registry's REST API on a real broker's HTTP listener, spoken with the standard
library as any client would: exact status codes, Confluent error codes and response shapes;
durability across clean and kill -9 restarts; produce-time validation of topics with
`confluent.value.schema.validation` / `confluent.key.schema.validation`.

Most tests share one broker and keep to their own subjects, record names and topics, so that
one test's schemas never collide with another's (the same schema text would share an id).
Tests that change the global config or mode put it back before they end.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import fastavro
import pytest
from confluent_kafka import Consumer
from confluent_kafka import KafkaError
from confluent_kafka import Producer
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import AlterConfigOpType
from confluent_kafka.admin import ConfigEntry
from confluent_kafka.admin import ConfigResource
from confluent_kafka.admin import NewTopic

from tests.support.server import BrokerProcess
from tests.support.server import running_broker

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
MAX_BODY_BYTES = 16 * 1024 * 1024


# --- talking to the registry ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: str
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def call(
    broker: BrokerProcess,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
) -> Answer:
    """One request on its own connection; `body` is sent as JSON, `raw` as it is."""
    assert broker.http_port is not None
    connection = http.client.HTTPConnection("127.0.0.1", broker.http_port, timeout=15)
    try:
        payload = raw if raw is not None else None if body is None else json.dumps(body).encode()
        headers = {"Accept": CONTENT_TYPE}
        if payload is not None:
            headers["Content-Type"] = CONTENT_TYPE
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, response.getheader("Content-Type", ""), response.read())
    finally:
        connection.close()


def ok(answer: Answer) -> Any:
    """The JSON of a 200 answer in the registry's content type."""
    assert answer.status == 200, answer
    assert answer.content_type == CONTENT_TYPE, answer
    return answer.json


def error(answer: Answer, status: int, error_code: int) -> str:
    """Assert a Confluent error document; returns its message."""
    assert answer.status == status, answer
    assert answer.content_type == CONTENT_TYPE, answer
    document = answer.json
    assert set(document) == {"error_code", "message"}, document
    assert document["error_code"] == error_code, document
    assert isinstance(document["message"], str)
    assert document["message"]
    message: str = document["message"]
    return message


def record(name: str, *fields: dict[str, Any], namespace: str = "it") -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": namespace, "fields": list(fields)}


def field(name: str, kind: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, **extra}


def text(schema: dict[str, Any]) -> str:
    return json.dumps(schema)


def register(broker: BrokerProcess, subject: str, schema: dict[str, Any], **extra: Any) -> Any:
    return ok(
        call(broker, "POST", f"/subjects/{subject}/versions", {"schema": text(schema), **extra})
    )


def post_schema(broker: BrokerProcess, path: str, schema: dict[str, Any], **extra: Any) -> Answer:
    return call(broker, "POST", path, {"schema": text(schema), **extra})


def set_config(broker: BrokerProcess, subject: str, level: str) -> None:
    answer = call(broker, "PUT", f"/config/{subject}", {"compatibility": level})
    assert ok(answer) == {"compatibility": level}


def raw_exchange(broker: BrokerProcess, request: bytes) -> tuple[int, bytes]:
    """Send raw bytes, read until close; returns the status and the body."""
    assert broker.http_port is not None
    with socket.create_connection(("127.0.0.1", broker.http_port), timeout=15) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


# --- register ---------------------------------------------------------------------------------


def test_register_returns_an_id_and_the_same_schema_again_is_not_a_new_version(
    shared_broker: BrokerProcess,
) -> None:
    schema = record("RegOnce", field("id", "long"), field("name", "string"))
    first = register(shared_broker, "reg-once", schema)
    assert set(first) == {"id", "version", "guid"}
    assert first["version"] == 1
    assert isinstance(first["id"], int)

    # Other whitespace and key order: the same schema, so the same id and no new version.
    reordered = {
        "fields": [
            {"type": "long", "name": "id"},
            {"type": "string", "name": "name"},
        ],
        "namespace": "it",
        "name": "RegOnce",
        "type": "record",
    }
    body = {"schema": json.dumps(reordered, indent=4)}
    again = ok(call(shared_broker, "POST", "/subjects/reg-once/versions", body))
    assert again == first
    assert ok(call(shared_broker, "GET", "/subjects/reg-once/versions")) == [1]

    # The same schema under another subject keeps its id and starts that subject at 1.
    other = register(shared_broker, "reg-once-other", schema)
    assert (other["id"], other["version"]) == (first["id"], 1)
    subjects = ok(call(shared_broker, "GET", f"/schemas/ids/{first['id']}/subjects"))
    assert subjects == ["reg-once", "reg-once-other"]


def test_an_incompatible_schema_is_409_and_names_the_field(shared_broker: BrokerProcess) -> None:
    register(shared_broker, "reg-incompatible", record("RegIncompatible", field("id", "long")))
    breaking = record("RegIncompatible", field("id", "long"), field("quantity", "int"))
    answer = post_schema(shared_broker, "/subjects/reg-incompatible/versions", breaking)
    message = error(answer, 409, 409)
    assert "quantity" in message
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in message
    assert ok(call(shared_broker, "GET", "/subjects/reg-incompatible/versions")) == [1]

    # With a default the same change is BACKWARD compatible.
    evolved = record("RegIncompatible", field("id", "long"), field("quantity", "int", default=1))
    assert register(shared_broker, "reg-incompatible", evolved)["version"] == 2


@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param({"schema": "{not json"}, "JSON", id="unparseable"),
        pytest.param(
            {"schema": text(record("RegBad", field("a", "it.NoSuchType")))},
            "NoSuchType",
            id="unknown-type",
        ),
        pytest.param(
            {"schema": text(record("RegBad", field("a", "int", default="x")))},
            "default",
            id="bad-default",
        ),
        pytest.param({"schema": ""}, "Empty schema", id="empty"),
        pytest.param({"schema": "   "}, "Empty schema", id="blank"),
        pytest.param({}, "Empty schema", id="missing"),
        pytest.param({"schema": None}, "Empty schema", id="null"),
        pytest.param([], "JSON object", id="not-an-object"),
        pytest.param(
            {"schema": text(record("RegBad", field("a", "int"))), "schemaType": "XML"},
            "XML",
            id="unknown-type-name",
        ),
    ],
)
def test_an_invalid_schema_is_42201(shared_broker: BrokerProcess, body: Any, words: str) -> None:
    message = error(call(shared_broker, "POST", "/subjects/reg-invalid/versions", body), 422, 42201)
    assert words in message
    error(call(shared_broker, "GET", "/subjects/reg-invalid/versions"), 404, 40401)


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b'{"schema": '])
def test_a_body_that_is_not_json_is_400(shared_broker: BrokerProcess, raw: bytes) -> None:
    answer = call(shared_broker, "POST", "/subjects/reg-not-json/versions", raw=raw)
    error(answer, 400, 400)


def test_references_by_full_name(shared_broker: BrokerProcess) -> None:
    address = record("Address", field("city", "string"), namespace="refs")
    referenced = register(shared_broker, "ref-x", address)
    customer = record("Customer", field("address", "refs.Address"), namespace="refs")

    # Without the reference the type is unknown.
    missing = post_schema(shared_broker, "/subjects/ref-customer/versions", customer)
    assert "refs.Address" in error(missing, 422, 42201)

    references = [{"name": "refs.Address", "subject": "ref-x", "version": 1}]
    created = register(shared_broker, "ref-customer", customer, references=references)
    assert created["id"] != referenced["id"]
    document = ok(call(shared_broker, "GET", "/subjects/ref-customer/versions/1"))
    assert document["references"] == references
    assert ok(call(shared_broker, "GET", f"/schemas/ids/{created['id']}"))["references"] == (
        references
    )
    referencedby = call(shared_broker, "GET", "/subjects/ref-x/versions/1/referencedby")
    assert ok(referencedby) == [created["id"]]
    # Looking it up needs the references too, and then finds it.
    found = post_schema(shared_broker, "/subjects/ref-customer", customer, references=references)
    assert ok(found)["id"] == created["id"]

    for unknown in (
        [{"name": "refs.Address", "subject": "ref-nowhere", "version": 1}],
        [{"name": "refs.Address", "subject": "ref-x", "version": 2}],
    ):
        answer = post_schema(
            shared_broker, "/subjects/ref-customer-2/versions", customer, references=unknown
        )
        assert "not registered" in error(answer, 422, 42201)
    malformed = [{"name": "refs.Address", "subject": "ref-x"}]
    answer = post_schema(
        shared_broker, "/subjects/ref-customer-2/versions", customer, references=malformed
    )
    error(answer, 422, 42201)

    # A referenced version can be deleted neither alone nor with its subject.
    error(call(shared_broker, "DELETE", "/subjects/ref-x/versions/1"), 422, 42206)
    error(call(shared_broker, "DELETE", "/subjects/ref-x"), 422, 42206)
    assert ok(call(shared_broker, "GET", "/subjects/ref-x/versions")) == [1]


# --- lookup -----------------------------------------------------------------------------------


def test_lookup_finds_the_version_holding_a_schema(shared_broker: BrokerProcess) -> None:
    v1 = record("Lookup", field("id", "long"))
    v2 = record("Lookup", field("id", "long"), field("note", "string", default=""))
    first = register(shared_broker, "lookup", v1)
    second = register(shared_broker, "lookup", v2)

    found = ok(post_schema(shared_broker, "/subjects/lookup", v1))
    assert found == {
        "subject": "lookup",
        "version": 1,
        "id": first["id"],
        "guid": first["guid"],
        "schema": found["schema"],
    }
    assert json.loads(found["schema"]) == v1
    assert ok(post_schema(shared_broker, "/subjects/lookup", v2))["version"] == 2
    assert ok(post_schema(shared_broker, "/subjects/lookup", v2))["id"] == second["id"]

    unknown_schema = record("Lookup", field("other", "int"))
    error(post_schema(shared_broker, "/subjects/lookup", unknown_schema), 404, 40403)
    error(post_schema(shared_broker, "/subjects/lookup-nowhere", v1), 404, 40401)
    error(call(shared_broker, "POST", "/subjects/lookup", {"schema": ""}), 422, 42201)

    # A soft-deleted version is found only with ?deleted=true.
    assert ok(call(shared_broker, "DELETE", "/subjects/lookup/versions/2")) == 2
    error(post_schema(shared_broker, "/subjects/lookup", v2), 404, 40403)
    deleted = ok(post_schema(shared_broker, "/subjects/lookup?deleted=true", v2))
    assert (deleted["version"], deleted["id"]) == (2, second["id"])


# --- subjects and versions --------------------------------------------------------------------


def test_subject_listing_with_deleted_and_prefix(shared_broker: BrokerProcess) -> None:
    register(shared_broker, "listing-a-1", record("ListingA1", field("a", "int")))
    register(shared_broker, "listing-a-2", record("ListingA2", field("a", "int")))
    register(shared_broker, "listing-b", record("ListingB", field("a", "int")))
    assert ok(call(shared_broker, "DELETE", "/subjects/listing-a-2")) == [1]

    live = ok(call(shared_broker, "GET", "/subjects"))
    assert {"listing-a-1", "listing-b"} <= set(live)
    assert "listing-a-2" not in live
    assert {"listing-a-1", "listing-a-2", "listing-b"} <= set(
        ok(call(shared_broker, "GET", "/subjects?deleted=true"))
    )
    assert ok(call(shared_broker, "GET", "/subjects?subjectPrefix=listing-a")) == ["listing-a-1"]
    assert ok(call(shared_broker, "GET", "/subjects?subjectPrefix=listing-a&deleted=true")) == [
        "listing-a-1",
        "listing-a-2",
    ]
    assert ok(call(shared_broker, "GET", "/subjects?subjectPrefix=listing-zzz")) == []


def test_versions_by_number_latest_and_minus_one(shared_broker: BrokerProcess) -> None:
    v1 = record("Versions", field("id", "long"))
    v2 = record("Versions", field("id", "long"), field("tag", ["null", "string"], default=None))
    first = register(shared_broker, "versions", v1)
    second = register(shared_broker, "versions", v2)

    assert ok(call(shared_broker, "GET", "/subjects/versions/versions")) == [1, 2]
    one = ok(call(shared_broker, "GET", "/subjects/versions/versions/1"))
    assert set(one) == {"subject", "version", "id", "guid", "schema"}
    assert (one["subject"], one["version"], one["id"]) == ("versions", 1, first["id"])
    assert json.loads(one["schema"]) == v1
    for name in ("latest", "-1", "2"):
        latest = ok(call(shared_broker, "GET", f"/subjects/versions/versions/{name}"))
        assert (latest["version"], latest["id"]) == (2, second["id"])

    for invalid in ("abc", "0", "-2", "1.5", str(2**31)):
        answer = call(shared_broker, "GET", f"/subjects/versions/versions/{invalid}")
        assert "latest" in error(answer, 422, 42202)
    error(call(shared_broker, "GET", "/subjects/versions/versions/3"), 404, 40402)
    error(call(shared_broker, "GET", "/subjects/versions-nowhere/versions/1"), 404, 40401)
    error(call(shared_broker, "GET", "/subjects/versions-nowhere/versions/latest"), 404, 40401)
    error(call(shared_broker, "GET", "/subjects/versions-nowhere/versions"), 404, 40401)

    raw = call(shared_broker, "GET", "/subjects/versions/versions/1/schema")
    assert raw.status == 200
    assert json.loads(raw.body) == v1
    assert raw.body.decode() == one["schema"]
    latest_raw = call(shared_broker, "GET", "/subjects/versions/versions/latest/schema")
    assert json.loads(latest_raw.body) == v2
    error(call(shared_broker, "GET", "/subjects/versions/versions/9/schema"), 404, 40402)
    referencedby = call(shared_broker, "GET", "/subjects/versions/versions/1/referencedby")
    assert ok(referencedby) == []
    error(call(shared_broker, "GET", "/subjects/versions/versions/9/referencedby"), 404, 40402)


def test_a_subject_name_with_reserved_characters_round_trips(
    shared_broker: BrokerProcess,
) -> None:
    subject = "weird subject/with:chars"
    quoted = quote(subject, safe="")
    created = ok(
        call(
            shared_broker,
            "POST",
            f"/subjects/{quoted}/versions",
            {"schema": text(record("Weird", field("a", "int")))},
        )
    )
    assert ok(call(shared_broker, "GET", f"/subjects/{quoted}/versions/1"))["subject"] == subject
    assert subject in ok(call(shared_broker, "GET", "/subjects"))
    assert ok(call(shared_broker, "GET", f"/schemas/ids/{created['id']}/subjects")) == [subject]


# --- schemas by id ----------------------------------------------------------------------------


def test_schemas_by_id_and_guid(shared_broker: BrokerProcess) -> None:
    schema = record("ById", field("id", "long"))
    created = register(shared_broker, "by-id-a", schema)
    register(shared_broker, "by-id-b", schema)
    schema_id = created["id"]

    document = ok(call(shared_broker, "GET", f"/schemas/ids/{schema_id}"))
    assert set(document) == {"schema", "guid"}  # no schemaType for AVRO, no references
    assert json.loads(document["schema"]) == schema
    assert document["guid"] == created["guid"]
    with_subject = ok(call(shared_broker, "GET", f"/schemas/ids/{schema_id}?subject=by-id-b"))
    assert with_subject["schema"] == document["schema"]
    error(call(shared_broker, "GET", f"/schemas/ids/{schema_id}?subject=by-id-zzz"), 404, 40403)

    raw = call(shared_broker, "GET", f"/schemas/ids/{schema_id}/schema")
    assert raw.status == 200
    assert json.loads(raw.body) == schema
    assert ok(call(shared_broker, "GET", f"/schemas/ids/{schema_id}/subjects")) == [
        "by-id-a",
        "by-id-b",
    ]
    assert ok(call(shared_broker, "GET", f"/schemas/ids/{schema_id}/versions")) == [
        {"subject": "by-id-a", "version": 1},
        {"subject": "by-id-b", "version": 1},
    ]

    # Soft-deleted subject versions show only with ?deleted=true.
    assert ok(call(shared_broker, "DELETE", "/subjects/by-id-b/versions/1")) == 1
    assert ok(call(shared_broker, "GET", f"/schemas/ids/{schema_id}/subjects")) == ["by-id-a"]
    assert ok(call(shared_broker, "GET", f"/schemas/ids/{schema_id}/subjects?deleted=true")) == [
        "by-id-a",
        "by-id-b",
    ]

    for suffix in ("", "/schema", "/subjects", "/versions"):
        answer = call(shared_broker, "GET", f"/schemas/ids/987654321{suffix}")
        error(answer, 404, 40403)

    by_guid = ok(call(shared_broker, "GET", f"/schemas/guids/{created['guid']}"))
    assert by_guid["id"] == schema_id
    assert by_guid["schema"] == document["schema"]
    error(
        call(shared_broker, "GET", "/schemas/guids/00000000-0000-0000-0000-000000000000"),
        404,
        40403,
    )

    assert set(ok(call(shared_broker, "GET", "/schemas/types"))) == {"AVRO", "JSON", "PROTOBUF"}

    listed = ok(call(shared_broker, "GET", "/schemas?subjectPrefix=by-id-"))
    assert [(entry["subject"], entry["version"], entry["id"]) for entry in listed] == [
        ("by-id-a", 1, schema_id)
    ]
    everything = ok(call(shared_broker, "GET", "/schemas"))
    assert any(entry["subject"] == "by-id-a" for entry in everything)


# --- deletes ----------------------------------------------------------------------------------


def test_deleting_versions_soft_then_permanent(shared_broker: BrokerProcess) -> None:
    v1 = record("DelVersion", field("id", "long"))
    v2 = record("DelVersion", field("id", "long"), field("x", "int", default=0))
    register(shared_broker, "del-version", v1)
    register(shared_broker, "del-version", v2)

    assert ok(call(shared_broker, "DELETE", "/subjects/del-version/versions/2")) == 2
    error(call(shared_broker, "DELETE", "/subjects/del-version/versions/2"), 404, 40406)
    assert ok(call(shared_broker, "GET", "/subjects/del-version/versions")) == [1]
    assert ok(call(shared_broker, "GET", "/subjects/del-version/versions?deleted=true")) == [1, 2]
    error(call(shared_broker, "GET", "/subjects/del-version/versions/2"), 404, 40402)
    soft = ok(call(shared_broker, "GET", "/subjects/del-version/versions/2?deleted=true"))
    assert json.loads(soft["schema"]) == v2
    latest = ok(call(shared_broker, "GET", "/subjects/del-version/versions/latest"))
    assert latest["version"] == 1

    answer = call(shared_broker, "DELETE", "/subjects/del-version/versions/1?permanent=true")
    error(answer, 404, 40407)
    permanent = call(shared_broker, "DELETE", "/subjects/del-version/versions/2?permanent=true")
    assert ok(permanent) == 2
    assert ok(call(shared_broker, "GET", "/subjects/del-version/versions?deleted=true")) == [1]
    error(call(shared_broker, "GET", "/subjects/del-version/versions/2?deleted=true"), 404, 40402)
    error(call(shared_broker, "DELETE", "/subjects/del-version/versions/2"), 404, 40402)
    error(call(shared_broker, "DELETE", "/subjects/del-version/versions/abc"), 422, 42202)
    error(call(shared_broker, "DELETE", "/subjects/del-version-nowhere/versions/1"), 404, 40401)


def test_deleting_subjects_soft_then_permanent(shared_broker: BrokerProcess) -> None:
    v1 = record("DelSubject", field("id", "long"))
    v2 = record("DelSubject", field("id", "long"), field("x", "int", default=0))
    register(shared_broker, "del-subject", v1)
    register(shared_broker, "del-subject", v2)
    register(shared_broker, "del-subject-live", record("DelSubjectLive", field("a", "int")))

    error(call(shared_broker, "DELETE", "/subjects/del-subject-live?permanent=true"), 404, 40405)
    assert ok(call(shared_broker, "DELETE", "/subjects/del-subject")) == [1, 2]
    error(call(shared_broker, "DELETE", "/subjects/del-subject"), 404, 40404)
    error(call(shared_broker, "GET", "/subjects/del-subject/versions"), 404, 40401)
    error(call(shared_broker, "GET", "/subjects/del-subject/versions/latest"), 404, 40401)
    assert ok(call(shared_broker, "GET", "/subjects/del-subject/versions?deleted=true")) == [1, 2]
    assert "del-subject" not in ok(call(shared_broker, "GET", "/subjects"))

    assert ok(call(shared_broker, "DELETE", "/subjects/del-subject?permanent=true")) == [1, 2]
    error(call(shared_broker, "GET", "/subjects/del-subject/versions?deleted=true"), 404, 40401)
    assert "del-subject" not in ok(call(shared_broker, "GET", "/subjects?deleted=true"))
    error(call(shared_broker, "DELETE", "/subjects/del-subject"), 404, 40401)
    error(call(shared_broker, "DELETE", "/subjects/del-subject?permanent=true"), 404, 40401)


def test_a_version_of_a_soft_deleted_subject_is_subject_not_found(
    shared_broker: BrokerProcess,
) -> None:
    register(shared_broker, "soft-gone", record("SoftGone", field("a", "int")))
    assert ok(call(shared_broker, "DELETE", "/subjects/soft-gone")) == [1]
    error(call(shared_broker, "GET", "/subjects/soft-gone/versions/1"), 404, 40401)


def test_deleting_latest_deletes_the_latest_live_version(shared_broker: BrokerProcess) -> None:
    register(shared_broker, "del-latest", record("DelLatest", field("a", "int")))
    evolved = record("DelLatest", field("a", "int"), field("b", "int", default=0))
    register(shared_broker, "del-latest", evolved)
    assert ok(call(shared_broker, "DELETE", "/subjects/del-latest/versions/2")) == 2
    assert ok(call(shared_broker, "DELETE", "/subjects/del-latest/versions/latest")) == 1


def test_latest_with_deleted_is_still_the_latest_live_version(
    shared_broker: BrokerProcess,
) -> None:
    register(shared_broker, "get-latest", record("GetLatest", field("a", "int")))
    evolved = record("GetLatest", field("a", "int"), field("b", "int", default=0))
    register(shared_broker, "get-latest", evolved)
    assert ok(call(shared_broker, "DELETE", "/subjects/get-latest/versions/2")) == 2
    latest = ok(call(shared_broker, "GET", "/subjects/get-latest/versions/latest?deleted=true"))
    assert latest["version"] == 1


def test_re_registering_after_a_soft_delete_is_a_new_version_with_the_same_id(
    shared_broker: BrokerProcess,
) -> None:
    schema = record("Revived", field("id", "long"))
    first = register(shared_broker, "revived", schema)
    assert ok(call(shared_broker, "DELETE", "/subjects/revived")) == [1]
    again = register(shared_broker, "revived", schema)
    assert (again["id"], again["version"]) == (first["id"], 2)
    assert ok(call(shared_broker, "GET", "/subjects/revived/versions")) == [2]


def test_re_registering_drops_the_soft_deleted_version_of_the_same_schema(
    shared_broker: BrokerProcess,
) -> None:
    schema = record("RevivedTwice", field("id", "long"))
    register(shared_broker, "revived-twice", schema)
    assert ok(call(shared_broker, "DELETE", "/subjects/revived-twice")) == [1]
    register(shared_broker, "revived-twice", schema)
    assert ok(call(shared_broker, "GET", "/subjects/revived-twice/versions?deleted=true")) == [2]


def test_ids_are_never_reused_after_a_permanent_delete(shared_broker: BrokerProcess) -> None:
    kept = register(shared_broker, "ids-kept", record("IdsKept", field("a", "int")))
    doomed = register(shared_broker, "ids-doomed", record("IdsDoomed", field("a", "int")))
    assert doomed["id"] > kept["id"]
    assert ok(call(shared_broker, "DELETE", "/subjects/ids-doomed")) == [1]
    assert ok(call(shared_broker, "DELETE", "/subjects/ids-doomed?permanent=true")) == [1]
    error(call(shared_broker, "GET", f"/schemas/ids/{doomed['id']}"), 404, 40403)

    fresh = register(shared_broker, "ids-fresh", record("IdsFresh", field("a", "int")))
    assert fresh["id"] > doomed["id"]
    # The deleted schema itself comes back with a new id, too.
    reborn = register(shared_broker, "ids-doomed", record("IdsDoomed", field("a", "int")))
    assert reborn["id"] > fresh["id"]
    assert reborn["version"] == 1


def test_a_version_referenced_by_a_soft_deleted_schema_cannot_be_permanently_deleted(
    shared_broker: BrokerProcess,
) -> None:
    register(shared_broker, "ref-hard-base", record("HardBase", field("a", "int")))
    user = record("HardUser", field("base", "it.HardBase"))
    references = [{"name": "it.HardBase", "subject": "ref-hard-base", "version": 1}]
    register(shared_broker, "ref-hard-user", user, references=references)
    assert ok(call(shared_broker, "DELETE", "/subjects/ref-hard-user")) == [1]
    assert ok(call(shared_broker, "DELETE", "/subjects/ref-hard-base/versions/1")) == 1
    answer = call(shared_broker, "DELETE", "/subjects/ref-hard-base/versions/1?permanent=true")
    error(answer, 422, 42206)


def test_permanently_deleting_the_last_version_drops_the_subject_config(
    shared_broker: BrokerProcess,
) -> None:
    register(shared_broker, "last-version", record("LastVersion", field("a", "int")))
    set_config(shared_broker, "last-version", "NONE")
    assert ok(call(shared_broker, "DELETE", "/subjects/last-version/versions/1")) == 1
    answer = call(shared_broker, "DELETE", "/subjects/last-version/versions/1?permanent=true")
    assert ok(answer) == 1
    error(call(shared_broker, "GET", "/config/last-version"), 404, 40408)


# --- config -----------------------------------------------------------------------------------


def test_global_config(shared_broker: BrokerProcess) -> None:
    ok(call(shared_broker, "DELETE", "/config"))  # whatever an earlier test left
    try:
        assert ok(call(shared_broker, "GET", "/config")) == {"compatibilityLevel": "BACKWARD"}
        answer = call(shared_broker, "PUT", "/config", {"compatibility": "FULL"})
        assert ok(answer) == {"compatibility": "FULL"}
        assert ok(call(shared_broker, "GET", "/config")) == {"compatibilityLevel": "FULL"}
        # A subject without its own level follows the global one.
        defaulted = call(shared_broker, "GET", "/config/config-global-x?defaultToGlobal=true")
        assert ok(defaulted) == {"compatibilityLevel": "FULL"}
        for bad in ({"compatibility": "SIDEWAYS"}, {"compatibility": 7}, {}, {"level": "FULL"}):
            error(call(shared_broker, "PUT", "/config", bad), 422, 42203)
        assert ok(call(shared_broker, "GET", "/config")) == {"compatibilityLevel": "FULL"}
        assert ok(call(shared_broker, "DELETE", "/config")) == {"compatibilityLevel": "FULL"}
        assert ok(call(shared_broker, "GET", "/config")) == {"compatibilityLevel": "BACKWARD"}
    finally:
        call(shared_broker, "DELETE", "/config")


def test_subject_config(shared_broker: BrokerProcess) -> None:
    register(shared_broker, "config-subject", record("ConfigSubject", field("a", "int")))
    message = error(call(shared_broker, "GET", "/config/config-subject"), 404, 40408)
    assert "config-subject" in message
    defaulted = call(shared_broker, "GET", "/config/config-subject?defaultToGlobal=true")
    assert ok(defaulted) == {"compatibilityLevel": "BACKWARD"}

    answer = call(shared_broker, "PUT", "/config/config-subject", {"compatibility": "full"})
    assert ok(answer) == {"compatibility": "FULL"}
    assert ok(call(shared_broker, "GET", "/config/config-subject")) == {
        "compatibilityLevel": "FULL"
    }
    answer = call(shared_broker, "PUT", "/config/config-subject", {"compatibility": "BOTH"})
    error(answer, 422, 42203)
    assert ok(call(shared_broker, "DELETE", "/config/config-subject")) == {
        "compatibilityLevel": "FULL"
    }
    error(call(shared_broker, "GET", "/config/config-subject"), 404, 40408)

    # A subject may be configured before it has any schema.
    set_config(shared_broker, "config-before-schemas", "NONE")
    before = call(shared_broker, "GET", "/config/config-before-schemas")
    assert ok(before) == {"compatibilityLevel": "NONE"}


def test_a_null_compatibility_does_not_turn_checks_off(shared_broker: BrokerProcess) -> None:
    register(shared_broker, "config-null", record("ConfigNull", field("a", "int")))
    answer = call(shared_broker, "PUT", "/config/config-null", {"compatibility": None})
    try:
        error(answer, 422, 42203)
    finally:
        call(shared_broker, "DELETE", "/config/config-null")


def test_config_of_an_unknown_subject_is_40408(shared_broker: BrokerProcess) -> None:
    error(call(shared_broker, "GET", "/config/config-never-registered"), 404, 40408)


def test_deleting_an_absent_subject_config_is_40401(shared_broker: BrokerProcess) -> None:
    register(shared_broker, "config-delete-absent", record("ConfigDelAbsent", field("a", "int")))
    error(call(shared_broker, "DELETE", "/config/config-delete-absent"), 404, 40401)


def test_a_subject_at_none_accepts_an_incompatible_schema(shared_broker: BrokerProcess) -> None:
    register(shared_broker, "level-none", record("LevelNone", field("a", "int")))
    set_config(shared_broker, "level-none", "NONE")
    created = register(shared_broker, "level-none", record("LevelNone", field("b", "string")))
    assert created["version"] == 2


def test_a_subject_at_forward_refuses_what_forward_forbids(shared_broker: BrokerProcess) -> None:
    register(shared_broker, "level-forward", record("LevelForward", field("a", "int")))
    set_config(shared_broker, "level-forward", "FORWARD")
    # Old readers cannot fill `a` (no default) from data that lacks it.
    dropped = record("LevelForward", field("b", "int", default=0))
    answer = post_schema(shared_broker, "/subjects/level-forward/versions", dropped)
    assert "'a'" in error(answer, 409, 409)
    # Adding a field without a default is fine going FORWARD (but not BACKWARD).
    added = record("LevelForward", field("a", "int"), field("c", "string"))
    assert register(shared_broker, "level-forward", added)["version"] == 2


@pytest.mark.parametrize(
    ("level", "accepted"), [("BACKWARD", True), ("BACKWARD_TRANSITIVE", False)]
)
def test_a_transitive_level_checks_every_version(
    shared_broker: BrokerProcess, level: str, accepted: bool
) -> None:
    subject = f"level-{level.lower()}"
    name = f"Level{level.title().replace('_', '')}"
    set_config(shared_broker, subject, level)
    register(shared_broker, subject, record(name, field("a", "int")))
    register(shared_broker, subject, record(name, field("a", "int"), field("b", "int", default=0)))
    # Reads v2 data (which has b) but not v1 data (which lacks it, and b has no default now).
    third = record(name, field("a", "int"), field("b", "int"))
    answer = post_schema(shared_broker, f"/subjects/{subject}/versions", third)
    if accepted:
        assert ok(answer)["version"] == 3
    else:
        message = error(answer, 409, 409)
        assert "'b'" in message
        assert "version 1" in message


# --- compatibility endpoint -------------------------------------------------------------------


def test_the_compatibility_endpoint(shared_broker: BrokerProcess) -> None:
    register(shared_broker, "compat", record("Compat", field("a", "int")))
    register(
        shared_broker, "compat", record("Compat", field("a", "int"), field("b", "int", default=0))
    )
    fine = record(
        "Compat", field("a", "int"), field("b", "int", default=0), field("c", "int", default=0)
    )
    needs_b = record("Compat", field("a", "int"), field("b", "int"))
    breaking = record("Compat", field("a", "int"), field("c", "string"))
    base = "/compatibility/subjects/compat/versions"

    assert ok(post_schema(shared_broker, f"{base}/latest", fine)) == {"is_compatible": True}
    verbose = ok(post_schema(shared_broker, f"{base}/latest?verbose=true", fine))
    assert verbose == {"is_compatible": True, "messages": []}
    refused = ok(post_schema(shared_broker, f"{base}/latest?verbose=true", breaking))
    assert refused["is_compatible"] is False
    assert set(refused) == {"is_compatible", "messages"}
    assert any("'c'" in message for message in refused["messages"])
    assert ok(post_schema(shared_broker, f"{base}/latest", breaking)) == {"is_compatible": False}

    # needs_b reads v2 data but not v1 data.
    assert ok(post_schema(shared_broker, f"{base}/2", needs_b)) == {"is_compatible": True}
    versus_1 = ok(post_schema(shared_broker, f"{base}/1?verbose=true", needs_b))
    assert versus_1["is_compatible"] is False
    assert any("'b'" in message for message in versus_1["messages"])
    # All versions: BACKWARD checks only the latest, BACKWARD_TRANSITIVE every one.
    assert ok(post_schema(shared_broker, base, needs_b)) == {"is_compatible": True}
    set_config(shared_broker, "compat", "BACKWARD_TRANSITIVE")
    everything = ok(post_schema(shared_broker, f"{base}?verbose=true", needs_b))
    assert everything["is_compatible"] is False
    assert everything["messages"]

    error(post_schema(shared_broker, f"{base}/9", fine), 404, 40402)
    error(post_schema(shared_broker, f"{base}/abc", fine), 422, 42202)
    error(call(shared_broker, "POST", f"{base}/latest", {"schema": "{"}), 422, 42201)
    nowhere = "/compatibility/subjects/compat-nowhere/versions/latest"
    assert ok(post_schema(shared_broker, nowhere, fine)) == {"is_compatible": True}


def test_a_verbose_check_of_an_invalid_schema_reports_it_as_a_message(
    shared_broker: BrokerProcess,
) -> None:
    register(shared_broker, "compat-invalid", record("CompatInvalid", field("a", "int")))
    path = "/compatibility/subjects/compat-invalid/versions/latest?verbose=true"
    answer = ok(call(shared_broker, "POST", path, {"schema": "{"}))
    assert answer["is_compatible"] is False
    assert len(answer["messages"]) == 1


def test_a_check_against_a_version_of_an_unknown_subject_is_version_not_found(
    shared_broker: BrokerProcess,
) -> None:
    path = "/compatibility/subjects/compat-unknown/versions/1"
    error(post_schema(shared_broker, path, record("CompatUnknown", field("a", "int"))), 404, 40402)


# --- mode -------------------------------------------------------------------------------------


def test_read_only_mode(shared_broker: BrokerProcess) -> None:
    assert ok(call(shared_broker, "GET", "/mode")) == {"mode": "READWRITE"}
    register(shared_broker, "mode-ro", record("ModeRo", field("a", "int")))
    error(call(shared_broker, "GET", "/mode/mode-ro"), 404, 40409)
    assert ok(call(shared_broker, "GET", "/mode/mode-ro?defaultToGlobal=true")) == {
        "mode": "READWRITE"
    }

    assert ok(call(shared_broker, "PUT", "/mode/mode-ro", {"mode": "READONLY"})) == {
        "mode": "READONLY"
    }
    assert ok(call(shared_broker, "GET", "/mode/mode-ro")) == {"mode": "READONLY"}
    evolved = record("ModeRo", field("a", "int"), field("b", "int", default=0))
    error(post_schema(shared_broker, "/subjects/mode-ro/versions", evolved), 422, 42205)
    error(call(shared_broker, "DELETE", "/subjects/mode-ro/versions/1"), 422, 42205)
    error(call(shared_broker, "DELETE", "/subjects/mode-ro"), 422, 42205)
    # Reads still work.
    assert ok(call(shared_broker, "GET", "/subjects/mode-ro/versions")) == [1]

    for bad in ({"mode": "SOMETIMES"}, {"mode": None}, {}):
        error(call(shared_broker, "PUT", "/mode/mode-ro", bad), 422, 42204)
    assert ok(call(shared_broker, "DELETE", "/mode/mode-ro")) == {"mode": "READONLY"}
    error(call(shared_broker, "GET", "/mode/mode-ro"), 404, 40409)
    assert register(shared_broker, "mode-ro", evolved)["version"] == 2


def test_import_mode_keeps_the_given_ids_and_versions(shared_broker: BrokerProcess) -> None:
    schema = record("Imported", field("a", "int"))
    # Outside IMPORT an id or a version is not permitted.
    for extra in ({"id": 70001}, {"version": 4}):
        answer = post_schema(shared_broker, "/subjects/mode-import/versions", schema, **extra)
        error(answer, 422, 42205)

    assert ok(call(shared_broker, "PUT", "/mode/mode-import", {"mode": "IMPORT"})) == {
        "mode": "IMPORT"
    }
    try:
        created = register(shared_broker, "mode-import", schema, id=70001, version=4)
        assert (created["id"], created["version"]) == (70001, 4)
        stored = ok(call(shared_broker, "GET", "/subjects/mode-import/versions/4"))
        assert (stored["id"], json.loads(stored["schema"])) == (70001, schema)
        assert json.loads(ok(call(shared_broker, "GET", "/schemas/ids/70001"))["schema"]) == schema
        # No compatibility check in IMPORT: an unrelated schema is accepted.
        other = record("Imported", field("z", "string"))
        second = register(shared_broker, "mode-import", other, id=70002, version=5)
        assert (second["id"], second["version"]) == (70002, 5)
        # An id already held by another schema cannot be reused.
        clash = record("ImportedClash", field("a", "int"))
        answer = post_schema(
            shared_broker, "/subjects/mode-import/versions", clash, id=70001, version=6
        )
        error(answer, 422, 42205)
    finally:
        assert ok(call(shared_broker, "DELETE", "/mode/mode-import")) == {"mode": "IMPORT"}
    assert ok(call(shared_broker, "GET", "/subjects/mode-import/versions")) == [4, 5]


def test_import_mode_needs_force_on_a_subject_with_schemas(shared_broker: BrokerProcess) -> None:
    register(shared_broker, "mode-import-busy", record("ImportBusy", field("a", "int")))
    answer = call(shared_broker, "PUT", "/mode/mode-import-busy", {"mode": "IMPORT"})
    error(answer, 422, 42205)
    forced = call(shared_broker, "PUT", "/mode/mode-import-busy?force=true", {"mode": "IMPORT"})
    assert ok(forced) == {"mode": "IMPORT"}
    assert ok(call(shared_broker, "DELETE", "/mode/mode-import-busy")) == {"mode": "IMPORT"}


def test_deleting_an_absent_subject_mode_is_40401(shared_broker: BrokerProcess) -> None:
    error(call(shared_broker, "DELETE", "/mode/mode-absent"), 404, 40401)


def test_deleting_the_global_mode(shared_broker: BrokerProcess) -> None:
    assert ok(call(shared_broker, "PUT", "/mode", {"mode": "READWRITE"})) == {"mode": "READWRITE"}
    assert ok(call(shared_broker, "DELETE", "/mode")) == {"mode": "READWRITE"}


# --- other formats ----------------------------------------------------------------------------


def test_a_json_schema(shared_broker: BrokerProcess) -> None:
    pytest.importorskip("millpond.registry.formats.json_schema")
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    body = {"schema": json.dumps(schema), "schemaType": "JSON"}
    created = ok(call(shared_broker, "POST", "/subjects/format-json/versions", body))
    document = ok(call(shared_broker, "GET", f"/schemas/ids/{created['id']}"))
    assert document["schemaType"] == "JSON"
    assert json.loads(document["schema"]) == schema
    spaced = {"schema": json.dumps(schema, indent=2), "schemaType": "JSON"}
    assert ok(call(shared_broker, "POST", "/subjects/format-json", spaced))["id"] == created["id"]
    bad = {"schema": json.dumps({"type": 12}), "schemaType": "JSON"}
    error(call(shared_broker, "POST", "/subjects/format-json/versions", bad), 422, 42201)


def test_a_protobuf_schema(shared_broker: BrokerProcess) -> None:
    pytest.importorskip("millpond.registry.formats.protobuf")
    schema = 'syntax = "proto3";\npackage it;\n\nmessage Proto {\n  string a = 1;\n}\n'
    body = {"schema": schema, "schemaType": "PROTOBUF"}
    created = ok(call(shared_broker, "POST", "/subjects/format-protobuf/versions", body))
    document = ok(call(shared_broker, "GET", f"/schemas/ids/{created['id']}"))
    assert document["schemaType"] == "PROTOBUF"
    assert "message Proto" in document["schema"]
    spaced = {"schema": schema.replace("\n", "\n\n"), "schemaType": "PROTOBUF"}
    found = ok(call(shared_broker, "POST", "/subjects/format-protobuf", spaced))
    assert found["id"] == created["id"]
    bad = {"schema": "message {", "schemaType": "PROTOBUF"}
    error(call(shared_broker, "POST", "/subjects/format-protobuf/versions", bad), 422, 42201)


# --- HTTP edges -------------------------------------------------------------------------------


def test_unknown_registry_paths_are_404_and_wrong_methods_405(
    shared_broker: BrokerProcess,
) -> None:
    for path in ("/schemas/ids/1/nope", "/subjects/a/versions/1/nope", "/config/a/b"):
        assert error(call(shared_broker, "GET", path), 404, 404)
    for method, path in (
        ("DELETE", "/schemas/types"),
        ("PUT", "/subjects/a/versions"),
        ("POST", "/config"),
        ("GET", "/compatibility/subjects/a/versions/latest"),
    ):
        error(call(shared_broker, method, path), 405, 405)


def test_a_body_over_the_limit_is_413(shared_broker: BrokerProcess) -> None:
    head = (
        "POST /subjects/too-big/versions HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: {CONTENT_TYPE}\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
    )
    status, _body = raw_exchange(shared_broker, head.encode())
    assert status == 413
    error(call(shared_broker, "GET", "/subjects/too-big/versions"), 404, 40401)


def test_a_chunked_body_is_411(shared_broker: BrokerProcess) -> None:
    body = json.dumps({"schema": text(record("Chunked", field("a", "int")))}).encode()
    request = (
        b"POST /subjects/chunked/versions HTTP/1.1\r\nHost: x\r\n"
        + f"Content-Type: {CONTENT_TYPE}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    status, _body = raw_exchange(shared_broker, request)
    assert status == 411
    error(call(shared_broker, "GET", "/subjects/chunked/versions"), 404, 40401)


def test_health_and_metrics_still_answer(shared_broker: BrokerProcess) -> None:
    health = call(shared_broker, "GET", "/health")
    assert (health.status, health.json["status"]) == (200, "ready")
    metrics = call(shared_broker, "GET", "/metrics")
    assert metrics.status == 200
    assert b"millpond_" in metrics.body


# --- durability -------------------------------------------------------------------------------


def snapshot(broker: BrokerProcess, paths: list[str]) -> list[tuple[str, int, bytes]]:
    answers = [(path, call(broker, "GET", path)) for path in paths]
    return [(path, answer.status, answer.body) for path, answer in answers]


def read_schemas_topic(broker: BrokerProcess) -> list[tuple[bytes, bytes | None]]:
    """Every (key, value) of `_schemas`, read with an ordinary consumer."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "schemas-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    records: list[tuple[bytes, bytes | None]] = []
    try:
        consumer.assign([TopicPartition("_schemas", 0, 0)])
        while True:
            message = consumer.poll(15)
            assert message is not None, "no end of _schemas within 15 s"
            failure = message.error()
            if failure is not None:
                assert failure.code() == KafkaError._PARTITION_EOF, failure
                return records
            key = message.key()
            assert isinstance(key, bytes)
            records.append((key, message.value()))
    finally:
        consumer.close()


def test_the_registry_survives_clean_and_hard_restarts(tmp_path: Path) -> None:
    with running_broker(tmp_path / "data") as broker:
        v1 = record("Durable", field("a", "int"))
        v2 = record("Durable", field("a", "int"), field("b", "int", default=0))
        first = register(broker, "durable", v1)
        register(broker, "durable", v2)
        register(broker, "durable-copy", v1)
        set_config(broker, "durable", "FULL")
        assert ok(call(broker, "PUT", "/config", {"compatibility": "FORWARD"}))
        assert ok(call(broker, "PUT", "/mode/durable-copy", {"mode": "READONLY"}))
        assert ok(call(broker, "DELETE", "/subjects/durable/versions/2")) == 2
        doomed = register(broker, "durable-doomed", record("DurableDoomed", field("a", "int")))
        assert ok(call(broker, "DELETE", "/subjects/durable-doomed")) == [1]
        assert ok(call(broker, "DELETE", "/subjects/durable-doomed?permanent=true")) == [1]
        paths = [
            "/subjects",
            "/subjects?deleted=true",
            "/subjects/durable/versions",
            "/subjects/durable/versions?deleted=true",
            "/subjects/durable/versions/1",
            "/subjects/durable/versions/2",
            "/subjects/durable/versions/2?deleted=true",
            "/subjects/durable-copy/versions/latest",
            "/subjects/durable-doomed/versions?deleted=true",
            f"/schemas/ids/{first['id']}",
            f"/schemas/ids/{first['id']}/versions",
            f"/schemas/ids/{doomed['id']}",
            "/config",
            "/config/durable",
            "/mode",
            "/mode/durable-copy",
            "/schemas",
        ]
        before = snapshot(broker, paths)
        assert [status for _path, status, _body in before] == [
            200, 200, 200, 200, 200, 404, 200, 200, 404, 200, 200, 404, 200, 200, 200, 200, 200,
        ]  # fmt: skip

        broker.restart()
        assert snapshot(broker, paths) == before
        error(
            call(broker, "POST", "/subjects/durable-copy/versions", {"schema": text(v2)}),
            422,
            42205,
        )

        # The permanent delete wrote an ID_FLOOR past the deleted id, so the floor outlives
        # the schema's own records once compaction drops them (a replay of the uncompacted
        # topic would find the id anyway).
        floors = [
            json.loads(value)["next_id"]
            for key, value in read_schemas_topic(broker)
            if json.loads(key).get("keytype") == "ID_FLOOR" and value is not None
        ]
        assert floors
        assert max(floors) > doomed["id"]

        # The highest id was deleted for good, and the broker restarted: still no reuse.
        after_restart = register(broker, "durable-new", record("DurableNew", field("a", "int")))
        assert after_restart["id"] > doomed["id"]

        # kill -9 right after an answered registration loses nothing.
        last = register(broker, "durable-last", record("DurableLast", field("a", "int")))
        before_kill = snapshot(broker, paths)
        broker.restart(hard=True)
        assert snapshot(broker, paths) == before_kill
        found = ok(call(broker, "GET", "/subjects/durable-last/versions/1"))
        assert (found["id"], found["version"]) == (last["id"], 1)
        again = register(broker, "durable-last-2", record("DurableLast2", field("a", "int")))
        assert again["id"] > last["id"]


# --- produce-time validation ------------------------------------------------------------------

ORDER = record("ValOrder", field("id", "long"), field("item", "string"))
OTHER = record("ValOther", field("x", "int"))


def avro_bytes(schema: dict[str, Any], value: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), value)
    return out.getvalue()


def wire(schema_id: int, payload: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + payload


def create_topic(broker: BrokerProcess, name: str, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, 1, config=configs)])[name].result(15)


VALUE_VALIDATION = {"confluent.value.schema.validation": "true"}
KEY_VALIDATION = {"confluent.key.schema.validation": "true"}


def produce(
    broker: BrokerProcess, topic: str, records: list[tuple[bytes | None, bytes | None]]
) -> list[int | None]:
    """Produce each (key, value), one batch each; returns each one's delivery error code (None
    when stored)."""
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "message.timeout.ms": 15000}
    )
    errors: list[int | None] = [-1] * len(records)

    def reporter(index: int) -> Any:
        def report(failure: KafkaError | None, _message: Any) -> None:
            errors[index] = None if failure is None else failure.code()

        return report

    for index, (key, value) in enumerate(records):
        producer.produce(topic, key=key, value=value, on_delivery=reporter(index))
        producer.flush(15)
    assert producer.flush(15) == 0
    return errors


def stored_count(broker: BrokerProcess, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"count-{topic}"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=15)
    finally:
        consumer.close()
    return int(high - low)


@pytest.fixture(scope="module")
def schema_ids(shared_broker: BrokerProcess) -> Iterator[dict[str, int]]:
    """ORDER under val-orders-value and val-keys-key; OTHER under an unrelated subject."""
    order = register(shared_broker, "val-orders-value", ORDER)["id"]
    register(shared_broker, "val-keys-key", ORDER)
    register(shared_broker, "val-altered-value", ORDER)
    other = register(shared_broker, "val-unrelated-value", OTHER)["id"]
    yield {"order": order, "other": other}


def test_a_validated_topic_refuses_what_is_not_its_schema(
    shared_broker: BrokerProcess, schema_ids: dict[str, int]
) -> None:
    create_topic(shared_broker, "val-orders", **VALUE_VALIDATION)
    valid = avro_bytes(ORDER, {"id": 7, "item": "pen"})
    outcomes = produce(
        shared_broker,
        "val-orders",
        [
            (None, wire(schema_ids["order"], valid)),
            (None, b"plain bytes, not the wire format"),
            (None, b"\x00\x00"),  # too short for a schema id
            (None, b"\x01" + wire(schema_ids["order"], valid)[1:]),  # wrong magic byte
            (None, wire(schema_ids["other"], avro_bytes(OTHER, {"x": 1}))),
            (None, wire(987654321, valid)),
            (None, wire(schema_ids["order"], valid[:-2])),  # truncated string
            (None, None),  # a tombstone carries no payload
            (b"any key at all", wire(schema_ids["order"], valid)),
        ],
    )
    refused = KafkaError.INVALID_RECORD
    assert outcomes == [None, refused, refused, refused, refused, refused, refused, None, None]
    assert stored_count(shared_broker, "val-orders") == 3


def test_key_validation(shared_broker: BrokerProcess, schema_ids: dict[str, int]) -> None:
    create_topic(shared_broker, "val-keys", **KEY_VALIDATION)
    key = wire(schema_ids["order"], avro_bytes(ORDER, {"id": 1, "item": "k"}))
    outcomes = produce(
        shared_broker,
        "val-keys",
        [
            (key, b"values are not checked"),
            (b"plain key", b"v"),
            (wire(schema_ids["other"], avro_bytes(OTHER, {"x": 1})), b"v"),
            (None, b"a null key passes"),
        ],
    )
    refused = KafkaError.INVALID_RECORD
    assert outcomes == [None, refused, refused, None]


def test_a_topic_without_the_config_accepts_anything(shared_broker: BrokerProcess) -> None:
    create_topic(shared_broker, "val-free")
    outcomes = produce(shared_broker, "val-free", [(b"k", b"plain"), (None, wire(987654321, b""))])
    assert outcomes == [None, None]


def test_turning_validation_on_takes_effect_and_describe_shows_it(
    shared_broker: BrokerProcess, schema_ids: dict[str, int]
) -> None:
    create_topic(shared_broker, "val-altered")
    admin = AdminClient({"bootstrap.servers": shared_broker.bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, "val-altered")
    names = ("confluent.key.schema.validation", "confluent.value.schema.validation")
    described = admin.describe_configs([resource])[resource].result(15)
    for name in names:
        assert (described[name].value, described[name].is_default) == ("false", True)
    assert produce(shared_broker, "val-altered", [(None, b"plain")]) == [None]

    change = ConfigResource(
        ConfigResource.Type.TOPIC,
        "val-altered",
        incremental_configs=[
            ConfigEntry(
                "confluent.value.schema.validation",
                "true",
                incremental_operation=AlterConfigOpType.SET,
            )
        ],
    )
    admin.incremental_alter_configs([change])[change].result(15)
    described = admin.describe_configs([resource])[resource].result(15)
    value_flag = described["confluent.value.schema.validation"]
    assert (value_flag.value, value_flag.is_default) == ("true", False)
    assert described["confluent.key.schema.validation"].value == "false"

    valid = wire(schema_ids["order"], avro_bytes(ORDER, {"id": 2, "item": "cup"}))
    outcomes = produce(shared_broker, "val-altered", [(None, b"plain"), (None, valid)])
    assert outcomes == [KafkaError.INVALID_RECORD, None]


# --- a compression bomb on a validated topic -------------------------------------------------


def test_a_compression_bomb_to_a_validated_topic_is_refused_in_bounded_memory(
    tmp_path: Path,
) -> None:
    # One record whose value is 200 MiB of zeros, zstd-compressed as a producer with
    # compression.type=zstd sends it: a few KB on the wire, far under max.message.bytes, but
    # validating it used to inflate all of it (1.3 GB peak RSS for 400 MiB). Its own broker:
    # VmHWM is the peak of the process's whole life.
    import datetime

    import cramjam
    from crc32c import crc32c
    from kio.schema.errors import ErrorCode
    from kio.schema.produce.v9 import request as produce_v9

    from millpond.protocol.record_codec import COMPRESSION_ZSTD
    from millpond.protocol.record_codec import NewRecord
    from millpond.protocol.record_codec import encode_batch
    from millpond.protocol.varint import encode_varint
    from tests.support.wire import WireClient

    mib = 1024 * 1024
    value_size = 200 * mib
    fields = b"\x00" + encode_varint(0) + encode_varint(0) + encode_varint(-1)  # null key
    fields += encode_varint(value_size)
    headers = encode_varint(0)
    compressor = cramjam.zstd.Compressor()
    compressor.compress(encode_varint(len(fields) + value_size + len(headers)) + fields)
    zeros = bytes(mib)
    for _ in range(value_size // mib):
        compressor.compress(zeros)
    compressor.compress(headers)
    area = bytes(compressor.finish())
    bomb = encode_batch([NewRecord(None, b"v", 1)], compression=COMPRESSION_ZSTD)[:61] + area
    struct.pack_into(">i", bomb, 8, len(bomb) - 12)  # batchLength
    struct.pack_into(">I", bomb, 17, crc32c(bytes(bomb[21:])))
    assert len(bomb) < 100_000  # max.message.bytes is 1 MiB

    def send(client: WireClient, topic: str, records: bytes) -> Any:
        request = produce_v9.ProduceRequest(
            acks=-1,
            timeout=datetime.timedelta(seconds=10),
            topic_data=(
                produce_v9.TopicProduceData(
                    name=topic,
                    partition_data=(produce_v9.PartitionProduceData(index=0, records=records),),
                ),
            ),
        )
        return client.call(request).responses[0].partition_responses[0]

    with running_broker(tmp_path / "data") as broker, WireClient(broker.bootstrap) as client:
        create_topic(broker, "val-bomb", **VALUE_VALIDATION)
        create_topic(broker, "bomb-free")
        refused = send(client, "val-bomb", bytes(bomb))
        assert refused.error_code == ErrorCode.invalid_record
        assert "inflates past 64 MiB" in (refused.error_message or "")
        # Up, and the same connection is served next.
        small = encode_batch([NewRecord(b"k", b"fine", 1)], compression=COMPRESSION_ZSTD)
        stored = send(client, "bomb-free", bytes(small))
        assert (stored.error_code, stored.base_offset) == (ErrorCode.none, 0)
        assert stored_count(broker, "val-bomb") == 0
        assert broker.process is not None
        status = Path(f"/proc/{broker.process.pid}/status").read_text()
        peak_kb = next(int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmHWM:")
        assert peak_kb < 300 * 1024, f"peak RSS {peak_kb} kB"
