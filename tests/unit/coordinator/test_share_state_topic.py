from __future__ import annotations

import contextlib
import struct
import uuid
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millpond.coordinator.share_partition import RecordState
from millpond.coordinator.share_partition import StateBatch
from millpond.coordinator.share_state_topic import GroupConfigKey
from millpond.coordinator.share_state_topic import PartitionKey
from millpond.coordinator.share_state_topic import PartitionSnapshot
from millpond.coordinator.share_state_topic import StateFormatError
from millpond.coordinator.share_state_topic import decode_group_configs
from millpond.coordinator.share_state_topic import decode_key
from millpond.coordinator.share_state_topic import decode_snapshot
from millpond.coordinator.share_state_topic import encode_group_configs
from millpond.coordinator.share_state_topic import encode_key
from millpond.coordinator.share_state_topic import encode_snapshot

text = st.text(max_size=30)
int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
uuids = st.uuids(allow_nil=True)

keys = st.one_of(
    st.builds(PartitionKey, text, uuids, int32),
    st.builds(GroupConfigKey, text),
)
batches = st.builds(
    StateBatch,
    int64,
    int64,
    st.sampled_from(list(RecordState)),
    st.integers(-(2**15), 2**15 - 1),
)
snapshots = st.builds(PartitionSnapshot, int32, int64, st.lists(batches, max_size=6).map(tuple))
configs = st.dictionaries(text, text, max_size=6)

DECODERS: list[Callable[[bytes], object]] = [decode_key, decode_snapshot, decode_group_configs]


@given(keys)
def test_key_round_trip(key: PartitionKey | GroupConfigKey) -> None:
    assert decode_key(encode_key(key)) == key


@given(snapshots)
def test_snapshot_round_trip(snapshot: PartitionSnapshot) -> None:
    assert decode_snapshot(encode_snapshot(snapshot)) == snapshot


@given(configs)
def test_group_configs_round_trip(value: dict[str, str]) -> None:
    assert decode_group_configs(encode_group_configs(value)) == value


@given(st.binary(max_size=80))
def test_garbage_raises_only_state_format_error(data: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(StateFormatError):
            decode(data)


@given(
    st.one_of(
        keys.map(encode_key),
        snapshots.map(encode_snapshot),
        configs.map(encode_group_configs),
    ),
    st.data(),
)
def test_corrupted_records_raise_only_state_format_error(data: bytes, draw: st.DataObject) -> None:
    corrupt = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 3))):
        if corrupt:
            corrupt[draw.draw(st.integers(0, len(corrupt) - 1))] = draw.draw(st.integers(0, 255))
    for decode in DECODERS:
        with contextlib.suppress(StateFormatError):
            decode(bytes(corrupt))


@given(st.one_of(keys.map(encode_key), st.binary(max_size=60)))
def test_keys_decode_canonically_or_not_at_all(data: bytes) -> None:
    """Compaction works on key bytes: two different byte strings must never name one key."""
    try:
        key = decode_key(data)
    except StateFormatError:
        return
    assert encode_key(key) == data


@given(snapshots, st.data())
def test_a_truncated_snapshot_is_refused(snapshot: PartitionSnapshot, data: st.DataObject) -> None:
    encoded = encode_snapshot(snapshot)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(StateFormatError):
        decode_snapshot(encoded[:cut])
    with pytest.raises(StateFormatError):
        decode_snapshot(encoded + b"\x00")


@given(keys, st.data())
def test_a_truncated_key_is_refused(
    key: PartitionKey | GroupConfigKey, data: st.DataObject
) -> None:
    encoded = encode_key(key)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(StateFormatError):
        decode_key(encoded[:cut])
    with pytest.raises(StateFormatError):
        decode_key(encoded + b"\x00")


@given(configs.filter(bool), st.data())
def test_truncated_group_configs_are_refused(value: dict[str, str], data: st.DataObject) -> None:
    encoded = encode_group_configs(value)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(StateFormatError):
        decode_group_configs(encoded[:cut])
    with pytest.raises(StateFormatError):
        decode_group_configs(encoded + b"\x00")


def test_partition_key_layout() -> None:
    key = PartitionKey("gé", uuid.UUID(int=1), 7)
    assert encode_key(key) == (
        b"\x00\x00" + b"\x00\x03g\xc3\xa9" + b"\x00" * 15 + b"\x01" + b"\x00\x00\x00\x07"
    )
    assert encode_key(GroupConfigKey("g")) == b"\x00\x01\x00\x01g"


def test_snapshot_layout() -> None:
    snapshot = PartitionSnapshot(3, 10, (StateBatch(11, 12, RecordState.ARCHIVED, 5),))
    assert encode_snapshot(snapshot) == (
        struct.pack(">hiqi", 0, 3, 10, 1) + struct.pack(">qqbh", 11, 12, 4, 5)
    )


def test_group_configs_layout_is_sorted_by_name() -> None:
    assert encode_group_configs({"b": "2", "a": "1"}) == (
        b"\x00\x00\x00\x00\x00\x02" + b"\x00\x01a\x00\x011" + b"\x00\x01b\x00\x012"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\x00\x02\x00\x01g",  # unknown key type
        b"\x00\x00\x00\x01g" + b"\x00" * 19,  # partition key one byte short
        b"\x00\x00\x00\x05g",  # string longer than the key
        b"\x00\x00\xff\xffg",  # negative string length
        b"\x00\x01\x00\x02\xff\xfe",  # not UTF-8
    ],
)
def test_bad_keys(data: bytes) -> None:
    with pytest.raises(StateFormatError):
        decode_key(data)


@pytest.mark.parametrize(
    "data",
    [
        struct.pack(">hiqi", 1, 0, 0, 0),  # unknown version
        struct.pack(">hiqi", 0, 0, 0, -1),  # negative count
        struct.pack(">hiqi", 0, 0, 0, 1) + struct.pack(">qqbh", 0, 0, 3, 1),  # unknown state
        struct.pack(">hiqi", 0, 0, 0, 2) + struct.pack(">qqbh", 0, 0, 0, 1),  # one batch short
    ],
)
def test_bad_snapshots(data: bytes) -> None:
    with pytest.raises(StateFormatError):
        decode_snapshot(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01\x00\x00\x00\x00",  # unknown version
        b"\x00\x00\xff\xff\xff\xff",  # negative count
        b"\x00\x00\x00\x00\x00\x01\x00\x01a",  # a name without a value
        b"\x00\x00\x00\x00\x00\x01\x00\x01a\x00\x01\xff",  # value not UTF-8
    ],
)
def test_bad_group_configs(data: bytes) -> None:
    with pytest.raises(StateFormatError):
        decode_group_configs(data)
