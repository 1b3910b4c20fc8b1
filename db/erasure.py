"""Erasing customers and old events, as the database holds them.

- The suppression list (customer_suppressions) keeps a keyed hash (HMAC-SHA256) of each
  erased customer's id, never the id: imports compute the same hash of the ids they read
  and skip those listed. It also holds the hash of KEY_CHECK under the key it was made
  with, so a changed key is refused instead of letting erased customers back in.
- `forget_customers` removes a customer from every table of the service database in the
  caller's transaction, keeps the published ranks gapless, and logs the erasure.
- `purge_events_before` deletes old events a bounded batch at a time.
- The erasure log (erasures) holds counts per table, never an id.

Imports and erasures are serialised by `locked_suppression_keys`: an import reads the list
under a shared lock held until it commits, an erasure takes it exclusively first, so an
import never stores a customer erased while it ran and an erasure removes what an import
committed before it.
"""

import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy import delete, distinct, exists, func, insert, select, text, update
from sqlalchemy.orm import Session

from db.bulk import MYSQL, insert_new_rows
from db.errors import DataLayerError
from db.models import (
    Customer,
    CustomerEvent,
    CustomerEventStaging,
    CustomerSuppression,
    Erasure,
    PropensityScore,
    PropensityScoreStaging,
    ScoreRun,
)
from db.timestamps import utc_now

# Its hash under the list's key: an id never holds a NUL, so no customer has this one.
KEY_CHECK = "\x00propensity suppression key check"
# A key no hash can be: written and removed in an erasure's transaction, to lock the list.
PLACEHOLDER = ""
# What an erased id becomes where a stored text named it.
ERASED_MARK = "<erased customer>"
# Ids per IN list: far below every database's limit on bound parameters.
IDS_PER_QUERY = 500
# The tables holding rows of a customer, in the order they are deleted (events before
# the customer they refer to).
CUSTOMER_TABLES = (
    CustomerEventStaging,
    CustomerEvent,
    PropensityScoreStaging,
    PropensityScore,
    Customer,
)


class SuppressionKeyError(DataLayerError):
    """The suppression list cannot be read or extended with the key at hand."""


def customer_key(secret: bytes, customer_id: str) -> str:
    """The keyed hash the suppression list keeps of a customer id: HMAC-SHA256, in hex."""
    return hmac.digest(secret, customer_id.encode(), "sha256").hex()


def locked_suppression_keys(session: Session, exclusive: bool) -> frozenset[str]:
    """Every key on the suppression list, locked until the transaction ends: shared (an
    import: others may import too, no erasure may add keys) or exclusive (an erasure: no
    import may read the list or store events meanwhile)."""
    dialect = session.get_bind().dialect.name
    table = CustomerSuppression.__table__
    query = select(CustomerSuppression.customer_key)
    if dialect == "postgresql":
        # Row locks do not stop rows being added: the table's lock does.
        mode = "SHARE ROW EXCLUSIVE" if exclusive else "SHARE"
        name = session.get_bind().dialect.identifier_preparer.format_table(table)
        session.execute(text(f"LOCK TABLE {name} IN {mode} MODE"))
    elif dialect in MYSQL:
        # InnoDB locks the gaps a locking read scans too, so no key can be added. Gap locks
        # never conflict with each other, though: on a list with no row to lock, only an
        # insert waits for the imports' shared locks, so an erasure writes (and removes) a
        # placeholder row, whose lock then keeps imports out until it commits.
        query = query.with_for_update(read=not exclusive)
        if exclusive:
            placeholder = insert(CustomerSuppression).values(
                customer_key=PLACEHOLDER, suppressed_at=utc_now()
            )
            session.execute(placeholder)
            session.execute(
                delete(CustomerSuppression).where(CustomerSuppression.customer_key == PLACEHOLDER)
            )
    else:
        # SQLite has one writer at a time: a write, even of nothing, takes its lock now.
        session.execute(
            delete(CustomerSuppression).where(CustomerSuppression.customer_key == PLACEHOLDER)
        )
    return frozenset(session.scalars(query))


def require_key(keys: frozenset[str], secret: bytes | None) -> bytes:
    """The secret, when it is the key the (non-empty) list was made with."""
    if secret is None:
        raise SuppressionKeyError(
            "erased customers are on the suppression list: set PROPENSITY_SUPPRESSION_KEY "
            "(the key they were erased with) so that they are recognised and skipped"
        )
    if customer_key(secret, KEY_CHECK) not in keys:
        raise SuppressionKeyError(
            "PROPENSITY_SUPPRESSION_KEY is not the key the suppression list was made with: "
            "erased customers would not be recognised; set the key they were erased with"
        )
    return secret


