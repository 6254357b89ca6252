"""What every API handler may use: the broker's collaborators, built once in app.py."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

from millpond.broker.append_signal import AppendSignal
from millpond.broker.group_commit import GroupCommit
from millpond.clock import Clock
from millpond.config import BrokerConfig
from millpond.storage.log_manager import LogManager
from millpond.storage.producer_ids import ProducerIdAllocator


@dataclass
class BrokerContext:
    config: BrokerConfig
    clock: Clock
    logs: LogManager
    producer_ids: ProducerIdAllocator
    group_commit: GroupCommit = field(default_factory=GroupCommit)
    appended: AppendSignal = field(default_factory=AppendSignal)
    # Filled in by the server once it is bound: what Metadata tells clients.
    advertised_host: str = "127.0.0.1"
    advertised_port: int = 9092

    @property
    def node_id(self) -> int:
        return self.logs.node_id
