"""Bounding what decoding an Avro payload can cost, for the schemas where its length does not.

fastavro decodes in C and builds a Python object for every value. For most schemas every value
it builds costs the payload at least a byte, so a payload's length bounds the time and memory
its decoding takes. Two kinds of schema break that bound:

- Values that take no bytes: `null`, a `fixed` of size 0, and a record whose fields all take
  no bytes. An array of them is a count and nothing else, so ten bytes can claim 2**62 items,
  which fastavro builds one by one (10**7 of them took 0.3 s and 110 MB). The same happens,
  one enclosing value at a time, with a record field or a union branch of such a type (an
  array of one-byte records that each carry a thousand null fields), and through a named type
  used twice in a record, twice in the next one and so on (thirty levels build 2**30 values
  from an empty payload).
- Recursive types: fastavro recurses on the C stack once per level of nesting, and somewhere
  past three thousand nodes of a linked list (a few kilobytes of payload) the process crashes.
  Types that reach past MAX_TYPE_NESTING levels only by using a referenced type again further
  down are walked for the same reason; planning itself stops at that depth.

`plan` finds out at parse time whether a schema is of either kind, and only then returns a
SkipPlan; `skip` walks a payload with it before fastavro sees the payload. The walk builds no
values, reads each byte once, counts the values that take no bytes without visiting them
(an array block of them is one multiplication), and refuses a payload that holds more than
MAX_ZERO_SIZE_ITEMS of them (or more than one per payload byte, if that is more) or nests values
deeper than MAX_NESTING. A payload that passes is then decoded by fastavro as any other, so
what is accepted stays fastavro's decision (UTF-8, logical types) within those limits; `skip`
is stricter than fastavro only there and in refusing varints longer than ten bytes, which
fastavro reads and Java Avro refuses. Being pure Python, the walk costs about half a
microsecond per value (0.08 s for 150,000 values in 740 kB), some three times what fastavro
then takes to read them.

The binary encoding being walked (the Avro specification, "Binary Encoding"):

    int, long      zigzag varint: 7 bits a byte, low group first, high bit set = more bytes;
                   at most 10 bytes
    boolean        1 byte          float   4 bytes          double  8 bytes
    bytes, string  long length, then that many bytes
    fixed          `size` bytes    enum    int index into the symbols
    null           nothing
    record         each field's value in field order, nothing between
    union          long branch index, then the branch's value
    array, map     blocks, each a long count then count items (a map item: string key, then
                   value); a negative count is followed by the block's byte size as a long
                   and means -count items; a count of 0 ends the value
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import avro.schema

from millpond.registry.schema import InvalidSchemaError
from millpond.registry.schema import PayloadError

MAX_ZERO_SIZE_ITEMS: Final = 100_000
"""How many values that take no bytes a payload may hold. A longer payload may hold one per byte
of its length, which costs no more than what any other schema lets a payload of that length
build."""

MAX_NESTING: Final = 512
"""How deeply a payload's values may nest (each record, array, map and union a level): 256
nodes of a linked list, far from where fastavro's recursion ends the process."""

MAX_TYPE_NESTING: Final = 128
"""How deeply a schema's types may nest, counting those of the schemas it references (twice
what one schema may nest): it bounds the recursion of the planning here."""

_MAX_VARINT_BYTES: Final = 10
_UINT64_MASK: Final = 2**64 - 1

# What a plan node reads.
_ZERO: Final = 0  # nothing: a type whose values take no bytes
_BYTES: Final = 1  # `size` bytes (boolean, float, double, fixed)
_VARINT: Final = 2  # an int or long
_LENGTH_PREFIXED: Final = 3  # bytes, string
_ENUM: Final = 4  # an index below `size`
_RECORD: Final = 5  # its children in order (a map entry is a record of key and value)
_UNION: Final = 6  # an index below len(children), then that child
_ARRAY: Final = 7  # blocks of its one child (an array's item or a map's entry)

_LEAVES: Final = frozenset((_BYTES, _VARINT, _LENGTH_PREFIXED, _ENUM))

_FIXED_SIZES: Final = {"boolean": 1, "float": 4, "double": 8}


