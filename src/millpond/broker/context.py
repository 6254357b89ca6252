"""What every API handler may use: the broker's collaborators, built once in app.py."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING

from millpond.broker.append_signal import AppendSignal
from millpond.broker.group_commit import GroupCommit
from millpond.clock import Clock
from millpond.config import BrokerConfig
from millpond.storage.log_manager import LogManager
from millpond.storage.producer_ids import ProducerIdAllocator

if TYPE_CHECKING:
    from millpond.coordinator.group_coordinator import GroupCoordinator
    from millpond.coordinator.share_coordinator import ShareCoordinator
    from millpond.registry.validation import SchemaValidator


@dataclass
class BrokerContext:
    config: BrokerConfig
    clock: Clock
    logs: LogManager
    producer_ids: ProducerIdAllocator
    group_commit: GroupCommit = field(default_factory=GroupCommit)
    appended: AppendSignal = field(default_factory=AppendSignal)
    # Built right after the context (it needs the same collaborators); see app.py.
    groups: GroupCoordinator | None = None
    shares: ShareCoordinator | None = None
    schemas: SchemaValidator | None = None  # produce-time schema validation
    # Filled in by the server once it is bound: what Metadata tells clients.
    advertised_host: str = "127.0.0.1"
    advertised_port: int = 9092

    @property
    def coordinator(self) -> GroupCoordinator:
        if self.groups is None:
            raise RuntimeError("the group coordinator is not running")
        return self.groups

    @property
    def share(self) -> ShareCoordinator:
        if self.shares is None:
            raise RuntimeError("the share coordinator is not running")
        return self.shares

    @property
    def node_id(self) -> int:
        return self.logs.node_id
