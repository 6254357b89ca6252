"""The registry's operations and its `_schemas` replay, with an in-memory topic: every change
is what the records say, so replaying them into a fresh state gives the same registry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any

import pytest

from millpond.registry.compatibility import CompatibilityLevel
from millpond.registry.service import NotWritten
from millpond.registry.service import Records
from millpond.registry.service import RegistryError
from millpond.registry.service import SchemaRegistry
from millpond.registry.service import SchemaRequest
from millpond.registry.store import Mode
from millpond.registry.store import RegistryState
from millpond.registry.store import replay


class Topic:
    """`_schemas` as a list, compacted on demand as Kafka's cleaner would."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []
        self.fail: Exception | None = None

    async def append(self, batch: Records) -> None:
        if self.fail is not None:
            raise self.fail
        self.records.extend(batch)

    def compacted(self) -> list[tuple[bytes, bytes | None]]:
        latest: dict[bytes, bytes | None] = {}
        for key, value in self.records:
            latest.pop(key, None)
            latest[key] = value
        return [(key, value) for key, value in latest.items() if value is not None]


def record(*fields: tuple[str, str]) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": "Order",
            "fields": [{"name": name, "type": kind} for name, kind in fields],
        }
    )


V1 = record(("id", "long"))
V2_OPTIONAL = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "note", "type": "string", "default": ""},
        ],
    }
)
V2_REQUIRED = record(("id", "long"), ("note", "string"))


def avro(text: str, **extra: Any) -> SchemaRequest:
    return SchemaRequest.from_json({"schema": text, **extra})


@pytest.fixture
def topic() -> Topic:
    return Topic()


@pytest.fixture
def registry(topic: Topic) -> SchemaRegistry:
    return SchemaRegistry(RegistryState(), topic.append)


def reopened(topic: Topic, *, compact: bool = False) -> SchemaRegistry:
    state = RegistryState()
    assert list(replay(state, topic.compacted() if compact else topic.records)) == []
    return SchemaRegistry(state, topic.append)


def error_of(operation: Callable[[], Awaitable[Any]]) -> RegistryError:
    with pytest.raises(RegistryError) as caught:
        asyncio.run(operation())
    return caught.value


def test_the_same_schema_is_one_id_across_subjects_and_formatting(
    registry: SchemaRegistry,
) -> None:
    first = asyncio.run(registry.register("a-value", avro(V1)))
    again = asyncio.run(registry.register("a-value", avro(json.dumps(json.loads(V1), indent=4))))
    other = asyncio.run(registry.register("b-value", avro(V1)))
    assert (first.id, first.version) == (1, 1)
    assert again == first
    assert (other.id, other.version) == (1, 1)


def test_backward_refuses_a_new_field_without_a_default(registry: SchemaRegistry) -> None:
    asyncio.run(registry.register("s", avro(V1)))
    error = error_of(lambda: registry.register("s", avro(V2_REQUIRED)))
    assert (error.status, error.error_code) == (409, 409)
    assert "'note'" in error.message
    assert asyncio.run(registry.register("s", avro(V2_OPTIONAL))).version == 2


def test_a_subject_level_overrides_the_global_one(registry: SchemaRegistry) -> None:
    asyncio.run(registry.register("s", avro(V1)))
    asyncio.run(registry.set_compatibility(None, "full"))
    asyncio.run(registry.set_compatibility("s", "NONE"))
    assert registry.compatibility("s") is CompatibilityLevel.NONE
    assert registry.compatibility("other") is CompatibilityLevel.FULL
    assert asyncio.run(registry.register("s", avro(V2_REQUIRED))).version == 2
    assert asyncio.run(registry.delete_compatibility("s")) is CompatibilityLevel.NONE
    assert registry.compatibility("s") is CompatibilityLevel.FULL
    error = error_of(lambda: registry.set_compatibility("s", "SIDEWAYS"))
    assert error.error_code == 42203


def test_replay_gives_the_same_registry(topic: Topic, registry: SchemaRegistry) -> None:
    asyncio.run(registry.register("s", avro(V1)))
    asyncio.run(registry.register("s", avro(V2_OPTIONAL)))
    asyncio.run(registry.register("t", avro(V2_OPTIONAL)))
    asyncio.run(registry.set_compatibility("t", "FORWARD"))
    asyncio.run(registry.set_mode("u", "READONLY", force=False))
    asyncio.run(registry.delete_version("s", 1, permanent=False))
    for compact in (False, True):
        copy = reopened(topic, compact=compact)
        assert copy.state.subjects == registry.state.subjects
        assert copy.state.configs == registry.state.configs
        assert copy.state.modes == registry.state.modes
        assert copy.state.next_id == registry.state.next_id
        assert {i: s.identity for i, s in copy.state.schemas.items()} == {
            i: s.identity for i, s in registry.state.schemas.items()
        }


