"""The registry's operations, with Confluent Schema Registry's semantics and error codes.

Each change is written to `_schemas` and fsynced through `append` before it is applied to the
in-memory state and answered, so an answered registration survives kill -9. Changes run one at
a time under a lock: a version number or id is chosen and written before the next change looks.

Errors are RegistryError(http status, Confluent error code, message):

        40401 subject not found            40406 version soft-deleted      42201 invalid schema
    40402 version not found            40407 version not soft-deleted  42202 invalid version
    40403 schema not found             40408 no subject compatibility  42203 invalid compat level
    40404 subject soft-deleted         40409 no subject mode           42204 invalid mode
    40405 subject not soft-deleted     409   incompatible schema       42205 not permitted
    42206 reference exists             50001 store error
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from millpond.registry.compatibility import CompatibilityLevel
from millpond.registry.compatibility import CompatibilityResult
from millpond.registry.compatibility import check_compatibility
from millpond.registry.formats import parse_schema
from millpond.registry.schema import InvalidSchemaError
from millpond.registry.schema import ParsedSchema
from millpond.registry.schema import Reference
from millpond.registry.schema import SchemaType
from millpond.registry.store import GLOBAL
from millpond.registry.store import Mode
from millpond.registry.store import RegistryState
from millpond.registry.store import SchemaIdentity
from millpond.registry.store import StoredSchema
from millpond.registry.store import SubjectVersion
from millpond.registry.store import config_record
from millpond.registry.store import id_floor_record
from millpond.registry.store import mode_record
from millpond.registry.store import schema_key
from millpond.registry.store import schema_value

logger = logging.getLogger(__name__)

DEFAULT_COMPATIBILITY = CompatibilityLevel.BACKWARD
DEFAULT_MODE = Mode.READWRITE
MAX_VERSION = 2**31 - 1

Records = list[tuple[bytes, bytes | None]]
Append = Callable[[Records], Awaitable[None]]


class NotWritten(Exception):
    """An append that left `_schemas` untouched (a read-only or failed log)."""


class RegistryError(Exception):
    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


def subject_not_found(subject: str) -> RegistryError:
    return RegistryError(404, 40401, f"Subject '{subject}' not found.")


def invalid_schema(message: str) -> RegistryError:
    return RegistryError(422, 42201, f"Invalid schema: {message}")


@dataclass(frozen=True, slots=True)
class SchemaRequest:
    """A schema as a client submits it (register, look up, check)."""

    schema_type: SchemaType
    text: str
    references: tuple[Reference, ...]
    id: int | None = None  # IMPORT mode only
    version: int | None = None  # IMPORT mode only

    @classmethod
    def from_json(cls, body: Any) -> SchemaRequest:
        """Read a request body; raises RegistryError 42201/42202 for a malformed one."""
        if not isinstance(body, dict):
            raise invalid_schema("the request body must be a JSON object")
        text = body.get("schema")
        if not isinstance(text, str) or not text.strip():
            raise invalid_schema("Empty schema")
        raw_type = body.get("schemaType") or "AVRO"
        try:
            schema_type = SchemaType(str(raw_type).upper())
        except ValueError:
            raise invalid_schema(
                f"unknown schemaType {raw_type!r} (AVRO, JSON or PROTOBUF)"
            ) from None
        # Refused rather than dropped: a client that sent them expects them stored and served.
        if body.get("ruleSet"):
            raise invalid_schema("rule sets (data contracts) are not supported by this registry")
        if body.get("metadata"):
            raise invalid_schema("schema metadata is not supported by this registry")
        references = []
        for raw in body.get("references") or ():
            if not isinstance(raw, dict):
                raise invalid_schema(f"reference {raw!r} is not an object")
            name, subject, version = raw.get("name"), raw.get("subject"), raw.get("version")
            if not isinstance(name, str) or not isinstance(subject, str) or not name or not subject:
                raise invalid_schema(f"reference {raw!r} needs a name and a subject")
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                raise invalid_schema(f"reference {name!r} needs a version of at least 1")
            references.append(Reference(name, subject, version))
        schema_id, version = body.get("id"), body.get("version")
        for name, value in (("id", schema_id), ("version", version)):
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise RegistryError(422, 42202, f"{name} must be a positive integer")
        return cls(schema_type, text, tuple(references), schema_id, version)


class SchemaRegistry:
    def __init__(self, state: RegistryState, append: Append) -> None:
        self.state = state
        self._append = append
        self._lock = asyncio.Lock()

    # --- schemas -------------------------------------------------------------------------------

    def parsed(self, schema_id: int) -> ParsedSchema:
        """The stored schema `schema_id`, parsed (once); raises RegistryError 40403."""
        stored = self.state.schemas.get(schema_id)
        if stored is None:
            raise RegistryError(404, 40403, f"Schema {schema_id} not found")
        if stored.parsed is None:
            identity = stored.identity
            try:
                stored.parsed = parse_schema(
                    identity.schema_type, identity.canonical, self._resolve(identity.references)
                )
            except (InvalidSchemaError, RegistryError) as error:
                raise RegistryError(
                    500, 50001, f"stored schema {schema_id} no longer parses: {error}"
                ) from error
        return stored.parsed

    def _resolve(self, references: Sequence[Reference]) -> list[tuple[str, ParsedSchema]]:
        resolved = []
        for ref in references:
            entry = self.state.subjects.get(ref.subject, {}).get(ref.version)
            if entry is None:
                raise invalid_schema(
                    f"reference {ref.name!r} names subject {ref.subject!r} version "
                    f"{ref.version}, which is not registered"
                )
            resolved.append((ref.name, self.parsed(entry.id)))
        return resolved

    async def parse(
        self, request: SchemaRequest, *, to_store: bool = False
    ) -> tuple[ParsedSchema, SchemaIdentity]:
        """Parse a submitted schema in a worker thread (a large one takes seconds, which must
        not stall the broker's Kafka traffic); raises RegistryError 42201 with the reason. A
        schema `to_store` must read back from its canonical text as itself: that text is what
        is stored and parsed again after a restart."""
        references = self._resolve(request.references)
        try:
            parsed = await asyncio.to_thread(
                _parse, request.schema_type, request.text, references, round_trip=to_store
            )
        except InvalidSchemaError as error:
            raise invalid_schema(str(error)) from error
        return parsed, SchemaIdentity(request.schema_type, parsed.canonical, request.references)

    def schema(self, schema_id: int, subject: str | None = None) -> StoredSchema:
        stored = self.state.schemas.get(schema_id)
        if stored is None or (
            subject is not None
            and not any(v.id == schema_id for v in self.state.versions(subject, deleted=True))
        ):
            raise RegistryError(404, 40403, f"Schema {schema_id} not found")
        return stored

    def schema_by_guid(self, guid: str) -> StoredSchema:
        for stored in self.state.schemas.values():
            if stored.guid == guid:
                return stored
        raise RegistryError(404, 40403, f"Schema {guid} not found")

    def subjects_of(self, schema_id: int, *, deleted: bool) -> list[SubjectVersion]:
        self.schema(schema_id)
        return [
            entry
            for subject in sorted(self.state.subjects)
            for entry in self.state.versions(subject, deleted=deleted)
            if entry.id == schema_id
        ]

    # --- subjects ------------------------------------------------------------------------------

    def versions(self, subject: str, *, deleted: bool = False) -> list[SubjectVersion]:
        """The subject's versions; raises 40401 when it has none (live ones unless `deleted`)."""
        found = self.state.versions(subject, deleted=deleted)
        if not found:
            raise subject_not_found(subject)
        return found

    def version(self, subject: str, version: str | int, *, deleted: bool = False) -> SubjectVersion:
        """`version` is a number, or "latest" / -1 for the latest live version (as Confluent:
        whatever `deleted` says); raises 40401, 40402 or 42202."""
        number = parse_version(version)
        candidates = self.state.versions(subject, deleted=deleted)
        if not candidates:
            raise subject_not_found(subject)
        if number == -1:
            live = self.state.versions(subject)
            if not live:
                raise subject_not_found(subject)
            return live[-1]
        for entry in candidates:
            if entry.version == number:
                return entry
        raise RegistryError(404, 40402, f"Version {number} not found.")

    async def register(self, subject: str, request: SchemaRequest) -> SubjectVersion:
        """Register `request` under `subject` (or find it registered); raises RegistryError."""
        check_subject(subject)
        parsed, identity = await self.parse(request, to_store=True)
        async with self._lock:
            # The mode is read under the lock: a READONLY answered before this takes it holds.
            self._check_writable(subject)
            importing = self.mode(subject) is Mode.IMPORT
            if importing and request.id is None:
                raise RegistryError(
                    422, 42205, f"Subject {subject} is in IMPORT mode: give the schema's id"
                )
            if not importing and (request.id is not None or request.version is not None):
                raise RegistryError(
                    422, 42205, f"an id or version may be given only in IMPORT mode ({subject})"
                )
            live = self.state.versions(subject)
            for entry in live:
                if (
                    self.state.schemas[entry.id].identity == identity
                    and request.id in (None, entry.id)
                    and request.version in (None, entry.version)
                ):
                    return entry
            if not importing:
                result = await self._check(parsed, live, self.compatibility(subject))
                if not result.is_compatible:
                    raise RegistryError(
                        409,
                        409,
                        "Schema being registered is incompatible with an earlier schema for "
                        f'subject "{subject}", details: [{"; ".join(result.messages)}]',
                    )
            schema_id = self.state.ids.get(identity, self.state.next_id)
            if request.id is not None:
                taken = self.state.schemas.get(request.id)
                if taken is not None and taken.identity != identity:
                    raise RegistryError(
                        422, 42205, f"Overwrite new schema with id {request.id} is not permitted."
                    )
                schema_id = request.id
            every = self.state.versions(subject, deleted=True)
            version = request.version or (every[-1].version + 1 if every else 1)
            if any(entry.version == version for entry in every):
                raise RegistryError(422, 42205, f"version {version} of {subject} already exists")
            entry = SubjectVersion(subject, version, schema_id, deleted=False)
            records: Records = [(schema_key(subject, version), schema_value(entry, identity))]
            # As Confluent: the schema's soft-deleted versions in this subject give way to the
            # new one (unless something still refers to them).
            records.extend(
                (schema_key(subject, old.version), None)
                for old in every
                if old.deleted
                and old.id == schema_id
                and not self.state.referenced_by(subject, old.version, include_deleted=True)
            )
            await self._write(records)
            stored = self.state.schemas[schema_id]
            if stored.parsed is None:
                stored.parsed = parsed
            return entry

    async def lookup(
        self, subject: str, request: SchemaRequest, *, deleted: bool
    ) -> SubjectVersion:
        """The version of `subject` holding `request`; raises 40401 or 40403."""
        if not self.state.versions(subject, deleted=deleted):
            raise subject_not_found(subject)
        _parsed, identity = await self.parse(request)
        for entry in self.state.versions(subject, deleted=deleted):
            if self.state.schemas[entry.id].identity == identity:
                return entry
        raise RegistryError(404, 40403, "Schema not found")

    async def test_compatibility(
        self, subject: str, version: str | int | None, request: SchemaRequest
    ) -> CompatibilityResult:
        """Check `request` against `version` of `subject` (None: every version the subject's
        level checks); raises 40402/42201."""
        parsed, _identity = await self.parse(request)
        if version is None:
            against = self.state.versions(subject)
        elif parse_version(version) == -1:
            against = self.state.versions(subject)[-1:]  # none: nothing to be incompatible with
        else:
            number = parse_version(version)
            against = [e for e in self.state.versions(subject) if e.version == number]
            if not against:
                raise RegistryError(404, 40402, f"Version {number} not found.")
        return await self._check(parsed, against, self.compatibility(subject))

    async def _check(
        self, parsed: ParsedSchema, against: Sequence[SubjectVersion], level: CompatibilityLevel
    ) -> CompatibilityResult:
        """The compatibility check, in a worker thread (JSON Schema and Protobuf checks of
        large schemas are slow)."""
        existing = [(entry.version, self.parsed(entry.id)) for entry in against]
        return await asyncio.to_thread(check_compatibility, parsed, existing, level)

    async def delete_version(self, subject: str, version: str | int, *, permanent: bool) -> int:
        async with self._lock:
            self._check_writable(subject)
            entry = self.version(subject, version, deleted=True)
            if permanent:
                if not entry.deleted:
                    raise RegistryError(
                        404,
                        40407,
                        f"Subject '{subject}' Version {entry.version} was not deleted first "
                        "before being permanently deleted",
                    )
                self._refuse_if_referenced(subject, [entry], include_deleted=True)
                records: Records = [(schema_key(subject, entry.version), None), self._id_floor()]
                if len(self.state.versions(subject, deleted=True)) == 1:
                    records.extend(self._subject_settings_removed(subject))
                await self._write(records)
                return entry.version
            if entry.deleted:
                raise RegistryError(
                    404, 40406, f"Subject '{subject}' Version {entry.version} was soft deleted."
                )
            self._refuse_if_referenced(subject, [entry])
            await self._write([self._soft_deleted(entry)])
            return entry.version

    async def delete_subject(self, subject: str, *, permanent: bool) -> list[int]:
        async with self._lock:
            self._check_writable(subject)
            every = self.state.versions(subject, deleted=True)
            if not every:
                raise subject_not_found(subject)
            live = [entry for entry in every if not entry.deleted]
            if permanent:
                if live:
                    raise RegistryError(
                        404,
                        40405,
                        f"Subject '{subject}' was not deleted first before being permanently "
                        "deleted",
                    )
                self._refuse_if_referenced(subject, every, include_deleted=True, leaving=subject)
                records: Records = [(schema_key(subject, e.version), None) for e in every]
                records.append(self._id_floor())
                records.extend(self._subject_settings_removed(subject))
                await self._write(records)
                return [entry.version for entry in every]
            if not live:
                raise RegistryError(404, 40404, f"Subject '{subject}' was soft deleted.")
            self._refuse_if_referenced(subject, live, leaving=subject)
            await self._write([self._soft_deleted(entry) for entry in live])
            return [entry.version for entry in live]

    def _soft_deleted(self, entry: SubjectVersion) -> tuple[bytes, bytes]:
        deleted = SubjectVersion(entry.subject, entry.version, entry.id, deleted=True)
        identity = self.state.schemas[entry.id].identity
        return schema_key(entry.subject, entry.version), schema_value(deleted, identity)

    def _subject_settings_removed(self, subject: str) -> Records:
        """Records dropping the subject's own level and mode (a permanently deleted subject
        starts afresh, as in Confluent)."""
        records: Records = []
        if subject in self.state.configs:
            records.append(config_record(subject, None))
        if subject in self.state.modes:
            records.append(mode_record(subject, None))
        return records

    def _id_floor(self) -> tuple[bytes, bytes]:
        return id_floor_record(self.state.next_id)

    def _refuse_if_referenced(
        self,
        subject: str,
        entries: Sequence[SubjectVersion],
        *,
        include_deleted: bool = False,
        leaving: str | None = None,
    ) -> None:
        """Raise 42206 if a schema refers to one of `entries`; schemas only of the subject
        `leaving` (being deleted whole) do not count."""
        staying = {
            entry.id
            for name, versions in self.state.subjects.items()
            if name != leaving
            for entry in versions.values()
        }
        for entry in entries:
            users = [
                user
                for user in self.state.referenced_by(
                    subject, entry.version, include_deleted=include_deleted
                )
                if user in staying
            ]
            if users:
                raise RegistryError(
                    422,
                    42206,
                    f"One or more references exist to the schema {{subject={subject}, "
                    f"version={entry.version}}}: schema ids {users}",
                )

    # --- config and mode -----------------------------------------------------------------------

    def compatibility(self, subject: str | None) -> CompatibilityLevel:
        """The level that applies to `subject`: its own, else the global one, else BACKWARD."""
        if subject is not None:
            level = self.state.compatibility(subject)
            if level is not None:
                return level
        return self.state.compatibility(GLOBAL) or DEFAULT_COMPATIBILITY

    async def set_compatibility(self, subject: str | None, raw: Any) -> CompatibilityLevel:
        try:
            if not isinstance(raw, str):
                raise ValueError(raw)
            level = CompatibilityLevel(raw.upper())
        except ValueError:
            raise RegistryError(
                422,
                42203,
                f"Invalid compatibility level {raw!r}; valid: "
                + ", ".join(level.value for level in CompatibilityLevel),
            ) from None
        if subject is not None:
            check_subject(subject)
        async with self._lock:
            self._check_writable(subject)
            await self._write([config_record(subject, level)])
        return level

    async def delete_compatibility(self, subject: str | None) -> CompatibilityLevel:
        """Drop the subject's (or the global) level; returns the one it had."""
        async with self._lock:
            level = self.state.compatibility(subject)
            if level is None:
                if subject is not None:
                    raise subject_not_found(subject)  # Confluent's answer here
                return DEFAULT_COMPATIBILITY
            await self._write([config_record(subject, None)])
            return level

    def mode(self, subject: str | None) -> Mode:
        if subject is not None:
            mode = self.state.mode(subject)
            if mode is not None:
                return mode
        return self.state.mode(GLOBAL) or DEFAULT_MODE

    async def set_mode(self, subject: str | None, raw: Any, *, force: bool) -> Mode:
        try:
            if not isinstance(raw, str):
                raise ValueError(raw)
            mode = Mode(raw.upper())
        except ValueError:
            raise RegistryError(
                422, 42204, f"Invalid mode {raw!r}; valid: READWRITE, READONLY, IMPORT"
            ) from None
        async with self._lock:
            has_schemas = (
                bool(self.state.versions(subject))
                if subject is not None
                else bool(self.state.subject_names())
            )
            already_importing = self.mode(subject) is Mode.IMPORT
            if mode is Mode.IMPORT and has_schemas and not already_importing and not force:
                raise RegistryError(
                    422,
                    42205,
                    "Cannot import since found existing subjects (use force=true to override)",
                )
            await self._write([mode_record(subject, mode)])
        return mode

    async def delete_mode(self, subject: str | None) -> Mode:
        """Drop the subject's (or the global) mode; returns the one it had."""
        async with self._lock:
            mode = self.state.mode(subject)
            if mode is None:
                if subject is not None:
                    raise subject_not_found(subject)  # Confluent's answer here
                return DEFAULT_MODE
            await self._write([mode_record(subject, None)])
            return mode

    def _check_writable(self, subject: str | None) -> None:
        """Raise 42205 when `subject` (None: the registry) is read-only."""
        if self.mode(subject) in (Mode.READONLY, Mode.READONLY_OVERRIDE):
            what = "The registry" if subject is None else f"Subject {subject}"
            raise RegistryError(422, 42205, f"{what} is in read-only mode")

    async def _write(self, records: Records) -> None:
        """Append and apply `records`. Records that may have reached `_schemas` are applied
        even when their sync failed (answered 50001): replay would apply them, so forgetting
        them now would hand their id or version to the next schema."""
        try:
            await self._append(records)
        except NotWritten as error:
            raise RegistryError(500, 50001, f"Error while storing the schema: {error}") from error
        except OSError as error:
            for key, value in records:
                self.state.apply(key, value)
            raise RegistryError(
                500, 50001, f"Error while storing the schema (it may have been stored): {error}"
            ) from error
        for key, value in records:
            self.state.apply(key, value)


def _parse(
    schema_type: SchemaType,
    text: str,
    references: Sequence[tuple[str, ParsedSchema]],
    *,
    round_trip: bool,
) -> ParsedSchema:
    parsed = parse_schema(schema_type, text, references)
    if round_trip:
        again = parse_schema(schema_type, parsed.canonical, references)
        if again.canonical != parsed.canonical:
            raise InvalidSchemaError(
                "its normalised form does not read back as the same schema, so it cannot be "
                "stored faithfully"
            )
    return parsed


def parse_version(version: str | int) -> int:
    """A version number (1..2^31-1) or -1 for "latest"; raises RegistryError 42202."""
    if isinstance(version, str):
        if version == "latest":
            return -1
        try:
            version = int(version)
        except ValueError:
            version = 0
    if version == -1 or 1 <= version <= MAX_VERSION:
        return version
    raise RegistryError(
        422,
        42202,
        "The specified version is not a valid version id. Allowed values are between "
        f'[1, {MAX_VERSION}] and the string "latest"',
    )


def check_subject(subject: str) -> None:
    if not subject or any(ord(char) < 0x20 for char in subject):
        raise RegistryError(422, 42208, f"Invalid subject {subject!r}")