class _Node:
    """One type of the schema, as the walk reads it."""

    __slots__ = ("children", "height", "kind", "size", "zero_values")

    def __init__(
        self,
        kind: int,
        *,
        size: int = 0,
        zero_values: int = 0,
        height: int = 0,
        children: Sequence[_Node] = (),
    ) -> None:
        self.kind = kind
        self.size = size
        # _ZERO: the values one value of the type is made of (a record of two nulls: three);
        # _RECORD: those of its fields that take no bytes, which are not among its children.
        self.zero_values = zero_values
        # _RECORD: in reverse order, as the walk stacks them.
        self.children = tuple(children)
        # How deeply values of the type nest (a record of ints: 1), which is how deeply
        # fastavro recurses to read one.
        self.height = _height(children) if children else height


_STRING: Final = _Node(_LENGTH_PREFIXED)


@dataclass(frozen=True, slots=True)
class SkipPlan:
    """How `skip` walks payloads of one schema."""

    root: _Node


def plan(schema: avro.schema.Schema) -> SkipPlan | None:
    """The plan for walking payloads of `schema` before decoding them, or None if the payload's
    length already bounds fastavro's work (no value that takes no bytes outside a union's
    branch of its own, no recursive type). Raises InvalidSchemaError if the types nest deeper
    than MAX_TYPE_NESTING."""
    planner = _Planner(_zero_size_records(schema))
    root = planner.occurrence(schema, 0, as_branch=False)
    # A type reached again deeper down (through referenced schemas) can nest its values
    # deeper than the planning went; such schemas are walked too, to bound fastavro's
    # recursion by MAX_NESTING.
    if planner.unbounded or root.height > MAX_TYPE_NESTING:
        return SkipPlan(root)
    return None


def skip(skip_plan: SkipPlan, payload: bytes) -> int:
    """Walk one value of the plan's schema at the start of `payload`; returns where it ends.
    Raises PayloadError if the payload ends inside the value, has an index or length out of
    range, or is past MAX_ZERO_SIZE_ITEMS or MAX_NESTING."""
    end = len(payload)
    zero_value_limit = max(MAX_ZERO_SIZE_ITEMS, end)
    zero_values = 0
    position = 0
    # (node, nesting depth of its value, how many values of it follow one another)
    stack: list[tuple[_Node, int, int]] = [(skip_plan.root, 0, 1)]
    while stack:
        node, depth, repeat = stack.pop()
        if repeat > 1:
            stack.append((node, depth, repeat - 1))
        kind = node.kind
        if kind == _VARINT:
            _, position = _read_long(payload, position)
        elif kind == _BYTES:
            position += node.size
            if position > end:
                raise _truncated()
        elif kind == _LENGTH_PREFIXED:
            length, position = _read_long(payload, position)
            if length < 0:
                raise _invalid(f"a negative length, {length}")
            position += length
            if position > end:
                raise _truncated()
        elif kind == _ENUM:
            index, position = _read_long(payload, position)
            if not 0 <= index < node.size:
                raise _invalid(f"enum index {index} is not below the {node.size} symbols")
        elif kind == _ZERO:
            zero_values += node.zero_values
        elif kind == _RECORD:
            zero_values += node.zero_values
            _check_depth(depth)
            stack.extend([(child, depth + 1, 1) for child in node.children])
        elif kind == _UNION:
            index, position = _read_long(payload, position)
            if not 0 <= index < len(node.children):
                raise _invalid(
                    f"union branch {index} is not below the {len(node.children)} branches"
                )
            _check_depth(depth)
            stack.append((node.children[index], depth + 1, 1))
        else:  # _ARRAY
            count, position = _read_long(payload, position)
            if count == 0:
                continue
            if count < 0:
                count = -count
                _, position = _read_long(payload, position)  # the block's byte size, unused
            item = node.children[0]
            # Checked for the whole block before any of it is walked, so that a count alone
            # is refused for what it claims.
            _check_zero_values(zero_values + count * item.zero_values, zero_value_limit)
            _check_depth(depth)
            stack.append((node, depth, 1))  # the next block's count
            if item.kind == _ZERO:
                zero_values += count * item.zero_values
            # Anything else takes at least a byte, so a longer count cannot be real.
            elif count > end - position:
                raise _truncated()
            elif item.kind in _LEAVES:
                position = _skip_leaves(payload, position, item, count)
            else:
                stack.append((item, depth + 1, count))
        _check_zero_values(zero_values, zero_value_limit)
    return position


