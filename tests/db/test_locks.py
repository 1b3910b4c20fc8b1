import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import text, update

from db.engine import session_factory
from db.locks import (
    LapsedLease,
    LeaseLost,
    LockHeld,
    acquire_lock,
    check_lease,
    release_lock,
    renew_lock,
)
from db.models import ServiceLock
from db.timestamps import utc_now

MINUTE = timedelta(minutes=1)


def lease_of(sessions, name: str) -> ServiceLock | None:
    with sessions() as session:
        return session.get(ServiceLock, name)


def expire(sessions, name: str) -> None:
    """The holder stopped renewing: its lease ran out a moment ago."""
    with sessions.begin() as session:
        session.execute(
            update(ServiceLock)
            .where(ServiceLock.name == name)
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )


def test_a_held_lease_refuses_a_second_holder_until_released(engine):
    sessions = session_factory(engine)
    assert acquire_lock(sessions, "retrain", "run A", MINUTE) is None
    with pytest.raises(LockHeld, match=r"another retrain is running \(run A since .* until"):
        acquire_lock(sessions, "retrain", "run B", MINUTE)
    acquire_lock(sessions, "score", "run B", MINUTE)
    release_lock(sessions, "retrain", "run B")  # not the holder: nothing released
    with pytest.raises(LockHeld):
        acquire_lock(sessions, "retrain", "run C", MINUTE)
    release_lock(sessions, "retrain", "run A")
    acquire_lock(sessions, "retrain", "run C", MINUTE)


def test_a_lease_expires_a_lease_from_now_and_renewing_extends_it(engine):
    sessions = session_factory(engine)
    before = utc_now()
    acquire_lock(sessions, "score", "run A", MINUTE)
    first = lease_of(sessions, "score").expires_at
    assert before + MINUTE <= first <= utc_now() + MINUTE
    assert renew_lock(sessions, "score", "run A", 2 * MINUTE)
    assert lease_of(sessions, "score").expires_at >= first + MINUTE


def test_a_lapsed_lease_is_taken_over_and_its_holder_cannot_renew_it(engine):
    sessions = session_factory(engine)
    acquire_lock(sessions, "score", "killed run", MINUTE)
    expire(sessions, "score")
    lapsed = acquire_lock(sessions, "score", "next run", MINUTE)
    assert isinstance(lapsed, LapsedLease)
    assert lapsed.holder == "killed run"
    assert lease_of(sessions, "score").holder == "next run"
    # A holder that was only paused finds out at its next heartbeat.
    assert not renew_lock(sessions, "score", "killed run", MINUTE)
    assert lease_of(sessions, "score").holder == "next run"


def test_a_renewed_lease_is_not_taken_over(engine):
    sessions = session_factory(engine)
    acquire_lock(sessions, "score", "live run", MINUTE)
    expire(sessions, "score")
    assert renew_lock(sessions, "score", "live run", MINUTE)
    with pytest.raises(LockHeld):
        acquire_lock(sessions, "score", "next run", MINUTE)
    assert lease_of(sessions, "score").holder == "live run"


def test_a_lease_checked_after_a_takeover_names_who_took_it(engine):
    sessions = session_factory(engine)
    acquire_lock(sessions, "retrain", "run A", MINUTE)
    with sessions.begin() as session:
        check_lease(session, "retrain", "run A")
    expire(sessions, "retrain")
    acquire_lock(sessions, "retrain", "run B", MINUTE)
    taken_over = r"this retrain lost its lease \(run B took it over\)"
    with pytest.raises(LeaseLost, match=taken_over), sessions.begin() as session:
        check_lease(session, "retrain", "run A")
    release_lock(sessions, "retrain", "run B")
    with pytest.raises(LeaseLost, match=r"\(it lapsed\)"), sessions.begin() as session:
        check_lease(session, "retrain", "run A")


# InnoDB refreshes its information_schema lock tables only when they were not read for
# 0.1 s: polled more often, they never change.
LOCK_WAITS_REFRESH = 0.15


def row_lock_waiters(engine) -> int:
    """Sessions of this test's database waiting for a row lock, as the server reports them."""
    if engine.dialect.name == "postgresql":
        query = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
    else:
        query = (
            "SELECT count(*) FROM information_schema.innodb_trx t "
            "JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id "
            "WHERE t.trx_state = 'LOCK WAIT' AND p.db = DATABASE()"
        )
    with engine.connect() as connection:
        return connection.scalar(text(query))


@pytest.mark.parametrize("database_url", ["postgresql", "mysql"], indirect=True)
def test_a_takeover_waits_until_a_promotion_that_checked_the_lease_commits(engine):
    """check_lease locks the lease row (SELECT ... FOR UPDATE) until the checking transaction
    ends. A run paused past its lease that checked it just before it lapsed must commit its
    promotion before the next run takes the lease over, never beside it: the takeover, in
    another session, blocks on the row until the promotion commits."""
    sessions = session_factory(engine)
    acquire_lock(sessions, "retrain", "paused run", MINUTE)
    expire(sessions, "retrain")  # the paused run checks its lease just as it lapses
    order: list[str] = []
    failures: list[BaseException] = []

    def next_run() -> None:
        try:
            lapsed = acquire_lock(sessions, "retrain", "the next run", MINUTE)
            order.append(f"took over the lease of {lapsed.holder}")
        except BaseException as error:
            failures.append(error)

    taker = threading.Thread(target=next_run, name="the next run", daemon=True)
    with sessions.begin() as promotion:
        check_lease(promotion, "retrain", "paused run")
        taker.start()
        deadline = time.monotonic() + 30
        while row_lock_waiters(engine) == 0:
            assert taker.is_alive(), f"the takeover did not wait: {order or failures}"
            assert time.monotonic() < deadline, "the takeover never waited for the row lock"
            time.sleep(LOCK_WAITS_REFRESH)
        assert order == []
        order.append("promotion committed")  # the with block commits right after this
    taker.join(timeout=30)
    assert not taker.is_alive(), "the takeover still waits after the promotion committed"
    assert failures == []
    assert order == ["promotion committed", "took over the lease of paused run"]
    assert lease_of(sessions, "retrain").holder == "the next run"
