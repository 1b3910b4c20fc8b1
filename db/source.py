"""Where events are read from: the project's own table or a mapped existing table/view.

Identifiers from settings are validated, looked up by reflection and quoted by SQLAlchemy;
no SQL is built from strings.
"""

import itertools
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import adbc_driver_manager
import adbc_driver_manager.dbapi
import adbc_driver_postgresql.dbapi as adbc_postgresql
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pymysql.cursors import SSCursor
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Float,
    MetaData,
    Select,
    String,
    Table,
    and_,
    cast,
    func,
    inspect,
    literal,
    select,
    text,
)

from db.errors import SourceMappingError
from db.event_import import parse_timestamps
from db.models import Customer, CustomerEvent

EVENT_COLUMNS = ("customer_id", "event_type", "occurred_at", "amount")
# Half-open [low, high) range of customer keys; high None means "to the end".
CustomerRange = tuple[str, str | None]
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,127}$")


@dataclass(frozen=True)
class EventSource:
    """Table (None: the own customer_events) and the names of its columns."""

    table: str | None = None
    schema: str | None = None
    customer_id: str = "customer_id"
    event_type: str = "event_type"
    occurred_at: str = "occurred_at"
    amount: str | None = "amount"

    @property
    def is_own(self) -> bool:
        return self.table is None

    def names(self) -> dict[str, str | None]:
        return {
            "table": self.table,
            "schema": self.schema,
            "customer_id": self.customer_id,
            "event_type": self.event_type,
            "occurred_at": self.occurred_at,
            "amount": self.amount,
        }


@dataclass(frozen=True)
class EventColumns:
    """The source's columns, labelled with the service's own names."""

    customer_id: Column
    event_type: Column
    occurred_at: Column
    amount: Column | None

    def moment(self, service_time: datetime) -> datetime:
        """A service time (naive UTC) as a value for occurred_at: with its UTC offset where
        the column keeps one, so the database compares instants, not its session's clock."""
        aware = getattr(self.occurred_at.type, "timezone", False)
        return service_time.replace(tzinfo=UTC) if aware else service_time

    def labelled(self) -> list:
        amount = cast(self.amount, Float) if self.amount is not None else literal(None, Float)
        return [
            self.customer_id.label("customer_id"),
            self.event_type.label("event_type"),
            self.occurred_at.label("occurred_at"),
            amount.label("amount"),
        ]


def resolve_columns(connection: Connection, source: EventSource) -> EventColumns:
    """Check the mapping against the database before any work; fail naming what is missing."""
    if source.is_own:
        table = CustomerEvent.__table__
    else:
        for key, name in source.names().items():
            if name is not None and not IDENTIFIER.match(name):
                raise SourceMappingError(
                    f"event source {key} {name!r} is not a valid identifier "
                    "(letters, digits, _ and $, not starting with a digit)"
                )
        if not inspect(connection).has_table(source.table, schema=source.schema):
            where = f"{source.schema}.{source.table}" if source.schema else source.table
            raise SourceMappingError(f"event source table or view {where!r} does not exist")
        table = Table(source.table, MetaData(), schema=source.schema, autoload_with=connection)
    names = {key: key if source.is_own else getattr(source, key) for key in EVENT_COLUMNS}
    mapped = {key: name for key, name in names.items() if name is not None}
    missing = [name for name in mapped.values() if name not in table.c]
    if missing:
        raise SourceMappingError(
            f"event source {table.name!r} has no column(s) {', '.join(map(repr, missing))}; "
            f"it has {', '.join(table.c.keys())}"
        )
    return EventColumns(
        customer_id=table.c[mapped["customer_id"]],
        event_type=table.c[mapped["event_type"]],
        occurred_at=table.c[mapped["occurred_at"]],
        amount=table.c[mapped["amount"]] if "amount" in mapped else None,
    )


def in_range(key: Column, customer_range: CustomerRange) -> list:
    low, high = customer_range
    return [key >= low] if high is None else [key >= low, key < high]


