from datetime import datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import select, update

from db.customers import ActiveRule, active_customer_ids, copy_customers, partition_ranges
from db.engine import make_engine, transaction
from db.errors import SourceMappingError
from db.event_import import event_keys, store_events
from db.migrate import upgrade
from db.models import Customer
from db.readers import read_events
from db.source import EventSource, resolve_columns

T0 = datetime(2026, 1, 1)


def test_active_customers_by_flag_and_by_recent_events(loaded):
    with transaction(loaded) as session:
        session.execute(update(Customer).where(Customer.customer_id == "b").values(is_active=False))
    as_of = T0 + timedelta(days=30)
    with loaded.connect() as connection:
        columns = resolve_columns(connection, EventSource())
        flagged = ActiveRule("is_active", 365).query(columns, as_of)
        recent = ActiveRule("recent_events", 15).query(columns, as_of)
        assert active_customer_ids(connection, flagged) == ["a", "c"]
        assert active_customer_ids(connection, flagged, ("b", None)) == ["c"]
        assert active_customer_ids(connection, recent) == ["c"]


def test_recent_events_rule_on_events_already_read_matches_the_query(loaded):
    """b's only event is exactly 28 days before as_of: outside a 28-day window, as in SQL."""
    as_of = T0 + timedelta(days=30)
    with loaded.connect() as connection:
        columns = resolve_columns(connection, EventSource())
        events = read_events(connection, columns, as_of, as_of - timedelta(days=60))
        in_range = read_events(connection, columns, as_of, as_of - timedelta(days=60), ("b", None))
        for within_days in (1, 15, 27, 28, 29, 60):
            rule = ActiveRule("recent_events", within_days)
            active = rule.query(columns, as_of)
            assert rule.ids_in(events, as_of) == active_customer_ids(connection, active)
            assert rule.ids_in(in_range, as_of) == active_customer_ids(
                connection, active, ("b", None)
            )
    assert ActiveRule("recent_events", 28).ids_in(events, as_of) == ["a", "c"]


def test_the_is_active_rule_never_looks_at_the_event_source(loaded):
    """Its query reads the service's customers table only, where a mapped source may live
    in another database."""
    with loaded.connect() as connection:
        columns = resolve_columns(connection, EventSource())
    query = ActiveRule("is_active").query(columns, T0 + timedelta(days=30))
    assert {table.name for table in query.get_final_froms()} == {"customers"}
    with loaded.connect() as connection:
        assert active_customer_ids(connection, query) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("rule", "reads_events"),
    [
        (ActiveRule("is_active", 30), False),
        (ActiveRule("recent_events", 365), True),
        (ActiveRule("recent_events", 366), True),
    ],
)
def test_which_rules_read_events(rule, reads_events):
    assert rule.reads_events is reads_events


def test_unknown_rules_and_misuse_are_refused():
    with pytest.raises(SourceMappingError, match="unknown active-customer rule 'everyone'"):
        ActiveRule("everyone")
    with pytest.raises(ValueError, match="is_active rule is not answered by events"):
        ActiveRule("is_active").ids_in(pd.DataFrame(), T0)


def test_partition_ranges_cover_every_active_customer_once(engine):
    ids = [f"k{i:03d}" for i in range(23)]
    frame = pd.DataFrame(
        {"customer_id": ids, "event_type": "visit", "occurred_at": T0, "amount": float("nan")}
    ).astype({"occurred_at": "datetime64[us]"})
    with transaction(engine) as session:
        store_events(session, frame.assign(event_id=event_keys(frame)))
    with engine.connect() as connection:
        active = ActiveRule("is_active", 365).query(resolve_columns(connection, EventSource()), T0)
        ranges = partition_ranges(connection, active, size=10)
        parts = [active_customer_ids(connection, active, r) for r in ranges]
    assert ranges == [("k000", "k010"), ("k010", "k020"), ("k020", None)]
    assert [len(part) for part in parts] == [10, 10, 3]
    assert [key for part in parts for key in part] == ids


def test_customers_are_copied_whole_in_chunks_into_another_database(loaded, tmp_path):
    with transaction(loaded) as session:
        session.execute(update(Customer).where(Customer.customer_id == "b").values(is_active=False))
    copy = make_engine(f"sqlite:///{tmp_path / 'copy.db'}")
    query = select(Customer.customer_id, Customer.is_active, Customer.created_at).order_by(
        Customer.customer_id
    )

    with copy.begin() as target, loaded.connect() as source:
        upgrade(target)
        copied = copy_customers(source, target, chunk_rows=2)

    with loaded.connect() as source, copy.connect() as target:
        original = source.execute(query).all()
        assert copied == len(original) == 3
        assert target.execute(query).all() == original