def _skip_leaves(payload: bytes, position: int, leaf: _Node, count: int) -> int:
    """Skip `count` values of a type that holds no other (the items of most arrays), without
    a trip round the walk's stack for each."""
    end = len(payload)
    if leaf.kind == _BYTES:
        position += count * leaf.size
    elif leaf.kind == _VARINT:
        for _ in range(count):
            _, position = _read_long(payload, position)
    elif leaf.kind == _ENUM:
        for _ in range(count):
            index, position = _read_long(payload, position)
            if not 0 <= index < leaf.size:
                raise _invalid(f"enum index {index} is not below the {leaf.size} symbols")
    else:
        for _ in range(count):
            length, position = _read_long(payload, position)
            if length < 0:
                raise _invalid(f"a negative length, {length}")
            position += length
    if position > end:
        raise _truncated()
    return position


def _check_zero_values(zero_values: int, limit: int) -> None:
    if zero_values > limit:
        raise PayloadError(
            f"payload claims more than {limit} items that take no bytes (null, empty records, "
            f"fixed of size 0): a payload may hold {MAX_ZERO_SIZE_ITEMS} of them, or one per "
            f"byte of its length"
        )


def _read_long(payload: bytes, position: int) -> tuple[int, int]:
    """The zigzag varint at `position` and the position after it."""
    unsigned = 0
    for index in range(_MAX_VARINT_BYTES):
        if position + index >= len(payload):
            raise _truncated()
        byte = payload[position + index]
        unsigned |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            # A tenth byte carries bits past 64, which Java Avro and fastavro both drop.
            unsigned &= _UINT64_MASK
            return (unsigned >> 1) ^ -(unsigned & 1), position + index + 1
    raise _invalid(f"a varint longer than {_MAX_VARINT_BYTES} bytes")


def _check_depth(depth: int) -> None:
    if depth >= MAX_NESTING:
        raise PayloadError(f"payload nests values deeper than {MAX_NESTING} levels")


def _invalid(reason: str) -> PayloadError:
    return PayloadError(f"payload is not a valid Avro record of the schema ({reason})")


def _truncated() -> PayloadError:
    return _invalid("the payload ends inside the record")


# Planning


def reachable_types(
    schema: avro.schema.Schema, *, skip: frozenset[int] = frozenset()
) -> Iterator[avro.schema.Schema]:
    """Every type `schema` holds, itself included, each once (a named type may be used many
    times, and may hold itself), but for those whose id is in `skip` and what only they hold."""
    seen = set(skip)
    pending = [schema]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, avro.schema.RecordSchema):
            pending.extend(record_field.type for record_field in current.fields)
        elif isinstance(current, avro.schema.ArraySchema):
            pending.append(current.items)
        elif isinstance(current, avro.schema.MapSchema):
            pending.append(current.values)
        elif isinstance(current, avro.schema.UnionSchema):
            pending.extend(current.schemas)


def _zero_size_records(schema: avro.schema.Schema) -> frozenset[int]:
    """The ids of the records reachable from `schema` whose values take no bytes: the least
    fixed point, so a record that holds itself (which no finite value can) is not one."""
    records = [
        current
        for current in reachable_types(schema)
        if isinstance(current, avro.schema.RecordSchema)
    ]
    zero: set[int] = set()
    grew = True
    while grew:
        grew = False
        for record in records:
            if id(record) not in zero and all(
                _takes_no_bytes(record_field.type, zero) for record_field in record.fields
            ):
                zero.add(id(record))
                grew = True
    return frozenset(zero)


def _takes_no_bytes(schema: avro.schema.Schema, zero_records: set[int] | frozenset[int]) -> bool:
    if isinstance(schema, avro.schema.RecordSchema):
        return id(schema) in zero_records
    if isinstance(schema, avro.schema.FixedSchema):
        return bool(schema.size == 0)
    return bool(schema.type == "null")


