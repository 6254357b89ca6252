from __future__ import annotations

import gzip
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cramjam
import pytest
from crc32c import crc32c
from hypothesis import given
from hypothesis import strategies as st

from millpond.protocol.record_codec import COMPRESSION_GZIP
from millpond.protocol.record_codec import COMPRESSION_LZ4
from millpond.protocol.record_codec import COMPRESSION_NONE
from millpond.protocol.record_codec import COMPRESSION_SNAPPY
from millpond.protocol.record_codec import COMPRESSION_ZSTD
from millpond.protocol.record_codec import MAX_RECORDS_AREA_BYTES
from millpond.protocol.record_codec import NewRecord
from millpond.protocol.record_codec import decompress
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


# --- the cap on what a records area may inflate to (compression bombs) ------------------------

MIB = 1024 * 1024
ZERO_MIB = bytes(MIB)

# Decompresses the file argv[2] with codec argv[1] in a fresh interpreter and prints how much
# its peak RSS grew meanwhile (ru_maxrss is in KiB on Linux), then the outcome.
_MEASURE = """
import resource
import sys

from millpond.protocol.record_codec import decompress
from millpond.protocol.records import InvalidRecordError

with open(sys.argv[2], "rb") as source:
    data = source.read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    outcome = f"decoded {len(decompress(int(sys.argv[1]), data))} bytes"
except InvalidRecordError as error:
    outcome = str(error)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown // 1024, outcome)
"""


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _snappy_raw_zeros(mib: int) -> bytes:
    # A raw block is its length (a varint) then literals and back-copies; a compressed MiB of
    # zeros, minus its 3-byte length, can be repeated: each copy only refers back to zeros.
    body = bytes(cramjam.snappy.compress_raw(ZERO_MIB))[3:]
    return _uvarint(mib * MIB) + body * mib


def _xerial_zeros(mib: int) -> bytes:
    block = bytes(cramjam.snappy.compress_raw(ZERO_MIB))
    return b"\x82SNAPPY\x00" + bytes(8) + (struct.pack(">i", len(block)) + block) * mib


def _gzip_zeros(mib: int) -> bytes:
    # One member, streamed: never more than a MiB of input at once.
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join(deflater.compress(ZERO_MIB) for _ in range(mib)) + deflater.flush()


def _zstd_zeros_streamed(mib: int) -> bytes:
    # A streamed frame does not declare its content size (frame header descriptor 0).
    compressor = cramjam.zstd.Compressor()
    for _ in range(mib):
        compressor.compress(ZERO_MIB)
    return bytes(compressor.finish())


