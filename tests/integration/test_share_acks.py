"""Acknowledgements, locks and dead letters.

Share groups on the wire, as tests/support/share_wire.py describes.
"""

from __future__ import annotations

import datetime
import time

import pytest
from kio.schema.errors import ErrorCode

from millpond.protocol.record_codec import iter_records
from millpond.protocol.records import iter_batches
from tests.integration.test_wire import create_topic
from tests.integration.test_wire import fetch
from tests.integration.test_wire import produce
from tests.support.batches import build_batch
from tests.support.server import BrokerProcess
from tests.support.share_wire import ACCEPT
from tests.support.share_wire import EARLIEST
from tests.support.share_wire import REJECT
from tests.support.share_wire import RELEASE
from tests.support.share_wire import RENEW
from tests.support.share_wire import Acks
from tests.support.share_wire import PartitionKey
from tests.support.share_wire import ShareMember
from tests.support.share_wire import ack_code
from tests.support.share_wire import acquired_offsets
from tests.support.share_wire import fresh
from tests.support.share_wire import partition_of
from tests.support.share_wire import produce_values
from tests.support.share_wire import ranges
from tests.support.share_wire import set_group_configs
from tests.support.share_wire import share_acknowledge
from tests.support.share_wire import share_fetch
from tests.support.share_wire import topic_exists
from tests.support.share_wire import topic_id
from tests.support.wire import WireClient

# -- acknowledgements ------------------------------------------------------------------------------


def test_accept_piggybacked_on_fetch_is_final(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "acc")
        key = (topic_id(client, "acc"), 0)
        set_group_configs(client, "ag", EARLIEST)
        produce_values(client, "acc", b"1", b"2", b"3")
        with (
            ShareMember(shared_broker.bootstrap, "ag", "member-a") as a,
            ShareMember(shared_broker.bootstrap, "ag", "member-b") as b,
        ):
            assert acquired_offsets(partition_of(a.fetch(key), key)) == [0, 1, 2]
            acked = partition_of(a.fetch(key, acks={key: [(0, 2, (ACCEPT,))]}), key)
            assert acked.acknowledge_error_code == ErrorCode.none
            assert acked.acquired_records == ()
            a.close_session()
            assert ranges(partition_of(b.fetch(key, max_wait_ms=200), key)) == []


def test_release_redelivers_with_delivery_count_two(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "rel")
        key = (topic_id(client, "rel"), 0)
        set_group_configs(client, "relg", EARLIEST)
        produce_values(client, "rel", b"1", b"2", b"3")
        with ShareMember(shared_broker.bootstrap, "relg", "member-a") as a:
            assert ranges(partition_of(a.fetch(key), key)) == [(0, 2, 1)]
            # Per-offset types: accept 0, release 1 and 2.
            released = a.acknowledge({key: [(0, 2, (ACCEPT, RELEASE, RELEASE))]})
            assert ack_code(released, key) == ErrorCode.none
            assert ranges(partition_of(a.fetch(key), key)) == [(1, 2, 2)]


def test_ack_of_records_not_held_is_invalid_record_state_and_changes_nothing(
    shared_broker: BrokerProcess,
) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "own")
        key = (topic_id(client, "own"), 0)
        set_group_configs(client, "og", EARLIEST)
        produce_values(client, "own", b"1", b"2", b"3")
        with (
            ShareMember(shared_broker.bootstrap, "og", "member-a") as a,
            ShareMember(shared_broker.bootstrap, "og", "member-b") as b,
        ):
            assert acquired_offsets(partition_of(a.fetch(key), key)) == [0, 1, 2]
            b.fetch(key)
            # B cannot ack what A holds.
            stolen = b.acknowledge({key: [(0, 2, (ACCEPT,))]})
            assert ack_code(stolen, key) == ErrorCode.invalid_record_state
            # A's ack naming one offset never delivered fails as a whole...
            mixed = a.acknowledge({key: [(0, 1, (ACCEPT,)), (5, 5, (ACCEPT,))]})
            assert ack_code(mixed, key) == ErrorCode.invalid_record_state
            piggy = partition_of(a.fetch(key, acks={key: [(2, 3, (ACCEPT,))]}), key)
            assert piggy.acknowledge_error_code == ErrorCode.invalid_record_state
            # ...so A still holds all three and can release them.
            released = a.acknowledge({key: [(0, 2, (RELEASE,))]})
            assert ack_code(released, key) == ErrorCode.none
            assert ranges(partition_of(b.fetch(key), key)) == [(0, 2, 2)]