class _Planner:
    """Builds the nodes of one schema, each named type once, and notes whether the schema
    needs them (`unbounded`)."""

    def __init__(self, zero_records: frozenset[int]) -> None:
        self._zero_records = zero_records
        self._named: dict[int, _Node] = {}
        self._zero_types: dict[int, tuple[int, int]] = {}
        self._open: set[int] = set()
        self.unbounded = False

    def occurrence(self, schema: avro.schema.Schema, depth: int, *, as_branch: bool) -> _Node:
        """The node for one use of `schema` (a field's type, an item type, a union branch),
        `depth` types below the schema's root."""
        _check_type_depth(depth)
        if _takes_no_bytes(schema, self._zero_records):
            values, height = self._zero_type(schema, depth)
            # A union branch that is one value (null, an empty record) is paid for by the
            # branch index; anything else takes no bytes and can repeat without bound.
            if not (as_branch and values == 1):
                self.unbounded = True
            return _Node(_ZERO, zero_values=values, height=height)
        if isinstance(schema, avro.schema.RecordSchema):
            return self._record(schema, depth)
        if isinstance(schema, avro.schema.UnionSchema):
            return _Node(
                _UNION,
                children=[
                    self.occurrence(branch, depth + 1, as_branch=True) for branch in schema.schemas
                ],
            )
        if isinstance(schema, avro.schema.ArraySchema):
            item = self.occurrence(schema.items, depth + 1, as_branch=False)
            return _Node(_ARRAY, children=[item])
        if isinstance(schema, avro.schema.MapSchema):
            value = self.occurrence(schema.values, depth + 1, as_branch=False)
            if value.kind == _ZERO:
                entry = _Node(_RECORD, zero_values=value.zero_values, children=[_STRING])
                entry.height = 1 + value.height
            else:
                entry = _Node(_RECORD, children=[value, _STRING])
            return _Node(_ARRAY, children=[entry])
        if isinstance(schema, avro.schema.EnumSchema):
            return _Node(_ENUM, size=len(schema.symbols))
        if isinstance(schema, avro.schema.FixedSchema):
            return _Node(_BYTES, size=schema.size)
        kind: str = schema.type
        if kind in ("int", "long"):
            return _Node(_VARINT)
        if kind in ("bytes", "string"):
            return _Node(_LENGTH_PREFIXED)
        return _Node(_BYTES, size=_FIXED_SIZES[kind])

    def _record(self, schema: avro.schema.RecordSchema, depth: int) -> _Node:
        known = self._named.get(id(schema))
        if known is not None:
            if id(schema) in self._open:
                # A record that holds itself: fastavro's recursion follows the payload.
                self.unbounded = True
            return known
        record = _Node(_RECORD)
        self._named[id(schema)] = record
        self._open.add(id(schema))
        children: list[_Node] = []
        for record_field in schema.fields:
            child = self.occurrence(record_field.type, depth + 1, as_branch=False)
            if child.kind == _ZERO:
                record.zero_values += child.zero_values
                record.height = max(record.height, 1 + child.height)
            else:
                children.append(child)
        self._open.discard(id(schema))
        record.children = tuple(reversed(children))
        record.height = max(record.height, _height(children))
        return record

    def _zero_type(self, schema: avro.schema.Schema, depth: int) -> tuple[int, int]:
        """The values one value of a type that takes no bytes is made of, and how deeply they
        nest. None of these types holds itself, so both are finite; they are memoised, as a
        named type used twice a level doubles the values per level."""
        _check_type_depth(depth)
        if not isinstance(schema, avro.schema.RecordSchema):
            return 1, 0
        known = self._zero_types.get(id(schema))
        if known is None:
            fields = [self._zero_type(field.type, depth + 1) for field in schema.fields]
            known = (
                1 + sum(values for values, _ in fields),
                1 + max((height for _, height in fields), default=0),
            )
            self._zero_types[id(schema)] = known
        return known


def _check_type_depth(depth: int) -> None:
    if depth > MAX_TYPE_NESTING:
        raise InvalidSchemaError(
            f"Invalid Avro schema: types nest deeper than {MAX_TYPE_NESTING} levels, counting "
            f"those of referenced schemas"
        )


def _height(children: Sequence[_Node]) -> int:
    return 1 + max((child.height for child in children), default=0)
