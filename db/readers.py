"""Reading events into frames: a bulk Arrow reader per database, a row-by-row fallback.

Every reader takes the source's EventColumns, resolved once by the caller (db.source), and
gives the same typed frame: customer_id, event_type, occurred_at (naive UTC), amount.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import adbc_driver_manager
import adbc_driver_manager.dbapi
import adbc_driver_postgresql.dbapi as adbc_postgresql
import pandas as pd
import pyarrow as pa
from pymysql.cursors import SSCursor
from sqlalchemy import Connection, DateTime, Select, String, cast, text

from db.source import EVENT_COLUMNS, Customers, EventColumns, events_query
from db.timestamps import parse_timestamps

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


def read_events(
    connection: Connection,
    columns: EventColumns,
    cutoff: datetime,
    since: datetime | None = None,
    customers: Customers | None = None,
) -> pd.DataFrame:
    """All matching events in one frame.

    On PostgreSQL, MariaDB/MySQL (pymysql) and SQLite (own table) the rows skip SQLAlchemy's
    per-row processing: PostgreSQL's binary COPY is decoded straight into Arrow by ADBC's
    libpq driver; the others' streaming DBAPI cursors are read in chunks into Arrow arrays.
    Anything these readers cannot read exactly, or a server ADBC cannot reach with the
    engine's URL, falls back to the generic path.
    """
    query = events_query(columns, cutoff, since, customers)
    bulk_reader = _bulk_reader(connection, columns)
    if bulk_reader is not None:
        try:
            tables = list(bulk_reader(connection, query))
            return _arrow_frame(pa.concat_tables(tables)) if tables else events_frame([])
        except BULK_READ_ERRORS:
            pass  # values or a connection the bulk readers cannot handle: go row by row
    chunks = list(_row_by_row(connection, query, customers))
    return pd.concat(chunks, ignore_index=True) if chunks else events_frame([])


def _row_by_row(
    connection: Connection,
    query: Select,
    customers: Customers | None,
    chunk_rows: int = 100_000,
) -> Iterator[pd.DataFrame]:
    """The generic path: SQLAlchemy rows from a server-side cursor, into frames."""
    prefer_range_index(connection, customers)
    result = connection.execution_options(stream_results=True, yield_per=chunk_rows).execute(query)
    for rows in result.partitions():
        yield events_frame(rows)


def _bulk_reader(connection: Connection, columns: EventColumns):
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
    if dialect.name == "sqlite" and columns.is_own:
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


# Ranges go through the (customer_id, occurred_at) index, not a scan and sort of the whole table
# per partition; scans are penalised, not forbidden, and JIT would only add start-up time.
RANGE_READ_SETTINGS = {"enable_seqscan": "off", "enable_bitmapscan": "off", "jit": "off"}


def range_read_statements(scope: str) -> list[str]:
    """The settings as SET statements: scope SESSION for a connection of its own, LOCAL (until
    the transaction ends) for a pooled one that other work reuses."""
    return [f"SET {scope} {name} = {value}" for name, value in RANGE_READ_SETTINGS.items()]


def prefer_range_index(connection: Connection, customers: Customers | None) -> None:
    """Apply the range settings to the rest of this transaction on a PostgreSQL read of some
    customers."""
    if customers is not None and connection.dialect.name == "postgresql":
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

    psycopg hands COPY data over one Python call per row, which costs more than the server's
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

    Times are selected as text for Arrow to parse, not parsed one by one in Python by
    pymysql. The cursor is a fresh one, untouched by the connection's execution options."""
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
    of row objects is far slower on large reads."""
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
