"""Clock sanity: events stamped later than now (a clock ahead somewhere, inside the import's
tolerance or in a mapped source) are left out of the default as_of with a warning, never
a failure."""

import logging
from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import Column, DateTime, MetaData, String, Table, select

from db.engine import transaction
from db.event_import import FileColumns, event_keys, import_events, store_events
from db.models import CustomerEvent, ScoreRun
from db.source import EventSource
from db.timestamps import utc_now
from flows.score import score
from service.databases import Databases
from service.events import data_cutoff, source_columns

LOG = logging.getLogger("propensity")


@pytest.fixture
def databases(engine, database_url) -> Databases:
    return Databases(service_url=database_url, events_url=database_url)


def store_own(engine, times) -> EventSource:
    frame = pd.DataFrame(
        {"customer_id": "c1", "event_type": "visit", "occurred_at": times, "amount": None}
    ).astype({"occurred_at": "datetime64[us]", "amount": "float64"})
    with transaction(engine) as session:
        store_events(session, frame.assign(event_id=event_keys(frame)))
    return EventSource()


def store_mapped(engine, times) -> EventSource:
    table = Table("clicks", MetaData(), Column("who", String(64)), Column("ts", DateTime))
    table.create(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"who": "c1", "ts": time} for time in times])
    return EventSource(
        table="clicks", customer_id="who", occurred_at="ts", event_type="who", amount=None
    )


@pytest.mark.parametrize("store", [store_own, store_mapped], ids=["own", "mapped"])
def test_events_after_now_are_left_out_of_the_default_as_of_with_a_warning(
    engine, databases, store, caplog
):
    past = (utc_now() - timedelta(days=2)).replace(microsecond=0)
    source = store(engine, [past - timedelta(days=1), past, utc_now() + timedelta(minutes=30)])
    columns = source_columns(databases, source)
    with caplog.at_level(logging.WARNING):
        assert data_cutoff(databases, columns, None, LOG) == past
    assert "1 event(s) stamped later than now" in caplog.text
    with pytest.raises(ValueError, match="in the future"):
        data_cutoff(databases, columns, utc_now() + timedelta(days=1), LOG)


def test_a_source_whose_every_event_is_after_now_says_so(engine, databases):
    store_own(engine, [utc_now() + timedelta(minutes=30)])
    columns = source_columns(databases, EventSource())
    with pytest.raises(ValueError, match=r"no events in the source up to now \(1 stamped later\)"):
        data_cutoff(databases, columns, None, LOG)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("champion")
def test_an_event_imported_within_the_tolerance_does_not_block_scoring(populated, tmp_path):
    with populated.connect() as connection:
        latest = connection.scalar(
            select(CustomerEvent.occurred_at).order_by(CustomerEvent.occurred_at.desc()).limit(1)
        )
    now = utc_now()
    path = tmp_path / "late.csv"
    ahead = now + timedelta(minutes=30)
    path.write_text(
        f"customer_id,occurred_at,event_type,amount\nc1,{ahead:%Y-%m-%d %H:%M:%S},visit,\n"
    )
    with transaction(populated) as session:
        report = import_events(session, path, FileColumns(), now, timedelta(minutes=60))
    assert report.imported == 1
    summary = score()
    assert summary.as_of == latest
    with populated.connect() as connection:
        assert connection.scalars(select(ScoreRun.status)).all() == ["succeeded"]
