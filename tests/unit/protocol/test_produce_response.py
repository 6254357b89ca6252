"""The hand-written ProduceResponse encoder is byte-identical to kio's for every served version."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode

from millpond.protocol.build import build
from millpond.protocol.codec import encode_response
from millpond.protocol.codec import response_type
from millpond.protocol.produce_response import ProducedPartition
from millpond.protocol.produce_response import encode_produce_response

partitions = st.builds(
    ProducedPartition,
    index=st.integers(0, 2**31 - 1),
    error_code=st.sampled_from(list(ErrorCode)),
    base_offset=st.integers(-1, 2**62),
    log_append_time=st.one_of(st.just(-1), st.integers(0, 2**42)),
    log_start_offset=st.integers(-1, 2**62),
    error_message=st.one_of(st.none(), st.text(max_size=40)),
)
topics = st.lists(st.tuples(st.text(max_size=30), st.lists(partitions, max_size=4)), max_size=4)


@pytest.mark.parametrize("version", range(3, 10))
@settings(max_examples=40)
@given(correlation_id=st.integers(-(2**31), 2**31 - 1), topic_list=topics)
def test_matches_kio(
    version: int, correlation_id: int, topic_list: list[tuple[str, list[ProducedPartition]]]
) -> None:
    ours = encode_produce_response(version, correlation_id, topic_list)
    body = build(
        response_type(0, version),
        {
            "throttle_time": datetime.timedelta(0),
            "responses": [
                {
                    "name": name,
                    "partition_responses": [
                        {
                            "index": p.index,
                            "error_code": ErrorCode(p.error_code),
                            "base_offset": p.base_offset,
                            "log_append_time": None
                            if p.log_append_time < 0
                            else datetime.datetime.fromtimestamp(
                                p.log_append_time / 1000, tz=datetime.UTC
                            ),
                            "log_start_offset": p.log_start_offset,
                            "record_errors": (),
                            "error_message": p.error_message,
                        }
                        for p in parts
                    ],
                }
                for name, parts in topic_list
            ],
        },
    )
    assert ours == encode_response(correlation_id, body)