@dataclass(frozen=True)
class SuppressionList:
    """The erased customers' keys as a transaction read them, and the key that makes them."""

    keys: frozenset[str]
    secret: bytes | None = None

    @classmethod
    def read(cls, session: Session, secret: bytes | None) -> "SuppressionList":
        """The list, under a shared lock until the session's transaction ends (see
        locked_suppression_keys); refused when it is not empty and `secret` is not its key."""
        keys = locked_suppression_keys(session, exclusive=False)
        return cls(keys, require_key(keys, secret) if keys else secret)

    def suppressed(self, customer_ids: pd.Series) -> pd.Series:
        """True where the id is an erased customer's: each distinct id is hashed once."""
        if not self.keys:
            return pd.Series(False, index=customer_ids.index)
        erased = [
            customer_id
            for customer_id in customer_ids.unique().tolist()
            if customer_key(self.secret, customer_id) in self.keys
        ]
        return customer_ids.isin(erased)


@dataclass(frozen=True)
class Forgotten:
    """What a forget did: the distinct ids asked, those found and erased, those erased
    before (on the suppression list, nothing left), the rows removed per table, the runs
    whose ranks were closed up and the run errors that named a customer."""

    asked: int
    found: int
    already_erased: int
    unknown_ids: tuple[str, ...] = ()
    rows_removed: dict[str, int] = field(default_factory=dict)
    runs_reranked: tuple[int, ...] = ()
    errors_redacted: int = 0


def forget_customers(
    session: Session, customer_ids: Sequence[str], secret: bytes, now: datetime | None = None
) -> Forgotten:
    """Erase the customers from every table in the caller's transaction: their events
    (staged ones too), their row, their scores in every kept run (staged too), their ids in
    run errors; close up the ranks of the runs that lost a row, add their keys to the
    suppression list and log the erasure. Ids found nowhere change nothing: when none is
    found, nothing is written (the caller decides what that means)."""
    keys = locked_suppression_keys(session, exclusive=True)
    if keys:
        require_key(keys, secret)
    asked = sorted(set(customer_ids))
    found = present_ids(session, asked)
    missing = [customer_id for customer_id in asked if customer_id not in found]
    unknown = tuple(c for c in missing if customer_key(secret, c) not in keys)
    already_erased = len(missing) - len(unknown)
    if not found:
        return Forgotten(len(asked), 0, already_erased, unknown)
    first_ranks = first_lost_ranks(session, found)
    removed = {model.__tablename__: delete_rows(session, model, found) for model in CUSTOMER_TABLES}
    for run_id, rank in first_ranks.items():
        close_up_ranks(session, run_id, rank)
    redacted = redact_run_errors(session, found)
    moment = now or utc_now()
    suppress(session, secret, found, keys, moment)
    forgotten = Forgotten(
        len(asked),
        len(found),
        already_erased,
        unknown,
        {**removed, "score_runs.error (redacted)": redacted},
        tuple(sorted(first_ranks)),
        redacted,
    )
    note = (
        f"{forgotten.asked} id(s) asked: {forgotten.found} found, "
        f"{already_erased} erased before, {len(unknown)} not known"
    )
    log_erasure(session, "forget", len(found), forgotten.rows_removed, note, moment)
    return forgotten


def chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), IDS_PER_QUERY):
        yield ids[start : start + IDS_PER_QUERY]


def of_customers(session: Session, model, customer_ids: Iterable[str]) -> Iterable[list]:
    """WHERE clauses selecting the customers' rows of `model`, a part of them at a time. Score
    rows are looked up in their key (run, customer), among the runs holding scores: a
    scan of every run's scores per part would be most of an erasure's time."""
    ordered = sorted(customer_ids)
    runs = None
    if model in (PropensityScore, PropensityScoreStaging):
        holding = exists().where(model.score_run_id == ScoreRun.id)
        runs = list(session.scalars(select(ScoreRun.id).where(holding)))
    for part in chunks(ordered):
        by_customer = model.__table__.c.customer_id.in_(part)
        yield [by_customer] if runs is None else [model.score_run_id.in_(runs), by_customer]


