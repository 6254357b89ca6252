"""The registry's state: a view rebuilt by replaying the compacted topic `_schemas`.

Records use Confluent Schema Registry's own `_schemas` formats (JSON keys and values), so the
topic reads the same to anyone who knows Confluent's:

    key                                                      value (null = tombstone)
    {"keytype":"SCHEMA","subject":S,"version":V,"magic":1}   {"subject":S,"version":V,"id":I,
                                                              "schemaType":T,"schema":TEXT,
                                                              "references":[{"name","subject",
                                                              "version"}],"deleted":BOOL}
    {"keytype":"CONFIG","subject":S|null,"magic":0}          {"compatibilityLevel":LEVEL}
    {"keytype":"MODE","subject":S|null,"magic":0}            {"mode":MODE}
    {"keytype":"ID_FLOOR","magic":0}                         {"next_id":N}

A SCHEMA tombstone is a permanent delete. Ids are global: the same schema (type, canonical
text, references) registered under several subjects has one id. ID_FLOOR (Millpond's own key)
is written with every permanent delete, so that once compaction drops a deleted schema's
records, its id is still never handed to another schema.

Every change goes through `apply`, at replay and live alike, so the state after a restart is
the state before it. Nothing here does I/O.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from enum import StrEnum
from typing import Any

from millpond.registry.compatibility import CompatibilityLevel
from millpond.registry.schema import ParsedSchema
from millpond.registry.schema import Reference
from millpond.registry.schema import SchemaType

GLOBAL = None  # the subject of the global config and mode
_GUID_NAMESPACE = uuid.UUID("5b0c5ab4-6c4f-4d59-9d5e-6d696c6c706f")


class Mode(StrEnum):
    READWRITE = "READWRITE"
    READONLY = "READONLY"
    READONLY_OVERRIDE = "READONLY_OVERRIDE"
    IMPORT = "IMPORT"


class CorruptSchemaRecord(ValueError):
    """A `_schemas` record this registry cannot read."""


@dataclass(frozen=True, slots=True)
class SchemaIdentity:
    schema_type: SchemaType
    canonical: str
    references: tuple[Reference, ...]


@dataclass(slots=True)
class StoredSchema:
    id: int
    identity: SchemaIdentity
    parsed: ParsedSchema | None = None  # parsed on first use
    guid: str = ""  # a name for the schema that does not depend on this registry's ids

    def __post_init__(self) -> None:
        self.guid = str(uuid.uuid5(_GUID_NAMESPACE, json.dumps(_identity_json(self.identity))))


@dataclass(frozen=True, slots=True)
class SubjectVersion:
    subject: str
    version: int
    id: int
    deleted: bool


@dataclass(slots=True)
class RegistryState:
    schemas: dict[int, StoredSchema] = field(default_factory=dict)
    ids: dict[SchemaIdentity, int] = field(default_factory=dict)
    subjects: dict[str, dict[int, SubjectVersion]] = field(default_factory=dict)
    configs: dict[str | None, CompatibilityLevel] = field(default_factory=dict)
    modes: dict[str | None, Mode] = field(default_factory=dict)
    next_id: int = 1
    uses: dict[int, int] = field(default_factory=dict)  # id -> subject versions naming it

    # --- reading ---------------------------------------------------------------------------

    def versions(self, subject: str, *, deleted: bool = False) -> list[SubjectVersion]:
        """The subject's versions, oldest first; soft-deleted ones only when `deleted`."""
        found = self.subjects.get(subject, {})
        return [found[v] for v in sorted(found) if deleted or not found[v].deleted]

    def subject_names(self, *, deleted: bool = False) -> list[str]:
        return sorted(s for s in self.subjects if self.versions(s, deleted=deleted))

    def referenced_by(
        self, subject: str, version: int, *, include_deleted: bool = False
    ) -> list[int]:
        """Ids of schemas (live ones, or soft-deleted too) whose references name `subject`
        version `version`."""
        live_ids = {
            entry.id
            for versions in self.subjects.values()
            for entry in versions.values()
            if include_deleted or not entry.deleted
        }
        return sorted(
            schema.id
            for schema in self.schemas.values()
            if schema.id in live_ids
            and any(
                ref.subject == subject and ref.version == version
                for ref in schema.identity.references
            )
        )

    def compatibility(self, subject: str | None) -> CompatibilityLevel | None:
        return self.configs.get(subject)

    def mode(self, subject: str | None) -> Mode | None:
        return self.modes.get(subject)

    # --- changing --------------------------------------------------------------------------

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one `_schemas` record; raises CorruptSchemaRecord for one it cannot read
        (unknown key types are Confluent's own, e.g. NOOP, and are skipped)."""
        if key is None:
            raise CorruptSchemaRecord("a _schemas record without a key")
        decoded_key = _load(key, "key")
        keytype = decoded_key.get("keytype")
        decoded_value = None if value is None else _load(value, "value")
        if keytype == "SCHEMA":
            self._apply_schema(decoded_key, decoded_value)
        elif keytype == "CONFIG":
            self._apply_setting(decoded_key, decoded_value, "compatibilityLevel")
        elif keytype == "MODE":
            self._apply_setting(decoded_key, decoded_value, "mode")
        elif keytype == "ID_FLOOR" and decoded_value is not None:
            self.next_id = max(self.next_id, _int(decoded_value, "next_id"))

    def _apply_schema(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        subject = _str(key, "subject")
        version = _int(key, "version")
        entry = None if value is None else self._read_schema_value(subject, version, value)
        # Everything is read before anything changes: a bad record leaves the state as it was.
        versions = self.subjects.setdefault(subject, {})
        previous = versions.pop(version, None)
        if entry is not None:
            subject_version, identity = entry
            schema_id = subject_version.id
            if schema_id not in self.schemas:
                self.schemas[schema_id] = StoredSchema(schema_id, identity)
                self.ids[identity] = schema_id
            self.uses[schema_id] = self.uses.get(schema_id, 0) + 1
            self.next_id = max(self.next_id, schema_id + 1)
            versions[version] = subject_version
        if not versions:
            del self.subjects[subject]
        if previous is not None:
            self.uses[previous.id] -= 1
            if not self.uses[previous.id]:
                del self.uses[previous.id]
                stored = self.schemas.pop(previous.id)
                if self.ids.get(stored.identity) == previous.id:
                    del self.ids[stored.identity]

    def _read_schema_value(
        self, subject: str, version: int, value: dict[str, Any]
    ) -> tuple[SubjectVersion, SchemaIdentity]:
        schema_id = _int(value, "id")
        try:
            schema_type = SchemaType(value.get("schemaType") or SchemaType.AVRO)
        except ValueError:
            raise CorruptSchemaRecord(f"unknown schemaType {value.get('schemaType')!r}") from None
        references = value.get("references") or []
        if not isinstance(references, list) or not all(isinstance(r, dict) for r in references):
            raise CorruptSchemaRecord(f"references of {subject} version {version} are malformed")
        identity = SchemaIdentity(
            schema_type,
            _str(value, "schema"),
            tuple(
                Reference(_str(ref, "name"), _str(ref, "subject"), _int(ref, "version"))
                for ref in references
            ),
        )
        known = self.schemas.get(schema_id)
        if known is not None and known.identity != identity:
            raise CorruptSchemaRecord(
                f"{subject} version {version} gives id {schema_id} to another schema than the "
                "one it already names"
            )
        deleted = bool(value.get("deleted", False))
        return SubjectVersion(subject, version, schema_id, deleted), identity

    def _apply_setting(self, key: dict[str, Any], value: dict[str, Any] | None, name: str) -> None:
        subject = key.get("subject")
        if subject is not None and not isinstance(subject, str):
            raise CorruptSchemaRecord(f"subject {subject!r} is not a string")
        table: dict[str | None, Any] = self.configs if name == "compatibilityLevel" else self.modes
        if value is None:
            table.pop(subject, None)
            return
        try:
            setting: Any = (
                CompatibilityLevel(value[name])
                if name == "compatibilityLevel"
                else Mode(value[name])
            )
        except (KeyError, ValueError) as error:
            raise CorruptSchemaRecord(f"bad {name} in {value!r}") from error
        table[subject] = setting


# --- records -------------------------------------------------------------------------------


def _identity_json(identity: SchemaIdentity) -> dict[str, Any]:
    return {
        "schemaType": identity.schema_type.value,
        "schema": identity.canonical,
        "references": [
            {"name": ref.name, "subject": ref.subject, "version": ref.version}
            for ref in identity.references
        ],
    }


def _dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def schema_key(subject: str, version: int) -> bytes:
    return _dump({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1})


def schema_value(entry: SubjectVersion, identity: SchemaIdentity) -> bytes:
    document = {"subject": entry.subject, "version": entry.version, "id": entry.id}
    document.update(_identity_json(identity))
    document["deleted"] = entry.deleted
    return _dump(document)


def config_record(
    subject: str | None, level: CompatibilityLevel | None
) -> tuple[bytes, bytes | None]:
    key = _dump({"keytype": "CONFIG", "subject": subject, "magic": 0})
    return key, None if level is None else _dump({"compatibilityLevel": level.value})


def mode_record(subject: str | None, mode: Mode | None) -> tuple[bytes, bytes | None]:
    key = _dump({"keytype": "MODE", "subject": subject, "magic": 0})
    return key, None if mode is None else _dump({"mode": mode.value})


def id_floor_record(next_id: int) -> tuple[bytes, bytes]:
    return _dump({"keytype": "ID_FLOOR", "magic": 0}), _dump({"next_id": next_id})


def replay(
    state: RegistryState, records: Iterable[tuple[bytes | None, bytes | None]]
) -> Iterator[str]:
    """Apply `records` in order; yields a warning for each one that cannot be read (a damaged
    record must not keep the registry from starting)."""
    for key, value in records:
        try:
            state.apply(key, value)
        except CorruptSchemaRecord as error:
            yield str(error)


def _load(raw: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptSchemaRecord(f"_schemas {what} is not JSON: {error}") from error
    if not isinstance(document, dict):
        raise CorruptSchemaRecord(f"_schemas {what} is not a JSON object")
    return document


def _str(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str):
        raise CorruptSchemaRecord(f"{name!r} is not a string in {document!r}"[:200])
    return value


def _int(document: dict[str, Any], name: str) -> int:
    value = document.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CorruptSchemaRecord(f"{name!r} is not an integer in {document!r}"[:200])
    return value
