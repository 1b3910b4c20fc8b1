from datetime import datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import text

from db.engine import transaction
from db.event_import import event_keys, store_events
from db.readers import (
    BULK_READ_ERRORS,
    RANGE_READ_SETTINGS,
    _arrow_frame,
    _bulk_reader,
    _row_by_row,
    literal_sql,
    postgresql_range_reader,
    prefer_range_index,
    read_events,
)
from db.source import (
    CustomerList,
    EventColumns,
    EventSource,
    event_time_span,
    events_query,
    resolve_columns,
)

T0 = datetime(2026, 1, 1)


def own_columns(engine) -> EventColumns:
    with engine.connect() as connection:
        return resolve_columns(connection, EventSource())


def read_from(engine, source: EventSource, cutoff: datetime) -> pd.DataFrame:
    """What a run reads: the source's columns resolved, then its events up to cutoff."""
    with engine.connect() as connection:
        return read_events(connection, resolve_columns(connection, source), cutoff)


def bulk_read(connection, columns: EventColumns, query) -> pd.DataFrame:
    """The bulk reader's tables as one frame, with no fallback to hide a failure."""
    reader = _bulk_reader(connection, columns)
    return _arrow_frame(pa.concat_tables(list(reader(connection, query))))


def row_by_row_read(connection, query, customers=None) -> pd.DataFrame:
    """The generic reader, the reference the bulk readers are held to."""
    return pd.concat(_row_by_row(connection, query, customers), ignore_index=True)


@pytest.mark.parametrize("customers", [("a", "c"), CustomerList(("a", "b"))], ids=["range", "ids"])
def test_read_events_respects_cutoff_and_the_customers_asked_for(loaded, customers):
    with loaded.connect() as connection:
        events = read_events(
            connection, own_columns(loaded), cutoff=T0 + timedelta(days=10), customers=customers
        )
    assert events["customer_id"].tolist() == ["a", "a", "b"]
    assert events["amount"].isna().tolist() == [True, False, True]
    assert events["amount"][1] == pytest.approx(10.5)
    assert str(events["occurred_at"].dtype) == "datetime64[us]"


def test_read_events_gives_what_the_row_by_row_reader_gives(loaded):
    cutoff, columns = T0 + timedelta(days=30), own_columns(loaded)
    some = CustomerList(("b", "c"))
    with loaded.connect() as connection:
        events = read_events(connection, columns, cutoff)
        generic = row_by_row_read(connection, events_query(columns, cutoff))
        of_some = read_events(connection, columns, cutoff, customers=some)
        generic_of_some = row_by_row_read(connection, events_query(columns, cutoff, None, some))
    assert len(events) == 6
    pd.testing.assert_frame_equal(events, generic)
    pd.testing.assert_frame_equal(of_some, generic_of_some)
    assert set(of_some["customer_id"]) == {"b", "c"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_bulk_read_that_fails_at_once_falls_back_to_the_row_by_row_reader(loaded, sample_events):
    """A time written by hand with a UTC offset: Arrow will not parse it into a naive
    timestamp, the row-by-row reader reads it as UTC."""
    with loaded.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO customer_events (event_id, customer_id, event_type, occurred_at)"
                " VALUES ('odd', 'c', 'visit', '2026-01-25 04:00:00+01:00')"
            )
        )
    cutoff, columns = datetime(2027, 1, 1), own_columns(loaded)
    with loaded.connect() as connection:
        with pytest.raises(BULK_READ_ERRORS):
            bulk_read(connection, columns, events_query(columns, cutoff))
        events = read_events(connection, columns, cutoff)
        generic = row_by_row_read(connection, events_query(columns, cutoff))
    assert datetime(2026, 1, 25, 3) in events["occurred_at"].tolist()
    assert len(events) == len(sample_events) + 1
    pd.testing.assert_frame_equal(events, generic)


def test_cutoff_is_inclusive_and_since_exclusive(loaded):
    with loaded.connect() as connection:
        events = read_events(
            connection,
            own_columns(loaded),
            cutoff=T0 + timedelta(days=10),
            since=T0 + timedelta(days=3),
        )
    assert events["occurred_at"].tolist() == [T0 + timedelta(days=5), T0 + timedelta(days=10)]


def test_empty_source_reads_an_empty_frame(engine):
    assert read_from(engine, EventSource(), T0).empty