def events_query(
    columns: EventColumns,
    cutoff: datetime,
    since: datetime | None = None,
    customer_range: CustomerRange | None = None,
) -> Select:
    """Events with since < occurred_at <= cutoff, optionally for customer_id in [low, high)."""
    conditions = [columns.occurred_at <= columns.moment(cutoff)]
    if since is not None:
        conditions.append(columns.occurred_at > columns.moment(since))
    if customer_range is not None:
        conditions += in_range(columns.customer_id, customer_range)
    return (
        select(*columns.labelled())
        .where(and_(*conditions))
        .order_by(columns.customer_id, columns.occurred_at)
    )


def stream_events(
    connection: Connection,
    source: EventSource,
    cutoff: datetime,
    since: datetime | None = None,
    customer_range: CustomerRange | None = None,
    chunk_rows: int = 100_000,
) -> Iterator[pd.DataFrame]:
    """Yield event frames of at most chunk_rows rows, through the bulk reader read_events
    uses where there is one, else a server-side cursor.

    A bulk read that fails before its first chunk falls back to the cursor, as read_events
    does; one that fails later raises, as chunks already handed out cannot be taken back."""
    columns = resolve_columns(connection, source)
    query = events_query(columns, cutoff, since, customer_range)
    tables = _bulk_tables(connection, source, columns, query)
    if tables is None:
        yield from _row_by_row(connection, query, customer_range, chunk_rows)
        return
    for table in tables:
        for offset in range(0, table.num_rows, chunk_rows):
            yield _arrow_frame(table.slice(offset, chunk_rows))


def _bulk_tables(
    connection: Connection, source: EventSource, columns: EventColumns, query: Select
) -> Iterator[pa.Table] | None:
    """The bulk reader's tables, once its first one has arrived; None where there is no
    bulk reader or it failed."""
    bulk_reader = _bulk_reader(connection, source, columns)
    if bulk_reader is None:
        return None
    tables = bulk_reader(connection, query)
    try:
        first = next(tables, None)
    except BULK_READ_ERRORS:
        return None
    return itertools.chain([] if first is None else [first], tables)


def _row_by_row(
    connection: Connection,
    query: Select,
    customer_range: CustomerRange | None,
    chunk_rows: int = 100_000,
) -> Iterator[pd.DataFrame]:
    """The generic path: SQLAlchemy rows from a server-side cursor, into frames."""
    prefer_range_index(connection, customer_range)
    result = connection.execution_options(stream_results=True, yield_per=chunk_rows).execute(query)
    for rows in result.partitions():
        yield events_frame(rows)


def export_events(
    connection: Connection,
    source: EventSource,
    path: Path,
    cutoff: datetime,
    since: datetime | None = None,
) -> int:
    """Stream events into a Parquet file chunk by chunk; returns the number of rows."""
    rows = 0
    writer: pq.ParquetWriter | None = None
    try:
        for chunk in stream_events(connection, source, cutoff, since):
            batch = pa.Table.from_pandas(chunk, preserve_index=False)
            writer = writer or pq.ParquetWriter(path, batch.schema)
            writer.write_table(batch)
            rows += len(chunk)
        if writer is None:
            events_frame([]).to_parquet(path, index=False)
    finally:
        if writer is not None:
            writer.close()
    return rows


def read_events(
    connection: Connection,
    source: EventSource,
    cutoff: datetime,
    since: datetime | None = None,
    customer_range: CustomerRange | None = None,
) -> pd.DataFrame:
    """All matching events in one frame (what concatenating stream_events would give).

    On PostgreSQL, MariaDB/MySQL (pymysql) and SQLite (own table) the rows skip SQLAlchemy's
    per-row processing: PostgreSQL's binary COPY is decoded straight into Arrow by ADBC's
    libpq driver; the others' streaming DBAPI cursors are read in chunks into Arrow arrays.
    Anything these readers cannot read exactly, or a server ADBC cannot reach with the
    engine's URL, falls back to the generic path.
    """
    columns = resolve_columns(connection, source)
    query = events_query(columns, cutoff, since, customer_range)
    bulk_reader = _bulk_reader(connection, source, columns)
    if bulk_reader is not None:
        try:
            tables = list(bulk_reader(connection, query))
            return _arrow_frame(pa.concat_tables(tables)) if tables else events_frame([])
        except BULK_READ_ERRORS:
            pass  # values or a connection the bulk readers cannot handle: go row by row
    chunks = list(_row_by_row(connection, query, customer_range))
    return pd.concat(chunks, ignore_index=True) if chunks else events_frame([])


