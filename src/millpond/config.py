"""Broker and topic configuration, under Kafka's own names.

Broker keys come from `--config FILE` (Java properties: `key=value` lines, `#` comments) and
repeatable `--set key=value`. Topic keys are set by CreateTopics and IncrementalAlterConfigs;
a topic key that is not overridden takes its broker default (`retention.ms` from
`log.retention.ms`, and so on), which is also how DescribeConfigs reports its source.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from millpond.storage.cleaner import CleanerConfig
from millpond.storage.log import LogConfig


class ConfigError(ValueError):
    """A configuration key is unknown or its value is invalid; the message names it."""


def _parse_int(raw: str) -> int:
    return int(raw.strip())


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"true", "false"}:
        return value == "true"
    raise ValueError("expected true or false")


def _parse_str(raw: str) -> str:
    return raw.strip()


def _parse_float(raw: str) -> float:
    return float(raw.strip())


@dataclass(frozen=True, slots=True)
class ConfigKey:
    name: str
    parse: Callable[[str], Any]
    default: str
    doc: str
    check: Callable[[Any], str | None] = lambda _value: None
    # For a topic key: the broker key that supplies its default.
    broker_default: str | None = None
    config_type: int = 0  # DescribeConfigs ConfigType: 1 bool, 2 string, 3 int, 5 long, 7 list

    def parse_value(self, raw: str) -> Any:
        try:
            value = self.parse(raw)
        except ValueError as error:
            raise ConfigError(f"invalid value {raw!r} for {self.name}: {error}") from None
        problem = self.check(value)
        if problem is not None:
            raise ConfigError(f"invalid value {raw!r} for {self.name}: {problem}")
        return value


def _at_least(minimum: int) -> Callable[[Any], str | None]:
    return lambda value: None if value >= minimum else f"must be at least {minimum}"


def _between(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda value: None if low <= value <= high else f"must be between {low} and {high}"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}"


def _cleanup_policy(value: Any) -> str | None:
    parts = [part.strip() for part in str(value).split(",")]
    if parts and all(part in {"delete", "compact"} for part in parts):
        return None
    return "must be delete, compact or compact,delete"


def _listener(value: Any) -> str | None:
    try:
        parse_host_port(str(value))
    except ConfigError as error:
        return str(error)
    return None


_DAY_MS = 24 * 3600 * 1000
_INT = 3
_LONG = 5
_BOOL = 1
_STRING = 2
_DOUBLE = 6
_LIST = 7

BROKER_KEYS: dict[str, ConfigKey] = {
    key.name: key
    for key in (
        ConfigKey("node.id", _parse_int, "0", "This broker's id.", _at_least(0), config_type=_INT),
        ConfigKey(
            "num.partitions",
            _parse_int,
            "1",
            "Partitions of an auto-created topic.",
            _at_least(1),
            config_type=_INT,
        ),
        ConfigKey(
            "auto.create.topics.enable",
            _parse_bool,
            "true",
            "Create unknown topics on Metadata and Produce.",
            config_type=_BOOL,
        ),
        ConfigKey(
            "default.replication.factor",
            _parse_int,
            "1",
            "Accepted for compatibility; one broker keeps one replica.",
            lambda value: None if value == 1 else "must be 1 on a single broker",
            config_type=_INT,
        ),
        ConfigKey(
            "log.retention.ms",
            _parse_int,
            str(7 * _DAY_MS),
            "Default retention.ms: how long records are kept (-1 forever).",
            _at_least(-1),
            config_type=_LONG,
        ),
        ConfigKey(
            "log.retention.bytes",
            _parse_int,
            "-1",
            "Default retention.bytes per partition (-1 no limit).",
            _at_least(-1),
            config_type=_LONG,
        ),
        ConfigKey(
            "log.segment.bytes",
            _parse_int,
            str(1 << 30),
            "Default segment.bytes: roll a segment at this size.",
            _at_least(14),
            config_type=_INT,
        ),
        ConfigKey(
            "log.roll.ms",
            _parse_int,
            str(7 * _DAY_MS),
            "Default segment.ms: roll a segment at this age.",
            _at_least(1),
            config_type=_LONG,
        ),
        ConfigKey(
            "log.index.interval.bytes",
            _parse_int,
            "4096",
            "Bytes between offset index entries.",
            _at_least(0),
            config_type=_INT,
        ),
        ConfigKey(
            "log.retention.check.interval.ms",
            _parse_int,
            "300000",
            "How often retention runs.",
            _at_least(1),
            config_type=_LONG,
        ),
        ConfigKey(
            "log.flush.interval.ms",
            _parse_int,
            "1000",
            "Longest time an acks=0/1 write stays unsynced.",
            _at_least(1),
            config_type=_LONG,
        ),
        ConfigKey(
            "log.cleanup.policy",
            _parse_str,
            "delete",
            "Default cleanup.policy.",
            _cleanup_policy,
            config_type=_LIST,
        ),
        ConfigKey(
            "log.cleaner.backoff.ms",
            _parse_int,
            "15000",
            "How often the log cleaner looks for compacted logs to clean.",
            _at_least(0),
            config_type=_LONG,
        ),
        ConfigKey(
            "log.cleaner.delete.retention.ms",
            _parse_int,
            str(_DAY_MS),
            "Default delete.retention.ms: how long tombstones outlive their first clean.",
            _at_least(0),
            config_type=_LONG,
        ),
        ConfigKey(
            "log.cleaner.min.cleanable.ratio",
            _parse_float,
            "0.5",
            "Default min.cleanable.dirty.ratio.",
            _between(0, 1),
            config_type=_DOUBLE,
        ),
        ConfigKey(
            "log.cleaner.min.compaction.lag.ms",
            _parse_int,
            "0",
            "Default min.compaction.lag.ms.",
            _at_least(0),
            config_type=_LONG,
        ),
        ConfigKey(
            "log.message.timestamp.type",
            _parse_str,
            "CreateTime",
            "Default message.timestamp.type.",
            _one_of("CreateTime", "LogAppendTime"),
            config_type=_STRING,
        ),
        ConfigKey(
            "message.max.bytes",
            _parse_int,
            "1048588",
            "Default max.message.bytes: largest record batch accepted.",
            _at_least(0),
            config_type=_INT,
        ),
        ConfigKey(
            "socket.request.max.bytes",
            _parse_int,
            str(100 * 1024 * 1024),
            "Largest request accepted; a larger one closes the connection.",
            _at_least(1),
            config_type=_INT,
        ),
        ConfigKey(
            "producer.id.expiration.ms",
            _parse_int,
            str(_DAY_MS),
            "Forget an idle idempotent producer after this long.",
            _at_least(1),
            config_type=_INT,
        ),
        ConfigKey(
            "max.connections",
            _parse_int,
            str(2**31 - 1),
            "Connections the broker accepts in all; more are closed at once.",
            _at_least(1),
            config_type=_INT,
        ),
        ConfigKey(
            "max.connections.per.ip",
            _parse_int,
            str(2**31 - 1),
            "Connections the broker accepts from one IP address.",
            _at_least(1),
            config_type=_INT,
        ),
        ConfigKey(
            "connections.max.idle.ms",
            _parse_int,
            "600000",
            "Close a connection that has been silent this long.",
            _at_least(1),
            config_type=_LONG,
        ),
        ConfigKey(
            "group.initial.rebalance.delay.ms",
            _parse_int,
            "3000",
            "How long a new group waits for more members before its first rebalance.",
            _at_least(0),
            config_type=_INT,
        ),
        ConfigKey(
            "group.min.session.timeout.ms",
            _parse_int,
            "6000",
            "Smallest session timeout a member may ask for.",
            _at_least(1),
            config_type=_INT,
        ),
        ConfigKey(
            "group.max.session.timeout.ms",
            _parse_int,
            "1800000",
            "Largest session timeout a member may ask for.",
            _at_least(1),
            config_type=_INT,
        ),
        ConfigKey(
            "offset.metadata.max.bytes",
            _parse_int,
            "4096",
            "Largest metadata string stored with a committed offset.",
            _at_least(0),
            config_type=_INT,
        ),
        ConfigKey(
            "offsets.retention.minutes",
            _parse_int,
            "10080",
            "Keep an empty group's committed offsets this long.",
            _at_least(1),
            config_type=_INT,
        ),
        ConfigKey(
            "offsets.retention.check.interval.ms",
            _parse_int,
            "600000",
            "How often expired offsets are removed.",
            _at_least(1),
            config_type=_LONG,
        ),
        ConfigKey(
            "offsets.topic.num.partitions",
            _parse_int,
            "1",
            "Partitions of __consumer_offsets (fixed once created).",
            _at_least(1),
            config_type=_INT,
        ),
        ConfigKey(
            "group.share.record.lock.duration.ms",
            _parse_int,
            "30000",
            "How long a share-group member holds the records it acquired before they are "
            "offered again.",
            _between(1000, 3600000),
            config_type=_INT,
        ),
        ConfigKey(
            "group.share.delivery.count.limit",
            _parse_int,
            "5",
            "Deliveries of a record to a share group before it is dead-lettered and archived.",
            _between(2, 10),
            config_type=_INT,
        ),
        ConfigKey(
            "group.share.partition.max.record.locks",
            _parse_int,
            "2000",
            "Records of one partition a share group may have in flight at once.",
            _between(100, 10000),
            config_type=_INT,
        ),
        ConfigKey(
            "group.share.session.timeout.ms",
            _parse_int,
            "45000",
            "A share-group member not heard from this long is removed.",
            _at_least(1),
            config_type=_INT,
        ),
        ConfigKey(
            "group.share.heartbeat.interval.ms",
            _parse_int,
            "5000",
            "How often share-group members are asked to heartbeat.",
            _at_least(1),
            config_type=_INT,
        ),
        ConfigKey(
            "group.share.max.size",
            _parse_int,
            "200",
            "Most members one share group may have.",
            _at_least(1),
            config_type=_INT,
        ),
        ConfigKey(
            "group.share.max.share.sessions",
            _parse_int,
            "2000",
            "Most share sessions this broker keeps at once.",
            _at_least(1),
            config_type=_INT,
        ),
        ConfigKey(
            "millpond.delivery.delay.ms",
            _parse_int,
            "0",
            "Default millpond.delivery.delay.ms of a topic: share groups acquire a record only "
            "this long after its timestamp.",
            _at_least(0),
            config_type=_LONG,
        ),
        ConfigKey(
            "kafka.listen",
            _parse_str,
            "127.0.0.1:9092",
            "Address the Kafka listener binds.",
            _listener,
            config_type=_STRING,
        ),
        ConfigKey(
            "http.listen",
            _parse_str,
            "127.0.0.1:8080",
            "Address the HTTP listener (GET /health, GET /metrics) binds; empty turns it off.",
            lambda value: None if value == "" else _listener(value),
            config_type=_STRING,
        ),
        ConfigKey(
            "advertised.listener",
            _parse_str,
            "",
            "Address clients are told to connect to (default: the listen address).",
            lambda value: None if value == "" else _listener(value),
            config_type=_STRING,
        ),
    )
}

TOPIC_KEYS: dict[str, ConfigKey] = {
    key.name: key
    for key in (
        ConfigKey(
            "retention.ms",
            _parse_int,
            "",
            "How long records are kept (-1 forever).",
            _at_least(-1),
            "log.retention.ms",
            _LONG,
        ),
        ConfigKey(
            "retention.bytes",
            _parse_int,
            "",
            "Size kept per partition (-1 no limit).",
            _at_least(-1),
            "log.retention.bytes",
            _LONG,
        ),
        ConfigKey(
            "segment.bytes",
            _parse_int,
            "",
            "Roll a segment at this size.",
            _at_least(14),
            "log.segment.bytes",
            _INT,
        ),
        ConfigKey(
            "segment.ms",
            _parse_int,
            "",
            "Roll a segment at this age.",
            _at_least(1),
            "log.roll.ms",
            _LONG,
        ),
        ConfigKey(
            "max.message.bytes",
            _parse_int,
            "",
            "Largest record batch accepted.",
            _at_least(0),
            "message.max.bytes",
            _INT,
        ),
        ConfigKey(
            "message.timestamp.type",
            _parse_str,
            "",
            "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's.",
            _one_of("CreateTime", "LogAppendTime"),
            "log.message.timestamp.type",
            _STRING,
        ),
        ConfigKey(
            "cleanup.policy",
            _parse_str,
            "",
            "delete, compact or compact,delete.",
            _cleanup_policy,
            "log.cleanup.policy",
            _LIST,
        ),
        ConfigKey(
            "index.interval.bytes",
            _parse_int,
            "",
            "Bytes between offset index entries.",
            _at_least(0),
            "log.index.interval.bytes",
            _INT,
        ),
        ConfigKey(
            "delete.retention.ms",
            _parse_int,
            "",
            "How long a tombstone of a compacted topic is kept after its first clean.",
            _at_least(0),
            "log.cleaner.delete.retention.ms",
            _LONG,
        ),
        ConfigKey(
            "min.cleanable.dirty.ratio",
            _parse_float,
            "",
            "Clean a compacted log once dirty bytes reach this share of its inactive bytes.",
            _between(0, 1),
            "log.cleaner.min.cleanable.ratio",
            _DOUBLE,
        ),
        ConfigKey(
            "min.compaction.lag.ms",
            _parse_int,
            "",
            "Records younger than this are never compacted away.",
            _at_least(0),
            "log.cleaner.min.compaction.lag.ms",
            _LONG,
        ),
        ConfigKey(
            "millpond.delivery.delay.ms",
            _parse_int,
            "",
            "Share groups acquire a record only this long after its timestamp (consumer groups "
            "read it at once).",
            _at_least(0),
            "millpond.delivery.delay.ms",
            _LONG,
        ),
        ConfigKey(
            "confluent.key.schema.validation",
            _parse_bool,
            "false",
            "Refuse a batch unless every record's key is in the schema registry's wire format "
            "with a schema registered under the subject <topic>-key, and decodes with it.",
            config_type=_BOOL,
        ),
        ConfigKey(
            "confluent.value.schema.validation",
            _parse_bool,
            "false",
            "Refuse a batch unless every record's value is in the schema registry's wire format "
            "with a schema registered under the subject <topic>-value, and decodes with it.",
            config_type=_BOOL,
        ),
    )
}


def _auto_offset_reset(value: Any) -> str | None:
    text = str(value)
    if text in {"latest", "earliest"}:
        return None
    if text.startswith("by_duration:") and _ISO_DURATION.fullmatch(text[len("by_duration:") :]):
        return None
    return "must be latest, earliest or by_duration:<ISO-8601 duration, e.g. PT1H>"


_ISO_DURATION = re.compile(
    r"P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)


def iso_duration_ms(text: str) -> int:
    """PnDTnHnMnS as milliseconds (the form share.auto.offset.reset=by_duration takes)."""
    match = _ISO_DURATION.fullmatch(text)
    if match is None or text in {"P", "PT"}:
        raise ConfigError(f"invalid ISO-8601 duration {text!r}")
    days = int(match["days"] or 0)
    hours = int(match["hours"] or 0)
    minutes = int(match["minutes"] or 0)
    seconds = float(match["seconds"] or 0)
    return int((((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1000)


def _dead_letter_topic(value: Any) -> str | None:
    text = str(value)
    if text == "":
        return None  # dead-lettering off
    if len(text) > 249 or not re.fullmatch(r"[a-zA-Z0-9._-]+", text) or text in {".", ".."}:
        return "must be a legal topic name, or empty to turn dead-lettering off"
    if text.startswith("__"):
        return "must not be an internal topic"
    return None


# Group configs (IncrementalAlterConfigs / DescribeConfigs resource type GROUP), stored with the
# share group. A key with a broker_default falls back to that broker key.
GROUP_KEYS: dict[str, ConfigKey] = {
    key.name: key
    for key in (
        ConfigKey(
            "share.auto.offset.reset",
            _parse_str,
            "latest",
            "Where a share group starts on a partition it has never read.",
            _auto_offset_reset,
            config_type=_STRING,
        ),
        ConfigKey(
            "share.isolation.level",
            _parse_str,
            "read_uncommitted",
            "Accepted for compatibility: this broker has no transactions.",
            _one_of("read_uncommitted", "read_committed"),
            config_type=_STRING,
        ),
        ConfigKey(
            "share.record.lock.duration.ms",
            _parse_int,
            "",
            "How long a member holds the records it acquired.",
            _between(1000, 3600000),
            "group.share.record.lock.duration.ms",
            _INT,
        ),
        ConfigKey(
            "share.delivery.count.limit",
            _parse_int,
            "",
            "Deliveries of a record before it is dead-lettered and archived.",
            _between(2, 10),
            "group.share.delivery.count.limit",
            _INT,
        ),
        ConfigKey(
            "share.partition.max.record.locks",
            _parse_int,
            "",
            "Records of one partition the group may have in flight.",
            _between(100, 10000),
            "group.share.partition.max.record.locks",
            _INT,
        ),
        ConfigKey(
            "share.session.timeout.ms",
            _parse_int,
            "",
            "A member not heard from this long is removed.",
            _at_least(1),
            "group.share.session.timeout.ms",
            _INT,
        ),
        ConfigKey(
            "share.heartbeat.interval.ms",
            _parse_int,
            "",
            "How often members heartbeat.",
            _at_least(1),
            "group.share.heartbeat.interval.ms",
            _INT,
        ),
        ConfigKey(
            "errors.deadletterqueue.topic.name",
            _parse_str,
            "",
            "Where rejected and undeliverable records are copied (default dlq.<group>; empty "
            "turns dead-lettering off).",
            _dead_letter_topic,
            config_type=_STRING,
        ),
    )
}


def validate_group_configs(configs: Mapping[str, str | None]) -> dict[str, Any]:
    """Parse group config overrides; raises ConfigError on an unknown key or bad value."""
    parsed: dict[str, Any] = {}
    for name, raw in configs.items():
        key = GROUP_KEYS.get(name)
        if key is None:
            raise ConfigError(f"unknown group config {name!r}")
        if raw is None:
            raise ConfigError(f"null value for group config {name!r}")
        parsed[name] = key.parse_value(raw)
    return parsed


_HOST_PORT = re.compile(r"^(?:\[(?P<ipv6>[0-9a-fA-F:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d+)$")


def parse_host_port(value: str) -> tuple[str, int]:
    """Parse `HOST:PORT` (or `[IPv6]:PORT`); raises ConfigError naming the value."""
    match = _HOST_PORT.match(value.strip())
    if match is None:
        raise ConfigError(f"expected HOST:PORT, got {value!r}")
    port = int(match["port"])
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} out of range in {value!r}")
    host = match["ipv6"] or match["host"] or "0.0.0.0"
    return host, port


def read_properties(path: Path) -> dict[str, str]:
    """Read a Java-properties style file: `key=value` (or `key: value`) lines, `#`/`!` comments."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#!":
            continue
        match = re.match(r"^([^=:\s]+)\s*[=:]\s*(.*)$", stripped)
        if match is None:
            raise ConfigError(f"{path}:{number}: expected key=value, got {stripped!r}")
        values[match[1]] = match[2]
    return values