def test_bulk_reader_returns_what_the_row_by_row_reader_returns(engine):
    """Values that trip CSV and text parsers: separators, quotes, backslashes, non-ASCII,
    empty strings, microseconds, NULL and negative amounts, four decimals."""
    odd_ids = ["a,b", 'q"uote', "back\\slash", "ünï €", "new\nline", "sp ace"]
    frame = pd.DataFrame(
        {
            "customer_id": odd_ids,
            "event_type": ["visit", "", "pur,chase", 'say "hi"', "visit", "ticket"],
            "occurred_at": [T0 + timedelta(days=d, microseconds=d * 7) for d in range(6)],
            "amount": [None, 0.0, -12.5, 1234.5678, None, 1e9],
        }
    ).astype({"occurred_at": "datetime64[us]", "amount": "float64"})
    with transaction(engine) as session:
        store_events(session, frame.assign(event_id=event_keys(frame)))
    columns, cutoff = own_columns(engine), T0 + timedelta(days=4, microseconds=28)
    with engine.connect() as connection:
        query = events_query(columns, cutoff, since=None)
        generic = row_by_row_read(connection, query)
        bulk = bulk_read(connection, columns, query)
    assert len(generic) == 5
    pd.testing.assert_frame_equal(bulk, generic)


def test_a_customer_range_bound_with_a_percent_sign_is_read_as_written(engine):
    """'%' is doubled in SQL meant for a format-style driver; a bulk reader that sends the
    SQL itself must not send 'a%%b', which sorts before 'a%b' and would move the bound."""
    ids = ["a%%b", "a%b", "a%c", "b"]
    frame = pd.DataFrame(
        {"customer_id": ids, "event_type": "visit", "occurred_at": T0, "amount": 1.0}
    ).astype({"occurred_at": "datetime64[us]"})
    with transaction(engine) as session:
        store_events(session, frame.assign(event_id=event_keys(frame)))
    columns, customer_range = own_columns(engine), ("a%b", "b")
    with engine.connect() as connection:
        events = read_events(connection, columns, T0, None, customer_range)
        bulk = bulk_read(connection, columns, events_query(columns, T0, None, customer_range))
    assert events["customer_id"].tolist() == ["a%b", "a%c"]
    pd.testing.assert_frame_equal(bulk, events)


def store_time_ordered_events(engine) -> None:
    """1,200 events of 300 customers, stored in time order as an event log is appended."""
    customers = [f"C{i % 300:04d}" for i in range(1200)]
    frame = pd.DataFrame(
        {
            "customer_id": customers,
            "event_type": "visit",
            "occurred_at": [T0 + timedelta(hours=i) for i in range(len(customers))],
            "amount": None,
        }
    ).astype({"occurred_at": "datetime64[us]", "amount": "float64"})
    with transaction(engine) as session:
        store_events(session, frame.assign(event_id=event_keys(frame)))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("since", [T0, None], ids=["since", "whole_history"])
def test_postgresql_reads_a_customer_range_through_the_customer_index(engine, since):
    """On a big table the planner would scan all of it for each partition; on this small
    one, stored in time order as event logs are, it does so too. Scoring reads the whole
    history (no lower time bound): the range alone must still go through the index."""
    store_time_ordered_events(engine)
    with engine.connect() as connection:
        connection.execute(text("ANALYZE customer_events"))
        columns = resolve_columns(connection, EventSource())
        query = events_query(columns, T0 + timedelta(days=60), since, ("C0", None))
        explain = text(f"EXPLAIN {literal_sql(connection, query)}")
        default_plan = "\n".join(connection.execute(explain).scalars())
        # What the row-by-row reader applies; ADBC cannot EXPLAIN (it wraps queries in COPY).
        prefer_range_index(connection, ("C0", None))
        range_plan = "\n".join(connection.execute(explain).scalars())
        connection.rollback()
        after_transaction = connection.execute(text(CURRENT_RANGE_SETTINGS)).one()
        with postgresql_range_reader(connection) as cursor:
            cursor.execute(CURRENT_RANGE_SETTINGS)
            reader_settings = cursor.fetchone()
    assert "Seq Scan" in default_plan
    assert "Index Only Scan using ix_customer_events_customer_id_occurred_at" in range_plan
    assert "Sort" not in range_plan
    assert tuple(reader_settings) == tuple(RANGE_READ_SETTINGS.values())
    # The pooled connection gets its planner back once the read's transaction ends.
    assert "off" not in tuple(after_transaction)


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
@pytest.mark.parametrize(
    "customers", [("C0100", "C0200"), CustomerList(("C0007", "C0123"))], ids=["range", "ids"]
)
def test_a_read_of_some_customers_takes_every_column_from_the_customer_index(engine, customers):
    """A partition's range and a retrain chunk's ids are read from the index alone, never
    from the table's rows, which an event log stores in time order (migration 0010)."""
    store_time_ordered_events(engine)
    with engine.connect() as connection:
        columns = resolve_columns(connection, EventSource())
        query = literal_sql(
            connection, events_query(columns, T0 + timedelta(days=60), None, customers)
        )
        if engine.dialect.name == "sqlite":
            plan = " ".join(
                row[-1] for row in connection.execute(text(f"EXPLAIN QUERY PLAN {query}"))
            )
            assert "USING COVERING INDEX ix_customer_events_customer_id_occurred_at" in plan
        else:
            connection.execute(text("ANALYZE TABLE customer_events"))
            plan = connection.execute(text(f"EXPLAIN {query}")).mappings().one()
            assert plan["key"] == "ix_customer_events_customer_id_occurred_at"
            assert "Using index" in plan["Extra"].split("; ")  # not "Using index condition"


