from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millpond.protocol.record_codec import COMPRESSION_GZIP
from millpond.protocol.record_codec import COMPRESSION_LZ4
from millpond.protocol.record_codec import COMPRESSION_NONE
from millpond.protocol.record_codec import COMPRESSION_SNAPPY
from millpond.protocol.record_codec import COMPRESSION_ZSTD
from millpond.protocol.record_codec import NewRecord
from millpond.protocol.record_codec import encode_batch
from millpond.protocol.record_codec import iter_records
from millpond.protocol.records import InvalidRecordError
from millpond.protocol.records import iter_batches
from tests.support.batches import build_batch

CODECS = [COMPRESSION_NONE, COMPRESSION_GZIP, COMPRESSION_SNAPPY, COMPRESSION_LZ4, COMPRESSION_ZSTD]

records_strategy = st.lists(
    st.builds(
        NewRecord,
        key=st.one_of(st.none(), st.binary(max_size=20)),
        value=st.one_of(st.none(), st.binary(max_size=200)),
        timestamp=st.integers(0, 2**41),
        headers=st.lists(
            st.tuples(st.text(max_size=10), st.one_of(st.none(), st.binary(max_size=10))),
            max_size=3,
        ).map(tuple),
    ),
    min_size=1,
    max_size=20,
)


@pytest.mark.parametrize("codec", CODECS)
@given(records=records_strategy, base_offset=st.integers(0, 2**40))
def test_round_trip_every_codec(codec: int, records: list[NewRecord], base_offset: int) -> None:
    batch = encode_batch(records, base_offset=base_offset, compression=codec)
    [header] = iter_batches(batch)  # CRC and framing valid
    decoded = list(iter_records(batch, header))
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in decoded] == [
        (base_offset + n, r.timestamp, r.key, r.value, r.headers) for n, r in enumerate(records)
    ]


def test_reads_batches_built_independently() -> None:
    batch = build_batch([b"a", b"b"], keys=[b"k1", None], timestamps=[5, 9], base_offset=10)
    [header] = iter_batches(batch)
    decoded = list(iter_records(batch, header))
    assert [(r.offset, r.timestamp, r.key, r.value) for r in decoded] == [
        (10, 5, b"k1", b"a"),
        (11, 9, None, b"b"),
    ]


def test_xerial_framed_snappy_is_read() -> None:
    import struct

    import cramjam

    plain = encode_batch([NewRecord(b"k", b"v" * 50, 1)])
    [plain_header] = iter_batches(plain)
    area = bytes(plain[61:])
    block = bytes(cramjam.snappy.compress_raw(area))
    framed = b"\x82SNAPPY\x00" + b"\x00" * 8 + struct.pack(">i", len(block)) + block
    batch = encode_batch([NewRecord(b"k", b"v" * 50, 1)], compression=COMPRESSION_SNAPPY)
    rebuilt = bytearray(batch[:61]) + framed
    struct.pack_into(">i", rebuilt, 8, len(rebuilt) - 12)
    from crc32c import crc32c

    struct.pack_into(">I", rebuilt, 17, crc32c(bytes(rebuilt[21:])))
    [header] = iter_batches(rebuilt)
    assert [r.value for r in iter_records(rebuilt, header)] == [b"v" * 50]
    assert plain_header.records_count == 1


def test_garbage_compressed_area_is_invalid() -> None:
    batch = encode_batch([NewRecord(b"k", b"v", 1)], compression=COMPRESSION_ZSTD)
    batch[-3:] = b"xyz"
    import struct

    from crc32c import crc32c

    struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
    [header] = iter_batches(batch)
    with pytest.raises(InvalidRecordError):
        list(iter_records(batch, header))
