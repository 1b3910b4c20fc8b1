from datetime import datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import Column, DateTime, Float, MetaData, String, Table, text, update

from db.engine import make_engine, transaction
from db.errors import SourceMappingError
from db.event_import import event_keys, store_events
from db.models import Customer
from db.source import (
    BULK_READ_ERRORS,
    RANGE_READ_SETTINGS,
    EventSource,
    _arrow_frame,
    _bulk_reader,
    _row_by_row,
    active_customer_ids,
    active_customers_query,
    event_time_span,
    events_query,
    literal_sql,
    partition_ranges,
    postgresql_range_reader,
    prefer_range_index,
    read_events,
    recently_active_ids,
    resolve_columns,
    stream_events,
)

T0 = datetime(2026, 1, 1)


def bulk_read(connection, source: EventSource, query) -> pd.DataFrame:
    """The bulk reader's tables as one frame, with no fallback to hide a failure."""
    reader = _bulk_reader(connection, source, resolve_columns(connection, source))
    return _arrow_frame(pa.concat_tables(list(reader(connection, query))))


def row_by_row_read(connection, query, customer_range=None) -> pd.DataFrame:
    """The generic reader, the reference the bulk readers are held to."""
    return pd.concat(_row_by_row(connection, query, customer_range), ignore_index=True)


def sample_events() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c", "c", "c"],
            "event_type": ["visit", "purchase", "visit", "visit", "visit", "purchase"],
            "occurred_at": [T0 + timedelta(days=d) for d in (1, 5, 2, 3, 10, 20)],
            "amount": [None, 10.5, None, None, None, 3.0],
        }
    ).astype({"occurred_at": "datetime64[us]", "amount": "float64"})
    return frame.assign(event_id=event_keys(frame))


@pytest.fixture
def loaded(engine):
    with transaction(engine) as session:
        store_events(session, sample_events())
    return engine


def test_stream_events_respects_cutoff_range_and_chunks(loaded):
    with loaded.connect() as connection:
        chunks = list(
            stream_events(
                connection,
                EventSource(),
                cutoff=T0 + timedelta(days=10),
                customer_range=("a", "c"),
                chunk_rows=2,
            )
        )
    assert [len(chunk) for chunk in chunks] == [2, 1]
    events = pd.concat(chunks, ignore_index=True)
    assert events["customer_id"].tolist() == ["a", "a", "b"]
    assert events["amount"].isna().tolist() == [True, False, True]
    assert events["amount"][1] == pytest.approx(10.5)
    assert str(events["occurred_at"].dtype) == "datetime64[us]"


def test_stream_events_gives_what_read_events_and_the_row_by_row_reader_give(loaded):
    """The bulk reader, sliced into chunks of at most chunk_rows."""
    cutoff = T0 + timedelta(days=30)
    with loaded.connect() as connection:
        chunks = list(stream_events(connection, EventSource(), cutoff, chunk_rows=4))
        events = read_events(connection, EventSource(), cutoff)
        query = events_query(resolve_columns(connection, EventSource()), cutoff)
        generic = row_by_row_read(connection, query)
    assert [len(chunk) for chunk in chunks] == [4, 2]
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), generic)
    pd.testing.assert_frame_equal(events, generic)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_bulk_read_that_fails_at_once_falls_back_to_the_row_by_row_reader(loaded):
    """A time written by hand with a UTC offset: Arrow will not parse it into a naive
    timestamp, the row-by-row reader reads it as UTC."""
    with loaded.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO customer_events (event_id, customer_id, event_type, occurred_at)"
                " VALUES ('odd', 'c', 'visit', '2026-01-25 04:00:00+01:00')"
            )
        )
    cutoff = datetime(2027, 1, 1)
    with loaded.connect() as connection:
        query = events_query(resolve_columns(connection, EventSource()), cutoff)
        with pytest.raises(BULK_READ_ERRORS):
            bulk_read(connection, EventSource(), query)
        streamed = pd.concat(stream_events(connection, EventSource(), cutoff), ignore_index=True)
        events = read_events(connection, EventSource(), cutoff)
    assert datetime(2026, 1, 25, 3) in events["occurred_at"].tolist()
    assert len(events) == len(sample_events()) + 1
    pd.testing.assert_frame_equal(streamed, events)


def test_cutoff_is_inclusive_and_since_exclusive(loaded):
    with loaded.connect() as connection:
        events = read_events(
            connection,
            EventSource(),
            cutoff=T0 + timedelta(days=10),
            since=T0 + timedelta(days=3),
        )
    assert events["occurred_at"].tolist() == [T0 + timedelta(days=5), T0 + timedelta(days=10)]


def test_active_customers_by_flag_and_by_recent_events(loaded):
    with transaction(loaded) as session:
        session.execute(update(Customer).where(Customer.customer_id == "b").values(is_active=False))
    as_of = T0 + timedelta(days=30)
    with loaded.connect() as connection:
        flagged = active_customers_query(connection, EventSource(), "is_active", as_of, 365)
        recent = active_customers_query(connection, EventSource(), "recent_events", as_of, 15)
        assert active_customer_ids(connection, flagged) == ["a", "c"]
        assert active_customer_ids(connection, flagged, ("b", None)) == ["c"]
        assert active_customer_ids(connection, recent) == ["c"]
        assert event_time_span(connection, EventSource()) == (
            T0 + timedelta(days=1),
            T0 + timedelta(days=20),
        )