def test_ids_are_never_reused_after_a_permanent_delete_and_compaction(
    topic: Topic, registry: SchemaRegistry
) -> None:
    asyncio.run(registry.register("s", avro(V1)))
    newest = asyncio.run(registry.register("t", avro(V2_REQUIRED)))
    asyncio.run(registry.delete_subject("t", permanent=False))
    asyncio.run(registry.delete_subject("t", permanent=True))
    assert newest.id not in registry.state.schemas
    copy = reopened(topic, compact=True)
    fresh = asyncio.run(copy.register("u", avro(record(("other", "int")))))
    assert fresh.id == newest.id + 1


def test_soft_and_permanent_deletes_follow_confluent(registry: SchemaRegistry) -> None:
    asyncio.run(registry.register("s", avro(V1)))
    asyncio.run(registry.register("s", avro(V2_OPTIONAL)))
    assert error_of(lambda: registry.delete_version("s", 1, permanent=True)).error_code == 40407
    assert asyncio.run(registry.delete_version("s", 1, permanent=False)) == 1
    assert error_of(lambda: registry.delete_version("s", 1, permanent=False)).error_code == 40406
    assert [v.version for v in registry.versions("s")] == [2]
    assert [v.version for v in registry.versions("s", deleted=True)] == [1, 2]
    assert asyncio.run(registry.delete_version("s", 1, permanent=True)) == 1
    assert error_of(lambda: registry.delete_subject("s", permanent=True)).error_code == 40405
    assert asyncio.run(registry.delete_subject("s", permanent=False)) == [2]
    assert error_of(lambda: registry.delete_subject("s", permanent=False)).error_code == 40404
    # Re-registering a soft-deleted schema: a new version, the same id.
    again = asyncio.run(registry.register("s", avro(V2_OPTIONAL)))
    assert (again.version, again.id) == (3, 2)


def test_a_referenced_version_cannot_be_deleted(registry: SchemaRegistry) -> None:
    asyncio.run(
        registry.register("money", avro(record(("cents", "long")).replace("Order", "Money")))
    )
    user = json.dumps(
        {"type": "record", "name": "Invoice", "fields": [{"name": "total", "type": "Money"}]}
    )
    reference = {"name": "Money", "subject": "money", "version": 1}
    entry = asyncio.run(registry.register("invoice", avro(user, references=[reference])))
    assert registry.state.referenced_by("money", 1) == [entry.id]
    error = error_of(lambda: registry.delete_subject("money", permanent=False))
    assert (error.status, error.error_code) == (422, 42206)
    missing = {"name": "Money", "subject": "money", "version": 9}
    error = error_of(lambda: registry.register("x", avro(user, references=[missing])))
    assert error.error_code == 42201


def test_modes(registry: SchemaRegistry) -> None:
    asyncio.run(registry.set_mode("locked", "READONLY", force=False))
    assert error_of(lambda: registry.register("locked", avro(V1))).error_code == 42205
    assert error_of(lambda: registry.set_compatibility("locked", "NONE")).error_code == 42205
    assert error_of(lambda: registry.register("s", avro(V1, id=7))).error_code == 42205
    asyncio.run(registry.set_mode("imported", "IMPORT", force=False))
    entry = asyncio.run(registry.register("imported", avro(V1, id=40, version=3)))
    assert (entry.id, entry.version) == (40, 3)
    assert registry.state.next_id == 41
    # As Confluent: IMPORT needs the id; the same schema at another version is a new version.
    assert error_of(lambda: registry.register("imported", avro(V2_OPTIONAL))).error_code == 42205
    again = asyncio.run(registry.register("imported", avro(V1, id=40, version=4)))
    assert (again.id, again.version) == (40, 4)
    # Switching to IMPORT again is allowed; a subject with live versions needs force.
    asyncio.run(registry.set_mode("imported", "IMPORT", force=False))
    asyncio.run(registry.register("live", avro(V1)))
    assert error_of(lambda: registry.set_mode("live", "IMPORT", force=False)).error_code == 42205
    assert asyncio.run(registry.set_mode("live", "IMPORT", force=True)) is Mode.IMPORT
    assert error_of(lambda: registry.set_mode(None, "SIDEWAYS", force=False)).error_code == 42204
    assert error_of(lambda: registry.set_mode(None, None, force=False)).error_code == 42204
    assert asyncio.run(registry.delete_mode("locked")) is Mode.READONLY
    assert error_of(lambda: registry.delete_mode("locked")).error_code == 40401  # as Confluent


def test_readonly_set_while_a_registration_waits_holds(registry: SchemaRegistry) -> None:
    """The mode is read under the lock: READONLY answered first refuses what comes after."""

    async def race() -> list[Any]:
        readonly = asyncio.create_task(registry.set_mode("s", "READONLY", force=False))
        register = asyncio.create_task(registry.register("s", avro(V1)))
        return await asyncio.gather(readonly, register, return_exceptions=True)

    mode, refused = asyncio.run(race())
    assert mode is Mode.READONLY
    assert isinstance(refused, RegistryError) and refused.error_code == 42205


