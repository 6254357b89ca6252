"""The data directory: which topics exist, where their partitions live, how the broker stopped.

    <data-dir>/
      meta.properties             version=1, cluster.id=…, node.id=…   (written once)
      topics.json                 {"topics": [{"name", "topic_id", "partitions", "configs"}]}
      producer-ids                the producer id block reserved so far (ProducerIdAllocator)
      .millpond_cleanshutdown     present only between a clean stop and the next start
      .lock                       flock()ed by the running broker: one broker per data dir
      <topic>-<partition>/        one Log (segments, indexes, producer snapshots) each

Kafka's layout, minus ZooKeeper/KRaft: topic metadata is a small JSON document rewritten
atomically on every change. A topic is written to topics.json before its directories exist and
removed from it before they are deleted, so a crash between the two leaves only stray
directories, which are cleared when a topic of that name is created again.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from millpond.clock import Clock
from millpond.config import BrokerConfig
from millpond.config import TopicConfig
from millpond.storage.files import atomic_write
from millpond.storage.files import read_file
from millpond.storage.fs import REAL_FILE_SYSTEM
from millpond.storage.fs import FileSystem
from millpond.storage.fs import RealFileSystem
from millpond.storage.log import Log
from millpond.storage.producer_state import ProducerStateManager

logger = logging.getLogger(__name__)

CLEAN_SHUTDOWN_MARKER = ".millpond_cleanshutdown"
MAX_TOPIC_NAME_LENGTH = 249
_LEGAL_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")


class TopicError(Exception):
    """A topic operation was refused; `code` is the Kafka error code name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def topic_name_problem(name: str | None) -> str | None:
    """Why `name` is not a legal Kafka topic name, or None if it is."""
    if not name:
        return "topic name is empty"
    if name in {".", ".."}:
        return f"topic name {name!r} is not allowed"
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        return f"topic name is longer than {MAX_TOPIC_NAME_LENGTH} characters"
    if not _LEGAL_TOPIC_NAME.match(name):
        return f"topic name {name!r} has characters other than ASCII letters, digits, '.', '_', '-'"
    return None


SCHEMAS_TOPIC = "_schemas"  # the schema registry's compacted topic


@dataclass
class Partition:
    topic: Topic
    index: int
    log: Log
    producer_state: ProducerStateManager

    @property
    def name(self) -> str:
        return f"{self.topic.name}-{self.index}"


@dataclass
class Topic:
    name: str
    topic_id: uuid.UUID
    configs: dict[str, str]
    config: TopicConfig
    partitions: list[Partition] = field(default_factory=list)

    @property
    def internal(self) -> bool:
        """The broker's own topics: clients may read them but not write or delete them (the
        registry's `_schemas` too: a record written around the registry would not be seen
        until the next start)."""
        return self.name.startswith("__") or self.name == SCHEMAS_TOPIC


@dataclass(frozen=True, slots=True)
class StartupReport:
    partitions: int
    clean_shutdown: bool
    seconds: float
    truncated_bytes: int


LOCK_FILE = ".lock"


class DataDirInUseError(OSError):
    """Another broker holds the data directory's lock."""


