"""The composition root: builds the broker's objects with plain constructors and runs them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from millpond.broker.context import BrokerContext
from millpond.broker.server import KafkaServer
from millpond.clock import Clock
from millpond.clock import SystemClock
from millpond.config import BrokerConfig
from millpond.console.http import HttpServer
from millpond.console.metrics import BrokerMetrics
from millpond.console.metrics import PartitionStats
from millpond.coordinator.group_coordinator import TICK_INTERVAL_MS
from millpond.coordinator.group_coordinator import GroupCoordinator
from millpond.coordinator.share_coordinator import ShareCoordinator
from millpond.registry.routes import RegistryRoutes
from millpond.registry.schemas_topic import open_registry
from millpond.registry.validation import SchemaValidator
from millpond.storage.cleaner import LogCleaner
from millpond.storage.log_manager import LogManager
from millpond.storage.producer_ids import ProducerIdAllocator

logger = logging.getLogger("millpond")


class Broker:
    def __init__(self, data_dir: Path, config: BrokerConfig, clock: Clock | None = None) -> None:
        self.data_dir = data_dir
        self.config = config
        self.clock = clock or SystemClock()
        self.logs = LogManager(data_dir, config, self.clock)
        self.ctx: BrokerContext | None = None
        self.server: KafkaServer | None = None
        self._background: list[asyncio.Task[None]] = []
        self.address: tuple[str, int] | None = None
        self.status = "starting"
        self.metrics = BrokerMetrics()
        self.metrics.watch_partitions(self.partition_stats)
        self.http: HttpServer | None = None
        self.http_address: tuple[str, int] | None = None

    async def start(self) -> None:
        """Open the data dir (recovering if needed) and start listening; logs one ready line."""
        started = self.clock.monotonic_ms()
        report = self.logs.startup()
        producer_ids = ProducerIdAllocator(self.data_dir / "producer-ids")
        ctx = BrokerContext(self.config, self.clock, self.logs, producer_ids)
        ctx.groups = GroupCoordinator(
            self.config, self.clock, self.logs, ctx.group_commit, ctx.appended
        )
        replayed = ctx.groups.load()
        ctx.shares = ShareCoordinator(
            self.config,
            self.clock,
            self.logs,
            ctx.group_commit,
            ctx.appended,
            ctx.groups.has_group,
        )
        replayed += ctx.shares.load()
        registry, registry_records = open_registry(
            self.logs, ctx.group_commit, ctx.appended, self.clock
        )
        replayed += registry_records
        ctx.schemas = SchemaValidator(registry)
        self.metrics.watch_share_groups(ctx.shares)
        self.metrics.watch_group_lag(ctx.groups.offsets.lag)
        self.ctx = ctx
        if self.config.http_listen is not None:
            http_host, http_port = self.config.http_listen
            self.http = HttpServer(
                http_host,
                http_port,
                self.metrics,
                self.health,
                registry=RegistryRoutes(registry),
            )
            self.http_address = await self.http.start()
        host, port = self.config.listen
        self.server = KafkaServer(ctx, host, port, self.metrics)
        bound_host, bound_port = await self.server.start()
        self.address = (bound_host, bound_port)
        advertised_host, advertised_port = self.config.advertised
        ctx.advertised_host = advertised_host if advertised_host != "0.0.0.0" else "127.0.0.1"
        ctx.advertised_port = advertised_port or bound_port
        loop = asyncio.get_running_loop()
        self._background = [
            loop.create_task(self._retention_loop()),
            loop.create_task(self._flush_loop()),
            loop.create_task(self._group_timer_loop()),
            loop.create_task(self._share_timer_loop()),
            loop.create_task(self._offset_expiry_loop()),
            loop.create_task(self._cleaner_loop()),
        ]
        self.status = "ready"
        http = ""
        if self.http_address is not None:
            http = f", http on {self.http_address[0]}:{self.http_address[1]}"
        logger.info(
            "millpond ready on %s:%d (advertised %s:%d)%s, data dir %s, "
            "%d partition(s) %s, %d group record(s) replayed in %.0f ms",
            bound_host,
            bound_port,
            ctx.advertised_host,
            ctx.advertised_port,
            http,
            self.data_dir,
            report.partitions,
            "opened after a clean stop" if report.clean_shutdown else "recovered",
            replayed,
            self.clock.monotonic_ms() - started,
        )

    async def stop(self) -> None:
        """Stop accepting, finish in-flight requests, fsync, and mark a clean shutdown."""
        self.status = "stopping"
        if self.server is not None:
            await self.server.stop()
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.ctx is not None:
            if self.ctx.groups is not None:
                await self.ctx.groups.wait_idle()
            if self.ctx.shares is not None:
                await self.ctx.shares.wait_idle()
            await self.ctx.group_commit.wait_idle()
        self.logs.shutdown()
        if self.http is not None:  # last, so probes see "stopping" until the end
            await self.http.stop()
        logger.info("millpond stopped cleanly")

    def health(self) -> dict[str, object]:
        """GET /health's body; the listener answers 200 only when status is "ready"."""
        kafka = None if self.address is None else f"{self.address[0]}:{self.address[1]}"
        return {"status": self.status, "kafka": kafka}

    def partition_stats(self) -> Iterator[PartitionStats]:
        """Every partition's offsets and size, read when /metrics is scraped."""
        for topic in self.logs.topics.values():
            for partition in topic.partitions:
                log = partition.log
                yield PartitionStats(
                    topic.name,
                    partition.index,
                    log.log_start_offset,
                    log.log_end_offset,
                    log.size_in_bytes,
                )

    async def _retention_loop(self) -> None:
        interval = self.config["log.retention.check.interval.ms"] / 1000
        while True:
            await asyncio.sleep(interval)
            for topic in list(self.logs.topics.values()):
                for partition in topic.partitions:
                    try:
                        if partition.log.apply_retention():
                            partition.producer_state.truncate_snapshots_below(
                                partition.log.log_start_offset
                            )
                        partition.producer_state.remove_expired()
                    except OSError as error:
                        logger.error("retention on %s failed: %s", partition.name, error)

    async def _group_timer_loop(self) -> None:
        assert self.ctx is not None
        coordinator = self.ctx.coordinator
        while True:
            await asyncio.sleep(TICK_INTERVAL_MS / 1000)
            coordinator.tick()

    async def _share_timer_loop(self) -> None:
        assert self.ctx is not None
        shares = self.ctx.share
        while True:
            await asyncio.sleep(TICK_INTERVAL_MS / 1000)
            try:
                await shares.tick()
            except Exception as error:  # the next tick tries again
                logger.error("share group timers failed: %s", error)

    async def _offset_expiry_loop(self) -> None:
        assert self.ctx is not None
        coordinator = self.ctx.coordinator
        interval = self.config["offsets.retention.check.interval.ms"] / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                expired = await coordinator.offsets.expire()
            except Exception as error:  # the next round tries again
                logger.error("expiring committed offsets failed: %s", error)
            else:
                if expired:
                    logger.info("expired %d committed offset(s)", expired)

    async def _cleaner_loop(self) -> None:
        cleaner = LogCleaner(self.clock)
        interval = self.config["log.cleaner.backoff.ms"] / 1000
        while True:
            await asyncio.sleep(interval)
            logs = [
                (partition.log, topic.config.cleaner_config())
                for topic in list(self.logs.topics.values())
                if topic.config.compacted
                for partition in topic.partitions
            ]
            stats = await cleaner.clean(logs)
            if stats.logs_cleaned:
                logger.info(
                    "log cleaner: %d log(s) cleaned, %d record(s) removed",
                    stats.logs_cleaned,
                    stats.records_removed,
                )

    async def _flush_loop(self) -> None:
        assert self.ctx is not None
        interval = self.config["log.flush.interval.ms"] / 1000
        while True:
            await asyncio.sleep(interval)
            logs = [p.log for t in self.logs.topics.values() for p in t.partitions]
            try:
                await self.ctx.group_commit.flush_all(logs)
            except Exception as error:  # logged; the next round retries only new data
                logger.error("periodic flush failed: %s", error)


def raise_open_file_limit() -> None:
    """Every segment holds three fds and every partition a directory fd, as in Kafka: take the
    hard limit rather than a default soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def serve(data_dir: Path, config: BrokerConfig) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly."""
    # The fsync worker thread must win the GIL back quickly after each fdatasync, or every
    # acks=all answer waits out the default 5 ms switch interval of a busy event loop.
    sys.setswitchinterval(0.0005)
    raise_open_file_limit()
    broker = Broker(data_dir, config)
    await broker.start()
    # Everything built at start-up lives as long as the process: keep it out of the cyclic
    # collector's full passes, which otherwise stall requests for tens of milliseconds.
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        logger.info("stopping")
        await broker.stop()