def test_a_subject_referring_to_itself_can_be_deleted_whole(registry: SchemaRegistry) -> None:
    money = record(("cents", "long")).replace("Order", "Money")
    asyncio.run(registry.register("s", avro(money)))
    asyncio.run(registry.set_compatibility("s", "NONE"))
    user = json.dumps(
        {"type": "record", "name": "Invoice", "fields": [{"name": "total", "type": "Money"}]}
    )
    reference = {"name": "Money", "subject": "s", "version": 1}
    asyncio.run(registry.register("s", avro(user, references=[reference])))
    assert error_of(lambda: registry.delete_version("s", 1, permanent=False)).error_code == 42206
    assert asyncio.run(registry.delete_subject("s", permanent=False)) == [1, 2]
    assert asyncio.run(registry.delete_subject("s", permanent=True)) == [1, 2]


def test_lookup_in_a_soft_deleted_subject_is_subject_not_found(
    registry: SchemaRegistry,
) -> None:
    asyncio.run(registry.register("s", avro(V1)))
    asyncio.run(registry.delete_subject("s", permanent=False))
    error = error_of(lambda: registry.lookup("s", avro(V1), deleted=False))
    assert error.error_code == 40401
    assert asyncio.run(registry.lookup("s", avro(V1), deleted=True)).version == 1


@pytest.mark.parametrize(
    "body",
    [
        {
            "schema": json.dumps({"type": "number", "maximum": 1e308}).replace("1e+308", "1e400"),
            "schemaType": "JSON",
        },
        {
            "schema": V2_OPTIONAL.replace('"default": ""', '"default": 1e999').replace(
                '"string"', '"double"'
            )
        },
    ],
)
def test_numbers_too_large_to_store_are_invalid(registry: SchemaRegistry, body: Any) -> None:
    error = error_of(lambda: registry.register("s", SchemaRequest.from_json(body)))
    assert error.error_code == 42201
    assert "too large" in error.message


def test_a_write_that_never_reached_the_topic_changes_nothing(
    topic: Topic, registry: SchemaRegistry
) -> None:
    topic.fail = NotWritten("the log is not writable")
    error = error_of(lambda: registry.register("s", avro(V1)))
    assert (error.status, error.error_code) == (500, 50001)
    assert registry.state.subjects == {}
    topic.fail = None
    assert asyncio.run(registry.register("s", avro(V1))).id == 1


def test_a_write_whose_sync_failed_still_holds_its_id(
    topic: Topic, registry: SchemaRegistry
) -> None:
    """The record may be in `_schemas` (replay would apply it): its id must not be handed
    to the next schema."""
    topic.fail = OSError(5, "Input/output error")
    error = error_of(lambda: registry.register("s", avro(V1)))
    assert (error.status, error.error_code) == (500, 50001)
    assert "may have been stored" in error.message
    topic.fail = None
    other = asyncio.run(registry.register("t", avro(record(("other", "int")))))
    assert other.id == 2
    assert registry.version("s", 1).id == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ([], 42201),
        ({}, 42201),
        ({"schema": "  "}, 42201),
        ({"schema": V1, "schemaType": "XML"}, 42201),
        ({"schema": V1, "references": [{"name": "x"}]}, 42201),
        ({"schema": V1, "references": [{"name": "x", "subject": "y", "version": 0}]}, 42201),
        ({"schema": V1, "id": -1}, 42202),
        ({"schema": V1, "ruleSet": {"domainRules": [{"name": "r"}]}}, 42201),
        ({"schema": V1, "metadata": {"properties": {"owner": "team-a"}}}, 42201),
    ],
)
def test_malformed_requests_are_refused(body: Any, code: int) -> None:
    with pytest.raises(RegistryError) as caught:
        SchemaRequest.from_json(body)
    assert caught.value.error_code == code


@pytest.mark.parametrize("version", ["0", "abc", "2147483648", -2])
def test_invalid_versions(registry: SchemaRegistry, version: str | int) -> None:
    asyncio.run(registry.register("s", avro(V1)))
    with pytest.raises(RegistryError) as caught:
        registry.version("s", version)
    assert caught.value.error_code == 42202


def test_unreadable_records_are_skipped_at_replay() -> None:
    state = RegistryState()
    good_key = b'{"keytype":"CONFIG","subject":null,"magic":0}'
    warnings = list(
        replay(
            state,
            [
                (b"not json", b"{}"),
                (None, b"{}"),
                (b'{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}', b'{"id":"x"}'),
                (b'{"keytype":"NOOP","magic":0}', None),
                (good_key, b'{"compatibilityLevel":"FULL"}'),
            ],
        )
    )
    assert len(warnings) == 3
    assert state.configs == {None: CompatibilityLevel.FULL}
