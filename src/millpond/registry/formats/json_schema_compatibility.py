"""JSON Schema compatibility: can a consumer using the reader schema read what the writer wrote?

Compatibility follows Confluent Schema Registry and karapace: the reader can read everything the
writer wrote when the reader accepts every instance the writer accepts. `check` walks both
schemas side by side and names each problem as they do, at a JSON pointer such as
'#/properties/age'. The rules, by what the writer and reader say:
- types: no type in common is TYPE_CHANGED; a writer type the reader dropped (or an
  integers-only reader of a number writer) is TYPE_NARROWED.
- a writer `enum`/`const` (or a writer of only nulls and booleans) is checked exactly, value by
  value (ENUM_ARRAY_NARROWED, TYPE_CHANGED/TYPE_NARROWED); a reader `enum`/`const` against any
  other writer is ENUM_ARRAY_NARROWED.
- strings: MAX_LENGTH_*, MIN_LENGTH_*, PATTERN_ADDED/PATTERN_CHANGED.
- numbers: MAXIMUM_*, MINIMUM_* (and their _EXCLUSIVE forms, draft 4 booleans included),
  MULTIPLE_ADDED/MULTIPLE_EXPANDED/MULTIPLE_CHANGED.
- arrays: items by position and past the last position (ITEM_ADDED_*, ITEM_REMOVED_*,
  ADDITIONAL_ITEMS_REMOVED/NARROWED), MAX_ITEMS_*, MIN_ITEMS_*, UNIQUE_ITEMS_ADDED.
- objects: properties added or removed against open, closed or partially open content models
  (PROPERTY_ADDED_*, PROPERTY_REMOVED_*), REQUIRED_ATTRIBUTE_ADDED,
  REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL, ADDITIONAL_PROPERTIES_NARROWED,
  DEPENDENCY_ARRAY_ADDED/EXTENDED, DEPENDENCY_SCHEMA_ADDED, MAX_PROPERTIES_*, MIN_PROPERTIES_*,
  and propertyNames compared as schemas.
- combinations: every branch of a writer `anyOf`/`oneOf` must be readable (SUM_TYPE_NARROWED,
  COMBINED_TYPE_SUBSCHEMAS_CHANGED, COMBINED_TYPE_CHANGED for anyOf becoming oneOf); each
  subschema of a reader `allOf` must accept the writer (PRODUCT_TYPE_EXTENDED when the reader
  also has more of them than the writer's allOf); a reader `not` must exclude nothing the writer
  writes (NOT_TYPE_EXTENDED).
- `$ref`s are followed on both sides (UNRESOLVED_REFERENCE if one no longer resolves); a pair
  already under comparison (a recursive schema) is taken as compatible the second time round.
  Schemas too deep to walk give SCHEMA_TOO_DEEP.

Where the question is not cheap to decide, the walk errs towards "incompatible": a writer `allOf`
is compatible only when the reader accepts its other keywords or one of its subschemas, and a
reader `anyOf`/`oneOf` only when one subschema accepts the whole writer. It errs the other way,
as Confluent or karapace do, in these places:
- a writer with no `type` is taken to write the types its keywords constrain (`properties` means
  objects, `maxLength` strings, ...); a reader with no `type` accepts any type;
- oneOf's "exactly one" is treated as anyOf's "at least one";
- a reader property made required is compatible when it has a `default` (Confluent's rule);
- `$ref` siblings are ignored (draft 7), and `if`/`then`/`else`, `contains`, `unevaluated*`,
  `$dynamicRef` and `format` (not validated when decoding either) are not compared.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING
from typing import Any

import referencing.exceptions

if TYPE_CHECKING:
    # referencing exports Resolver only from its private module.
    from referencing._core import Resolver

    # Only for annotations: json_schema imports this module to re-export `check`.
    from millpond.registry.formats.json_schema import JsonSchema

# A chain of `$ref`s pointing only at other `$ref`s longer than this is treated as a cycle:
# parse rejects such chains, so the walk can stop following one there.
MAX_REF_CHAIN = 64

_ALL_TYPES = frozenset({"null", "boolean", "integer", "number", "string", "array", "object"})
_NUMERIC = frozenset({"integer", "number"})


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Keywords that never reject an instance: a schema made only of these accepts anything.
_ANNOTATIONS = _words(
    "$schema $id id $anchor $comment $defs $vocabulary definitions title description default "
    "examples format readOnly writeOnly deprecated contentEncoding contentMediaType"
)

# Which instance type a writer without `type` writes, inferred from the keywords it uses.
_TYPE_FAMILIES = {
    "object": _words(
        "properties required additionalProperties patternProperties minProperties maxProperties "
        "dependencies dependentRequired dependentSchemas propertyNames"
    ),
    "array": _words("items prefixItems additionalItems minItems maxItems uniqueItems"),
    "string": _words("minLength maxLength pattern"),
    "number": _words("minimum maximum exclusiveMinimum exclusiveMaximum multipleOf"),
}


def check(reader: JsonSchema, writer: JsonSchema) -> list[str]:
    """[] when every instance valid against `writer` is valid against `reader`; otherwise one
    "<INCOMPATIBILITY> at '<pointer>': <why>" message per problem."""
    try:
        messages = _Checker().compare(_Node.root(reader), _Node.root(writer), "#")
    except RecursionError:
        return ["SCHEMA_TOO_DEEP at '#': the schemas are nested too deeply to compare"]
    return list(dict.fromkeys(messages))


def pointer_token(token: object) -> str:
    """`token` as a JSON pointer (RFC 6901) segment: `~` escaped as `~0`, `/` as `~1`."""
    return str(token).replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True, slots=True)
class _Node:
    """A subschema together with what resolves its `$ref`s and validates instances against it."""

    schema: Any
    resolver: Resolver[Any]
    owner: JsonSchema

    @classmethod
    def root(cls, owner: JsonSchema) -> _Node:
        return cls(owner.document, owner.resolver, owner)

    def child(self, schema: Any) -> _Node:
        if isinstance(schema, dict):
            resource = self.owner.specification.create_resource(schema)
            return _Node(schema, self.resolver.in_subresource(resource), self.owner)
        return _Node(schema, self.resolver, self.owner)

    def accepts(self, instance: Any) -> bool:
        validator = self.owner.validator.evolve(schema=self.schema, _resolver=self.resolver)
        return bool(validator.is_valid(instance))


def _accepts_anything(schema: Any) -> bool:
    return schema is True or (isinstance(schema, dict) and schema.keys() <= _ANNOTATIONS)


def _without(schema: dict[str, Any], keyword: str) -> dict[str, Any]:
    return {key: value for key, value in schema.items() if key != keyword}


def _sum_keyword(schema: dict[str, Any]) -> str | None:
    for keyword in ("anyOf", "oneOf"):
        if isinstance(schema.get(keyword), list):
            return keyword
    return None


def _declared_types(schema: dict[str, Any]) -> frozenset[str] | None:
    declared = schema.get("type")
    if isinstance(declared, str):
        return frozenset({declared})
    if isinstance(declared, list):
        return frozenset(declared)
    return None


def _writer_types(schema: dict[str, Any]) -> frozenset[str]:
    declared = _declared_types(schema)
    if declared is not None:
        return declared
    inferred = frozenset(
        kind for kind, keywords in _TYPE_FAMILIES.items() if keywords & schema.keys()
    )
    return inferred or _ALL_TYPES


def _describe(types: frozenset[str]) -> str:
    return "|".join(sorted(types))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fraction(value: Any) -> Fraction:
    # str() first: Fraction(0.1) is the binary approximation, Fraction("0.1") is one tenth.
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


def _count(schema: dict[str, Any], keyword: str) -> int | None:
    value = schema.get(keyword)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_Bound = tuple[Fraction, bool, str, Any]  # value, exclusive, keyword, value as written


def _bound(schema: dict[str, Any], upper: bool) -> _Bound | None:
    """The tightest upper or lower bound, draft 4's boolean exclusiveMaximum/exclusiveMinimum
    included."""
    inclusive, exclusive = (
        ("maximum", "exclusiveMaximum") if upper else ("minimum", "exclusiveMinimum")
    )
    bounds: list[_Bound] = []
    if _is_number(schema.get(inclusive)):
        draft4_exclusive = schema.get(exclusive) is True
        raw = schema[inclusive]
        bounds.append((_fraction(raw), draft4_exclusive, inclusive, raw))
    if _is_number(schema.get(exclusive)):
        raw = schema[exclusive]
        bounds.append((_fraction(raw), True, exclusive, raw))
    if not bounds:
        return None
    if upper:
        return min(bounds, key=lambda bound: (bound[0], not bound[1]))
    return max(bounds, key=lambda bound: (bound[0], bound[1]))


def _matches(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return False


def _limit_message(name: str, path: str, keyword: str, reader: object, writer: object) -> str:
    if writer is None:
        return f"{name} at '{path}': the reader added {keyword} {reader}"
    return (
        f"{name} at '{path}': the reader's {keyword} {reader} is stricter than the writer's "
        f"{writer}"
    )


class _Checker:
    """One compatibility walk. Pairs of schemas under comparison are remembered so a recursive
    schema (a `$ref` back to an ancestor) is assumed compatible the second time round."""

    def __init__(self) -> None:
        self._in_progress: set[tuple[int, int]] = set()
        # Schemas built during the walk stay alive so their ids are not reused by others.
        self._built: list[Any] = []

    def compare(self, reader: _Node, writer: _Node, path: str) -> list[str]:
        resolved_reader = self._deref(reader)
        resolved_writer = self._deref(writer)
        if resolved_reader is None or resolved_writer is None:
            return [f"UNRESOLVED_REFERENCE at '{path}': a $ref does not resolve"]
        reader, writer = resolved_reader, resolved_writer
        if writer.schema is False or _accepts_anything(reader.schema):
            return []
        if reader.schema is False:
            return [f"TYPE_CHANGED at '{path}': the reader accepts no value; the writer does"]
        if _accepts_anything(writer.schema):
            if not reader.schema.keys() & {"allOf", "anyOf", "oneOf"}:
                return [
                    f"TYPE_NARROWED at '{path}': the writer accepts any value; the reader does not"
                ]
            # A combination can still accept anything (an anyOf with an empty branch).
            writer = self._built_node(writer, {})
        key = (id(reader.schema), id(writer.schema))
        if key in self._in_progress:
            return []
        self._in_progress.add(key)
        try:
            return self._compare_objects(reader, writer, path)
        finally:
            self._in_progress.discard(key)

    def _deref(self, node: _Node) -> _Node | None:
        for _ in range(MAX_REF_CHAIN):
            ref = node.schema.get("$ref") if isinstance(node.schema, dict) else None
            if not isinstance(ref, str):
                return node
            try:
                resolved = node.resolver.lookup(ref)
            except referencing.exceptions.Unresolvable:
                return None
            node = _Node(resolved.contents, resolved.resolver, node.owner)
        return None

    def _built_node(self, node: _Node, schema: dict[str, Any]) -> _Node:
        self._built.append(schema)
        return _Node(schema, node.resolver, node.owner)

    def _compare_objects(self, reader: _Node, writer: _Node, path: str) -> list[str]:
        r: dict[str, Any] = reader.schema
        w: dict[str, Any] = writer.schema
        finite = self._finite_values(writer)
        if finite is not None:
            return self._check_values(reader, writer, finite, path)
        if isinstance(r.get("allOf"), list):
            return self._reader_all_of(reader, writer, path)
        if _sum_keyword(w) is not None:
            return self._writer_sum(reader, writer, path)
        if isinstance(w.get("allOf"), list):
            return self._writer_all_of(reader, writer, path)
        if _sum_keyword(r) is not None:
            return self._reader_sum(reader, writer, path)
        if "not" in r:
            rest = self.compare(self._built_node(reader, _without(r, "not")), writer, path)
            return rest + self._reader_not(reader, writer, path)
        return self._compare_simple(reader, writer, path)

    def _finite_values(self, writer: _Node) -> list[Any] | None:
        """Every value the writer accepts, when it accepts few enough to list."""
        w = writer.schema
        if "const" in w:
            candidates = [w["const"]]
        elif isinstance(w.get("enum"), list):
            candidates = list(w["enum"])
        else:
            types = _declared_types(w)
            if types is None or not types <= {"null", "boolean"}:
                return None
            candidates = ([None] if "null" in types else []) + (
                [False, True] if "boolean" in types else []
            )
        return [value for value in candidates if writer.accepts(value)]

    def _check_values(
        self, reader: _Node, writer: _Node, values: list[Any], path: str
    ) -> list[str]:
        rejected = [value for value in values if not reader.accepts(value)]
        if not rejected:
            return []
        shown = ", ".join(json.dumps(value) for value in rejected)
        if "const" in writer.schema or "enum" in writer.schema:
            return [
                f"ENUM_ARRAY_NARROWED at '{path}': the reader does not accept the writer's "
                f"value(s) {shown}"
            ]
        name = "TYPE_CHANGED" if len(rejected) == len(values) else "TYPE_NARROWED"
        return [f"{name} at '{path}': the reader does not accept the writer's value(s) {shown}"]

    def _reader_all_of(self, reader: _Node, writer: _Node, path: str) -> list[str]:
        branches = reader.schema["allOf"]
        rest = self._built_node(reader, _without(reader.schema, "allOf"))
        errors = self.compare(rest, writer, path)
        for index, branch in enumerate(branches):
            errors += self.compare(reader.child(branch), writer, f"{path}/allOf/{index}")
        writer_branches = writer.schema.get("allOf")
        if errors and isinstance(writer_branches, list) and len(branches) > len(writer_branches):
            errors.insert(
                0,
                f"PRODUCT_TYPE_EXTENDED at '{path}/allOf': the reader's allOf has "
                f"{len(branches)} subschemas, the writer's {len(writer_branches)}",
            )
        return errors

    def _writer_sum(self, reader: _Node, writer: _Node, path: str) -> list[str]:
        keyword = _sum_keyword(writer.schema)
        assert keyword is not None
        branches = writer.schema[keyword]
        rest = _without(writer.schema, keyword)
        reader_keyword = _sum_keyword(reader.schema)
        errors: list[str] = []
        if reader_keyword == "oneOf" and keyword == "anyOf":
            errors.append(
                f"COMBINED_TYPE_CHANGED at '{path}': the writer's anyOf became the reader's oneOf"
            )
        failed: list[int] = []
        for index, branch in enumerate(branches):
            # A writer instance satisfies the branch and the keywords beside the anyOf.
            if _accepts_anything(rest):
                written = writer.child(branch)
            else:
                written = self._built_node(writer, {"allOf": [rest, branch]})
            branch_errors = self.compare(reader, written, f"{path}/{keyword}/{index}")
            if branch_errors:
                failed.append(index)
                if reader_keyword is None:
                    errors += branch_errors
        if failed and reader_keyword is not None:
            reader_count = len(reader.schema[reader_keyword])
            name = (
                "SUM_TYPE_NARROWED"
                if reader_count < len(branches)
                else "COMBINED_TYPE_SUBSCHEMAS_CHANGED"
            )
            shown = ", ".join(str(index) for index in failed)
            errors.append(
                f"{name} at '{path}/{keyword}': no subschema of the reader's {reader_keyword} "
                f"accepts the writer's {keyword} subschema(s) {shown}"
            )
        return errors

    def _writer_all_of(self, reader: _Node, writer: _Node, path: str) -> list[str]:
        # Every writer instance satisfies each part, so a reader accepting one part is enough.
        parts = [self._built_node(writer, _without(writer.schema, "allOf"))]
        parts += [writer.child(branch) for branch in writer.schema["allOf"]]
        closest: list[str] | None = None
        for part in parts:
            if _accepts_anything(part.schema):
                continue
            errors = self.compare(reader, part, path)
            if not errors:
                return []
            if closest is None or len(errors) < len(closest):
                closest = errors
        return closest or []

    def _reader_sum(self, reader: _Node, writer: _Node, path: str) -> list[str]:
        keyword = _sum_keyword(reader.schema)
        assert keyword is not None
        branches = reader.schema[keyword]
        rest = self._built_node(reader, _without(reader.schema, keyword))
        errors = self.compare(rest, writer, path)
        closest: list[str] = []
        for index, branch in enumerate(branches):
            branch_errors = self.compare(reader.child(branch), writer, f"{path}/{keyword}/{index}")
            if not branch_errors:
                return errors
            if not closest or len(branch_errors) < len(closest):
                closest = branch_errors
        if len(branches) == 1:
            return errors + closest
        reason = f" (closest: {closest[0]})" if closest else ""
        return [
            *errors,
            f"TYPE_CHANGED at '{path}/{keyword}': no subschema of the reader's {keyword} "
            f"accepts every value of the writer{reason}",
        ]

    def _reader_not(self, reader: _Node, writer: _Node, path: str) -> list[str]:
        excluded = reader.child(reader.schema["not"])
        if "not" in writer.schema:
            # not X accepts everything not Y does when X is within Y: the reversed question.
            if not self.compare(writer.child(writer.schema["not"]), excluded, f"{path}/not"):
                return []
        else:
            excluded_schema = self._deref(excluded)
            if excluded_schema is not None and isinstance(excluded_schema.schema, dict):
                excluded_types = _declared_types(excluded_schema.schema) or _ALL_TYPES
                if "number" in excluded_types:
                    excluded_types |= {"integer"}
                written = _writer_types(writer.schema)
                if "number" in written:
                    written |= {"integer"}
                if not excluded_types & written:
                    return []
        return [
            f"NOT_TYPE_EXTENDED at '{path}/not': the reader's not excludes values the writer "
            "may write"
        ]

    def _compare_simple(self, reader: _Node, writer: _Node, path: str) -> list[str]:
        r: dict[str, Any] = reader.schema
        w: dict[str, Any] = writer.schema
        if "enum" in r or "const" in r:
            keyword = "const" if "const" in r else "enum"
            return [
                f"ENUM_ARRAY_NARROWED at '{path}': the reader only accepts the values of its "
                f"{keyword} {json.dumps(r[keyword])}; the writer is not limited to them"
            ]
        written = _writer_types(w)
        declared = _declared_types(r) or _ALL_TYPES
        readable = declared
        if "number" in readable:
            readable |= {"integer"}
        shared = written & readable
        if "number" in written and "integer" in readable and "number" not in readable:
            # The reader still reads the writer's integers; the numeric keywords still apply.
            shared |= {"number"}
            errors = [
                f"TYPE_NARROWED at '{path}': the writer writes numbers; the reader only accepts "
                "integers"
            ]
        elif not shared:
            return [
                f"TYPE_CHANGED at '{path}': reader type {_describe(declared)} is not compatible "
                f"with writer type {_describe(written)}"
            ]
        elif written - readable:
            errors = [
                f"TYPE_NARROWED at '{path}': the reader no longer accepts type(s) "
                f"{_describe(written - readable)} that the writer writes"
            ]
        else:
            errors = []
        if "string" in shared:
            errors += _check_string(r, w, path)
        if shared & _NUMERIC:
            errors += _check_number(r, w, path, integers_only=written & _NUMERIC == {"integer"})
        if "array" in shared:
            errors += self._check_array(reader, writer, path)
        if "object" in shared:
            errors += self._check_object(reader, writer, path)
        return errors

    def _check_array(self, reader: _Node, writer: _Node, path: str) -> list[str]:
        r: dict[str, Any] = reader.schema
        w: dict[str, Any] = writer.schema
        errors: list[str] = []
        reader_prefix, reader_rest, reader_rest_path = _items_of(r)
        writer_prefix, writer_rest, _ = _items_of(w)
        writer_max = _count(w, "maxItems")
        positions = max(len(reader_prefix), len(writer_prefix))
        for index in range(positions):
            if writer_max is not None and index >= writer_max:
                return errors + _check_item_counts(r, w, path)
            written = writer_prefix[index] if index < len(writer_prefix) else writer_rest
            if written is False:
                # The writer never writes this position, so nor any after it.
                return errors + _check_item_counts(r, w, path)
            item_path = f"{path}/items/{index}"
            if index < len(reader_prefix) and index < len(writer_prefix):
                errors += self.compare(
                    reader.child(reader_prefix[index]), writer.child(written), item_path
                )
            elif index < len(reader_prefix):
                errors += self._reader_item_added(reader, writer, reader_prefix[index], item_path)
            else:
                errors += self._writer_item_removed(reader, writer, reader_rest, written, item_path)
        if not (writer_max is not None and writer_max <= positions) and writer_rest is not False:
            rest_path = f"{path}{reader_rest_path}"
            if reader_rest is False:
                errors.append(
                    f"ADDITIONAL_ITEMS_REMOVED at '{rest_path}': the reader accepts no items "
                    f"past position {positions}; the writer writes them"
                )
            elif not _accepts_anything(reader_rest) and _accepts_anything(writer_rest):
                errors.append(
                    f"ADDITIONAL_ITEMS_NARROWED at '{rest_path}': the reader constrains items the "
                    "writer leaves unconstrained"
                )
            else:
                errors += self.compare(
                    reader.child(reader_rest), writer.child(writer_rest), rest_path
                )
        return errors + _check_item_counts(r, w, path)

    def _reader_item_added(self, reader: _Node, writer: _Node, item: Any, path: str) -> list[str]:
        _, writer_rest, _ = _items_of(writer.schema)
        if _accepts_anything(writer_rest):
            if _accepts_anything(item):
                return []
            return [
                f"ITEM_ADDED_TO_OPEN_CONTENT_MODEL at '{path}': the reader constrains an item the "
                "writer leaves open"
            ]
        nested = self.compare(reader.child(item), writer.child(writer_rest), path)
        if not nested:
            return []
        return [
            f"ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL at '{path}': the writer's "
            "additional items do not fit the reader's item",
            *nested,
        ]

    def _writer_item_removed(
        self, reader: _Node, writer: _Node, reader_rest: Any, written: Any, path: str
    ) -> list[str]:
        if _accepts_anything(reader_rest):
            return []
        if reader_rest is False:
            return [
                f"ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL at '{path}': the reader accepts no item "
                "here; the writer writes one"
            ]
        nested = self.compare(reader.child(reader_rest), writer.child(written), path)
        if not nested:
            return []
        return [
            f"ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL at '{path}': the reader's "
            "additional items do not accept the writer's item",
            *nested,
        ]

    def _check_object(self, reader: _Node, writer: _Node, path: str) -> list[str]:
        r: dict[str, Any] = reader.schema
        w: dict[str, Any] = writer.schema
        reader_properties = _mapping(r, "properties")
        writer_properties = _mapping(w, "properties")
        errors: list[str] = []
        for name in sorted(reader_properties.keys() | writer_properties.keys()):
            errors += self._check_property(
                reader, writer, name, f"{path}/properties/{pointer_token(name)}"
            )
        errors += _check_required(r, w, path)
        errors += self._check_additional_properties(reader, writer, path)
        errors += self._check_dependencies(reader, writer, path)
        errors += _check_limit(r, w, path, "maxProperties", "MAX_PROPERTIES", upper=True)
        errors += _check_limit(r, w, path, "minProperties", "MIN_PROPERTIES", upper=False)
        reader_names = r.get("propertyNames")
        if reader_names is not None and not _accepts_anything(reader_names):
            writer_names = w.get("propertyNames", {"type": "string"})
            written_names = (
                writer.child(writer_names)
                if "propertyNames" in w
                else self._built_node(writer, writer_names)
            )
            errors += self.compare(
                reader.child(reader_names), written_names, f"{path}/propertyNames"
            )
        return errors

    def _check_property(self, reader: _Node, writer: _Node, name: str, path: str) -> list[str]:
        r: dict[str, Any] = reader.schema
        w: dict[str, Any] = writer.schema
        reader_properties = _mapping(r, "properties")
        writer_properties = _mapping(w, "properties")
        written = _schema_for_name(w, name)[0]
        if written is False:
            return []  # the writer never writes this property
        constraints = _schema_for_name(r, name)
        if name in reader_properties and name in writer_properties:
            errors: list[str] = []
            for constraint in constraints:
                errors += self.compare(reader.child(constraint), writer.child(written), path)
            return errors
        if name in writer_properties:
            # Removed by the reader: what the reader says of names it does not list applies.
            if _is_open(r):
                return []
            errors = []
            for constraint in constraints:
                if constraint is False:
                    errors.append(
                        f"PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL at '{path}': the reader's "
                        f"closed content model does not accept property '{name}'; the writer "
                        "writes it"
                    )
                    continue
                nested = self.compare(reader.child(constraint), writer.child(written), path)
                if nested:
                    errors += [
                        f"PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL at "
                        f"'{path}': the reader's patternProperties/additionalProperties do not "
                        f"accept the writer's property '{name}'",
                        *nested,
                    ]
            return errors
        # Added by the reader: the writer may have written it as an unlisted property.
        added = reader_properties[name]
        if _is_open(w):
            if _accepts_anything(added) and len(constraints) == 1:
                return []
            return [
                f"PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL at '{path}': the reader constrains "
                f"property '{name}', which the writer's open content model accepts with any value"
            ]
        errors = []
        for constraint in constraints:
            nested = self.compare(reader.child(constraint), writer.child(written), path)
            if nested:
                errors += [
                    f"PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL at '{path}': the "
                    f"writer's patternProperties/additionalProperties allow values of '{name}' "
                    "the reader rejects",
                    *nested,
                ]
        return errors

    def _check_additional_properties(self, reader: _Node, writer: _Node, path: str) -> list[str]:
        r: dict[str, Any] = reader.schema
        w: dict[str, Any] = writer.schema
        errors: list[str] = []
        reader_patterns = _mapping(r, "patternProperties")
        writer_patterns = _mapping(w, "patternProperties")
        writer_additional = w.get("additionalProperties", True)
        for pattern in sorted(reader_patterns):
            constraint = reader_patterns[pattern]
            written = writer_patterns.get(pattern, writer_additional)
            if written is False or _accepts_anything(constraint):
                continue
            pattern_path = f"{path}/patternProperties/{pointer_token(pattern)}"
            if _accepts_anything(written):
                errors.append(
                    f"ADDITIONAL_PROPERTIES_NARROWED at '{pattern_path}': the reader constrains "
                    "properties the writer leaves unconstrained"
                )
            else:
                errors += self.compare(
                    reader.child(constraint), writer.child(written), pattern_path
                )
        reader_additional = r.get("additionalProperties", True)
        if _accepts_anything(reader_additional):
            return errors
        additional_path = f"{path}/additionalProperties"
        if writer_additional is not False:
            if reader_additional is False or _accepts_anything(writer_additional):
                errors.append(
                    f"ADDITIONAL_PROPERTIES_NARROWED at '{additional_path}': the reader restricts "
                    "properties it does not list; the writer "
                    + ("allows any" if _accepts_anything(writer_additional) else "allows others")
                )
            else:
                errors += self.compare(
                    reader.child(reader_additional),
                    writer.child(writer_additional),
                    additional_path,
                )
        for pattern in sorted(writer_patterns.keys() - reader_patterns.keys()):
            written = writer_patterns[pattern]
            if written is False:
                continue
            nested = self.compare(
                reader.child(reader_additional), writer.child(written), additional_path
            )
            errors += nested
        return errors

    def _check_dependencies(self, reader: _Node, writer: _Node, path: str) -> list[str]:
        r: dict[str, Any] = reader.schema
        w: dict[str, Any] = writer.schema
        errors: list[str] = []
        reader_arrays, reader_schemas = _dependencies(r)
        writer_arrays, writer_schemas = _dependencies(w)
        guaranteed = {name for name in w.get("required", []) if isinstance(name, str)}
        for name in sorted(reader_arrays):
            missing = reader_arrays[name] - writer_arrays.get(name, frozenset()) - guaranteed
            if missing:
                kind = "EXTENDED" if name in writer_arrays else "ADDED"
                errors.append(
                    f"DEPENDENCY_ARRAY_{kind} at '{path}/dependencies/{pointer_token(name)}': with "
                    f"'{name}' the reader also requires {', '.join(sorted(missing))}"
                )
        for name in sorted(reader_schemas):
            dependency_path = f"{path}/dependencies/{pointer_token(name)}"
            constraint = reader.child(reader_schemas[name])
            if name in writer_schemas:
                errors += self.compare(
                    constraint, writer.child(writer_schemas[name]), dependency_path
                )
            elif self.compare(constraint, writer, dependency_path):
                errors.append(
                    f"DEPENDENCY_SCHEMA_ADDED at '{dependency_path}': with '{name}' the reader "
                    "applies a schema the writer does not"
                )
        return errors


def _check_required(r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
    reader_required = {name for name in r.get("required", ()) if isinstance(name, str)}
    writer_required = {name for name in w.get("required", ()) if isinstance(name, str)}
    reader_properties = _mapping(r, "properties")
    writer_properties = _mapping(w, "properties")
    errors: list[str] = []
    for name in sorted(reader_required - writer_required):
        declared = reader_properties.get(name)
        if isinstance(declared, dict) and "default" in declared:
            continue  # Confluent's REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED is compatible
        required_path = f"{path}/required/{pointer_token(name)}"
        if name in writer_properties or _is_open(w):
            errors.append(
                f"REQUIRED_ATTRIBUTE_ADDED at '{required_path}': the reader requires property "
                f"'{name}', which the writer does not always write"
            )
        else:
            errors.append(
                f"REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL at '{required_path}': the "
                f"reader requires property '{name}', which the writer's content model does not "
                "declare"
            )
    return errors


def _mapping(schema: dict[str, Any], keyword: str) -> dict[str, Any]:
    value = schema.get(keyword)
    return value if isinstance(value, dict) else {}


def _is_open(schema: dict[str, Any]) -> bool:
    """No patternProperties and any additional property accepted."""
    return not _mapping(schema, "patternProperties") and _accepts_anything(
        schema.get("additionalProperties", True)
    )


def _schema_for_name(schema: dict[str, Any], name: str) -> list[Any]:
    """The subschemas a property `name` must satisfy: its own and every matching pattern's, or
    else additionalProperties (absent means any value)."""
    found = []
    properties = _mapping(schema, "properties")
    if name in properties:
        found.append(properties[name])
    for pattern, subschema in _mapping(schema, "patternProperties").items():
        if _matches(pattern, name):
            found.append(subschema)
    return found or [schema.get("additionalProperties", True)]


def _dependencies(schema: dict[str, Any]) -> tuple[dict[str, frozenset[str]], dict[str, Any]]:
    """(property -> properties it requires, property -> schema it applies), from draft 7's
    dependencies and 2019-09's dependentRequired/dependentSchemas."""
    arrays: dict[str, frozenset[str]] = {}
    schemas: dict[str, Any] = {}
    for keyword in ("dependencies", "dependentRequired", "dependentSchemas"):
        for name, value in _mapping(schema, keyword).items():
            if isinstance(value, list):
                arrays[name] = arrays.get(name, frozenset()) | frozenset(value)
            else:
                schemas[name] = value
    return arrays, schemas


