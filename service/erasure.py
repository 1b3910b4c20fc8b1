"""Personal data: erasing customers (`propensity forget`) and deleting events older than the
retention window (`propensity purge`, the retention flow), as plain functions.

Forget runs under the score lease, so no score run is in flight while customers are
erased: one that holds the lease is waited for, and a run found `running` under the lease
is dead and abandoned (its staged rows go), so it can never publish an erased customer.
"""

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from db.engine import transaction
from db.erasure import (
    Forgotten,
    SuppressionKeyError,
    customers_with_events_before,
    forget_customers,
    log_erasure,
    purge_events_before,
    update_erasure,
)
from db.event_import import stored_ids
from db.locks import LockHeld
from db.scores import abandon_dead_runs
from db.timestamps import utc_now
from service.databases import Databases
from service.leases import Lease, exclusive

PURGE_BATCH_ROWS = 50_000
LEASE_POLL_SECONDS = 2.0
logger = logging.getLogger(__name__)


class NothingToForget(ValueError):
    """None of the ids asked is a customer the service holds anything of."""


def forget(
    databases: Databases,
    customer_ids: list[str],
    secret: bytes | None,
    heartbeat: timedelta,
    wait: timedelta,
    on_wait: Callable[[str], None] = lambda why: None,
) -> Forgotten:
    """Erase the customers from the service database in one transaction (db.erasure), under
    the score lease (waiting up to `wait` for a score run that holds it; `on_wait` is told
    why, once); NothingToForget, with nothing changed, when none of them is found."""
    if secret is None:
        raise SuppressionKeyError(
            "PROPENSITY_SUPPRESSION_KEY is not set: forget adds a keyed hash of each erased id "
            "to the suppression list, which imports honour; set a long random secret and keep it"
        )
    ids = as_stored(customer_ids)
    with (
        score_lease(databases, heartbeat, wait, on_wait),
        transaction(databases.service()) as session,
    ):
        forgotten = forget_customers(session, ids, secret)
        if not forgotten.found:
            raise NothingToForget(nothing_found(forgotten))
        # Any run still `running` while this holds the score lease is dead; abandoned, it can
        # never publish what it staged of the erased customers.
        abandon_dead_runs(session)
    return forgotten


def nothing_found(forgotten: Forgotten) -> str:
    before = forgotten.already_erased
    erased = f" ({before} of them erased before)" if before else ""
    return (
        f"none of the {forgotten.asked} id(s) given is a customer the service holds anything "
        f"of{erased}: nothing changed"
    )


def as_stored(customer_ids: list[str]) -> list[str]:
    """The ids as imports store them (NFC, invisible characters and outer blanks removed):
    the suppression list's keys are hashes of those."""
    ids = stored_ids(pd.Series(customer_ids, dtype="str"))
    if ids.empty:
        raise ValueError("no customer ids given: pass ids as arguments or --file")
    if (ids == "").any():
        raise ValueError("an empty customer id was given")
    return ids.tolist()


@contextmanager
def score_lease(
    databases: Databases, heartbeat: timedelta, wait: timedelta, on_wait: Callable[[str], None]
) -> Iterator[Lease]:
    """The score lease, held by this process for the block; while a score run holds it, it
    is asked for again every LEASE_POLL_SECONDS for up to `wait` (then LockHeld)."""
    holder = f"propensity forget (pid {os.getpid()} on {socket.gethostname()})"
    deadline = time.monotonic() + wait.total_seconds()
    told = False
    with ExitStack() as stack:
        while True:
            try:
                lease = stack.enter_context(
                    exclusive("score", databases, heartbeat, holder, logger)
                )
                break
            except LockHeld as held:
                if time.monotonic() >= deadline:
                    raise
                if not told:
                    on_wait(f"waiting for the score lease: {held}")
                    told = True
                time.sleep(LEASE_POLL_SECONDS)
        yield lease


@dataclass(frozen=True)
class Purge:
    """A purge: events that occurred before `before` deleted, `batches` transactions of at
    most PURGE_BATCH_ROWS each; `customers` had events among them. Logged as erasure
    `erasure_id`."""

    before: datetime
    events: int
    customers: int
    batches: int
    erasure_id: int


def purge(
    databases: Databases,
    retention_days: int | None,
    now: datetime | None = None,
    batch_rows: int = PURGE_BATCH_ROWS,
    on_batch: Callable[[int], None] = lambda events: None,
) -> Purge:
    """Delete the service's events older than `retention_days`, a bounded transaction at a
    time; the erasure log row is written with the first batch and kept up to date by each
    one, so it always counts what is gone, also after a purge stopped half way."""
    if retention_days is None:
        raise ValueError(
            "no retention window set: PROPENSITY_EVENT_RETENTION_DAYS is the number of days "
            "of events to keep"
        )
    moment = now or utc_now()
    before = moment - timedelta(days=retention_days)
    engine = databases.service()
    with transaction(engine) as session:
        customers = customers_with_events_before(session, before)
    note = f"events before {before:%Y-%m-%d %H:%M} UTC: {retention_days} days kept"
    removed, batches, erasure_id = 0, 0, None
    while True:
        with transaction(engine) as session:
            deleted = purge_events_before(session, before, batch_rows)
            removed, batches = removed + deleted, batches + 1
            counts = {"customer_events": removed}
            if erasure_id is None:
                erasure_id = log_erasure(session, "purge", customers, counts, note, moment)
            else:
                update_erasure(session, erasure_id, counts)
        on_batch(deleted)
        if deleted < batch_rows:
            return Purge(before, removed, customers, batches, erasure_id)
