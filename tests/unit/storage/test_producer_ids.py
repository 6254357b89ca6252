from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from millpond.storage.producer_ids import BLOCK_SIZE
from millpond.storage.producer_ids import MAX_PRODUCER_ID
from millpond.storage.producer_ids import ProducerIdAllocator
from millpond.storage.producer_ids import ProducerIdFileError
from millpond.storage.producer_ids import ProducerIdsExhaustedError


def test_fresh_allocator_starts_at_zero_and_counts_up(tmp_path: Path) -> None:
    allocator = ProducerIdAllocator(tmp_path / "producer-ids")
    assert [allocator.allocate() for _ in range(5)] == [0, 1, 2, 3, 4]


def test_constructing_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "producer-ids"
    ProducerIdAllocator(path)
    assert not path.exists()


def test_block_is_reserved_before_its_first_id(tmp_path: Path) -> None:
    path = tmp_path / "producer-ids"
    allocator = ProducerIdAllocator(path)
    allocator.allocate()
    assert path.read_text() == f"{BLOCK_SIZE}\n"
    for _ in range(BLOCK_SIZE - 1):
        allocator.allocate()
    assert path.read_text() == f"{BLOCK_SIZE}\n"
    assert allocator.allocate() == BLOCK_SIZE
    assert path.read_text() == f"{2 * BLOCK_SIZE}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["producer-ids"]  # no temp file left


def test_reopen_continues_after_the_reserved_block(tmp_path: Path) -> None:
    path = tmp_path / "producer-ids"
    first = ProducerIdAllocator(path)
    handed_out = [first.allocate() for _ in range(3)]
    # A crash or a clean restart look the same: a new allocator on the same file.
    second = ProducerIdAllocator(path)
    after = second.allocate()
    assert after == BLOCK_SIZE
    assert after > max(handed_out)
    assert ProducerIdAllocator(path).allocate() == 2 * BLOCK_SIZE


@settings(max_examples=25, deadline=None)
@given(runs=st.lists(st.integers(0, 2_500), min_size=1, max_size=6))
def test_ids_never_repeat_across_restarts(
    tmp_path_factory: pytest.TempPathFactory, runs: list[int]
) -> None:
    path = tmp_path_factory.mktemp("ids") / "producer-ids"
    seen: list[int] = []
    for count in runs:
        allocator = ProducerIdAllocator(path)
        seen.extend(allocator.allocate() for _ in range(count))
    assert seen == sorted(set(seen))


@pytest.mark.parametrize(
    "content",
    [b"", b"abc\n", b"12", b"-5\n", b"012\n", b"1 2\n", b"\xff\xfe\n", b"99999999999999999999\n"],
    ids=["empty", "text", "no-newline", "negative", "leading-zero", "two", "binary", "too-big"],
)
def test_corrupt_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "producer-ids"
    path.write_bytes(content)
    with pytest.raises(ProducerIdFileError) as raised:
        ProducerIdAllocator(path)
    assert str(raised.value).startswith(f"producer id file {path} is corrupt")


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "producer-ids"
    path.mkdir()
    with pytest.raises(ProducerIdFileError) as raised:
        ProducerIdAllocator(path)
    assert str(raised.value).startswith(f"cannot read producer id file {path}: ")


def test_failed_reservation_hands_out_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing-directory" / "producer-ids"
    allocator = ProducerIdAllocator(path)
    with pytest.raises(ProducerIdFileError) as raised:
        allocator.allocate()
    assert str(raised.value).startswith(f"cannot reserve producer ids in {path}: ")
    path.parent.mkdir()
    assert allocator.allocate() == 0


def test_exhausted_ids(tmp_path: Path) -> None:
    path = tmp_path / "producer-ids"
    path.write_text(f"{MAX_PRODUCER_ID - 1}\n")
    allocator = ProducerIdAllocator(path)
    assert allocator.allocate() == MAX_PRODUCER_ID - 1
    assert allocator.allocate() == MAX_PRODUCER_ID
    with pytest.raises(ProducerIdsExhaustedError):
        allocator.allocate()