BOMBS: dict[str, tuple[int, Callable[[], bytes]]] = {
    "gzip, one member": (COMPRESSION_GZIP, lambda: _gzip_zeros(256)),
    "gzip, many members": (COMPRESSION_GZIP, lambda: gzip.compress(ZERO_MIB) * 1024),
    "snappy raw": (COMPRESSION_SNAPPY, lambda: _snappy_raw_zeros(256)),
    "snappy xerial": (COMPRESSION_SNAPPY, lambda: _xerial_zeros(256)),
    "lz4, many frames": (COMPRESSION_LZ4, lambda: bytes(cramjam.lz4.compress(ZERO_MIB)) * 1024),
    # Each frame declares 1 MiB: only the sum of the frames says what the whole inflates to.
    "zstd, many frames": (COMPRESSION_ZSTD, lambda: bytes(cramjam.zstd.compress(ZERO_MIB)) * 1024),
    "zstd, no content size": (COMPRESSION_ZSTD, lambda: _zstd_zeros_streamed(1024)),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_a_bomb_is_refused_naming_the_cap_without_inflating_it(name: str, tmp_path: Path) -> None:
    # Inflated whole, each bomb takes 256 MiB or 1 GiB: a decoder that does not stop at the
    # cap grows past the 200 MB asserted here, or is killed.
    codec, build = BOMBS[name]
    bomb = tmp_path / "bomb"
    bomb.write_bytes(build())
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(codec), str(bomb)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    grown_mb, outcome = result.stdout.strip().split(" ", 1)
    assert outcome == "records area inflates past 64 MiB uncompressed (the per-batch cap)"
    assert int(grown_mb) < 200


def test_the_bombs_are_what_they_claim() -> None:
    # The bomb builders, at 2 MiB, inflate to exactly 2 MiB of zeros.
    for data, codec in (
        (_gzip_zeros(2), COMPRESSION_GZIP),
        (gzip.compress(ZERO_MIB) * 2, COMPRESSION_GZIP),
        (_snappy_raw_zeros(2), COMPRESSION_SNAPPY),
        (_xerial_zeros(2), COMPRESSION_SNAPPY),
        (bytes(cramjam.lz4.compress(ZERO_MIB)) * 2, COMPRESSION_LZ4),
        (bytes(cramjam.zstd.compress(ZERO_MIB)) * 2, COMPRESSION_ZSTD),
        (_zstd_zeros_streamed(2), COMPRESSION_ZSTD),
    ):
        assert decompress(codec, data) == bytes(2 * MIB)


PLAIN = bytes(range(256)) * 40  # 10,240 bytes that compress a little

COMPRESSED = {
    "gzip": (COMPRESSION_GZIP, gzip.compress(PLAIN[:4000]) + gzip.compress(PLAIN[4000:])),
    "snappy raw": (COMPRESSION_SNAPPY, bytes(cramjam.snappy.compress_raw(PLAIN))),
    "snappy xerial": (
        COMPRESSION_SNAPPY,
        b"\x82SNAPPY\x00"
        + bytes(8)
        + b"".join(
            struct.pack(">i", len(block)) + block
            for block in map(bytes, map(cramjam.snappy.compress_raw, (PLAIN[:6000], PLAIN[6000:])))
        ),
    ),
    "lz4": (COMPRESSION_LZ4, bytes(cramjam.lz4.compress(PLAIN))),
    "zstd": (COMPRESSION_ZSTD, bytes(cramjam.zstd.compress(PLAIN))),
}


@pytest.mark.parametrize("name", list(COMPRESSED))
def test_an_area_of_exactly_the_cap_decodes_and_one_byte_over_does_not(name: str) -> None:
    codec, data = COMPRESSED[name]
    assert decompress(codec, data, limit=len(PLAIN)) == PLAIN
    with pytest.raises(InvalidRecordError, match=r"inflates past 10239 bytes uncompressed"):
        decompress(codec, data, limit=len(PLAIN) - 1)


def test_an_area_just_under_64_mib_still_decodes() -> None:
    area = bytes(MAX_RECORDS_AREA_BYTES - 1)
    data = bytes(cramjam.zstd.compress(area))
    del area
    decoded = decompress(COMPRESSION_ZSTD, data)
    assert len(decoded) == MAX_RECORDS_AREA_BYTES - 1
    assert decoded.count(0) == len(decoded)


def test_decoding_after_a_bomb_and_in_other_threads_is_unaffected() -> None:
    # The output buffer is reused per thread and handed back after a bomb: what a later batch
    # returns is its own bytes only, in any thread.
    with pytest.raises(InvalidRecordError, match="64 MiB"):
        decompress(COMPRESSION_ZSTD, bytes(cramjam.zstd.compress(ZERO_MIB)) * 65)
    jobs = [COMPRESSED["lz4"], COMPRESSED["zstd"]] * 8
    assert [decompress(codec, data) for codec, data in jobs] == [PLAIN] * 16
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda job: decompress(*job), jobs)) == [PLAIN] * 16


def test_a_batch_that_inflates_past_the_cap_is_an_invalid_record() -> None:
    batch = encode_batch([NewRecord(b"k", b"v", 1)], compression=COMPRESSION_ZSTD)
    bomb = batch[:61] + bytes(cramjam.zstd.compress(ZERO_MIB)) * 65
    struct.pack_into(">i", bomb, 8, len(bomb) - 12)  # batchLength
    struct.pack_into(">I", bomb, 17, crc32c(bytes(bomb[21:])))
    [header] = iter_batches(bomb)
    with pytest.raises(InvalidRecordError, match="inflates past 64 MiB"):
        list(iter_records(bomb, header))


def test_a_truncated_gzip_member_is_invalid_as_before() -> None:
    data = gzip.compress(PLAIN)
    for broken in (data[:-3], data[: len(data) // 2], data + b"junk"):
        with pytest.raises(InvalidRecordError, match="cannot decompress records"):
            decompress(COMPRESSION_GZIP, broken)
    assert decompress(COMPRESSION_GZIP, data + b"\x00\x00" + data) == PLAIN * 2
