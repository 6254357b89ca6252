"""ShareFetch: share sessions, long polls, releases.

Share groups on the wire, as tests/support/share_wire.py describes.
"""

from __future__ import annotations

import datetime
import time
import uuid
from typing import Any

from kio.schema.errors import ErrorCode

from tests.integration.test_wire import create_topic
from tests.support.server import BrokerProcess
from tests.support.share_wire import ACCEPT
from tests.support.share_wire import EARLIEST
from tests.support.share_wire import Acks
from tests.support.share_wire import ShareMember
from tests.support.share_wire import acquired_offsets
from tests.support.share_wire import acquired_values
from tests.support.share_wire import join
from tests.support.share_wire import partition_of
from tests.support.share_wire import produce_values
from tests.support.share_wire import ranges
from tests.support.share_wire import set_group_configs
from tests.support.share_wire import share_fetch
from tests.support.share_wire import topic_id
from tests.support.wire import WireClient

# -- ShareFetch sessions ---------------------------------------------------------------------------


def test_share_session_epochs(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "s")
        key = (topic_id(client, "s"), 0)
        join(client, "sg", "member-a", "s")

        def fetch_at(epoch: int, acks: Acks | None = None) -> Any:
            return share_fetch(client, "sg", "member-a", epoch, [key], acks)

        assert fetch_at(1).error_code == ErrorCode.share_session_not_found
        assert fetch_at(-1).error_code == ErrorCode.share_session_not_found
        with_acks = fetch_at(0, {key: [(0, 0, (ACCEPT,))]})
        assert with_acks.error_code == ErrorCode.invalid_request
        assert with_acks.responses == ()

        opened = fetch_at(0)
        assert opened.error_code == ErrorCode.none
        assert opened.acquisition_lock_timeout == datetime.timedelta(milliseconds=30000)
        assert fetch_at(5).error_code == ErrorCode.invalid_share_session_epoch
        assert fetch_at(2).error_code == ErrorCode.invalid_share_session_epoch
        # A wrong epoch leaves the session as it was.
        assert fetch_at(1).error_code == ErrorCode.none
        assert fetch_at(1).error_code == ErrorCode.invalid_share_session_epoch
        assert fetch_at(2).error_code == ErrorCode.none
        # Reopening at epoch 0 starts over at 1.
        assert fetch_at(0).error_code == ErrorCode.none
        assert fetch_at(3).error_code == ErrorCode.invalid_share_session_epoch
        assert fetch_at(1).error_code == ErrorCode.none
        assert fetch_at(-1).error_code == ErrorCode.none
        assert fetch_at(2).error_code == ErrorCode.share_session_not_found


def test_unknown_topic_id_and_partition_are_per_partition_errors(
    shared_broker: BrokerProcess,
) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "u")
        good = (topic_id(client, "u"), 0)
        stranger = (uuid.uuid4(), 0)
        missing_partition = (good[0], 7)
        response = share_fetch(client, "ug", "m", 0, [good, stranger, missing_partition])
        assert response.error_code == ErrorCode.none
        assert partition_of(response, stranger).error_code == ErrorCode.unknown_topic_id
        assert partition_of(response, missing_partition).error_code == (
            ErrorCode.unknown_topic_or_partition
        )
        assert partition_of(response, good).error_code == ErrorCode.none


def test_records_come_with_acquired_ranges_and_delivery_count_one(
    shared_broker: BrokerProcess,
) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "r")
        key = (topic_id(client, "r"), 0)
        set_group_configs(client, "rg", EARLIEST)
        produce_values(client, "r", b"a", b"b", b"c")
        produce_values(client, "r", b"d", b"e")
        with ShareMember(shared_broker.bootstrap, "rg", "member-a") as member:
            member.join("r")
            partition = partition_of(member.fetch(key), key)
            assert partition.error_code == ErrorCode.none
            assert acquired_offsets(partition) == [0, 1, 2, 3, 4]
            assert {count for _, _, count in ranges(partition)} == {1}
            assert acquired_values(partition) == {0: b"a", 1: b"b", 2: b"c", 3: b"d", 4: b"e"}
            # Nothing more to hand out: an empty, but never null, Records.
            again = partition_of(member.fetch(key), key)
            assert again is None or (bytes(again.records) == b"" and not again.acquired_records)


def test_long_poll_waits_max_wait_and_records_are_never_null(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "lp")
        key = (topic_id(client, "lp"), 0)
        started = time.monotonic()
        # kio refuses a null non-nullable Records, so decoding at all proves it is not null.
        response = share_fetch(client, "lpg", "m", 0, [key], max_wait_ms=500)
        elapsed = time.monotonic() - started
        assert response.error_code == ErrorCode.none
        assert 0.45 <= elapsed < 3
        partition = partition_of(response, key)  # a new session answers every partition
        assert partition is not None
        assert bytes(partition.records) == b""
        assert partition.acquired_records == ()
        started = time.monotonic()
        later = share_fetch(client, "lpg", "m", 1, max_wait_ms=300)
        assert later.error_code == ErrorCode.none
        assert 0.25 <= time.monotonic() - started < 3


