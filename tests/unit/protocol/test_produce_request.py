"""The hand-written Produce request decoder reads what kio writes, field for field, for every
served version, and refuses malformed input with ProduceDecodeError only."""

from __future__ import annotations

import contextlib
import datetime
import io

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from kio.serial import entity_writer

from millpond.protocol.build import build
from millpond.protocol.codec import request_type
from millpond.protocol.produce_request import ProduceDecodeError
from millpond.protocol.produce_request import decode_produce_request

partition_data = st.lists(
    st.tuples(st.integers(-(2**31), 2**31 - 1), st.one_of(st.none(), st.binary(max_size=64))),
    max_size=4,
)
topic_data = st.lists(st.tuples(st.text(max_size=20), partition_data), max_size=4)


def encode(version: int, transactional_id: str | None, acks: int, topics: list) -> bytes:
    entity = build(
        request_type(0, version),
        {
            "transactional_id": transactional_id,
            "acks": acks,
            "timeout": datetime.timedelta(milliseconds=1500),
            "topic_data": [
                {
                    "name": name,
                    "partition_data": [{"index": i, "records": r} for i, r in parts],
                }
                for name, parts in topics
            ],
        },
    )
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    return buffer.getvalue()


@pytest.mark.parametrize("version", range(3, 10))
@settings(max_examples=60)
@given(
    transactional_id=st.one_of(st.none(), st.text(max_size=10)),
    acks=st.sampled_from([-1, 0, 1, 7]),
    topics=topic_data,
)
def test_reads_what_kio_writes(
    version: int, transactional_id: str | None, acks: int, topics: list
) -> None:
    body = encode(version, transactional_id, acks, topics)
    frame = bytearray(b"\xff" * 3 + body)  # the body need not start the frame
    decoded = decode_produce_request(frame, 3, version)
    assert decoded.transactional_id == transactional_id
    assert decoded.acks == acks
    assert decoded.timeout_ms == 1500
    got = [
        (
            t.name,
            [(p.index, None if p.records is None else bytes(p.records)) for p in t.partition_data],
        )
        for t in decoded.topic_data
    ]
    assert got == [(name, list(parts)) for name, parts in topics]


def test_records_are_writable_views_into_the_frame() -> None:
    body = encode(9, None, -1, [("t", [(0, b"abc")])])
    frame = bytearray(body)
    records = decode_produce_request(frame, 0, 9).topic_data[0].partition_data[0].records
    assert records is not None and not records.readonly
    records[0:1] = b"X"
    assert b"Xbc" in frame


@pytest.mark.parametrize("version", [3, 8, 9])
@settings(max_examples=60)
@given(topics=topic_data.filter(bool), data=st.data())
def test_truncated_requests_are_refused(version: int, topics: list, data: st.DataObject) -> None:
    body = encode(version, "tx", 1, topics)
    cut = data.draw(st.integers(0, len(body) - 1))
    with pytest.raises(ProduceDecodeError):
        decode_produce_request(bytearray(body[:cut]), 0, version)


@pytest.mark.parametrize("version", [3, 9])
@settings(max_examples=200)
@given(junk=st.binary(max_size=80))
def test_junk_raises_only_decode_errors(version: int, junk: bytes) -> None:
    with contextlib.suppress(ProduceDecodeError):
        decode_produce_request(bytearray(junk), 0, version)
