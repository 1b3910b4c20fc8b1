from dataclasses import replace
from datetime import datetime, timedelta

import cloudpickle
import pytest

from db.engine import make_engine
from db.errors import SourceMappingError
from db.migrate import upgrade
from db.readers import read_events
from db.source import (
    CustomerList,
    EventSource,
    TypeSpan,
    event_counts_by_type,
    event_time_span,
    event_types_seen,
    events_query,
    resolve_columns,
    time_span_query,
)

T0 = datetime(2026, 1, 1)


def test_event_time_span_is_the_first_and_the_last_event(loaded):
    with loaded.connect() as connection:
        assert event_time_span(connection, resolve_columns(connection, EventSource())) == (
            T0 + timedelta(days=1),
            T0 + timedelta(days=20),
        )


def test_event_time_span_until_a_moment_is_that_of_the_events_up_to_it(loaded):
    with loaded.connect() as connection:
        columns = resolve_columns(connection, EventSource())
        assert event_time_span(connection, columns, until=T0 + timedelta(days=10)) == (
            T0 + timedelta(days=1),
            T0 + timedelta(days=10),
        )


@pytest.mark.parametrize("until", [None, T0 + timedelta(days=10)])
def test_sqlite_finds_the_time_span_in_the_time_index_without_scanning_it(tmp_path, until):
    engine = make_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    with engine.begin() as connection:
        upgrade(connection)
        columns = resolve_columns(connection, EventSource())
        query = time_span_query(columns, until).compile(
            connection, compile_kwargs={"literal_binds": True}
        )
        plan = [row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}")]
    engine.dispose()
    reads = [step for step in plan if "customer_events" in step]
    assert len(reads) == 2, plan
    assert all(step.startswith("SEARCH") and "occurred_at" in step for step in reads), plan


def test_empty_source_has_no_time_span(engine):
    with engine.connect() as connection:
        assert event_time_span(connection, resolve_columns(connection, EventSource())) is None


def test_event_counts_by_type(loaded):
    with loaded.connect() as connection:
        assert event_counts_by_type(connection, resolve_columns(connection, EventSource())) == {
            "visit": 4,
            "purchase": 2,
        }


@pytest.mark.parametrize(("amount", "view_missing"), [("value", 1), (None, 0)])
def test_event_types_seen_count_missing_amounts_only_where_the_source_has_amounts(
    warehouse, mapped, amount, view_missing
):
    with warehouse.connect() as connection:
        columns = resolve_columns(connection, replace(mapped, amount=amount))
        seen = event_types_seen(
            connection, columns, T0 + timedelta(days=1), CustomerList(("u1", "u2"))
        )
    assert seen == {
        "view": TypeSpan(T0, 1, view_missing),
        "buy": TypeSpan(T0 + timedelta(hours=1), 1, 0),
    }


def test_resolved_columns_say_whether_they_are_the_service_table(engine, warehouse, mapped):
    with engine.connect() as connection:
        own = resolve_columns(connection, EventSource())
    with warehouse.connect() as connection:
        theirs = resolve_columns(connection, mapped)
    assert own.is_own
    assert not theirs.is_own
    assert [column.name for column in (theirs.customer_id, theirs.occurred_at)] == [
        "user_ref",
        "ts",
    ]


def test_resolved_columns_travel_to_a_worker_and_read_there(warehouse, mapped):
    """A partition task on a Dask worker receives the columns resolved once by its run."""
    with warehouse.connect() as connection:
        columns = resolve_columns(connection, mapped)
        shipped = cloudpickle.loads(cloudpickle.dumps(columns))
        cutoff = T0 + timedelta(days=1)
        assert shipped.is_own == columns.is_own
        assert str(events_query(shipped, cutoff)) == str(events_query(columns, cutoff))
        assert read_events(connection, shipped, cutoff).equals(
            read_events(connection, columns, cutoff)
        )


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
        resolve_columns(connection, source)
    assert message in str(error.value)
