"""Kafka clients for the operator commands: shared config, short timeouts, error translation.

The commands speak the Kafka protocol through confluent-kafka (librdkafka), so they work
against any Kafka-compatible cluster, not only Millpond. librdkafka retries forever by default;
an operator command should instead fail within about ten seconds with one line naming the
problem, so every client here gets short connect and request timeouts, librdkafka's own log
lines are silenced, and its asynchronous errors are collected to explain a failure.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from types import TracebackType
from typing import Annotated
from typing import Any
from typing import ParamSpec
from typing import TypeVar

import typer
from confluent_kafka import Consumer
from confluent_kafka import KafkaError
from confluent_kafka import KafkaException
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

# confluent-kafka 2.16 re-exports these without __all__, which mypy --strict does not
# count as an export; this is still their documented import path.
from confluent_kafka.admin import ClusterMetadata  # type: ignore[attr-defined]
from confluent_kafka.admin import TopicMetadata  # type: ignore[attr-defined]

from millpond.cli.errors import RUNTIME_ERROR
from millpond.cli.errors import CliError
from millpond.cli.errors import UsageError
from millpond.cli.errors import fail
from millpond.config import ConfigError
from millpond.config import parse_assignments

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
TIMEOUT_S = 10.0
# A client id the commands share, so broker logs and group listings show who asked.
CLIENT_ID = "millpond-cli"
# librdkafka's consumer needs a group.id even for assign(); this one never joins or commits.
ASSIGN_ONLY_GROUP = "millpond-cli-reader"

_HOST_PORT = re.compile(r"\[?[^\s\[\]]+\]?:(?P<port>\d+)")


def check_bootstrap(value: str) -> str:
    """Typer callback: HOST:PORT[,HOST:PORT...] or a usage error naming the bad entry."""
    for entry in value.split(","):
        match = _HOST_PORT.fullmatch(entry.strip())
        if match is None or not 0 < int(match["port"]) < 65536:
            raise typer.BadParameter(f"expected HOST:PORT, got {entry.strip()!r}")
    return value


BootstrapServer = Annotated[
    str,
    typer.Option(
        "--bootstrap-server",
        envvar="MILLPOND_BOOTSTRAP_SERVER",
        metavar="HOST:PORT",
        callback=check_bootstrap,
        help="A broker of the cluster (Millpond or any Kafka-compatible one).",
    ),
]

P = ParamSpec("P")
R = TypeVar("R")


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn CliError and Kafka errors raised by a command into one line and an exit code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CliError as error:
            raise fail(error.message, error.code) from None
        except KafkaException as error:
            raise fail(describe_kafka_error(error.args[0]), RUNTIME_ERROR) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return run


def describe_kafka_error(error: object) -> str:
    """One readable line for a KafkaError (or whatever a KafkaException carried)."""
    if not isinstance(error, KafkaError):
        return str(error)
    text = str(error.str())
    for prefix in ("Broker: ", "Local: "):
        text = text.removeprefix(prefix)
    return f"{text} ({error.name()})"


def _connect_failure(error: KafkaError) -> str:
    """The reason inside a librdkafka transport error, without its broker and state details."""
    text = str(error.str())
    match = re.search(r"failed: (?P<reason>.*?)(?: \(after \d+ms.*\))?$", text)
    return match["reason"] if match else text


class Cluster:
    """The clients one command uses against one bootstrap address; closes them on exit."""

    def __init__(self, bootstrap: str, timeout: float = TIMEOUT_S) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self._errors: list[KafkaError] = []
        self._admin: AdminClient | None = None
        self._consumers: list[Consumer] = []

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        while self._consumers:
            self._consumers.pop().close()

    def config(self, **extra: Any) -> dict[str, Any]:
        timeout_ms = int(self.timeout * 1000)
        return {
            "bootstrap.servers": self.bootstrap,
            "client.id": CLIENT_ID,
            "socket.connection.setup.timeout.ms": timeout_ms,
            "socket.timeout.ms": timeout_ms,
            # Each failed connect is reported through error_cb; keep stderr for our one line.
            "log_level": 0,
            "error_cb": self._errors.append,
            **extra,
        }

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(self.config())
        return self._admin

    def consumer(self, **extra: Any) -> Consumer:
        """A consumer closed with the cluster; assign-only unless `extra` names a group."""
        settings = {"group.id": ASSIGN_ONLY_GROUP, "enable.auto.commit": False, **extra}
        consumer = Consumer(self.config(**settings))
        self._consumers.append(consumer)
        return consumer

    def producer(self, **extra: Any) -> Producer:
        return Producer(self.config(**extra))

    def unreachable(self) -> CliError | None:
        """A CliError when librdkafka has reported every bootstrap broker down, else None."""
        if not any(error.code() == KafkaError._ALL_BROKERS_DOWN for error in self._errors):
            return None
        reasons = [
            _connect_failure(error)
            for error in self._errors
            if error.code() in {KafkaError._TRANSPORT, KafkaError._RESOLVE}
        ]
        reason = f": {reasons[-1]}" if reasons else ""
        return CliError(f"cannot reach a broker at {self.bootstrap}{reason}")

    def metadata(self) -> ClusterMetadata:
        """Cluster metadata (all topics). Raises CliError when no broker answers in time.

        Asks in short slices so a refused connection fails at once instead of after the
        whole timeout.
        """
        attempts = max(int(self.timeout / 0.5), 1)
        last: KafkaException | None = None
        for _ in range(attempts):
            try:
                return self.admin.list_topics(timeout=0.5)
            except KafkaException as error:
                last = error
            self.admin.poll(0)  # delivers pending error_cb calls
            problem = self.unreachable()
            if problem is not None:
                raise problem
        detail = f" ({describe_kafka_error(last.args[0])})" if last is not None else ""
        raise CliError(f"no answer from {self.bootstrap} within {self.timeout:g}s{detail}")

    def topic(self, name: str) -> TopicMetadata:
        """Metadata of one existing topic; CliError naming it when the cluster has no such topic.

        Lists all topics rather than asking for this one, so that a broker with
        auto.create.topics.enable never creates a topic just because someone looked for it.
        """
        topic = self.metadata().topics.get(name)
        if topic is None or (
            topic.error is not None and topic.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        ):
            raise CliError(f"unknown topic {name!r}")
        if topic.error is not None:
            raise CliError(f"topic {name!r}: {describe_kafka_error(topic.error)}")
        return topic

    def result(self, future: Future[Any], what: str) -> Any:
        """Wait for an admin future; Kafka errors and timeouts become CliError naming `what`."""
        try:
            return future.result(timeout=self.timeout + 5)
        except KafkaException as error:
            problem = self.unreachable()
            if problem is not None:
                raise problem from None
            raise CliError(f"{what}: {describe_kafka_error(error.args[0])}") from None
        except FutureTimeout:
            raise CliError(f"{what}: no answer from {self.bootstrap} in time") from None


def parse_configs(assignments: list[str], option: str = "--config") -> dict[str, str]:
    """`key=value` strings as a dict; UsageError naming the bad one."""
    try:
        return parse_assignments(assignments)
    except ConfigError as error:
        raise UsageError(f"bad {option}: {error}") from None
