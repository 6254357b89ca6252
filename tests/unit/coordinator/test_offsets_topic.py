from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millpond.coordinator.offsets_topic import CorruptRecordError
from millpond.coordinator.offsets_topic import GroupKey
from millpond.coordinator.offsets_topic import GroupValue
from millpond.coordinator.offsets_topic import MemberValue
from millpond.coordinator.offsets_topic import OffsetKey
from millpond.coordinator.offsets_topic import OffsetValue
from millpond.coordinator.offsets_topic import decode_group_value
from millpond.coordinator.offsets_topic import decode_key
from millpond.coordinator.offsets_topic import decode_offset_value
from millpond.coordinator.offsets_topic import encode_group_key
from millpond.coordinator.offsets_topic import encode_group_value
from millpond.coordinator.offsets_topic import encode_offset_key
from millpond.coordinator.offsets_topic import encode_offset_value

text = st.text(max_size=30)


@given(st.builds(OffsetKey, text, text, st.integers(0, 2**31 - 1)))
def test_offset_key_round_trip(key: OffsetKey) -> None:
    assert decode_key(encode_offset_key(key)) == key


@given(st.builds(GroupKey, text))
def test_group_key_round_trip(key: GroupKey) -> None:
    assert decode_key(encode_group_key(key)) == key


@given(
    st.builds(
        OffsetValue, st.integers(-1, 2**62), st.integers(-1, 100), text, st.integers(0, 2**42)
    )
)
def test_offset_value_round_trip(value: OffsetValue) -> None:
    assert decode_offset_value(encode_offset_value(value)) == value


members = st.builds(
    MemberValue,
    text,
    st.one_of(st.none(), text),
    text,
    text,
    st.integers(0, 2**31 - 1),
    st.integers(0, 2**31 - 1),
    st.binary(max_size=50),
    st.binary(max_size=50),
)


@given(
    st.builds(
        GroupValue,
        text,
        st.integers(0, 2**31 - 1),
        st.one_of(st.none(), text),
        st.one_of(st.none(), text),
        st.integers(0, 2**42),
        st.lists(members, max_size=4).map(tuple),
    )
)
def test_group_value_round_trip(value: GroupValue) -> None:
    assert decode_group_value(encode_group_value(value)) == value


@given(st.binary(max_size=40))
def test_garbage_raises_only_corrupt_record(data: bytes) -> None:
    for decode in (decode_key, decode_offset_value, decode_group_value):
        with contextlib.suppress(CorruptRecordError):
            decode(data)


def test_known_kafka_bytes() -> None:
    # OffsetCommitKey v1 for ("g", "t", 3), as Kafka's GroupMetadataManager writes it.
    assert encode_offset_key(OffsetKey("g", "t", 3)) == bytes.fromhex("000100016700017400000003")
    with pytest.raises(CorruptRecordError):
        decode_key(bytes.fromhex("0009"))
