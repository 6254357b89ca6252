"""Records of the internal compacted topic `__consumer_offsets`, in Kafka's own formats.

Keys (big-endian; strings are int16-length UTF-8):

    OffsetCommitKey    version int16 = 1, group string, topic string, partition int32
    GroupMetadataKey   version int16 = 2, group string

Values (a null value is a tombstone: the key's state is deleted):

    OffsetCommitValue v3   version int16 = 3, offset int64, leader_epoch int32,
                           metadata string, commit_timestamp int64
    GroupMetadataValue v3  version int16 = 3, protocol_type string, generation int32,
                           protocol nullable string, leader nullable string,
                           current_state_timestamp int64,
                           members int32 count of: member_id string,
                             group_instance_id nullable string, client_id string,
                             client_host string, rebalance_timeout int32,
                             session_timeout int32, subscription bytes (int32 length),
                             assignment bytes (int32 length)

State is rebuilt at start by replaying the topic: the last record per key wins.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

OFFSET_COMMIT_KEY_VERSION = 1
GROUP_METADATA_KEY_VERSION = 2
OFFSET_COMMIT_VALUE_VERSION = 3
GROUP_METADATA_VALUE_VERSION = 3

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")


class CorruptRecordError(ValueError):
    """An internal-topic record that cannot be decoded."""


@dataclass(frozen=True, slots=True)
class OffsetKey:
    group: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class GroupKey:
    group: str


@dataclass(frozen=True, slots=True)
class OffsetValue:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp: int


@dataclass(frozen=True, slots=True)
class MemberValue:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupValue:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    state_timestamp: int
    members: tuple[MemberValue, ...]


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def int16(self, value: int) -> _Writer:
        self.out += _INT16.pack(value)
        return self

    def int32(self, value: int) -> _Writer:
        self.out += _INT32.pack(value)
        return self

    def int64(self, value: int) -> _Writer:
        self.out += _INT64.pack(value)
        return self

    def string(self, value: str | None) -> _Writer:
        if value is None:
            return self.int16(-1)
        encoded = value.encode()
        self.int16(len(encoded))
        self.out += encoded
        return self

    def bytes_(self, value: bytes) -> _Writer:
        self.int32(len(value))
        self.out += value
        return self


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def _take(self, count: int) -> bytes:
        end = self.position + count
        if count < 0 or end > len(self.data):
            raise CorruptRecordError("internal record is truncated")
        chunk = self.data[self.position : end]
        self.position = end
        return chunk

    def int16(self) -> int:
        value: int = _INT16.unpack(self._take(2))[0]
        return value

    def int32(self) -> int:
        value: int = _INT32.unpack(self._take(4))[0]
        return value

    def int64(self) -> int:
        value: int = _INT64.unpack(self._take(8))[0]
        return value

    def string(self) -> str | None:
        length = self.int16()
        if length == -1:
            return None
        try:
            return self._take(length).decode()
        except UnicodeDecodeError as error:
            raise CorruptRecordError("internal record has a non-UTF-8 string") from error

    def required_string(self) -> str:
        value = self.string()
        if value is None:
            raise CorruptRecordError("internal record has a null where a string belongs")
        return value

    def bytes_(self) -> bytes:
        return self._take(self.int32())


def encode_offset_key(key: OffsetKey) -> bytes:
    writer = _Writer().int16(OFFSET_COMMIT_KEY_VERSION).string(key.group).string(key.topic)
    return bytes(writer.int32(key.partition).out)


def encode_group_key(key: GroupKey) -> bytes:
    return bytes(_Writer().int16(GROUP_METADATA_KEY_VERSION).string(key.group).out)


def encode_offset_value(value: OffsetValue) -> bytes:
    writer = _Writer().int16(OFFSET_COMMIT_VALUE_VERSION).int64(value.offset)
    writer.int32(value.leader_epoch).string(value.metadata).int64(value.commit_timestamp)
    return bytes(writer.out)


def encode_group_value(value: GroupValue) -> bytes:
    writer = _Writer().int16(GROUP_METADATA_VALUE_VERSION).string(value.protocol_type)
    writer.int32(value.generation).string(value.protocol).string(value.leader)
    writer.int64(value.state_timestamp).int32(len(value.members))
    for member in value.members:
        writer.string(member.member_id).string(member.group_instance_id)
        writer.string(member.client_id).string(member.client_host)
        writer.int32(member.rebalance_timeout_ms).int32(member.session_timeout_ms)
        writer.bytes_(member.subscription).bytes_(member.assignment)
    return bytes(writer.out)


def decode_key(data: bytes) -> OffsetKey | GroupKey:
    """Raises CorruptRecordError for anything but the two key formats above."""
    reader = _Reader(data)
    version = reader.int16()
    if version in (0, OFFSET_COMMIT_KEY_VERSION):
        return OffsetKey(reader.required_string(), reader.required_string(), reader.int32())
    if version == GROUP_METADATA_KEY_VERSION:
        return GroupKey(reader.required_string())
    raise CorruptRecordError(f"unknown __consumer_offsets key version {version}")


def decode_offset_value(data: bytes) -> OffsetValue:
    reader = _Reader(data)
    version = reader.int16()
    if version != OFFSET_COMMIT_VALUE_VERSION:
        raise CorruptRecordError(f"unknown offset value version {version}")
    return OffsetValue(reader.int64(), reader.int32(), reader.string() or "", reader.int64())


def decode_group_value(data: bytes) -> GroupValue:
    reader = _Reader(data)
    version = reader.int16()
    if version != GROUP_METADATA_VALUE_VERSION:
        raise CorruptRecordError(f"unknown group metadata value version {version}")
    protocol_type = reader.string() or ""
    generation = reader.int32()
    protocol = reader.string()
    leader = reader.string()
    state_timestamp = reader.int64()
    count = reader.int32()
    if count < 0:
        raise CorruptRecordError("negative member count")
    members = tuple(
        MemberValue(
            reader.required_string(),
            reader.string(),
            reader.string() or "",
            reader.string() or "",
            reader.int32(),
            reader.int32(),
            reader.bytes_(),
            reader.bytes_(),
        )
        for _ in range(count)
    )
    return GroupValue(protocol_type, generation, protocol, leader, state_timestamp, members)