def _items_of(schema: dict[str, Any]) -> tuple[list[Any], Any, str]:
    """(positional item schemas, schema of every later item, where that schema sits), over
    draft 7's items/additionalItems and 2020-12's prefixItems/items."""
    prefix = schema.get("prefixItems")
    items = schema.get("items", True)
    if isinstance(prefix, list):
        return prefix, items, "/items"
    if isinstance(items, list):
        return items, schema.get("additionalItems", True), "/additionalItems"
    return [], items, "/items"


def _check_string(r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
    errors = _check_limit(r, w, path, "maxLength", "MAX_LENGTH", upper=True)
    errors += _check_limit(r, w, path, "minLength", "MIN_LENGTH", upper=False)
    pattern = r.get("pattern")
    if isinstance(pattern, str):
        written = w.get("pattern")
        if written is None:
            errors.append(f"PATTERN_ADDED at '{path}': the reader added pattern {pattern!r}")
        elif written != pattern:
            errors.append(
                f"PATTERN_CHANGED at '{path}': pattern changed from the writer's {written!r} to "
                f"the reader's {pattern!r}"
            )
    return errors


def _check_limit(
    r: dict[str, Any], w: dict[str, Any], path: str, keyword: str, name: str, upper: bool
) -> list[str]:
    """A count limit (maxLength, minItems, ...): the reader's may only be looser."""
    reader_limit = _count(r, keyword)
    writer_limit = _count(w, keyword)
    if reader_limit is None or (not upper and reader_limit == 0):
        return []
    if writer_limit is None:
        return [_limit_message(f"{name}_ADDED", path, keyword, reader_limit, None)]
    stricter = reader_limit < writer_limit if upper else reader_limit > writer_limit
    if stricter:
        change = "DECREASED" if upper else "INCREASED"
        return [_limit_message(f"{name}_{change}", path, keyword, reader_limit, writer_limit)]
    return []


def _check_item_counts(r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
    errors = _check_limit(r, w, path, "maxItems", "MAX_ITEMS", upper=True)
    errors += _check_limit(r, w, path, "minItems", "MIN_ITEMS", upper=False)
    if r.get("uniqueItems") is True and w.get("uniqueItems") is not True:
        errors.append(f"UNIQUE_ITEMS_ADDED at '{path}': the reader requires unique items")
    return errors


def _check_number(
    r: dict[str, Any], w: dict[str, Any], path: str, integers_only: bool
) -> list[str]:
    errors: list[str] = []
    for upper, base, change in ((True, "MAXIMUM", "DECREASED"), (False, "MINIMUM", "INCREASED")):
        reader_bound = _bound(r, upper)
        if reader_bound is None:
            continue
        value, exclusive, keyword, shown = reader_bound
        name = f"{base}_EXCLUSIVE" if exclusive else base
        writer_bound = _bound(w, upper)
        if writer_bound is None:
            errors.append(_limit_message(f"{name}_ADDED", path, keyword, shown, None))
            continue
        written, written_exclusive, written_keyword, written_shown = writer_bound
        stricter = value < written if upper else value > written
        if stricter or (value == written and exclusive and not written_exclusive):
            errors.append(
                _limit_message(
                    f"{name}_{change}", path, keyword, shown, f"{written_keyword} {written_shown}"
                )
            )
    multiple = r.get("multipleOf")
    if _is_number(multiple):
        written_multiple = w.get("multipleOf")
        if _is_number(written_multiple):
            ratio = _fraction(written_multiple) / _fraction(multiple)
        elif integers_only:
            ratio = 1 / _fraction(multiple)
        else:
            return [*errors, f"MULTIPLE_ADDED at '{path}': the reader added multipleOf {multiple}"]
        if ratio.denominator != 1:
            name = "MULTIPLE_EXPANDED" if ratio < 1 else "MULTIPLE_CHANGED"
            errors.append(
                f"{name} at '{path}': the writer's values (multiples of "
                f"{written_multiple if _is_number(written_multiple) else 1}) are not all "
                f"multiples of the reader's multipleOf {multiple}"
            )
    return errors