class LogManager:
    """Owns every partition log under one data directory."""

    def __init__(
        self,
        data_dir: Path,
        broker_config: BrokerConfig,
        clock: Clock,
        *,
        fs: FileSystem = REAL_FILE_SYSTEM,
    ) -> None:
        """`fs` carries every file operation of the data directory and its logs."""
        self.data_dir = data_dir
        self.fs = fs
        self.broker_config = broker_config
        self.clock = clock
        self.topics: dict[str, Topic] = {}
        self.topics_by_id: dict[uuid.UUID, Topic] = {}
        self.cluster_id = ""
        self.node_id = 0
        self._clean_shutdown = False
        # Names of topics whose partitions are being opened (see reserve_topic).
        self._reserved: set[str] = set()
        self._lock_fd: int | None = None
        self._open_failures: dict[str, OSError] = {}

    # --- start and stop -------------------------------------------------------------------

    def startup(self) -> StartupReport:
        """Open the data directory, recovering every partition if the last stop was unclean.

        Raises OSError (unreadable or unwritable data dir) and ValueError (damaged metadata).
        """
        started = time.monotonic()
        self.fs.mkdir(self.data_dir)
        if isinstance(self.fs, RealFileSystem) and not os.access(
            self.data_dir, os.R_OK | os.W_OK | os.X_OK
        ):
            raise PermissionError(f"data dir {self.data_dir} is not readable and writable")
        self._lock_data_dir()
        self._load_meta_properties()
        marker = self.data_dir / CLEAN_SHUTDOWN_MARKER
        self._clean_shutdown = self.fs.exists(marker)
        truncated = 0
        count = 0
        for entry in self._read_topics_file():
            topic = self._topic_from_entry(entry)
            self._register(topic)
            for index in range(int(entry["partitions"])):
                partition = self._open_partition(topic, index, clean_shutdown=self._clean_shutdown)
                truncated += partition.log.recovery_truncated_bytes
                count += 1
        # The marker goes only once every log is open: a crash during recovery recovers again.
        if self._clean_shutdown:
            self.fs.unlink(marker)
            self.fs.fsync_directory(self.data_dir)
        return StartupReport(count, self._clean_shutdown, time.monotonic() - started, truncated)

    def shutdown(self) -> None:
        """Flush and close every log, snapshot producer state, and leave the clean marker."""
        for topic in self.topics.values():
            for partition in topic.partitions:
                partition.log.close()
                if partition.log.log_end_offset:  # an empty log has no producers to replay
                    partition.producer_state.take_snapshot(partition.log.log_end_offset, sync=True)
        self._write_topics_file()
        self.fs.close(
            self.fs.open(self.data_dir / CLEAN_SHUTDOWN_MARKER, os.O_WRONLY | os.O_CREAT, 0o666)
        )
        self.fs.fsync_directory(self.data_dir)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def _lock_data_dir(self) -> None:
        """Hold an exclusive lock on `<data dir>/.lock` while running, as Kafka does: two
        brokers on one data dir would interleave their appends and corrupt every log."""
        if not isinstance(self.fs, RealFileSystem):
            return  # a simulated disk belongs to one test
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirInUseError(
                f"data dir {self.data_dir} is in use by another millpond process"
            ) from None
        self._lock_fd = fd

    # --- topics -----------------------------------------------------------------------------

    def partition(self, topic: str, index: int) -> Partition | None:
        found = self.topics.get(topic)
        if found is None or not 0 <= index < len(found.partitions):
            return None
        return found.partitions[index]

    def check_new_topic(
        self, name: str | None, partitions: int, replication_factor: int, configs: dict[str, str]
    ) -> TopicConfig:
        """Validate a CreateTopics entry without creating anything; raises TopicError."""
        problem = topic_name_problem(name)
        if problem is not None:
            raise TopicError("invalid_topic_exception", problem)
        assert name is not None
        if name in self.topics:
            raise TopicError("topic_already_exists", f"topic {name!r} already exists")
        if partitions == -1:
            partitions = self.broker_config["num.partitions"]
        if partitions < 1:
            raise TopicError(
                "invalid_partitions", f"number of partitions must be at least 1, got {partitions}"
            )
        if replication_factor not in (-1, 1):
            raise TopicError(
                "invalid_replication_factor",
                f"replication factor {replication_factor} is larger than the 1 available broker",
            )
        try:
            return TopicConfig.resolve(self.broker_config, configs)
        except ValueError as error:
            raise TopicError("invalid_config", str(error)) from None

    def create_topic(self, name: str, partitions: int, configs: dict[str, str]) -> Topic:
        """Create a topic (after check_new_topic) and its partition logs."""
        topic, count = self.reserve_topic(name, partitions, configs)
        try:
            self.open_new_partitions(topic, count)
        finally:
            self.finish_topic(topic, count)
        return topic

    def reserve_topic(
        self, name: str, partitions: int, configs: dict[str, str]
    ) -> tuple[Topic, int]:
        """Validate a new topic and hold its name: (the topic, its partition count). Then
        `open_new_partitions` (which may run in a worker thread: it touches only the new topic
        and its directories) and `finish_topic`, always, on the owning thread."""
        config = self.check_new_topic(name, partitions, 1, configs)
        if name in self._reserved:
            raise TopicError("topic_already_exists", f"topic {name!r} is being created")
        if partitions == -1:
            partitions = self.broker_config["num.partitions"]
        topic = Topic(name, uuid.uuid4(), dict(configs), config)
        # The topic is on record before its directories exist: after a crash, start-up opens
        # (or creates) its partitions, and never meets a directory nobody owns.
        try:
            self._write_topics_file_with_counts({name: partitions}, also=topic)
        except OSError as error:
            raise TopicError(
                "kafka_storage_error", f"cannot create topic {name!r}: {error}"
            ) from None
        self._reserved.add(name)
        return topic, partitions

    def open_new_partitions(self, topic: Topic, count: int) -> None:
        """Open `count` new, empty partitions of a reserved topic (removing stale directories
        left by an earlier crash); raises OSError (out of file descriptors or disk), which
        `finish_topic` then reports."""
        try:
            for index in range(len(topic.partitions), count):
                stale = self._partition_dir(topic.name, index)
                if self.fs.exists(stale):
                    self.fs.rmtree(stale)
                self._open_partition(topic, index, clean_shutdown=True)
        except OSError as error:
            self._open_failures[topic.name] = error
            raise

    def finish_topic(self, topic: Topic, count: int) -> None:
        """Make a reserved topic visible once all its partitions are open, or, if they are
        not, remove what was made and raise TopicError."""
        self._reserved.discard(topic.name)
        failure = self._open_failures.pop(topic.name, None)
        try:
            if len(topic.partitions) != count:
                opened = f"{len(topic.partitions)} of {count} partitions opened"
                raise OSError(f"{opened}: {failure}" if failure else opened)
            self._register(topic)
            self._write_topics_file()
        except OSError as error:
            # Out of file descriptors or disk: undo, so no half-made topic is left behind.
            self.topics.pop(topic.name, None)
            self.topics_by_id.pop(topic.topic_id, None)
            self._discard_partitions(topic, 0, count)
            with contextlib.suppress(OSError):
                self._write_topics_file()
            logger.error("cannot create topic %s: %s", topic.name, error)
            raise TopicError(
                "kafka_storage_error", f"cannot create topic {topic.name!r}: {error}"
            ) from None
        logger.info("created topic %s with %d partition(s)", topic.name, count)

    def delete_topic(self, name: str) -> Topic:
        existing = self.topics.get(name)
        if existing is not None and existing.internal:
            raise TopicError("invalid_topic_exception", f"{name} is internal and cannot be deleted")
        topic = self.topics.pop(name, None)
        if topic is None:
            raise TopicError("unknown_topic_or_partition", f"topic {name!r} does not exist")
        del self.topics_by_id[topic.topic_id]
        self._write_topics_file()
        for partition in topic.partitions:
            partition.log.delete()
        logger.info("deleted topic %s", name)
        return topic

    def create_partitions(self, name: str, total: int, *, validate_only: bool = False) -> None:
        topic = self.topics.get(name)
        if topic is None:
            raise TopicError("unknown_topic_or_partition", f"topic {name!r} does not exist")
        if topic.internal:
            raise TopicError(
                "invalid_topic_exception", f"{name} is internal: its partitions are fixed"
            )
        current = len(topic.partitions)
        if total <= current:
            raise TopicError(
                "invalid_partitions",
                f"topic {name!r} has {current} partitions; the new count must be larger,"
                f" got {total}",
            )
        if validate_only:
            return
        try:
            self._write_topics_file_with_counts({name: total})
            self._add_partitions(topic, total)
        except OSError as error:
            self._discard_partitions(topic, current, total)
            self._write_topics_file()
            raise TopicError(
                "kafka_storage_error", f"cannot add partitions to {name!r}: {error}"
            ) from None

    def alter_topic_configs(
        self, name: str, configs: dict[str, str], *, validate_only: bool
    ) -> None:
        """Replace a topic's overrides (already merged by the caller); raises TopicError."""
        topic = self.topics.get(name)
        if topic is None:
            raise TopicError("unknown_topic_or_partition", f"topic {name!r} does not exist")
        if topic.internal:
            # Their configs (compaction above all) are what keeps the broker's state.
            raise TopicError("invalid_config", f"{name} is internal: its configs are fixed")
        try:
            config = TopicConfig.resolve(self.broker_config, configs)
        except ValueError as error:
            raise TopicError("invalid_config", str(error)) from None
        if validate_only:
            return
        topic.configs = dict(configs)
        topic.config = config
        for partition in topic.partitions:
            partition.log.config = config.log_config()
        self._write_topics_file()

    # --- internals --------------------------------------------------------------------------

    def _add_partitions(self, topic: Topic, total: int) -> None:
        """Open new, empty partitions until `topic` has `total`, then record the count."""
        for index in range(len(topic.partitions), total):
            stale = self._partition_dir(topic.name, index)
            if self.fs.exists(stale):
                self.fs.rmtree(stale)
            self._open_partition(topic, index, clean_shutdown=True)
        self._write_topics_file()

    def _discard_partitions(self, topic: Topic, first: int, end: int) -> None:
        """Undo a failed _add_partitions: close what was opened, then remove every directory
        in [first, end), including one whose open failed half-way."""
        for partition in topic.partitions[first:]:
            partition.log.close_without_flush()
        del topic.partitions[first:]
        for index in range(first, end):
            with contextlib.suppress(OSError):
                self.fs.rmtree(self._partition_dir(topic.name, index))

    def _partition_dir(self, topic: str, index: int) -> Path:
        return self.data_dir / f"{topic}-{index}"

    def _open_partition(self, topic: Topic, index: int, *, clean_shutdown: bool) -> Partition:
        directory = self._partition_dir(topic.name, index)
        log = Log.open(
            directory,
            topic.config.log_config(),
            self.clock,
            clean_shutdown=clean_shutdown,
            fs=self.fs,
        )
        producer_state = ProducerStateManager(
            directory,
            self.clock,
            producer_id_expiration_ms=self.broker_config["producer.id.expiration.ms"],
            fs=self.fs,
        )
        producer_state.load(log.log_start_offset, log.log_end_offset, log.batches)
        partition = Partition(topic, index, log, producer_state)
        topic.partitions.append(partition)
        return partition

    def _register(self, topic: Topic) -> None:
        self.topics[topic.name] = topic
        self.topics_by_id[topic.topic_id] = topic

    def _load_meta_properties(self) -> None:
        path = self.data_dir / "meta.properties"
        if self.fs.exists(path):
            values = dict(
                line.split("=", 1)
                for line in read_file(path, self.fs).decode().splitlines()
                if "=" in line and not line.startswith("#")
            )
            try:
                self.cluster_id = values["cluster.id"]
                self.node_id = int(values["node.id"])
            except (KeyError, ValueError) as error:
                raise ValueError(f"{path} is damaged: {error}") from None
            configured = self.broker_config["node.id"]
            if "node.id" in self.broker_config.overrides and configured != self.node_id:
                raise ValueError(
                    f"node.id={configured} does not match node.id={self.node_id} in {path}"
                )
            return
        # Kafka's cluster ids are 16 random bytes in URL-safe base64 without padding.
        self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        self.node_id = self.broker_config["node.id"]
        text = f"version=1\ncluster.id={self.cluster_id}\nnode.id={self.node_id}\n"
        atomic_write(path, text.encode(), fs=self.fs)

    def _read_topics_file(self) -> list[dict[str, Any]]:
        path = self.data_dir / "topics.json"
        if not self.fs.exists(path):
            return []
        try:
            document = json.loads(read_file(path, self.fs))
            topics = document["topics"]
            assert isinstance(topics, list)
            return topics
        except (ValueError, KeyError, AssertionError) as error:
            raise ValueError(f"{path} is damaged: {error}") from None

    def _topic_from_entry(self, entry: dict[str, Any]) -> Topic:
        configs = {str(key): str(value) for key, value in entry.get("configs", {}).items()}
        config = TopicConfig.resolve(self.broker_config, configs)
        return Topic(entry["name"], uuid.UUID(entry["topic_id"]), configs, config)

    def _write_topics_file(self) -> None:
        self._write_topics_file_with_counts({})

    def _write_topics_file_with_counts(
        self, counts: dict[str, int], also: Topic | None = None
    ) -> None:
        topics = [*self.topics.values(), *([also] if also is not None else [])]
        document = {
            "topics": [
                {
                    "name": topic.name,
                    "topic_id": str(topic.topic_id),
                    "partitions": counts.get(topic.name, len(topic.partitions)),
                    "configs": topic.configs,
                }
                for topic in topics
            ]
        }
        atomic_write(
            self.data_dir / "topics.json", json.dumps(document, indent=1).encode(), fs=self.fs
        )
