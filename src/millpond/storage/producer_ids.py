"""Producer ids for InitProducerId: handed out monotonically, never reused after a restart.

Ids are reserved in blocks of 1000, as Kafka's ProducerIdManager does. Before the first id of
a block is handed out, the block's end (exclusive) is written durably to a small file:

    <decimal block end>\\n

so after a crash or restart allocation resumes at the stored end, skipping at most the unused
rest of one block. The file is replaced atomically (temp file, fsync, rename, directory fsync).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NewType

from millpond.storage.files import atomic_write
from millpond.storage.files import read_file
from millpond.storage.fs import REAL_FILE_SYSTEM
from millpond.storage.fs import FileSystem

ProducerId = NewType("ProducerId", int)

BLOCK_SIZE = 1000
MAX_PRODUCER_ID = 0x7FFFFFFFFFFFFFFF  # int64 on the wire

_CONTENT = re.compile(r"(0|[1-9][0-9]{0,18})\n")


class ProducerIdFileError(RuntimeError):
    """The producer id file cannot be read, parsed or written."""


class ProducerIdsExhaustedError(RuntimeError):
    """Every int64 producer id has been handed out."""


class ProducerIdAllocator:
    """Hands out producer ids from `path`'s durable high-water mark.

    Reads the file at construction: a missing file means no id was ever handed out.
    Raises ProducerIdFileError if it exists but cannot be read or does not hold a block end.
    """

    def __init__(self, path: Path, *, fs: FileSystem = REAL_FILE_SYSTEM) -> None:
        self._path = path
        self._fs = fs
        self._next_id = self._read_block_end()
        self._block_end = self._next_id

    def allocate(self) -> ProducerId:
        """The next producer id, greater than every id handed out before from this file.

        Raises ProducerIdFileError if a new block cannot be reserved durably (the id is then
        not handed out), ProducerIdsExhaustedError past int64 max.
        """
        if self._next_id >= self._block_end:
            if self._next_id > MAX_PRODUCER_ID:
                raise ProducerIdsExhaustedError(f"no producer ids left (file {self._path})")
            block_end = min(self._next_id + BLOCK_SIZE, MAX_PRODUCER_ID + 1)
            self._write_block_end(block_end)
            self._block_end = block_end
        producer_id = self._next_id
        self._next_id += 1
        return ProducerId(producer_id)

    def _read_block_end(self) -> int:
        try:
            text = read_file(self._path, self._fs).decode("ascii", errors="replace")
        except FileNotFoundError:
            return 0
        except OSError as error:
            raise ProducerIdFileError(
                f"cannot read producer id file {self._path}: {error}"
            ) from error
        match = _CONTENT.fullmatch(text)
        if match is None or int(match.group(1)) > MAX_PRODUCER_ID + 1:
            raise ProducerIdFileError(
                f"producer id file {self._path} is corrupt: expected a block end and a newline,"
                f" found {text[:40]!r}"
            )
        return int(match.group(1))

    def _write_block_end(self, block_end: int) -> None:
        try:
            atomic_write(self._path, f"{block_end}\n".encode("ascii"), fs=self._fs)
        except OSError as error:
            raise ProducerIdFileError(
                f"cannot reserve producer ids in {self._path}: {error}"
            ) from error
