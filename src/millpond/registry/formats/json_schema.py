"""JSON Schema: parse and normalise a schema, validate payloads.

A schema is a JSON document (an object or a boolean) checked against the metaschema its `$schema`
names (draft 7 when it names none or one jsonschema does not know, as Confluent does). Its
references are other registered JSON schemas it can `$ref` by their reference name
(`{"$ref": "customer.json"}`); they are kept in a `referencing.Registry` on the parsed schema
together with their own references, so one parsed schema is enough to resolve every `$ref`.
Every `$ref` is resolved once at parse time, so an unresolvable one (or a cycle of bare `$ref`s)
is an InvalidSchemaError, not a produce-time error.

The reader/writer compatibility check lives in json_schema_compatibility; `check` is re-exported
here so that every format module offers `parse` and `check`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urljoin

import referencing.exceptions
import referencing.jsonschema
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]
from jsonschema.exceptions import best_match
from jsonschema.validators import Draft7Validator  # type: ignore[import-untyped]
from jsonschema.validators import validator_for
from jsonschema_specifications import REGISTRY as METASCHEMAS  # type: ignore[import-untyped]
from referencing import Registry
from referencing import Specification

from millpond.registry.formats.json_schema_compatibility import MAX_REF_CHAIN
from millpond.registry.formats.json_schema_compatibility import check
from millpond.registry.formats.json_schema_compatibility import pointer_token
from millpond.registry.schema import InvalidSchemaError
from millpond.registry.schema import ParsedSchema
from millpond.registry.schema import PayloadError
from millpond.registry.schema import SchemaType

if TYPE_CHECKING:
    # referencing exports Resolver only from its private module.
    from referencing._core import Resolver

__all__ = ["JsonSchema", "check", "parse"]

# Where subschemas sit, for walking a schema without mistaking data or names for keywords.
_SCHEMA_KEYWORDS = frozenset(
    {
        "additionalItems",
        "additionalProperties",
        "contains",
        "contentSchema",
        "else",
        "if",
        "items",
        "not",
        "propertyNames",
        "then",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
_SCHEMA_LIST_KEYWORDS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems", "items"})
_SCHEMA_MAP_KEYWORDS = frozenset(
    {"$defs", "definitions", "dependencies", "dependentSchemas", "patternProperties", "properties"}
)


@dataclass(frozen=True, slots=True)
class JsonSchema:
    """A parsed JSON Schema. Equal when the canonical texts are equal."""

    canonical: str
    document: Any = field(compare=False, repr=False)
    specification: Specification[Any] = field(compare=False, repr=False)
    # The referenced schemas (and theirs), by reference name; the schema itself is not in it.
    registry: Registry[Any] = field(compare=False, repr=False)
    # Resolves `$ref`s from the document's root: the registry plus the document and metaschemas.
    resolver: Resolver[Any] = field(compare=False, repr=False)
    # Built once: decoding is on the produce path. Format assertions are off, as in Confluent.
    validator: Any = field(compare=False, repr=False)

    @property
    def schema_type(self) -> SchemaType:
        return SchemaType.JSON

    def serialized(self) -> str:
        return self.canonical

    def decode(self, payload: bytes) -> None:
        """Raises PayloadError unless `payload` is UTF-8 JSON valid against this schema."""
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as error:
            raise PayloadError(f"payload is not UTF-8: {error}") from None
        try:
            instance = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as error:
            raise PayloadError(f"payload is not JSON: {error}") from None
        try:
            invalid = best_match(self.validator.iter_errors(instance))
        except (referencing.exceptions.Unresolvable, RecursionError) as error:
            raise PayloadError(f"payload cannot be validated: {error}") from None
        if invalid is not None:
            raise PayloadError(f"at '{invalid.json_path}': {invalid.message}")


def parse(text: str, references: Sequence[tuple[str, ParsedSchema]] = ()) -> JsonSchema:
    """Parse a JSON Schema document whose `$ref`s may name `references` (reference name, parsed
    JSON schema). Raises InvalidSchemaError naming what is wrong and where."""
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise InvalidSchemaError(f"invalid JSON: {error}") from None
    if not isinstance(document, dict | bool):
        raise InvalidSchemaError("a JSON Schema must be a JSON object or a boolean")
    dialect = document.get("$schema") if isinstance(document, dict) else None
    if dialect is not None and not isinstance(dialect, str):
        raise InvalidSchemaError("invalid JSON Schema at '#/$schema': $schema must be a string")
    # An unknown $schema falls back to draft 7, as Confluent's does.
    validator_class = validator_for(document, default=Draft7Validator)
    specification = referencing.jsonschema.specification_with(
        dialect or "", default=referencing.jsonschema.DRAFT7
    )
    root = specification.create_resource(document)
    registry = _registry_of(references, root.id() or "")
    resolver = METASCHEMAS.combine(registry).resolver_with_root(root)
    try:
        validator_class.check_schema(document)
        _check_refs(document, resolver, specification, "#")
    except SchemaError as error:
        raise InvalidSchemaError(
            f"invalid JSON Schema at '{_pointer(error.path)}': {error.message}"
        ) from None
    except RecursionError:
        raise InvalidSchemaError("the schema is nested too deeply") from None
    return JsonSchema(
        canonical=json.dumps(document, sort_keys=True, separators=(",", ":")),
        document=document,
        specification=specification,
        registry=registry,
        resolver=resolver,
        validator=validator_class(document, registry=registry),
    )


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (and Confluent's Jackson) does not.
    raise ValueError(f"{name} is not valid JSON")


def _pointer(path: Sequence[object]) -> str:
    return "#" + "".join(f"/{pointer_token(token)}" for token in path)


def _registry_of(references: Sequence[tuple[str, ParsedSchema]], base: str) -> Registry[Any]:
    registry: Registry[Any] = Registry()
    for name, reference in references:
        if not isinstance(reference, JsonSchema):
            raise InvalidSchemaError(
                f"reference '{name}' is a {reference.schema_type} schema; "
                "a JSON schema can only reference JSON schemas"
            )
        resource = reference.specification.create_resource(reference.document)
        # Known by its reference name and by its own `$id`; its references by theirs.
        named = [(name, resource), *reference.registry.items()]
        if resource.id():
            named.append((str(resource.id()), resource))
        # A `$ref` in a schema with an absolute `$id` names a reference relative to that `$id`,
        # and so, once resolved there, do the `$ref`s inside the referenced schemas.
        named += [(urljoin(base, uri), referenced) for uri, referenced in named]
        registry = registry.with_resources(named)
    return registry.crawl()


def _subschemas(schema: Any) -> Iterator[tuple[str, Any]]:
    """(relative pointer, subschema) for every subschema directly inside `schema`."""
    if not isinstance(schema, dict):
        return
    for keyword, value in schema.items():
        if keyword in _SCHEMA_LIST_KEYWORDS and isinstance(value, list):
            for index, item in enumerate(value):
                yield f"/{keyword}/{index}", item
        elif keyword in _SCHEMA_MAP_KEYWORDS and isinstance(value, dict):
            for name, item in value.items():
                if isinstance(item, dict | bool):
                    yield f"/{keyword}/{pointer_token(name)}", item
        elif keyword in _SCHEMA_KEYWORDS and isinstance(value, dict | bool):
            yield f"/{keyword}", value


def _check_refs(
    schema: Any, resolver: Resolver[Any], specification: Specification[Any], path: str
) -> None:
    if not isinstance(schema, dict):
        return
    resolver = resolver.in_subresource(specification.create_resource(schema))
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target, target_resolver, chain = schema, resolver, 0
        while isinstance(target, dict) and isinstance(target.get("$ref"), str):
            chain += 1
            if chain > MAX_REF_CHAIN:
                raise InvalidSchemaError(f"$ref '{ref}' at '{path}' is a cycle of $refs")
            try:
                resolved = target_resolver.lookup(target["$ref"])
            except referencing.exceptions.Unresolvable as error:
                raise InvalidSchemaError(
                    f"unresolvable $ref '{target['$ref']}' at '{path}': {error!r}"
                ) from None
            target, target_resolver = resolved.contents, resolved.resolver
        if not isinstance(target, dict | bool):
            raise InvalidSchemaError(f"$ref '{ref}' at '{path}' does not point at a schema")
    for relative, subschema in _subschemas(schema):
        _check_refs(subschema, resolver, specification, path + relative)
