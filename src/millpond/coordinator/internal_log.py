"""Reading and writing the broker's own topics (`__consumer_offsets`, `__share_group_state`,
dead-letter topics): every record from the log start at start-up, and appends that return only
once fsynced."""

from __future__ import annotations

import logging
from collections.abc import Hashable
from collections.abc import Iterator
from collections.abc import Sequence

from millpond.broker.append_signal import AppendSignal
from millpond.broker.group_commit import GroupCommit
from millpond.protocol.record_codec import NewRecord
from millpond.protocol.record_codec import Record
from millpond.protocol.record_codec import encode_batch
from millpond.protocol.record_codec import iter_records
from millpond.protocol.records import InvalidRecordError
from millpond.protocol.records import iter_batches
from millpond.storage.log import Log

logger = logging.getLogger(__name__)

_READ_CHUNK = 1 << 20


def read_records(log: Log, name: str) -> Iterator[Record]:
    """Every record from the log start, in order; an undecodable batch is skipped with a
    warning naming `name` (a damaged record must not keep the broker from starting)."""
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset, _READ_CHUNK)
        if not data:
            return
        for header in iter_batches(data, verify_crc=False):
            try:
                yield from list(iter_records(data, header))
            except InvalidRecordError as error:
                logger.warning(
                    "skipping undecodable %s batch at %d: %s", name, header.base_offset, error
                )
            offset = header.next_offset


async def append_durably(
    log: Log,
    records: Sequence[NewRecord],
    group_commit: GroupCommit,
    appended: AppendSignal,
    key: Hashable,
    *,
    log_append_time: bool = False,
) -> None:
    """Append `records` as one batch, wake fetches waiting on `key`, and return once it is
    fsynced; raises StorageError or OSError on a storage failure."""
    group_commit.check_writable(log)
    buffer = encode_batch(records, log_append_time=log_append_time)
    log.append(buffer, list(iter_batches(buffer, verify_crc=False)))
    appended.notify(key)
    await group_commit.sync([log])
