"""The event source as a run reads it: its columns and the run's data cutoff."""

import logging
from datetime import datetime, timedelta

import pandas as pd
import pytest

import db.source
import llm_model.sequences
from db.engine import transaction
from db.event_import import event_keys, store_events
from db.readers import read_events
from db.source import EventSource
from service.databases import Databases
from service.events import data_cutoff, resolve_as_of, source_columns

T0 = datetime(2026, 1, 1)
LOG = logging.getLogger("test")


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
        data_cutoff(databases, columns, None, LOG)


def test_the_cutoff_is_the_latest_event_unless_asked_and_never_outside_the_data(engine, databases):
    store(engine, ["a", "b"], [T0, T0 + timedelta(days=3)])
    columns = source_columns(databases, EventSource())
    assert data_cutoff(databases, columns, None, LOG) == T0 + timedelta(days=3)
    asked = T0 + timedelta(days=1)
    assert data_cutoff(databases, columns, asked, LOG) == asked
    with pytest.raises(ValueError, match="before the first event"):
        data_cutoff(databases, columns, T0 - timedelta(days=1), LOG)
    with pytest.raises(ValueError, match="in the future"):
        data_cutoff(databases, columns, datetime(2999, 1, 1), LOG)


@pytest.mark.parametrize(
    ("requested", "message"),
    [("2030-01-01", "in the future"), ("2019-01-01", "before the first event")],
)
def test_as_of_outside_the_data_is_refused(requested, message):
    first, last, now = (
        datetime.fromisoformat(d) for d in ("2020-01-01", "2021-01-01", "2026-11-29")
    )
    with pytest.raises(ValueError, match=message):
        resolve_as_of(datetime.fromisoformat(requested), first, last, now)
    assert resolve_as_of(None, first, last, now) == last


def test_the_readers_frame_is_the_frame_the_model_library_takes(engine, databases):
    """db/ and llm_model/ may not import each other, so each states the event frame's
    columns; this is where the two statements are held to one."""
    assert db.source.EVENT_COLUMNS == llm_model.sequences.EVENT_COLUMNS
    store(engine, ["a"], [T0])
    columns = source_columns(databases, EventSource())
    with engine.connect() as connection:
        events = read_events(connection, columns, T0)
    assert tuple(events.columns) == llm_model.sequences.EVENT_COLUMNS