def test_produce_wakes_a_parked_share_fetch(shared_broker: BrokerProcess) -> None:
    with (
        WireClient(shared_broker.bootstrap) as client,
        WireClient(shared_broker.bootstrap) as producer,
    ):
        create_topic(client, "w")
        key = (topic_id(client, "w"), 0)
        set_group_configs(client, "wg", EARLIEST)
        share_fetch(client, "wg", "m", 0, [key])  # open the session, nothing there yet
        started = time.monotonic()
        correlation = share_fetch(client, "wg", "m", 1, max_wait_ms=10_000, send_only=True)
        time.sleep(0.3)
        produce_values(producer, "w", b"wake")
        response = client.receive(78, 1, correlation)
        assert time.monotonic() - started < 5
        assert acquired_values(partition_of(response, key)) == {0: b"wake"}


def test_closing_the_session_releases_without_counting_a_delivery(
    shared_broker: BrokerProcess,
) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "c")
        key = (topic_id(client, "c"), 0)
        set_group_configs(client, "cg", EARLIEST)
        produce_values(client, "c", b"x", b"y")
        with (
            ShareMember(shared_broker.bootstrap, "cg", "member-a") as a,
            ShareMember(shared_broker.bootstrap, "cg", "member-b") as b,
        ):
            assert ranges(partition_of(a.fetch(key), key)) == [(0, 1, 1)]
            assert ranges(partition_of(b.fetch(key), key)) == []
            closed = a.close_session()
            assert closed.responses == ()
            assert ranges(partition_of(b.fetch(key), key)) == [(0, 1, 1)]
            # Final acks ride on the closing request.
            final = b.close_session(acks={key: [(0, 1, (ACCEPT,))]})
            assert partition_of(final, key).acknowledge_error_code == ErrorCode.none
            assert ranges(partition_of(a.fetch(key), key)) == []


def test_a_dropped_connection_releases_and_counts_the_delivery(
    shared_broker: BrokerProcess,
) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "drop")
        key = (topic_id(client, "drop"), 0)
        set_group_configs(client, "dropg", EARLIEST)
        produce_values(client, "drop", b"x")
        with ShareMember(shared_broker.bootstrap, "dropg", "member-a") as a:
            assert ranges(partition_of(a.fetch(key), key)) == [(0, 0, 1)]
        with ShareMember(shared_broker.bootstrap, "dropg", "member-b") as b:
            # The worker may have died on the record, so that delivery counts.
            assert ranges(partition_of(b.fetch(key, max_wait_ms=3000), key)) == [(0, 0, 2)]
        with ShareMember(shared_broker.bootstrap, "dropg", "member-a") as a:
            # Its old session went with the connection.
            stale = share_fetch(a.client, "dropg", "member-a", 2, [key])
            assert stale.error_code == ErrorCode.share_session_not_found


def test_leaving_the_group_releases_the_members_records(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "lv")
        key = (topic_id(client, "lv"), 0)
        set_group_configs(client, "lvg", EARLIEST)
        produce_values(client, "lv", b"x")
        with (
            ShareMember(shared_broker.bootstrap, "lvg", "member-a") as a,
            ShareMember(shared_broker.bootstrap, "lvg", "member-b") as b,
        ):
            a.join("lv")
            assert acquired_offsets(partition_of(a.fetch(key), key)) == [0]
            a.leave()
            assert acquired_offsets(partition_of(b.fetch(key, max_wait_ms=3000), key)) == [0]


def test_forgotten_partitions_leave_the_session(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "fg", partitions=2)
        tid = topic_id(client, "fg")
        set_group_configs(client, "fgg", EARLIEST)
        share_fetch(client, "fgg", "m", 0, [(tid, 0), (tid, 1)])
        forgot = share_fetch(client, "fgg", "m", 1, forgotten=[(tid, 1)])
        assert forgot.error_code == ErrorCode.none
        produce_values(client, "fg", b"p1", partition=1)
        produce_values(client, "fg", b"p0", partition=0)
        response = share_fetch(client, "fgg", "m", 2, max_wait_ms=1000)
        assert acquired_values(partition_of(response, (tid, 0))) == {0: b"p0"}
        assert partition_of(response, (tid, 1)) is None


def test_share_fetch_needs_group_and_member_ids(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "ids")
        key = (topic_id(client, "ids"), 0)
        assert share_fetch(client, "g", "", 0, [key]).error_code == ErrorCode.invalid_request
        assert share_fetch(client, "", "m", 0, [key]).error_code == ErrorCode.invalid_request
