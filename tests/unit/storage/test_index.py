from __future__ import annotations

from pathlib import Path

import pytest

from millpond.storage.index import OffsetIndex
from millpond.storage.index import TimeIndex


def test_offset_index_lookup_and_reload(tmp_path: Path) -> None:
    path = tmp_path / "00000000000000000100.index"
    index = OffsetIndex(path, 100)
    assert index.created
    assert index.lookup(150) == (100, 0)
    for step in range(1, 6):
        index.append(100 + step * 10, step * 1000)
    assert index.lookup(99) == (100, 0)
    assert index.lookup(110) == (110, 1000)
    assert index.lookup(119) == (110, 1000)
    assert index.lookup(10_000) == (150, 5000)
    assert index.position_at_or_below(2500) == 2000
    assert index.position_at_or_below(999) == 0
    assert path.stat().st_size == 0  # entries wait in memory until written out
    index.write_pending()
    assert path.stat().st_size == 5 * 8

    reopened = OffsetIndex(path, 100)
    assert not reopened.created
    assert not reopened.corrupt
    assert reopened.last_entry == (150, 5000)
    assert reopened.lookup(135) == (130, 3000)
    reopened.reset()
    assert len(reopened) == 0
    assert path.stat().st_size == 0


def test_offset_index_refuses_backward_entries(tmp_path: Path) -> None:
    index = OffsetIndex(tmp_path / "x.index", 0)
    index.append(10, 100)
    with pytest.raises(ValueError, match="forward"):
        index.append(10, 200)
    with pytest.raises(ValueError, match="forward"):
        index.append(20, 100)
    with pytest.raises(ValueError, match="fit"):
        index.append(-1, 300)


@pytest.mark.parametrize(
    "content",
    [b"\x00" * 7, b"\x00\x00\x00\x02\x00\x00\x00\x10" + b"\x00\x00\x00\x01\x00\x00\x00\x20"],
)
def test_offset_index_flags_corrupt_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.index"
    path.write_bytes(content)
    index = OffsetIndex(path, 0)
    assert index.corrupt
    assert len(index) == 0


def test_time_index_appends_only_growing_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "00000000000000000000.timeindex"
    index = TimeIndex(path, 0)
    assert index.lookup(5) == 0
    index.maybe_append(1000, 0)
    index.maybe_append(1000, 5)  # not larger: ignored
    index.maybe_append(900, 6)
    index.maybe_append(2000, 7)
    assert len(index) == 2
    assert index.lookup(999) == 0
    assert index.lookup(1500) == 0
    assert index.lookup(2000) == 7
    index.write_pending()
    reopened = TimeIndex(path, 0)
    assert reopened.last_entry == (2000, 7)


def test_time_index_flags_corrupt_files(tmp_path: Path) -> None:
    path = tmp_path / "x.timeindex"
    path.write_bytes(b"\x01" * 13)
    index = TimeIndex(path, 0)
    assert index.corrupt