ARROW_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("event_type", pa.string()),
        ("occurred_at", pa.timestamp("us")),
        ("amount", pa.float64()),
    ]
)


# What a bulk reader raises for values or a connection it cannot handle.
BULK_READ_ERRORS = (pa.ArrowException, ValueError, TypeError, adbc_driver_manager.Error)


def _bulk_reader(connection: Connection, source: EventSource, columns: EventColumns):
    """The bulk reader for this database and source (it yields tables of ARROW_SCHEMA), or
    None for the generic path."""
    # These types arrive in Arrow as exactly what the row-by-row path makes of them (a time
    # zone's instants as naive UTC, as events_frame_types turns them).
    plain = (
        isinstance(columns.customer_id.type, String)
        and isinstance(columns.event_type.type, String)
        and isinstance(columns.occurred_at.type, DateTime)
    )
    dialect = connection.dialect
    if dialect.name == "sqlite" and source.is_own:
        return _cursor_tables
    if dialect.name == "postgresql" and dialect.driver == "psycopg" and plain:
        return _postgresql_tables
    if dialect.name in ("mysql", "mariadb") and dialect.driver == "pymysql" and plain:
        return _cursor_tables
    return None


def _arrow_frame(table: pa.Table) -> pd.DataFrame:
    return events_frame_types(table.to_pandas())


def _typed(table: pa.Table) -> pa.Table:
    return table.rename_columns(ARROW_SCHEMA.names).cast(ARROW_SCHEMA)


# A partition is a range of customer keys, read in (customer_id, occurred_at) order: through
# that index it costs what the range holds. On a large table the planner prefers a parallel
# scan of the whole table and a sort instead (49M events: 5.0 s in three processes against
# 0.7 s), which makes every partition cost as much as the whole table. These penalise, not
# forbid: a source without such an index is still read. JIT compilation only adds start-up.
RANGE_READ_SETTINGS = {"enable_seqscan": "off", "enable_bitmapscan": "off", "jit": "off"}


def range_read_statements(scope: str) -> list[str]:
    """The settings as SET statements: scope SESSION for a connection of its own, LOCAL (until
    the transaction ends) for a pooled one that other work reuses."""
    return [f"SET {scope} {name} = {value}" for name, value in RANGE_READ_SETTINGS.items()]


def prefer_range_index(connection: Connection, customer_range: CustomerRange | None) -> None:
    """Apply the range settings to the rest of this transaction on a PostgreSQL range read."""
    if customer_range is not None and connection.dialect.name == "postgresql":
        for statement in range_read_statements("LOCAL"):
            connection.execute(text(statement))


@contextmanager
def postgresql_range_reader(connection: Connection) -> Iterator[adbc_driver_manager.dbapi.Cursor]:
    """An ADBC cursor on a libpq connection of its own (the engine's URL), set up for ranges."""
    url = connection.engine.url.set(drivername="postgresql")
    with (
        adbc_postgresql.connect(url.render_as_string(hide_password=False)) as reader,
        reader.cursor() as cursor,
    ):
        for statement in range_read_statements("SESSION"):
            cursor.execute(statement)
        yield cursor


def _postgresql_tables(connection: Connection, query: Select) -> Iterator[pa.Table]:
    """The rows as Arrow tables through ADBC (binary COPY, decoded in C++), a batch at a
    time.

    psycopg hands COPY data over one Python call per row, which cost more than the server's
    whole query; ADBC's own connection serves this one read-only query, so it sees committed
    rows only. The literals are rendered by SQLAlchemy's PostgreSQL dialect, which quotes
    them."""
    with postgresql_range_reader(connection) as cursor:
        cursor.execute(literal_sql(connection, query))
        for batch in cursor.fetch_record_batch():
            yield _typed(pa.Table.from_batches([batch]))


def literal_sql(connection: Connection, query: Select) -> str:
    """The query with its values written in, as the server is to receive it."""
    sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    # A format-style driver's SQL doubles every '%' ('a%%b'), which the driver would undo;
    # undone here, since this SQL goes to the server without that driver.
    return sql % () if connection.dialect.paramstyle in ("format", "pyformat") else sql


