"""Confluent Schema Registry's REST routes over SchemaRegistry.

    GET    /subjects                                  ?deleted ?subjectPrefix
    POST   /subjects/{s}                              look a schema up      ?deleted ?normalize
    DELETE /subjects/{s}                              ?permanent
    GET    /subjects/{s}/versions                     ?deleted
    POST   /subjects/{s}/versions                     register              ?normalize
    GET    /subjects/{s}/versions/{v}                 ?deleted ?format
    GET    /subjects/{s}/versions/{v}/schema          the bare schema text
    GET    /subjects/{s}/versions/{v}/referencedby
    DELETE /subjects/{s}/versions/{v}                 ?permanent
    GET    /schemas                                   the latest version of every subject
    GET    /schemas/types
    GET    /schemas/ids/{id}                          ?subject ?format
    GET    /schemas/ids/{id}/schema | /subjects | /versions
    GET    /schemas/guids/{guid}
    POST   /compatibility/subjects/{s}/versions[/{v}] ?verbose
    GET PUT DELETE /config[/{s}]                      GET ?defaultToGlobal
    GET PUT DELETE /mode[/{s}]                        PUT ?force

Every error is `{"error_code": N, "message": "..."}` with Confluent's codes (service.py); a
body that is not JSON is 400 with error_code 400 (Confluent's "Unrecognized field"/parse
errors are 422/400 too). Normalisation always applies, so `?normalize` is accepted and ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from millpond.registry.schema import SchemaType
from millpond.registry.service import RegistryError
from millpond.registry.service import SchemaRegistry
from millpond.registry.service import SchemaRequest
from millpond.registry.store import StoredSchema
from millpond.registry.store import SubjectVersion

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


@dataclass(frozen=True, slots=True)
class ApiRequest:
    method: str
    path: str
    query: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    body: Any  # JSON-able; a str is sent bare (the /schema routes)
    allow: str | None = None  # the methods of the path, with a 405


Handler = Callable[["RegistryRoutes", ApiRequest, list[str]], Awaitable[Any]]
_ROUTES: list[tuple[str, re.Pattern[str], str]] = []


def _route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        regex = re.compile("^" + pattern.replace("{}", "([^/]+)") + "/?$")
        _ROUTES.append((method, regex, handler.__name__))
        return handler

    return register


def _flag(query: dict[str, str], name: str) -> bool:
    return query.get(name, "false").lower() == "true"


def _serialized(request: ApiRequest) -> bool:
    """`?format=serialized`: Protobuf schemas as base64 descriptors (other formats ignore it)."""
    return request.query.get("format") == "serialized"


def _schema_id(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise RegistryError(404, 40403, f"Schema {raw} not found") from None


def _body(request: ApiRequest) -> Any:
    try:
        return json.loads(request.body or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise RegistryError(400, 400, f"The request body is not JSON: {error}") from None


def _schema_document(
    registry: SchemaRegistry, stored: StoredSchema, *, serialized: bool = False
) -> dict[str, Any]:
    identity = stored.identity
    text = registry.parsed(stored.id).serialized() if serialized else identity.canonical
    document: dict[str, Any] = {}
    if identity.schema_type is not SchemaType.AVRO:
        document["schemaType"] = identity.schema_type.value
    document["schema"] = text
    if identity.references:
        document["references"] = [
            {"name": ref.name, "subject": ref.subject, "version": ref.version}
            for ref in identity.references
        ]
    return document


def _version_document(
    registry: SchemaRegistry, entry: SubjectVersion, *, serialized: bool = False
) -> dict[str, Any]:
    stored = registry.schema(entry.id)
    document: dict[str, Any] = {
        "subject": entry.subject,
        "version": entry.version,
        "id": entry.id,
        "guid": stored.guid,
    }
    document.update(_schema_document(registry, stored, serialized=serialized))
    if entry.deleted:
        document["deleted"] = True
    return document


class RegistryRoutes:
    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry

    def handles(self, path: str) -> bool:
        first = path.strip("/").split("/", 1)[0]
        return first in {"subjects", "schemas", "compatibility", "config", "mode"}

    async def handle(self, request: ApiRequest) -> ApiResponse:
        """The response to `request` (whose path `handles`); never raises for bad input."""
        allowed = []
        for method, regex, name in _ROUTES:
            match = regex.match(request.path)
            if match is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            try:
                args = [unquote(group, errors="strict") for group in match.groups()]
            except UnicodeDecodeError:
                return ApiResponse(
                    400, {"error_code": 400, "message": "the path is not percent-encoded UTF-8"}
                )
            try:
                body = await getattr(self, name)(request, args)
            except RegistryError as error:
                return ApiResponse(
                    error.status, {"error_code": error.error_code, "message": error.message}
                )
            return ApiResponse(200, body)
        if allowed:
            return ApiResponse(
                405,
                {"error_code": 405, "message": "HTTP 405 Method Not Allowed"},
                allow=", ".join(sorted(set(allowed))),
            )
        return ApiResponse(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

    # --- subjects ------------------------------------------------------------------------------

    @_route("GET", "/subjects")
    async def list_subjects(self, request: ApiRequest, _args: list[str]) -> Any:
        prefix = request.query.get("subjectPrefix", "")
        names = self.registry.state.subject_names(deleted=_flag(request.query, "deleted"))
        return [name for name in names if name.startswith(prefix)]

    @_route("POST", "/subjects/{}")
    async def lookup(self, request: ApiRequest, args: list[str]) -> Any:
        schema = SchemaRequest.from_json(_body(request))
        deleted = _flag(request.query, "deleted")
        entry = await self.registry.lookup(args[0], schema, deleted=deleted)
        return _version_document(self.registry, entry)

    @_route("DELETE", "/subjects/{}")
    async def delete_subject(self, request: ApiRequest, args: list[str]) -> Any:
        permanent = _flag(request.query, "permanent")
        return await self.registry.delete_subject(args[0], permanent=permanent)

    @_route("GET", "/subjects/{}/versions")
    async def list_versions(self, request: ApiRequest, args: list[str]) -> Any:
        deleted = _flag(request.query, "deleted")
        return [entry.version for entry in self.registry.versions(args[0], deleted=deleted)]

    @_route("POST", "/subjects/{}/versions")
    async def register(self, request: ApiRequest, args: list[str]) -> Any:
        schema = SchemaRequest.from_json(_body(request))
        entry = await self.registry.register(args[0], schema)
        return {
            "id": entry.id,
            "version": entry.version,
            "guid": self.registry.schema(entry.id).guid,
        }

    @_route("GET", "/subjects/{}/versions/{}")
    async def get_version(self, request: ApiRequest, args: list[str]) -> Any:
        entry = self.registry.version(args[0], args[1], deleted=_flag(request.query, "deleted"))
        serialized = _serialized(request)
        return _version_document(self.registry, entry, serialized=serialized)

    @_route("GET", "/subjects/{}/versions/{}/schema")
    async def get_version_text(self, request: ApiRequest, args: list[str]) -> Any:
        entry = self.registry.version(args[0], args[1], deleted=_flag(request.query, "deleted"))
        return self.registry.schema(entry.id).identity.canonical

    @_route("GET", "/subjects/{}/versions/{}/referencedby")
    async def referenced_by(self, _request: ApiRequest, args: list[str]) -> Any:
        entry = self.registry.version(args[0], args[1], deleted=True)
        return self.registry.state.referenced_by(entry.subject, entry.version)

    @_route("DELETE", "/subjects/{}/versions/{}")
    async def delete_version(self, request: ApiRequest, args: list[str]) -> Any:
        permanent = _flag(request.query, "permanent")
        return await self.registry.delete_version(args[0], args[1], permanent=permanent)

    # --- schemas -------------------------------------------------------------------------------

    @_route("GET", "/schemas")
    async def list_schemas(self, request: ApiRequest, _args: list[str]) -> Any:
        prefix = request.query.get("subjectPrefix", "")
        deleted = _flag(request.query, "deleted")
        latest_only = _flag(request.query, "latestOnly")
        documents = []
        for subject in self.registry.state.subject_names(deleted=deleted):
            if not subject.startswith(prefix):
                continue
            entries = self.registry.state.versions(subject, deleted=deleted)
            for entry in entries[-1:] if latest_only else entries:
                documents.append(_version_document(self.registry, entry))
        return documents

    @_route("GET", "/schemas/types")
    async def schema_types(self, _request: ApiRequest, _args: list[str]) -> Any:
        return [schema_type.value for schema_type in SchemaType]

    @_route("GET", "/schemas/ids/{}")
    async def get_schema(self, request: ApiRequest, args: list[str]) -> Any:
        stored = self.registry.schema(_schema_id(args[0]), request.query.get("subject") or None)
        serialized = _serialized(request)
        document = _schema_document(self.registry, stored, serialized=serialized)
        document["guid"] = stored.guid
        return document

    @_route("GET", "/schemas/ids/{}/schema")
    async def get_schema_text(self, request: ApiRequest, args: list[str]) -> Any:
        return self.registry.schema(_schema_id(args[0])).identity.canonical

    @_route("GET", "/schemas/ids/{}/subjects")
    async def schema_subjects(self, request: ApiRequest, args: list[str]) -> Any:
        entries = self.registry.subjects_of(
            _schema_id(args[0]), deleted=_flag(request.query, "deleted")
        )
        return sorted({entry.subject for entry in entries})

    @_route("GET", "/schemas/ids/{}/versions")
    async def schema_versions(self, request: ApiRequest, args: list[str]) -> Any:
        entries = self.registry.subjects_of(
            _schema_id(args[0]), deleted=_flag(request.query, "deleted")
        )
        return [{"subject": entry.subject, "version": entry.version} for entry in entries]

    @_route("GET", "/schemas/guids/{}")
    async def get_schema_by_guid(self, request: ApiRequest, args: list[str]) -> Any:
        stored = self.registry.schema_by_guid(args[0])
        serialized = _serialized(request)
        document = _schema_document(self.registry, stored, serialized=serialized)
        document["id"] = stored.id
        return document

    # --- compatibility -------------------------------------------------------------------------

    @_route("POST", "/compatibility/subjects/{}/versions/{}")
    async def check_version(self, request: ApiRequest, args: list[str]) -> Any:
        return await self._compatibility(request, args[0], args[1])

    @_route("POST", "/compatibility/subjects/{}/versions")
    async def check_all(self, request: ApiRequest, args: list[str]) -> Any:
        return await self._compatibility(request, args[0], None)

    async def _compatibility(self, request: ApiRequest, subject: str, version: str | None) -> Any:
        verbose = _flag(request.query, "verbose")
        try:
            schema = SchemaRequest.from_json(_body(request))
            result = await self.registry.test_compatibility(subject, version, schema)
        except RegistryError as error:
            if error.error_code != 42201 or not verbose:
                raise
            # As Confluent: a verbose check answers an unparseable schema with its reason.
            return {"is_compatible": False, "messages": [error.message]}
        document: dict[str, Any] = {"is_compatible": result.is_compatible}
        if verbose:
            document["messages"] = list(result.messages)
        return document

    # --- config and mode -----------------------------------------------------------------------

    @_route("GET", "/config")
    async def get_global_config(self, _request: ApiRequest, _args: list[str]) -> Any:
        return {"compatibilityLevel": self.registry.compatibility(None).value}

    @_route("PUT", "/config")
    async def set_global_config(self, request: ApiRequest, _args: list[str]) -> Any:
        level = await self.registry.set_compatibility(None, _setting(request, "compatibility"))
        return {"compatibility": level.value}

    @_route("DELETE", "/config")
    async def delete_global_config(self, _request: ApiRequest, _args: list[str]) -> Any:
        level = await self.registry.delete_compatibility(None)
        return {"compatibilityLevel": level.value}

    @_route("GET", "/config/{}")
    async def get_config(self, request: ApiRequest, args: list[str]) -> Any:
        subject = args[0]
        level = self.registry.state.compatibility(subject)
        if level is None:
            if not _flag(request.query, "defaultToGlobal"):
                raise RegistryError(
                    404,
                    40408,
                    f"Subject '{subject}' does not have subject-level compatibility configured",
                )
            level = self.registry.compatibility(subject)
        return {"compatibilityLevel": level.value}

    @_route("PUT", "/config/{}")
    async def set_config(self, request: ApiRequest, args: list[str]) -> Any:
        level = await self.registry.set_compatibility(args[0], _setting(request, "compatibility"))
        return {"compatibility": level.value}

    @_route("DELETE", "/config/{}")
    async def delete_config(self, _request: ApiRequest, args: list[str]) -> Any:
        level = await self.registry.delete_compatibility(args[0])
        return {"compatibilityLevel": level.value}

    @_route("GET", "/mode")
    async def get_global_mode(self, _request: ApiRequest, _args: list[str]) -> Any:
        return {"mode": self.registry.mode(None).value}

    @_route("PUT", "/mode")
    async def set_global_mode(self, request: ApiRequest, _args: list[str]) -> Any:
        force = _flag(request.query, "force")
        mode = await self.registry.set_mode(None, _setting(request, "mode"), force=force)
        return {"mode": mode.value}

    @_route("DELETE", "/mode")
    async def delete_global_mode(self, _request: ApiRequest, _args: list[str]) -> Any:
        return {"mode": (await self.registry.delete_mode(None)).value}

    @_route("GET", "/mode/{}")
    async def get_mode(self, request: ApiRequest, args: list[str]) -> Any:
        mode = self.registry.state.mode(args[0])
        if mode is None:
            if not _flag(request.query, "defaultToGlobal"):
                raise RegistryError(
                    404, 40409, f"Subject '{args[0]}' does not have subject-level mode configured"
                )
            mode = self.registry.mode(args[0])
        return {"mode": mode.value}

    @_route("PUT", "/mode/{}")
    async def set_mode(self, request: ApiRequest, args: list[str]) -> Any:
        force = _flag(request.query, "force")
        mode = await self.registry.set_mode(args[0], _setting(request, "mode"), force=force)
        return {"mode": mode.value}

    @_route("DELETE", "/mode/{}")
    async def delete_mode(self, _request: ApiRequest, args: list[str]) -> Any:
        return {"mode": (await self.registry.delete_mode(args[0])).value}


def _setting(request: ApiRequest, name: str) -> Any:
    body = _body(request)
    if not isinstance(body, dict) or name not in body:
        code = 42203 if name == "compatibility" else 42204
        raise RegistryError(422, code, f'the request body must be {{"{name}": ...}}')
    return body[name]
