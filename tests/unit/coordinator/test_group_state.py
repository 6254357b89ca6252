from __future__ import annotations

import pytest

from millpond.coordinator.group_state import GroupState
from millpond.coordinator.group_state import IllegalStateTransition
from millpond.coordinator.group_state import check_transition
from millpond.coordinator.group_state import parse_state_filter

LEGAL = {
    (GroupState.EMPTY, GroupState.PREPARING_REBALANCE),
    (GroupState.PREPARING_REBALANCE, GroupState.COMPLETING_REBALANCE),
    (GroupState.PREPARING_REBALANCE, GroupState.EMPTY),
    (GroupState.COMPLETING_REBALANCE, GroupState.STABLE),
    (GroupState.COMPLETING_REBALANCE, GroupState.PREPARING_REBALANCE),
    (GroupState.STABLE, GroupState.PREPARING_REBALANCE),
} | {(state, GroupState.DEAD) for state in GroupState}


@pytest.mark.parametrize("current", list(GroupState))
@pytest.mark.parametrize("target", list(GroupState))
def test_transition_table(current: GroupState, target: GroupState) -> None:
    if (current, target) in LEGAL:
        assert check_transition(current, target) is target
    else:
        with pytest.raises(IllegalStateTransition):
            check_transition(current, target)


def test_state_filter_is_case_insensitive() -> None:
    assert parse_state_filter("stable") is GroupState.STABLE
    assert parse_state_filter("PreparingRebalance") is GroupState.PREPARING_REBALANCE
    assert parse_state_filter("nope") is None
