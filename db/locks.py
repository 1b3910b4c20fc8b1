"""Database-level job locks, so manual runs are covered as well as scheduled ones.

A lock is a row keyed by name: inserting it is atomic on every back-end, so only one
holder can succeed; a row older than `stale_after` belongs to a crashed job and is taken over.
"""

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.errors import DataLayerError
from db.models import ServiceLock
from db.timestamps import utc_now


class LockHeld(DataLayerError):
    pass


def acquire_lock(
    sessions: sessionmaker[Session], name: str, holder: str, stale_after: timedelta
) -> None:
    """Take the lock in its own committed transaction, or raise LockHeld naming the holder."""
    with sessions.begin() as session:
        session.execute(
            delete(ServiceLock).where(
                ServiceLock.name == name, ServiceLock.acquired_at < utc_now() - stale_after
            )
        )
    try:
        with sessions.begin() as session:
            session.add(ServiceLock(name=name, holder=holder, acquired_at=utc_now()))
    except IntegrityError:
        with sessions() as session:
            current = session.get(ServiceLock, name)
        who = f"{current.holder} since {current.acquired_at:%Y-%m-%d %H:%M} UTC" if current else "?"
        raise LockHeld(f"another {name} is running ({who}); wait for it to finish") from None


def release_lock(sessions: sessionmaker[Session], name: str, holder: str) -> None:
    with sessions.begin() as session:
        session.execute(
            delete(ServiceLock).where(ServiceLock.name == name, ServiceLock.holder == holder)
        )
