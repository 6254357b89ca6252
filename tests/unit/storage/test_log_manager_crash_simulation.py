"""Crash simulation for the data directory (LogManager) on the simulated disk.

A seeded workload creates topics, appends to their partitions, acknowledges with a flush,
and restarts cleanly (shutdown leaves the clean-shutdown marker; startup trusts it) until the
disk loses power after a random number of operations. Then `startup` must succeed on what
survived, know every topic whose creation returned (topics.json is replaced atomically and
synced) with its partitions, and serve every acknowledged record. The per-log properties
(torn tails, indexes, producer state, compaction) are checked in test_crash_simulation.py.
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

from millpond.clock import FakeClock
from millpond.config import BrokerConfig
from millpond.protocol.record_codec import NewRecord
from millpond.protocol.record_codec import encode_batch
from millpond.protocol.record_codec import iter_records
from millpond.protocol.records import iter_batches
from millpond.storage.log_manager import LogManager
from tests.support.simulated_disk import SimulatedCrash
from tests.support.simulated_disk import SimulatedFileSystem

T0 = 1_700_000_000_000
DATA_DIR = Path("/data")
SEEDS = int(os.environ.get("MILLPOND_CRASH_SEEDS", "300")) // 3


class DataDirWorkload:
    def __init__(self, seed: int, fs: SimulatedFileSystem) -> None:
        self.rng = random.Random(seed)
        self.fs = fs
        self.clock = FakeClock(wall_ms=T0)
        self.config = BrokerConfig({"log.segment.bytes": str(self.rng.choice((300, 800)))})
        self.topics: dict[str, int] = {}  # created: name -> partitions
        self.acked: dict[tuple[str, int], list[bytes]] = {}  # acknowledged values
        self.appended: dict[tuple[str, int], list[bytes]] = {}
        self.manager = LogManager(DATA_DIR, self.config, self.clock, fs=fs)

    def run(self, steps: int) -> None:
        self.manager.startup()
        for step in range(steps):
            roll = self.rng.random()
            if not self.topics or roll < 0.1:
                name = f"topic-{len(self.topics)}"
                partitions = self.rng.randint(1, 2)
                self.manager.create_topic(name, partitions, {})
                self.topics[name] = partitions
            elif roll < 0.6:
                self._append(step)
            elif roll < 0.85:
                self._flush()
            else:
                self.manager.shutdown()
                for key, values in self.appended.items():
                    self.acked[key] = list(values)
                self.manager = LogManager(DATA_DIR, self.config, self.clock, fs=self.fs)
                self.manager.startup()

    def _append(self, step: int) -> None:
        name = self.rng.choice(sorted(self.topics))
        index = self.rng.randrange(self.topics[name])
        partition = self.manager.partition(name, index)
        assert partition is not None
        value = f"{name}/{index}/{step}".encode() * self.rng.randint(1, 20)
        batch = encode_batch([NewRecord(b"key", value, self.clock.wall_ms())])
        partition.log.append(batch, list(iter_batches(batch)))
        self.appended.setdefault((name, index), []).append(value)

    def _flush(self) -> None:
        for name, partitions in self.topics.items():
            for index in range(partitions):
                partition = self.manager.partition(name, index)
                assert partition is not None
                partition.log.flush()
                self.acked[name, index] = list(self.appended.get((name, index), []))


def _values(manager: LogManager, name: str, index: int) -> list[bytes]:
    partition = manager.partition(name, index)
    assert partition is not None, f"{name}-{index} missing"
    log = partition.log
    values: list[bytes] = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset, 1 << 20)
        for header in iter_batches(data):
            values.extend(record.value or b"" for record in iter_records(data, header))
            offset = header.next_offset
    return values


def run_case(seed: int) -> None:
    steps = random.Random(seed).randint(5, 40)
    reference = DataDirWorkload(seed, SimulatedFileSystem())
    reference.run(steps)
    chooser = random.Random(seed * 7919 + 3)
    crash_at = chooser.randint(0, reference.fs.operations)

    fs = SimulatedFileSystem()
    workload = DataDirWorkload(seed, fs)
    fs.crash_after(crash_at)
    with contextlib.suppress(SimulatedCrash):
        workload.run(steps)
    fs.crash(chooser)

    context = f"seed {seed}, crash after operation {crash_at} of {reference.fs.operations}"
    manager = LogManager(DATA_DIR, workload.config, FakeClock(wall_ms=T0), fs=fs)
    try:
        manager.startup()
        for name, partitions in workload.topics.items():
            assert name in manager.topics, f"topic {name} lost"
            assert len(manager.topics[name].partitions) == partitions
            for index in range(partitions):
                acked = workload.acked.get((name, index), [])
                values = _values(manager, name, index)
                assert values[: len(acked)] == acked, f"{name}-{index} lost acknowledged records"
                appended = workload.appended.get((name, index), [])
                assert values == appended[: len(values)], f"{name}-{index} is not a prefix"
        manager.shutdown()
    except Exception as error:
        raise AssertionError(f"{context}: {error!r}") from error


def test_data_directory_survives_random_crashes() -> None:
    failures = []
    for seed in range(SEEDS):
        try:
            run_case(seed)
        except AssertionError as error:
            failures.append(str(error))
    assert not failures, f"{len(failures)} failing seeds:\n" + "\n".join(failures[:10])
