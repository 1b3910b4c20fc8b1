"""The event source as a flow run reads it: its columns and the run's data cutoff."""

from datetime import datetime, timedelta

import pandas as pd
import pytest

import db.source
import llm_model.sequences
from db.engine import transaction
from db.event_import import event_keys, store_events
from db.readers import read_events
from db.source import EventSource
from flows.databases import Databases
from flows.events import data_cutoff, source_columns

T0 = datetime(2026, 1, 1)


@pytest.fixture
def databases(engine, database_url) -> Databases:
    return Databases(service_url=database_url, events_url=database_url)


def store(engine, customers: list[str], times: list[datetime]) -> None:
    frame = pd.DataFrame(
        {
            "customer_id": customers,
            "event_type": "purchase",
            "occurred_at": pd.Series(times, dtype="datetime64[us]"),
            "amount": 1.0,
        }
    )
    with transaction(engine) as session:
        store_events(session, frame.assign(event_id=event_keys(frame)))


def test_an_empty_source_has_no_cutoff(databases):
    columns = source_columns(databases, EventSource())
    with pytest.raises(ValueError, match="no events in the source: import events first"):
        data_cutoff(databases, columns, None)


def test_the_cutoff_is_the_latest_event_unless_asked_and_never_outside_the_data(engine, databases):
    store(engine, ["a", "b"], [T0, T0 + timedelta(days=3)])
    columns = source_columns(databases, EventSource())
    assert data_cutoff(databases, columns, None) == pd.Timestamp(T0 + timedelta(days=3))
    asked = T0 + timedelta(days=1)
    assert data_cutoff(databases, columns, asked) == pd.Timestamp(asked)
    with pytest.raises(ValueError, match="before the first event"):
        data_cutoff(databases, columns, T0 - timedelta(days=1))
    with pytest.raises(ValueError, match="in the future"):
        data_cutoff(databases, columns, datetime(2999, 1, 1))


def test_the_readers_frame_is_the_frame_the_model_library_takes(engine, databases):
    """db/ and llm_model/ may not import each other, so each states the event frame's
    columns; this is where the two statements are held to one."""
    assert db.source.EVENT_COLUMNS == llm_model.sequences.EVENT_COLUMNS
    store(engine, ["a"], [T0])
    columns = source_columns(databases, EventSource())
    with engine.connect() as connection:
        events = read_events(connection, columns, T0)
    assert tuple(events.columns) == llm_model.sequences.EVENT_COLUMNS
