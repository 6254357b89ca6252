"""The hand-written FetchResponse encoder is byte-identical to kio's for every served version."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode
from kio.static.primitive import Records

from millpond.protocol.build import build
from millpond.protocol.codec import encode_response
from millpond.protocol.codec import response_type
from millpond.protocol.fetch_response import FetchedPartition
from millpond.protocol.fetch_response import encode_fetch_response

error_codes = st.sampled_from(
    [ErrorCode.none, ErrorCode.offset_out_of_range, ErrorCode.unknown_topic_or_partition]
)
partitions = st.builds(
    FetchedPartition,
    partition_index=st.integers(0, 2**31 - 1),
    error_code=error_codes,
    high_watermark=st.integers(-1, 2**63 - 1),
    last_stable_offset=st.integers(-1, 2**63 - 1),
    log_start_offset=st.integers(-1, 2**63 - 1),
    records=st.one_of(st.none(), st.binary(max_size=300)),
    preferred_read_replica=st.integers(-1, 5),
)
topics = st.lists(st.tuples(st.text(max_size=30), st.lists(partitions, max_size=4)), max_size=4)


@pytest.mark.parametrize("version", range(4, 13))
@settings(max_examples=40)
@given(
    correlation_id=st.integers(-(2**31), 2**31 - 1),
    topic_list=topics,
    session_id=st.integers(0, 2**31 - 1),
    error=error_codes,
)
def test_matches_kio(
    version: int,
    correlation_id: int,
    topic_list: list[tuple[str, list[FetchedPartition]]],
    session_id: int,
    error: ErrorCode,
) -> None:
    pieces = encode_fetch_response(
        version, correlation_id, error_code=error, session_id=session_id, topics=topic_list
    )
    ours = b"".join(bytes(piece) for piece in pieces)
    body = build(
        response_type(1, version),
        {
            "throttle_time": datetime.timedelta(0),
            "error_code": error,
            "session_id": session_id,
            "responses": [
                {
                    "topic": name,
                    "partitions": [
                        {
                            "partition_index": p.partition_index,
                            "error_code": ErrorCode(p.error_code),
                            "high_watermark": p.high_watermark,
                            "last_stable_offset": p.last_stable_offset,
                            "log_start_offset": p.log_start_offset,
                            "aborted_transactions": None,
                            "preferred_read_replica": p.preferred_read_replica,
                            "records": None if p.records is None else Records(p.records),
                        }
                        for p in parts
                    ],
                }
                for name, parts in topic_list
            ],
        },
    )
    assert ours == encode_response(correlation_id, body)


def test_records_are_passed_through_not_copied() -> None:
    records = memoryview(bytearray(b"x" * 1000))
    partition = FetchedPartition(0, 0, 10, 10, 0, records)
    pieces = encode_fetch_response(12, 1, error_code=0, session_id=0, topics=[("t", [partition])])
    assert any(piece is records for piece in pieces)
