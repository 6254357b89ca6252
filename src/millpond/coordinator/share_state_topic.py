"""Record formats of `__share_group_state`, the compacted topic that holds share groups.

Keys (big-endian, strings int16 length + UTF-8) pick what a record describes; compaction keeps
the newest value of each key, and a null value (tombstone) deletes it:

    partition state  int16 0 | string group | uuid topic_id (16 bytes) | int32 partition
    group configs    int16 1 | string group

    partition state value (version 0): a full snapshot of the partition's window
      int16 version | int32 state_epoch | int64 start_offset | int32 n
      n x (int64 first_offset | int64 last_offset | int8 state | int16 delivery_count)
    group configs value (version 0): the group's `share.*` and dead-letter overrides
      int16 version | int32 n | n x (string name | string value)

Acquired records are never stored (they are written as available with their count before
acquisition), so a restart redelivers whatever was in a worker's hands, as in Kafka.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from millpond.coordinator.share_partition import RecordState
from millpond.coordinator.share_partition import StateBatch

STATE_TOPIC = "__share_group_state"

_PARTITION_STATE = 0
_GROUP_CONFIGS = 1
_VERSION = 0
_SNAPSHOT_HEAD = struct.Struct(">hiqi")
_BATCH = struct.Struct(">qqbh")
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


class StateFormatError(ValueError):
    """A record of __share_group_state this broker cannot read."""


@dataclass(frozen=True, slots=True)
class PartitionKey:
    group_id: str
    topic_id: uuid.UUID
    partition: int


@dataclass(frozen=True, slots=True)
class GroupConfigKey:
    group_id: str


@dataclass(frozen=True, slots=True)
class PartitionSnapshot:
    state_epoch: int
    start_offset: int
    batches: tuple[StateBatch, ...]


def _string(value: str) -> bytes:
    encoded = value.encode()
    return _INT16.pack(len(encoded)) + encoded


def _read_string(data: bytes, position: int) -> tuple[str, int]:
    if position + 2 > len(data):
        raise StateFormatError("truncated string")
    (length,) = _INT16.unpack_from(data, position)
    position += 2
    if length < 0 or position + length > len(data):
        raise StateFormatError("bad string length")
    try:
        return data[position : position + length].decode(), position + length
    except UnicodeDecodeError:
        raise StateFormatError("string is not UTF-8") from None


def encode_key(key: PartitionKey | GroupConfigKey) -> bytes:
    if isinstance(key, PartitionKey):
        return (
            _INT16.pack(_PARTITION_STATE)
            + _string(key.group_id)
            + key.topic_id.bytes
            + _INT32.pack(key.partition)
        )
    return _INT16.pack(_GROUP_CONFIGS) + _string(key.group_id)


def decode_key(data: bytes) -> PartitionKey | GroupConfigKey:
    if len(data) < 2:
        raise StateFormatError("truncated key")
    (kind,) = _INT16.unpack_from(data, 0)
    group_id, position = _read_string(data, 2)
    if kind == _GROUP_CONFIGS:
        if position != len(data):
            raise StateFormatError("trailing bytes after a group configs key")
        return GroupConfigKey(group_id)
    if kind != _PARTITION_STATE or position + 20 != len(data):
        raise StateFormatError(f"unknown key type {kind}")
    topic_id = uuid.UUID(bytes=data[position : position + 16])
    (partition,) = _INT32.unpack_from(data, position + 16)
    return PartitionKey(group_id, topic_id, partition)


def encode_snapshot(snapshot: PartitionSnapshot) -> bytes:
    parts = [
        _SNAPSHOT_HEAD.pack(
            _VERSION, snapshot.state_epoch, snapshot.start_offset, len(snapshot.batches)
        )
    ]
    parts.extend(
        _BATCH.pack(b.first_offset, b.last_offset, b.state, b.delivery_count)
        for b in snapshot.batches
    )
    return b"".join(parts)


def decode_snapshot(data: bytes) -> PartitionSnapshot:
    if len(data) < _SNAPSHOT_HEAD.size:
        raise StateFormatError("truncated snapshot")
    version, state_epoch, start_offset, count = _SNAPSHOT_HEAD.unpack_from(data, 0)
    if version != _VERSION:
        raise StateFormatError(f"unknown snapshot version {version}")
    if count < 0 or len(data) != _SNAPSHOT_HEAD.size + count * _BATCH.size:
        raise StateFormatError("snapshot length does not match its batch count")
    batches = []
    for index in range(count):
        first, last, state, delivery_count = _BATCH.unpack_from(
            data, _SNAPSHOT_HEAD.size + index * _BATCH.size
        )
        try:
            batches.append(StateBatch(first, last, RecordState(state), delivery_count))
        except ValueError:
            raise StateFormatError(f"unknown record state {state}") from None
    return PartitionSnapshot(state_epoch, start_offset, tuple(batches))


def encode_group_configs(configs: dict[str, str]) -> bytes:
    parts = [_INT16.pack(_VERSION), _INT32.pack(len(configs))]
    for name, value in sorted(configs.items()):
        parts.append(_string(name))
        parts.append(_string(value))
    return b"".join(parts)


def decode_group_configs(data: bytes) -> dict[str, str]:
    if len(data) < 6:
        raise StateFormatError("truncated group configs")
    (version,) = _INT16.unpack_from(data, 0)
    if version != _VERSION:
        raise StateFormatError(f"unknown group configs version {version}")
    (count,) = _INT32.unpack_from(data, 2)
    if count < 0:
        raise StateFormatError("negative group configs count")
    position = 6
    configs: dict[str, str] = {}
    for _ in range(count):
        name, position = _read_string(data, position)
        value, position = _read_string(data, position)
        configs[name] = value
    if position != len(data):
        raise StateFormatError("trailing bytes after group configs")
    return configs
