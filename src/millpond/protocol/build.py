"""Version-neutral construction of kio messages.

Each Kafka API has one kio class per version, differing only in which fields exist. Handlers
describe a response once, as nested dicts holding the fields of every version they serve, and
`build` keeps the fields the requested version has. A field the version has but the dict lacks
falls back to the schema's default; with no default it is an error, so a handler that forgets a
field fails its tests rather than sending garbage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING
from dataclasses import fields
from functools import cache
from typing import Any
from typing import TypeVar

from kio.serial._introspect import EntityField
from kio.serial._introspect import EntityTupleField
from kio.serial._introspect import classify_field
from kio.static.protocol import Entity

E = TypeVar("E", bound=Entity)

# (name, nested entity type or None, is_array, has_default)
_FieldPlan = tuple[str, type[Entity] | None, bool, bool]


@cache
def _plan(entity: type[Entity]) -> tuple[_FieldPlan, ...]:
    plan: list[_FieldPlan] = []
    for field in fields(entity):
        kind = classify_field(field)
        nested = kind.type_ if isinstance(kind, EntityField | EntityTupleField) else None
        has_default = field.default is not MISSING or field.default_factory is not MISSING
        plan.append((field.name, nested, kind.is_array, has_default))
    return tuple(plan)


def build(entity: type[E], values: Mapping[str, Any]) -> E:
    """Instantiate `entity` from `values`, recursing into nested entities and arrays of them."""
    kwargs: dict[str, Any] = {}
    for name, nested, is_array, has_default in _plan(entity):
        if name not in values:
            if has_default:
                continue
            raise KeyError(f"{entity.__qualname__} v{entity.__version__} needs field {name!r}")
        value = values[name]
        if nested is not None and value is not None:
            if is_array:
                value = tuple(
                    item if isinstance(item, nested) else build(nested, item) for item in value
                )
            elif not isinstance(value, nested):
                value = build(nested, value)
        elif is_array and value is not None:
            value = tuple(value)
        kwargs[name] = value
    return entity(**kwargs)
