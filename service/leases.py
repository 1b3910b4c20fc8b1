"""One retrain and one score at a time, across manual and scheduled runs and across hosts:
a run holds its job's lease (db/locks.py) and a thread of its process renews it."""

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from db.engine import session_factory
from db.errors import error_line
from db.locks import acquire_lock, check_lease, release_lock, renew_lock
from service.databases import Databases

# Three heartbeats may be missed (a busy database, a long pause of the process), and half a
# heartbeat more absorbs the difference between hosts' clocks: 105 s with the default 30 s.
LEASE_HEARTBEATS = 3.5


def lease_duration(heartbeat: timedelta) -> timedelta:
    return heartbeat * LEASE_HEARTBEATS


@dataclass(frozen=True)
class Lease:
    """The lease a run holds: the job's name and the holder it is registered under."""

    job: str
    holder: str

    def check(self, session: Session) -> None:
        """Raise LeaseLost unless the run still holds it, until the session's transaction ends."""
        check_lease(session, self.job, self.holder)


@contextmanager
def exclusive(
    job: str,
    databases: Databases,
    heartbeat: timedelta,
    holder: str,
    logger: logging.Logger | logging.LoggerAdapter,
) -> Iterator[Lease]:
    """Hold the lease of `job` (e.g. "retrain") as `holder` (a flow run, say) for the
    duration of the block, renewed every `heartbeat`; a lapsed lease of a dead run is taken
    over, with a warning to `logger`."""
    sessions = session_factory(databases.service())
    lease = lease_duration(heartbeat)
    lapsed = acquire_lock(sessions, job, holder, lease)
    if lapsed is not None:
        logger.warning(
            "took over the %s lease of %s, not renewed since it expired at %s UTC: that run died",
            job,
            lapsed.holder,
            f"{lapsed.expired_at:%Y-%m-%d %H:%M:%S}",
        )
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(heartbeat.total_seconds()):
            try:
                if not renew_lock(sessions, job, holder, lease):
                    logger.error("lost the %s lease: another run took it over", job)
                    return
            except SQLAlchemyError as error:
                logger.warning("could not renew the %s lease: %s", job, error_line(error))

    heartbeats = threading.Thread(target=renew, name=f"{job} lease", daemon=True)
    heartbeats.start()
    try:
        yield Lease(job, holder)
    finally:
        # Stopped before the release, so no renewal comes after it.
        stop.set()
        heartbeats.join()
        release_lock(sessions, job, holder)