@pytest.mark.parametrize(
    ("batches", "why"),
    [
        ([(2, 1, (ACCEPT,))], "first > last"),
        ([(0, 1, (ACCEPT,)), (1, 2, (ACCEPT,))], "overlapping"),
        ([(1, 2, (ACCEPT,)), (0, 0, (ACCEPT,))], "not ascending"),
        ([(0, 2, (ACCEPT, ACCEPT))], "wrong number of types"),
        ([(0, 2, ())], "no types"),
        ([(0, 2, (5,))], "type 5"),
        ([(0, 2, (RENEW,))], "RENEW in v1"),
    ],
)
def test_malformed_acknowledgements_are_invalid_request_per_partition(
    shared_broker: BrokerProcess, batches: list[tuple[int, int, tuple[int, ...]]], why: str
) -> None:
    topic, group = fresh("bad"), fresh("badg")
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, topic)
        key = (topic_id(client, topic), 0)
        set_group_configs(client, group, EARLIEST)
        produce_values(client, topic, b"1", b"2", b"3")
        with ShareMember(shared_broker.bootstrap, group, "member-a") as a:
            assert acquired_offsets(partition_of(a.fetch(key), key)) == [0, 1, 2]
            over_ack = a.acknowledge({key: batches})
            assert ack_code(over_ack, key) == ErrorCode.invalid_request, why
            over_fetch = partition_of(a.fetch(key, acks={key: batches}), key)
            assert over_fetch.error_code == ErrorCode.none, why
            assert over_fetch.acknowledge_error_code == ErrorCode.invalid_request, why
            # Nothing was applied: the member still holds every record.
            assert ack_code(a.acknowledge({key: [(0, 2, (ACCEPT,))]}), key) == ErrorCode.none


def test_share_acknowledge_session_rules(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "sa")
        key = (topic_id(client, "sa"), 0)
        set_group_configs(client, "sag", EARLIEST)
        produce_values(client, "sa", b"1", b"2")
        acks: Acks = {key: [(0, 0, (ACCEPT,))]}
        assert share_acknowledge(client, "sag", "m", 1, acks).error_code == (
            ErrorCode.share_session_not_found
        )
        assert share_acknowledge(client, "sag", "m", -1, acks).error_code == (
            ErrorCode.share_session_not_found
        )
        opened = share_fetch(client, "sag", "m", 0, [key])
        assert acquired_offsets(partition_of(opened, key)) == [0, 1]
        at_zero = share_acknowledge(client, "sag", "m", 0, acks)
        assert at_zero.error_code == ErrorCode.invalid_share_session_epoch
        assert share_acknowledge(client, "sag", "m", 2, acks).error_code == (
            ErrorCode.invalid_share_session_epoch
        )
        ok = share_acknowledge(client, "sag", "m", 1, acks)
        assert ok.error_code == ErrorCode.none
        assert ack_code(ok, key) == ErrorCode.none
        # The acknowledge used epoch 1: the next fetch must carry 2.
        stale = share_fetch(client, "sag", "m", 1, [key])
        assert stale.error_code == ErrorCode.invalid_share_session_epoch
        assert share_fetch(client, "sag", "m", 2, [key]).error_code == ErrorCode.none
        # Epoch -1 applies the acks, then closes the session.
        final = share_acknowledge(client, "sag", "m", -1, {key: [(1, 1, (ACCEPT,))]})
        assert (final.error_code, ack_code(final, key)) == (ErrorCode.none, ErrorCode.none)
        assert share_fetch(client, "sag", "m", 3, [key]).error_code == (
            ErrorCode.share_session_not_found
        )
        reopened = share_fetch(client, "sag", "m", 0, [key])
        assert ranges(partition_of(reopened, key)) == []