def _cursor_tables(
    connection: Connection, query: Select, chunk_rows: int = 100_000
) -> Iterator[pa.Table]:
    """A streaming DBAPI cursor's tuples go column-wise into Arrow, a chunk at a time.

    Times are selected as text for Arrow to parse: pymysql's parsing of each datetime cost
    a quarter of the read. The cursor is a fresh one, untouched by the connection's
    execution options."""
    cursor = _streaming_cursor(connection)
    try:
        cursor.execute(literal_sql(connection, _times_as_text(query)))
        while rows := cursor.fetchmany(chunk_rows):
            arrays = [pa.array([row[i] for row in rows]) for i in range(len(EVENT_COLUMNS))]
            yield _typed(pa.table(arrays, names=ARROW_SCHEMA.names))
    finally:
        cursor.close()


def _streaming_cursor(connection: Connection):
    """A cursor that hands rows over as the server sends them, not all of them at once."""
    driver_connection = connection.connection.driver_connection
    if connection.dialect.driver == "pymysql":
        return driver_connection.cursor(SSCursor)
    return driver_connection.cursor()


def _times_as_text(query: Select) -> Select:
    return query.with_only_columns(
        *(
            cast(column, String).label(column.name) if column.name == "occurred_at" else column
            for column in query.selected_columns
        )
    )


def events_frame(rows: Sequence) -> pd.DataFrame:
    """Rows in EVENT_COLUMNS order as a typed frame, built a column at a time: a DataFrame
    of row objects cost ten times as much (1.1M events: 6 s against 0.6 s)."""
    columns = {name: _column([row[i] for row in rows]) for i, name in enumerate(EVENT_COLUMNS)}
    return events_frame_types(pd.DataFrame(columns))


def _column(values: list) -> pd.Series:
    try:
        return pa.array(values).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Mixed Python types (a SQLite column without a declared type): converted by pandas.
        return pd.Series(values, dtype=object)


def events_frame_types(frame: pd.DataFrame) -> pd.DataFrame:
    occurred_at = frame["occurred_at"]
    if isinstance(occurred_at.dtype, pd.DatetimeTZDtype) or occurred_at.dtype == object:
        # A timezone-aware column (timestamptz) arrives with offsets; the service keeps
        # naive UTC, and values without an offset are taken as UTC already.
        frame = frame.assign(occurred_at=parse_timestamps(occurred_at, "UTC"))
    return frame.astype(
        {
            "customer_id": "str",
            "event_type": "str",
            "occurred_at": "datetime64[us]",
            "amount": "float64",
        }
    )


def active_customers_query(
    connection: Connection,
    source: EventSource,
    rule: str,
    as_of: datetime,
    within_days: int,
) -> Select:
    """customer_id of everyone to score: the is_active flag, or an event in the window."""
    if rule == "is_active":
        return select(Customer.customer_id.label("customer_id")).where(
            Customer.is_active.is_(True), Customer.created_at <= as_of
        )
    if rule == "recent_events":
        columns = resolve_columns(connection, source)
        since = as_of - timedelta(days=within_days)
        return (
            select(columns.customer_id.label("customer_id"))
            .where(
                columns.occurred_at > columns.moment(since),
                columns.occurred_at <= columns.moment(as_of),
            )
            .group_by(columns.customer_id)
        )
    raise SourceMappingError(f"unknown active-customer rule {rule!r}")


def recently_active_ids(events: pd.DataFrame, as_of: datetime, within_days: int) -> list[str]:
    """The recent_events rule applied to events already read up to as_of, which must reach
    back at least within_days: the ids in the order read (a range read's key order)."""
    recent = events["occurred_at"] > as_of - timedelta(days=within_days)
    return events.loc[recent, "customer_id"].unique().tolist()


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


def event_time_span(
    connection: Connection, source: EventSource
) -> tuple[datetime, datetime] | None:
    """First and last event time (naive UTC), or None for an empty source."""
    columns = resolve_columns(connection, source)
    first, last = connection.execute(
        select(func.min(columns.occurred_at), func.max(columns.occurred_at))
    ).one()
    return None if first is None else (naive_utc(first), naive_utc(last))


def naive_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def event_counts_by_type(connection: Connection, source: EventSource) -> dict[str, int]:
    columns = resolve_columns(connection, source)
    rows = connection.execute(
        select(columns.event_type, func.count()).group_by(columns.event_type)
    ).all()
    return {event_type: count for event_type, count in rows}
