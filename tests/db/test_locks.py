from datetime import timedelta

import pytest
from sqlalchemy import update

from db.engine import session_factory
from db.locks import LockHeld, acquire_lock, release_lock
from db.models import ServiceLock
from db.timestamps import utc_now

HOUR = timedelta(hours=1)


def test_a_held_lock_refuses_a_second_holder_until_released(engine):
    sessions = session_factory(engine)
    acquire_lock(sessions, "retrain", "run A", HOUR)
    with pytest.raises(LockHeld, match="another retrain is running \\(run A since"):
        acquire_lock(sessions, "retrain", "run B", HOUR)
    acquire_lock(sessions, "score", "run B", HOUR)
    release_lock(sessions, "retrain", "run B")  # not the holder: nothing released
    with pytest.raises(LockHeld):
        acquire_lock(sessions, "retrain", "run C", HOUR)
    release_lock(sessions, "retrain", "run A")
    acquire_lock(sessions, "retrain", "run C", HOUR)


def test_a_stale_lock_is_taken_over(engine):
    sessions = session_factory(engine)
    acquire_lock(sessions, "retrain", "crashed run", HOUR)
    with sessions.begin() as session:
        session.execute(update(ServiceLock).values(acquired_at=utc_now() - 2 * HOUR))
    acquire_lock(sessions, "retrain", "new run", HOUR)
    with sessions() as session:
        assert session.get(ServiceLock, "retrain").holder == "new run"