def parse_assignments(pairs: Iterable[str]) -> dict[str, str]:
    """Parse `--set key=value` arguments."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"expected key=value, got {pair!r}")
        values[key.strip()] = value.strip()
    return values


class BrokerConfig:
    """Validated broker configuration: every key of BROKER_KEYS with its value."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(BROKER_KEYS))
        if unknown:
            raise ConfigError(f"unknown config key {unknown[0]!r}")
        self.overrides = overrides
        self._values: dict[str, Any] = {
            name: key.parse_value(overrides.get(name, key.default))
            for name, key in BROKER_KEYS.items()
        }

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    @property
    def listen(self) -> tuple[str, int]:
        return parse_host_port(self["kafka.listen"])

    @property
    def http_listen(self) -> tuple[str, int] | None:
        value = self["http.listen"]
        return parse_host_port(value) if value else None

    @property
    def advertised(self) -> tuple[str, int]:
        value = self["advertised.listener"]
        return parse_host_port(value) if value else self.listen

    def topic_default(self, topic_key: str) -> Any:
        """A topic key's default: its broker key's value, else its own default."""
        key = TOPIC_KEYS[topic_key]
        if key.broker_default is None:
            return key.parse_value(key.default)
        return self._values[key.broker_default]


def validate_topic_configs(configs: Mapping[str, str | None]) -> dict[str, Any]:
    """Parse topic config overrides; raises ConfigError on an unknown key or bad value."""
    parsed: dict[str, Any] = {}
    for name, raw in configs.items():
        key = TOPIC_KEYS.get(name)
        if key is None:
            raise ConfigError(f"unknown topic config {name!r}")
        if raw is None:
            raise ConfigError(f"null value for topic config {name!r}")
        parsed[name] = key.parse_value(raw)
    return parsed


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """A topic's effective configuration: its overrides over the broker defaults."""

    retention_ms: int
    retention_bytes: int
    segment_bytes: int
    segment_ms: int
    max_message_bytes: int
    message_timestamp_type: str
    cleanup_policy: str
    index_interval_bytes: int
    delete_retention_ms: int
    min_cleanable_dirty_ratio: float
    min_compaction_lag_ms: int
    delivery_delay_ms: int
    key_schema_validation: bool
    value_schema_validation: bool

    @classmethod
    def resolve(cls, broker: BrokerConfig, overrides: Mapping[str, str]) -> TopicConfig:
        parsed = validate_topic_configs(overrides)

        def value(name: str) -> Any:
            return parsed[name] if name in parsed else broker.topic_default(name)

        return cls(
            retention_ms=value("retention.ms"),
            retention_bytes=value("retention.bytes"),
            segment_bytes=value("segment.bytes"),
            segment_ms=value("segment.ms"),
            max_message_bytes=value("max.message.bytes"),
            message_timestamp_type=value("message.timestamp.type"),
            cleanup_policy=value("cleanup.policy"),
            index_interval_bytes=value("index.interval.bytes"),
            delete_retention_ms=value("delete.retention.ms"),
            min_cleanable_dirty_ratio=value("min.cleanable.dirty.ratio"),
            min_compaction_lag_ms=value("min.compaction.lag.ms"),
            delivery_delay_ms=value("millpond.delivery.delay.ms"),
            key_schema_validation=value("confluent.key.schema.validation"),
            value_schema_validation=value("confluent.value.schema.validation"),
        )

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"

    @property
    def compacted(self) -> bool:
        """cleanup.policy includes compact (the log cleaner runs on the topic)."""
        return "compact" in self.cleanup_policy

    def cleaner_config(self) -> CleanerConfig:
        return CleanerConfig(
            delete_retention_ms=self.delete_retention_ms,
            min_compaction_lag_ms=self.min_compaction_lag_ms,
            min_cleanable_dirty_ratio=self.min_cleanable_dirty_ratio,
        )

    def log_config(self) -> LogConfig:
        return LogConfig(
            segment_bytes=self.segment_bytes,
            segment_ms=self.segment_ms,
            retention_ms=self.retention_ms if "delete" in self.cleanup_policy else -1,
            retention_bytes=self.retention_bytes if "delete" in self.cleanup_policy else -1,
            index_interval_bytes=self.index_interval_bytes,
        )
