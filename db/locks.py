"""Database-level job leases, so manual runs are covered as well as scheduled ones, on any
host.

A lease is a row keyed by name: inserting it is atomic on every back-end, so only one
holder can succeed. Its holder renews it before `expires_at`; a lease left to expire belongs
to a run that died (killed, out of memory, its host lost), and the next run takes it over.
Nothing here rests on process ids, so holders may run on different hosts; expiry times come
from the holders' clocks, which must agree to well within a lease's duration.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.errors import DataLayerError
from db.models import ServiceLock
from db.timestamps import utc_now


class LockHeld(DataLayerError):
    pass


class LeaseLost(DataLayerError):
    pass


@dataclass(frozen=True)
class LapsedLease:
    """A lease taken over: its holder stopped renewing it."""

    holder: str
    expired_at: datetime


def acquire_lock(
    sessions: sessionmaker[Session], name: str, holder: str, lease: timedelta
) -> LapsedLease | None:
    """Take the lease for `lease` from now, each step in its own committed transaction, or
    raise LockHeld naming the holder. The lapsed lease it took over, if any."""
    lapsed = take_over_lapsed(sessions, name)
    now = utc_now()
    try:
        with sessions.begin() as session:
            session.add(
                ServiceLock(name=name, holder=holder, acquired_at=now, expires_at=now + lease)
            )
    except IntegrityError:
        with sessions() as session:
            current = session.get(ServiceLock, name)
        who = (
            f"{current.holder} since {current.acquired_at:%Y-%m-%d %H:%M} UTC, lease renewed "
            f"until {current.expires_at:%H:%M:%S} UTC"
            if current
            else "?"
        )
        raise LockHeld(f"another {name} is running ({who}); wait for it to finish") from None
    return lapsed


def take_over_lapsed(sessions: sessionmaker[Session], name: str) -> LapsedLease | None:
    """Delete the lease `name` if it expired; what it was."""
    now = utc_now()
    with sessions.begin() as session:
        expired = session.execute(
            select(ServiceLock.holder, ServiceLock.expires_at).where(
                ServiceLock.name == name, ServiceLock.expires_at < now
            )
        ).first()
        if expired is None:
            return None
        # A renewal that came in since is kept: only the expired row goes.
        deleted = session.execute(
            delete(ServiceLock).where(
                ServiceLock.name == name,
                ServiceLock.holder == expired.holder,
                ServiceLock.expires_at < now,
            )
        )
    return LapsedLease(expired.holder, expired.expires_at) if deleted.rowcount else None


def renew_lock(sessions: sessionmaker[Session], name: str, holder: str, lease: timedelta) -> bool:
    """Extend the holder's lease to `lease` from now; False if it is no longer the holder
    (its lease lapsed and another run took it over)."""
    with sessions.begin() as session:
        renewed = session.execute(
            update(ServiceLock)
            .where(ServiceLock.name == name, ServiceLock.holder == holder)
            .values(expires_at=utc_now() + lease)
        )
    return renewed.rowcount == 1


def check_lease(session: Session, name: str, holder: str) -> None:
    """Raise LeaseLost unless `holder` still holds the lease `name`. The lease row stays locked
    until the session's transaction ends, so a takeover cannot slip in before its writes
    commit: a run paused past its lease, and taken over meanwhile, must not write as if it
    still held it."""
    current = session.scalar(
        select(ServiceLock.holder).where(ServiceLock.name == name).with_for_update()
    )
    if current != holder:
        taken_by = f"{current} took it over" if current else "it lapsed"
        raise LeaseLost(f"this {name} lost its lease ({taken_by}): it ran past its lease")


def release_lock(sessions: sessionmaker[Session], name: str, holder: str) -> None:
    with sessions.begin() as session:
        session.execute(
            delete(ServiceLock).where(ServiceLock.name == name, ServiceLock.holder == holder)
        )