def test_recent_events_rule_on_events_already_read_matches_the_query(loaded):
    """b's only event is exactly 28 days before as_of: outside a 28-day window, as in SQL."""
    as_of = T0 + timedelta(days=30)
    with loaded.connect() as connection:
        events = read_events(connection, EventSource(), as_of, as_of - timedelta(days=60))
        in_range = read_events(
            connection, EventSource(), as_of, as_of - timedelta(days=60), ("b", None)
        )
        for within_days in (1, 15, 27, 28, 29, 60):
            rule = active_customers_query(
                connection, EventSource(), "recent_events", as_of, within_days
            )
            assert recently_active_ids(events, as_of, within_days) == active_customer_ids(
                connection, rule
            )
            assert recently_active_ids(in_range, as_of, within_days) == active_customer_ids(
                connection, rule, ("b", None)
            )
    assert recently_active_ids(events, as_of, 28) == ["a", "c"]


def test_empty_source_has_no_time_span(engine):
    with engine.connect() as connection:
        assert event_time_span(connection, EventSource()) is None
        assert read_events(connection, EventSource(), cutoff=T0).empty


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
    with engine.connect() as connection:
        source, cutoff = EventSource(), T0 + timedelta(days=4, microseconds=28)
        query = events_query(resolve_columns(connection, source), cutoff, since=None)
        generic = row_by_row_read(connection, query)
        bulk = bulk_read(connection, source, query)
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
    source, customer_range = EventSource(), ("a%b", "b")
    with engine.connect() as connection:
        events = read_events(connection, source, T0, None, customer_range)
        query = events_query(resolve_columns(connection, source), T0, None, customer_range)
        bulk = bulk_read(connection, source, query)
    assert events["customer_id"].tolist() == ["a%b", "a%c"]
    pd.testing.assert_frame_equal(bulk, events)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_reads_a_customer_range_through_the_customer_index(engine):
    """On a big table the planner would scan all of it for each partition; on this small
    one, stored in time order as event logs are, it does so too."""
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
    with engine.connect() as connection:
        connection.execute(text("ANALYZE customer_events"))
        columns = resolve_columns(connection, EventSource())
        query = events_query(columns, T0 + timedelta(days=60), T0, ("C0", None))
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


CURRENT_RANGE_SETTINGS = "SELECT " + ", ".join(
    f"current_setting('{name}')" for name in RANGE_READ_SETTINGS
)


@pytest.fixture
def warehouse(database_url):
    """An existing events table with its own column names, in a database of its own."""
    engine = make_engine(database_url)
    table = Table(
        "web_events",
        MetaData(),
        Column("user_ref", String(64)),
        Column("ts", DateTime),
        Column("kind", String(32)),
        Column("value", Float),
    )
    table.create(engine)
    with engine.begin() as connection:
        connection.execute(
            table.insert(),
            [
                {"user_ref": "u2", "ts": T0, "kind": "view", "value": None},
                {"user_ref": "u1", "ts": T0 + timedelta(hours=1), "kind": "buy", "value": 4.0},
            ],
        )
    yield engine
    engine.dispose()


MAPPED = EventSource(
    table="web_events", customer_id="user_ref", occurred_at="ts", event_type="kind", amount="value"
)


def test_mapped_table_is_read_in_place(warehouse):
    with warehouse.connect() as connection:
        events = read_events(connection, MAPPED, cutoff=T0 + timedelta(days=1))
    assert events.to_dict("list") == {
        "customer_id": ["u1", "u2"],
        "event_type": ["buy", "view"],
        "occurred_at": [T0 + timedelta(hours=1), T0],
        "amount": [4.0, pytest.approx(float("nan"), nan_ok=True)],
    }


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_timezone_aware_source_reads_by_range_in_utc(warehouse, monkeypatch):
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
        span = event_time_span(connection, MAPPED)
        query = events_query(resolve_columns(connection, MAPPED), T0, None, ("u", None))
        bulk = bulk_read(connection, MAPPED, query)
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
    with engine.connect() as connection:
        events = read_events(connection, source, cutoff=T0 + timedelta(days=2))
    assert events.to_dict("list") == {
        "customer_id": ["7", "c"],
        "event_type": ["visit", "3"],
        "occurred_at": [T0, T0 + timedelta(days=1, microseconds=5)],
        "amount": [pytest.approx(float("nan"), nan_ok=True), 2.0],
    }
    assert events.dtypes.astype(str).tolist() == ["str", "str", "datetime64[us]", "float64"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (EventSource(table="no_such_table"), "'no_such_table' does not exist"),
        (
            EventSource(table="web_events", customer_id="user_ref", occurred_at="when"),
            "has no column(s) 'event_type', 'when', 'amount'",
        ),
        (EventSource(table="web_events; drop table x"), "is not a valid identifier"),
    ],
)
def test_bad_mappings_fail_before_any_work(warehouse, source, message):
    with warehouse.connect() as connection, pytest.raises(SourceMappingError) as error:
        read_events(connection, source, cutoff=T0)
    assert message in str(error.value)


def test_partition_ranges_cover_every_active_customer_once(engine):
    ids = [f"k{i:03d}" for i in range(23)]
    frame = pd.DataFrame(
        {"customer_id": ids, "event_type": "visit", "occurred_at": T0, "amount": float("nan")}
    ).astype({"occurred_at": "datetime64[us]"})
    with transaction(engine) as session:
        store_events(session, frame.assign(event_id=event_keys(frame)))
    with engine.connect() as connection:
        active = active_customers_query(connection, EventSource(), "is_active", T0, 365)
        ranges = partition_ranges(connection, active, size=10)
        parts = [active_customer_ids(connection, active, r) for r in ranges]
    assert ranges == [("k000", "k010"), ("k010", "k020"), ("k020", None)]
    assert [len(part) for part in parts] == [10, 10, 3]
    assert [key for part in parts for key in part] == ids