CURRENT_RANGE_SETTINGS = "SELECT " + ", ".join(
    f"current_setting('{name}')" for name in RANGE_READ_SETTINGS
)


def test_mapped_table_is_read_in_place(warehouse, mapped):
    events = read_from(warehouse, mapped, T0 + timedelta(days=1))
    assert events.to_dict("list") == {
        "customer_id": ["u1", "u2"],
        "event_type": ["buy", "view"],
        "occurred_at": [T0 + timedelta(hours=1), T0],
        "amount": [4.0, pytest.approx(float("nan"), nan_ok=True)],
    }


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_timezone_aware_source_reads_by_range_in_utc(warehouse, mapped, monkeypatch):
    """A timestamptz column, with sessions on another clock (libpq's PGTZ for ADBC's own
    connection): the cutoff is compared as an instant and times come back as naive UTC, in
    bulk and row by row alike; the row-by-row read applies the range settings to its own
    transaction only."""
    with warehouse.begin() as connection:
        connection.execute(
            text(
                "ALTER TABLE web_events ALTER COLUMN ts TYPE timestamptz"
                " USING ts AT TIME ZONE 'UTC'"
            )
        )
    monkeypatch.setenv("PGTZ", "Asia/Tokyo")
    with warehouse.connect() as connection:
        connection.execute(text("SET TIME ZONE 'Asia/Tokyo'"))
        columns = resolve_columns(connection, mapped)
        span = event_time_span(connection, columns)
        query = events_query(columns, T0, None, ("u", None))
        bulk = bulk_read(connection, columns, query)
        generic = row_by_row_read(connection, query, ("u", None))
        during = connection.execute(text(CURRENT_RANGE_SETTINGS)).one()
    # u1's event is an hour after the cutoff.
    assert span == (T0, T0 + timedelta(hours=1))
    assert bulk["customer_id"].tolist() == ["u2"]
    assert bulk["occurred_at"].tolist() == [T0]
    pd.testing.assert_frame_equal(bulk, generic)
    assert tuple(during) == tuple(RANGE_READ_SETTINGS.values())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_columns_without_declared_types_are_read_whatever_each_row_holds(engine):
    """SQLite keeps each value's own type in such a column: ids and types come back as
    text however they were stored, amounts as floats."""
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE loose_events (who, what, at TIMESTAMP, value)"))
        connection.execute(
            text(
                "INSERT INTO loose_events VALUES (7, 'visit', '2026-01-01 00:00:00', NULL),"
                " ('c', 3, '2026-01-02 00:00:00.000005', 2)"
            )
        )
    source = EventSource(
        table="loose_events", customer_id="who", event_type="what", occurred_at="at", amount="value"
    )
    events = read_from(engine, source, T0 + timedelta(days=2))
    assert events.to_dict("list") == {
        "customer_id": ["7", "c"],
        "event_type": ["visit", "3"],
        "occurred_at": [T0, T0 + timedelta(days=1, microseconds=5)],
        "amount": [pytest.approx(float("nan"), nan_ok=True), 2.0],
    }
    assert events.dtypes.astype(str).tolist() == ["str", "str", "datetime64[us]", "float64"]
