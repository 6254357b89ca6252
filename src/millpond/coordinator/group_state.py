"""Classic consumer group states and their legal transitions, as data (Kafka's ClassicGroupState).

EMPTY ──join──▶ PREPARING_REBALANCE ──all joined / timeout──▶ COMPLETING_REBALANCE
  ▲                 ▲        │                                     │
  │                 │        └──no members left──▶ EMPTY           │ leader's SyncGroup
  │                 └────── join, leave, expiry ───────────────────┤
  │                 └────── join, leave, expiry ◀── STABLE ◀───────┘
  └─ last member leaves / expires (via PREPARING_REBALANCE)
any state ──group deleted or offsets expired──▶ DEAD
"""

from __future__ import annotations

import enum


class GroupState(enum.Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


# Target state -> the states it may be entered from (Kafka's validPreviousStates).
VALID_PREVIOUS_STATES: dict[GroupState, frozenset[GroupState]] = {
    GroupState.EMPTY: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.PREPARING_REBALANCE: frozenset(
        {GroupState.EMPTY, GroupState.STABLE, GroupState.COMPLETING_REBALANCE}
    ),
    GroupState.COMPLETING_REBALANCE: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.STABLE: frozenset({GroupState.COMPLETING_REBALANCE}),
    GroupState.DEAD: frozenset(
        {
            GroupState.EMPTY,
            GroupState.PREPARING_REBALANCE,
            GroupState.COMPLETING_REBALANCE,
            GroupState.STABLE,
            GroupState.DEAD,
        }
    ),
}


class IllegalStateTransition(RuntimeError):
    """A transition the table does not allow: a coordinator bug, never a client's fault."""


def check_transition(current: GroupState, target: GroupState) -> GroupState:
    """Return `target` if the table allows entering it from `current`; raise otherwise."""
    if current not in VALID_PREVIOUS_STATES[target]:
        raise IllegalStateTransition(f"group cannot go from {current.value} to {target.value}")
    return target


def parse_state_filter(name: str) -> GroupState | None:
    """ListGroups' StatesFilter matches case-insensitively (librdkafka sends lower case)."""
    for state in GroupState:
        if state.value.lower() == name.lower():
            return state
    return None
