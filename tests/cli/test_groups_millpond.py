"""The consumer-group scenarios of test_groups_tansu.py against Millpond's own coordinator."""

from __future__ import annotations

import pytest

from tests.cli import group_scenarios
from tests.support.server import BrokerProcess

pytestmark = [pytest.mark.compat, pytest.mark.timeout(180)]


def test_list_and_describe_with_lag(broker: BrokerProcess) -> None:
    group_scenarios.check_list_and_describe_with_lag(broker.bootstrap)


def test_reset_dry_run_shows_the_plan_and_changes_nothing(broker: BrokerProcess) -> None:
    group_scenarios.check_reset_dry_run_shows_the_plan_and_changes_nothing(broker.bootstrap)


def test_execute_to_earliest_replays_from_zero(broker: BrokerProcess) -> None:
    group_scenarios.check_execute_to_earliest_replays_from_zero(broker.bootstrap)


def test_to_datetime_lands_on_first_offset_at_or_after(broker: BrokerProcess) -> None:
    group_scenarios.check_to_datetime_lands_on_first_offset_at_or_after(broker.bootstrap)


def test_reset_is_refused_while_a_member_is_active(broker: BrokerProcess) -> None:
    group_scenarios.check_reset_is_refused_while_a_member_is_active(broker.bootstrap)


def test_consume_with_group_commits(broker: BrokerProcess) -> None:
    group_scenarios.check_consume_with_group_commits(broker.bootstrap)


def test_describe_shows_members(broker: BrokerProcess) -> None:
    group_scenarios.check_describe_shows_members(broker.bootstrap)