def test_renew_keeps_the_lock_past_its_duration(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "rn")
        key = (topic_id(client, "rn"), 0)
        set_group_configs(client, "rng", {**EARLIEST, "share.record.lock.duration.ms": "1000"})
        produce_values(client, "rn", b"slow")
        with (
            ShareMember(shared_broker.bootstrap, "rng", "member-a") as a,
            ShareMember(shared_broker.bootstrap, "rng", "member-b") as b,
        ):
            fetched = a.fetch(key)
            acquired_at = time.monotonic()
            assert fetched.acquisition_lock_timeout == datetime.timedelta(milliseconds=1000)
            assert acquired_offsets(partition_of(fetched, key)) == [0]
            time.sleep(0.6)
            first = a.acknowledge({key: [(0, 0, (RENEW,))]}, version=2, renew=True)
            assert ack_code(first, key) == ErrorCode.none
            assert first.acquisition_lock_timeout == datetime.timedelta(milliseconds=1000)
            # Past the first lock's end (and the 100 ms expiry tick): had the renewal not taken,
            # the record would be released and this second renewal refused.
            time.sleep(max(0.0, acquired_at + 1.2 - time.monotonic()))
            second = a.acknowledge({key: [(0, 0, (RENEW,))]}, version=2, renew=True)
            assert ack_code(second, key) == ErrorCode.none
            assert ranges(partition_of(b.fetch(key), key)) == []
            assert ack_code(a.acknowledge({key: [(0, 0, (ACCEPT,))]}), key) == ErrorCode.none


def test_lock_expiry_redelivers_and_wakes_a_parked_fetch(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "ex")
        key = (topic_id(client, "ex"), 0)
        set_group_configs(client, "exg", {**EARLIEST, "share.record.lock.duration.ms": "1000"})
        produce_values(client, "ex", b"hung")
        with (
            ShareMember(shared_broker.bootstrap, "exg", "member-a") as a,
            ShareMember(shared_broker.bootstrap, "exg", "member-b") as b,
        ):
            assert ranges(partition_of(a.fetch(key), key)) == [(0, 0, 1)]
            started = time.monotonic()
            redelivered = partition_of(b.fetch(key, max_wait_ms=5000), key)
            assert 0.7 <= time.monotonic() - started < 3
            assert ranges(redelivered) == [(0, 0, 2)]
            late = a.acknowledge({key: [(0, 0, (ACCEPT,))]})
            assert ack_code(late, key) == ErrorCode.invalid_record_state


# -- dead letters ----------------------------------------------------------------------------------


def _release_twice(bootstrap: str, group: str, key: PartitionKey) -> None:
    with ShareMember(bootstrap, group, "member-a") as a:
        for count in (1, 2):
            assert ranges(partition_of(a.fetch(key), key)) == [(0, 0, count)]
            assert ack_code(a.acknowledge({key: [(0, 0, (RELEASE,))]}), key) == ErrorCode.none
        # Archived: never delivered again.
        assert ranges(partition_of(a.fetch(key), key)) == []


def test_delivery_limit_dead_letters_and_archives(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "poison")
        key = (topic_id(client, "poison"), 0)
        set_group_configs(client, "pg", {**EARLIEST, "share.delivery.count.limit": "2"})
        produce(client, "poison", bytes(build_batch([b"bad"], keys=[b"k"])))
        _release_twice(broker.bootstrap, "pg", key)
        letters = fetch(client, "dlq.pg", 0)
        assert letters.error_code == ErrorCode.none
        data = bytes(letters.records)
        (record,) = [r for h in iter_batches(data) for r in iter_records(data, h)]
        assert (record.key, record.value) == (b"k", b"bad")
        headers = dict(record.headers)
        assert headers["_dlq.errors.disposition"] == b"MAX_DELIVERY_ATTEMPTS_REACHED"
        assert headers["_dlq.errors.original.topic"] == b"poison"
        assert headers["_dlq.errors.original.offset"] == b"0"
        assert headers["_dlq.errors.delivery.count"] == b"2"
        # A rejected record goes there at once.
        produce_values(client, "poison", b"refused")
        with ShareMember(broker.bootstrap, "pg", "member-b") as b:
            assert ranges(partition_of(b.fetch(key), key)) == [(1, 1, 1)]
            assert ack_code(b.acknowledge({key: [(1, 1, (REJECT,))]}), key) == ErrorCode.none
        data = bytes(fetch(client, "dlq.pg", 1).records)
        letters_now = [r for h in iter_batches(data) for r in iter_records(data, h)]
        assert [(r.offset, r.value) for r in letters_now] == [(1, b"refused")]
        assert dict(letters_now[0].headers)["_dlq.errors.disposition"] == b"CLIENT_REJECTED"


def test_empty_dead_letter_topic_name_turns_dead_lettering_off(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "poison")
        key = (topic_id(client, "poison"), 0)
        set_group_configs(
            client,
            "quiet",
            {
                **EARLIEST,
                "share.delivery.count.limit": "2",
                "errors.deadletterqueue.topic.name": "",
            },
        )
        produce_values(client, "poison", b"bad")
        _release_twice(broker.bootstrap, "quiet", key)
        assert not topic_exists(client, "dlq.quiet")
