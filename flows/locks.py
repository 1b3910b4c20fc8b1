"""One retrain and one score at a time, across manual and scheduled runs."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from prefect.runtime import flow_run

from db.engine import session_factory
from db.locks import acquire_lock, release_lock
from flows.databases import Databases


@contextmanager
def exclusive(job: str, databases: Databases, stale_after: timedelta) -> Iterator[None]:
    """Hold the database-level lock of `job` (e.g. "retrain") for the duration of the block."""
    sessions = session_factory(databases.service())
    holder = f"flow run {flow_run.get_id() or uuid.uuid4()}"
    acquire_lock(sessions, job, holder, stale_after)
    try:
        yield
    finally:
        release_lock(sessions, job, holder)
