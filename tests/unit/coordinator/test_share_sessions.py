from __future__ import annotations

import uuid

import pytest
from kio.schema.errors import ErrorCode

from millpond.coordinator.share_sessions import FINAL_EPOCH
from millpond.coordinator.share_sessions import INT32_MAX
from millpond.coordinator.share_sessions import ShareSession
from millpond.coordinator.share_sessions import ShareSessionCache
from millpond.coordinator.share_sessions import ShareSessionError


def refused(error: ErrorCode) -> pytest.RaisesExc[ShareSessionError]:
    return pytest.raises(ShareSessionError, check=lambda e: e.error is error)


def test_open_starts_at_epoch_one() -> None:
    cache = ShareSessionCache(max_sessions=10)
    session = cache.open("g", "m", connection_id=7)
    assert (session.group_id, session.member_id, session.connection_id) == ("g", "m", 7)
    assert session.next_epoch == 1
    assert session.partitions == {}
    assert len(cache) == 1
    assert cache.of_member("g", "m") is session


def test_each_request_must_carry_the_next_epoch() -> None:
    cache = ShareSessionCache(max_sessions=10)
    session = cache.open("g", "m", 1)
    assert cache.resume("g", "m", 1) is session
    assert session.next_epoch == 1  # resume checks, the caller advances
    session.advance()
    assert cache.resume("g", "m", 2) is session
    for stale in (1, 3, 0, -2):
        with refused(ErrorCode.invalid_share_session_epoch):
            cache.resume("g", "m", stale)


def test_the_final_epoch_is_accepted_at_any_point() -> None:
    cache = ShareSessionCache(max_sessions=10)
    session = cache.open("g", "m", 1)
    for _ in range(5):
        session.advance()
    assert cache.resume("g", "m", FINAL_EPOCH) is session


def test_a_missing_session_is_not_found() -> None:
    cache = ShareSessionCache(max_sessions=10)
    cache.open("g", "m", 1)
    for group, member in (("g", "other"), ("other", "m")):
        for epoch in (1, FINAL_EPOCH):
            with refused(ErrorCode.share_session_not_found):
                cache.resume(group, member, epoch)


def test_the_epoch_wraps_from_int32_max_to_one() -> None:
    session = ShareSession("g", "m", 1, next_epoch=INT32_MAX - 1)
    session.advance()
    assert session.next_epoch == INT32_MAX
    session.advance()
    assert session.next_epoch == 1


def test_opening_again_replaces_the_members_session() -> None:
    cache = ShareSessionCache(max_sessions=10)
    old = cache.open("g", "m", 1)
    old.partitions[(uuid.UUID(int=1), 0)] = None
    old.advance()
    new = cache.open("g", "m", 2)
    assert new is not old
    assert (new.next_epoch, new.partitions, new.connection_id) == (1, {}, 2)
    assert len(cache) == 1
    assert cache.resume("g", "m", 1) is new


def test_the_session_limit() -> None:
    cache = ShareSessionCache(max_sessions=2)
    cache.open("g", "a", 1)
    cache.open("g", "b", 1)
    with refused(ErrorCode.share_session_limit_reached):
        cache.open("g", "c", 1)
    assert len(cache) == 2
    assert cache.of_member("g", "c") is None
    # A member replacing its own session does not need a free slot.
    assert cache.open("g", "a", 2).connection_id == 2
    cache.close("g", "b")
    assert cache.open("g", "c", 1).member_id == "c"


def test_close() -> None:
    cache = ShareSessionCache(max_sessions=10)
    session = cache.open("g", "m", 1)
    assert cache.close("g", "m") is session
    assert cache.close("g", "m") is None
    assert len(cache) == 0
    with refused(ErrorCode.share_session_not_found):
        cache.resume("g", "m", 1)


def test_a_dropped_connection_closes_only_its_own_sessions() -> None:
    cache = ShareSessionCache(max_sessions=10)
    a = cache.open("g", "a", 1)
    b = cache.open("h", "b", 1)
    cache.open("g", "c", 2)
    closed = cache.close_connection(1)
    assert {id(s) for s in closed} == {id(a), id(b)}
    assert len(cache) == 1
    assert cache.of_member("g", "c") is not None
    assert cache.close_connection(1) == []


def test_a_session_moved_to_a_new_connection_survives_the_old_one() -> None:
    cache = ShareSessionCache(max_sessions=10)
    cache.open("g", "m", 1)
    moved = cache.open("g", "m", 2)
    assert cache.close_connection(1) == []
    assert cache.of_member("g", "m") is moved


def test_sessions_are_keyed_by_group_and_member() -> None:
    cache = ShareSessionCache(max_sessions=10)
    one = cache.open("g1", "m", 1)
    two = cache.open("g2", "m", 1)
    one.advance()
    assert cache.resume("g1", "m", 2) is one
    assert cache.resume("g2", "m", 1) is two