def present_ids(session: Session, customer_ids: Sequence[str]) -> set[str]:
    """The ids some table holds a row of."""
    present: set[str] = set()
    for model in CUSTOMER_TABLES:
        column = model.__table__.c.customer_id
        for where in of_customers(session, model, customer_ids):
            present.update(session.scalars(select(column).where(*where).distinct()))
    return present


def first_lost_ranks(session: Session, customer_ids: Iterable[str]) -> dict[int, int]:
    """By published run holding some of the customers, the best rank among them."""
    score = PropensityScore
    first: dict[int, int] = {}
    for where in of_customers(session, score, customer_ids):
        rows = session.execute(
            select(score.score_run_id, func.min(score.rank))
            .where(*where)
            .group_by(score.score_run_id)
        )
        for run_id, rank in rows:
            first[run_id] = min(rank, first.get(run_id, rank))
    return first


def delete_rows(session: Session, model, customer_ids: Iterable[str]) -> int:
    return sum(
        session.execute(delete(model).where(*where)).rowcount
        for where in of_customers(session, model, customer_ids)
    )


def close_up_ranks(session: Session, score_run_id: int, first_lost: int) -> None:
    """Number the run's ranks from `first_lost` on again, 1 apart in their order, so the
    ranks stay 1..n: `rank <= 10` still means ten customers. Ranks before it keep theirs;
    deciles keep theirs (a decile only lost the erased customer)."""
    score = PropensityScore
    renumbered = (
        select(
            score.customer_id,
            (func.row_number().over(order_by=score.rank) + (first_lost - 1)).label("rank"),
        )
        .where(score.score_run_id == score_run_id, score.rank > first_lost)
        .subquery()
    )
    session.execute(
        update(score)
        .where(score.score_run_id == score_run_id, score.customer_id == renumbered.c.customer_id)
        .values(rank=renumbered.c.rank)
    )


def redact_run_errors(session: Session, customer_ids: Iterable[str]) -> int:
    """Replace the ids in score_runs.error (a failure may name the customers it failed on)
    by ERASED_MARK; the number of errors changed."""
    ids = sorted(customer_ids, key=len, reverse=True)  # a longer id before one inside it
    pattern = re.compile("|".join(map(re.escape, ids)))
    errors = session.execute(select(ScoreRun.id, ScoreRun.error).where(ScoreRun.error.is_not(None)))
    changed = 0
    for run_id, error in errors.all():
        redacted, count = pattern.subn(ERASED_MARK, error)
        if count:
            session.execute(update(ScoreRun).where(ScoreRun.id == run_id).values(error=redacted))
            changed += 1
    return changed


def suppress(
    session: Session,
    secret: bytes,
    customer_ids: Iterable[str],
    keys: frozenset[str],
    moment: datetime,
) -> None:
    """Add the customers' keys (and the key's check) to the suppression list."""
    new = {customer_key(secret, c) for c in [KEY_CHECK, *customer_ids]} - keys
    rows = [{"customer_key": key, "suppressed_at": moment} for key in sorted(new)]
    insert_new_rows(session, CustomerSuppression.__table__, rows)


def log_erasure(
    session: Session,
    kind: str,
    customers: int,
    rows_removed: dict[str, int],
    note: str,
    moment: datetime,
) -> int:
    """One row of the erasure log: counts, never an id. Its id."""
    row = Erasure(
        happened_at=moment, kind=kind, customers=customers, rows_removed=rows_removed, note=note
    )
    session.add(row)
    session.flush()
    return row.id


def customers_with_events_before(session: Session, before: datetime) -> int:
    return session.scalar(
        select(func.count(distinct(CustomerEvent.customer_id))).where(
            CustomerEvent.occurred_at < before
        )
    )


def purge_events_before(session: Session, before: datetime, batch_rows: int) -> int:
    """Delete at most `batch_rows` events that occurred before `before`; how many."""
    old = CustomerEvent.occurred_at < before
    if session.get_bind().dialect.name in MYSQL:
        # MariaDB refuses a LIMIT in the subquery below; its DELETE takes one itself.
        statement = delete(CustomerEvent).where(old).with_dialect_options(mysql_limit=batch_rows)
    else:
        batch = select(CustomerEvent.event_id).where(old).limit(batch_rows)
        statement = delete(CustomerEvent).where(CustomerEvent.event_id.in_(batch))
    return session.execute(statement).rowcount


def update_erasure(session: Session, erasure_id: int, rows_removed: dict[str, int]) -> None:
    session.execute(
        update(Erasure).where(Erasure.id == erasure_id).values(rows_removed=rows_removed)
    )
