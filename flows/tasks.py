"""Task options shared by the flows: I/O tasks retry, but only on transient database errors."""

from functools import partial

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.exc import InterfaceError, OperationalError

from db.errors import DatabaseUnreachable

TRANSIENT_ERRORS = (OperationalError, InterfaceError, DatabaseUnreachable)


def transient_database_error(_task, _task_run, state) -> bool:
    """Bad input or a missing champion will not fix itself: fail at once instead of retrying."""
    return isinstance(state.result(raise_on_failure=False), TRANSIENT_ERRORS)


io_task = partial(
    task,
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=transient_database_error,
    cache_policy=NO_CACHE,
)
compute_task = partial(task, cache_policy=NO_CACHE)
