"""The hand-written ShareFetchResponse v1 encoder is byte-identical to kio's."""

from __future__ import annotations

import datetime
import uuid

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode

from millpond.protocol.build import build
from millpond.protocol.codec import encode_response
from millpond.protocol.codec import response_type
from millpond.protocol.share_fetch_response import ShareFetchedPartition
from millpond.protocol.share_fetch_response import encode_share_fetch_response

codes = st.sampled_from([int(code) for code in ErrorCode])
messages = st.one_of(st.none(), st.text(max_size=20))
partitions = st.builds(
    ShareFetchedPartition,
    partition_index=st.integers(0, 2**31 - 1),
    error_code=codes,
    error_message=messages,
    acknowledge_error_code=codes,
    acknowledge_error_message=messages,
    leader_id=st.integers(-1, 10),
    leader_epoch=st.integers(-1, 10),
    records=st.lists(st.binary(max_size=30), max_size=3),
    acquired=st.lists(
        st.tuples(st.integers(0, 2**62), st.integers(0, 2**62), st.integers(0, 2**15 - 1)),
        max_size=3,
    ),
)
topics = st.lists(st.tuples(st.uuids(), st.lists(partitions, max_size=3)), max_size=3)


@settings(max_examples=150)
@given(
    correlation_id=st.integers(-(2**31), 2**31 - 1),
    error_code=codes,
    error_message=messages,
    lock_ms=st.integers(0, 2**31 - 1),
    topic_list=topics,
)
def test_matches_kio(
    correlation_id: int,
    error_code: int,
    error_message: str | None,
    lock_ms: int,
    topic_list: list[tuple[uuid.UUID, list[ShareFetchedPartition]]],
) -> None:
    ours = encode_share_fetch_response(
        correlation_id,
        error_code=error_code,
        error_message=error_message,
        acquisition_lock_timeout_ms=lock_ms,
        topics=topic_list,
    )
    body = build(
        response_type(78, 1),
        {
            "throttle_time": datetime.timedelta(0),
            "error_code": ErrorCode(error_code),
            "error_message": error_message,
            "acquisition_lock_timeout": datetime.timedelta(milliseconds=lock_ms),
            "responses": [
                {
                    "topic_id": topic_id,
                    "partitions": [
                        {
                            "partition_index": p.partition_index,
                            "error_code": ErrorCode(p.error_code),
                            "error_message": p.error_message,
                            "acknowledge_error_code": p.acknowledge_error_code,
                            "acknowledge_error_message": p.acknowledge_error_message,
                            "current_leader": {
                                "leader_id": p.leader_id,
                                "leader_epoch": p.leader_epoch,
                            },
                            "records": b"".join(p.records),
                            "acquired_records": [
                                {"first_offset": f, "last_offset": last, "delivery_count": c}
                                for f, last, c in p.acquired
                            ],
                        }
                        for p in parts
                    ],
                }
                for topic_id, parts in topic_list
            ],
            "node_endpoints": [],
        },
    )
    assert b"".join(bytes(piece) for piece in ours) == encode_response(correlation_id, body)
