"""Share sessions (KIP-932's ShareSessionCache): which partitions a member fetches from this
broker, and the epoch its next ShareFetch or ShareAcknowledge must carry.

    request epoch 0   open a new session (dropping the member's old one); next epoch 1
    request epoch n   must equal the session's next epoch; next epoch n + 1 (INT32_MAX -> 1)
    request epoch -1  final request: acknowledge, then close the session

A session belongs to the connection that opened it; when that connection drops, the session
closes and the member's records on this broker are released, as in Kafka.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from dataclasses import field

from kio.schema.errors import ErrorCode

INT32_MAX = 2**31 - 1
FINAL_EPOCH = -1

PartitionKey = tuple[uuid.UUID, int]


@dataclass(slots=True)
class ShareSession:
    group_id: str
    member_id: str
    connection_id: int
    next_epoch: int = 1
    # Insertion-ordered set of (topic id, partition).
    partitions: dict[PartitionKey, None] = field(default_factory=dict)

    def advance(self) -> None:
        self.next_epoch = 1 if self.next_epoch == INT32_MAX else self.next_epoch + 1


class ShareSessionError(Exception):
    def __init__(self, error: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.error = error


class ShareSessionCache:
    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions
        self._sessions: dict[tuple[str, str], ShareSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, group_id: str, member_id: str, connection_id: int) -> ShareSession:
        """Epoch 0: a new session, replacing the member's old one."""
        key = (group_id, member_id)
        self._sessions.pop(key, None)
        if len(self._sessions) >= self.max_sessions:
            raise ShareSessionError(
                ErrorCode.share_session_limit_reached,
                f"this broker already holds {self.max_sessions} share sessions",
            )
        session = ShareSession(group_id, member_id, connection_id)
        self._sessions[key] = session
        return session

    def resume(self, group_id: str, member_id: str, epoch: int) -> ShareSession:
        """Epoch n > 0 or -1: the member's session, checked against the epoch (not advanced)."""
        session = self._sessions.get((group_id, member_id))
        if session is None:
            raise ShareSessionError(
                ErrorCode.share_session_not_found,
                f"no share session for member {member_id} of group {group_id}",
            )
        if epoch not in (FINAL_EPOCH, session.next_epoch):
            raise ShareSessionError(
                ErrorCode.invalid_share_session_epoch,
                f"share session epoch {epoch} is not the expected {session.next_epoch}",
            )
        return session

    def close(self, group_id: str, member_id: str) -> ShareSession | None:
        return self._sessions.pop((group_id, member_id), None)

    def close_connection(self, connection_id: int) -> list[ShareSession]:
        """Close every session the connection opened."""
        closed = [s for s in self._sessions.values() if s.connection_id == connection_id]
        for session in closed:
            del self._sessions[(session.group_id, session.member_id)]
        return closed

    def of_member(self, group_id: str, member_id: str) -> ShareSession | None:
        return self._sessions.get((group_id, member_id))
