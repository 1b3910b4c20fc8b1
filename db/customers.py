"""Who is scored, and the partitions scoring splits them into; who a retrain trains on.

Two rules say who is active: `is_active`, the flag in the service's customers table, and
`recent_events`, an event in the last `within_days` before the scoring date, answered from
the event source. A retrain reads a sample of the customers with events, bounded in size
and chosen in the database (`training_sample`).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

import pandas as pd
from sqlalchemy import Column, Connection, Select, String, cast, exists, func, select

from db.errors import SourceMappingError
from db.models import Customer
from db.source import CustomerRange, EventColumns, in_range

RuleName = Literal["is_active", "recent_events"]


@dataclass(frozen=True)
class ActiveRule:
    """Who is scored: the is_active flag, or an event within within_days before as_of."""

    name: RuleName = "is_active"
    within_days: int = 365

    def __post_init__(self) -> None:
        if self.name not in get_args(RuleName):
            raise SourceMappingError(f"unknown active-customer rule {self.name!r}")

    @property
    def reads_events(self) -> bool:
        """True when the rule is answered from the event source, not the customers table."""
        return self.name == "recent_events"

    def query(self, columns: EventColumns, as_of: datetime) -> Select:
        """customer_id of everyone to score at as_of. is_active reads the service's customers
        table and ignores the event columns; recent_events reads the event source."""
        if not self.reads_events:
            return select(Customer.customer_id.label("customer_id")).where(
                Customer.is_active.is_(True), Customer.created_at <= as_of
            )
        return (
            select(columns.customer_id.label("customer_id"))
            .where(
                columns.occurred_at > columns.moment(self._since(as_of)),
                columns.occurred_at <= columns.moment(as_of),
            )
            .group_by(columns.customer_id)
        )

    def ids_in(self, events: pd.DataFrame, as_of: datetime) -> list[str]:
        """The recent_events rule applied to events already read up to as_of, which must reach
        back at least within_days: the ids in the order read (a range read's key order)."""
        if not self.reads_events:
            raise ValueError(f"the {self.name} rule is not answered by events")
        recent = events["occurred_at"] > self._since(as_of)
        return events.loc[recent, "customer_id"].unique().tolist()

    def _since(self, as_of: datetime) -> datetime:
        return as_of - timedelta(days=self.within_days)


def active_customer_ids(
    connection: Connection, active: Select, customer_range: CustomerRange | None = None
) -> list[str]:
    """The active customers (optionally of one key range), sorted by key."""
    ids = active.subquery()
    query = select(ids.c.customer_id).order_by(ids.c.customer_id)
    if customer_range is not None:
        query = query.where(*in_range(ids.c.customer_id, customer_range))
    return list(connection.execute(query).scalars().all())


def partition_ranges(connection: Connection, active: Select, size: int) -> list[CustomerRange]:
    """Key ranges of about `size` active customers each; only the boundaries are read."""
    ids = active.subquery()
    numbered = select(
        ids.c.customer_id,
        func.row_number().over(order_by=ids.c.customer_id).label("position"),
    ).subquery()
    bounds = list(
        connection.execute(
            select(numbered.c.customer_id)
            .where((numbered.c.position - 1) % size == 0)
            .order_by(numbered.c.customer_id)
        ).scalars()
    )
    return list(zip(bounds, [*bounds[1:], None], strict=True))


@dataclass(frozen=True)
class CustomerSample:
    """The customers a retrain reads: `ids` (in their text's order) of the `population`
    customers with an event at or before its cutoff."""

    ids: list
    population: int

    @property
    def everyone(self) -> bool:
        return len(self.ids) == self.population


def sample_key(customer_id: Column):
    """What orders customers into the sample: md5 of the id's text, the same on every
    database (SQLite's md5 is db.engine's), run and host, and unrelated to the id's order."""
    return func.md5(cast(customer_id, String))


def training_sample(
    connection: Connection, columns: EventColumns, cutoff: datetime, size: int
) -> CustomerSample:
    """The `size` customers with an event at or before `cutoff` that come first by
    sample_key (all of them when there are no more): a sample that stays the same from run
    to run and only grows by the newcomers that fall into it. Chosen in the database, so the
    other customers' events are never read."""
    until = columns.occurred_at <= columns.moment(cutoff)
    if connection.scalar(select(exists().where(columns.customer_id.is_(None), until))):
        raise SourceMappingError("events.customer_id has null customer ids")
    present = select(columns.customer_id.label("customer_id")).where(until).distinct().subquery()
    rows = connection.execute(
        select(present.c.customer_id, func.count().over())
        .order_by(sample_key(present.c.customer_id), present.c.customer_id)
        .limit(size)
    ).all()
    ids = sorted((customer_id for customer_id, _ in rows), key=str)
    return CustomerSample(ids, rows[0][1] if rows else 0)


def copy_customers(source: Connection, target: Connection, chunk_rows: int = 50_000) -> int:
    """Every row of the customers table of `source` into the empty one of `target`, a chunk
    of `chunk_rows` at a time; the number copied."""
    query = select(Customer.customer_id, Customer.is_active, Customer.created_at)
    copied = 0
    for rows in source.execution_options(yield_per=chunk_rows).execute(query).partitions():
        target.execute(Customer.__table__.insert(), [row._asdict() for row in rows])
        copied += len(rows)
    return copied
