import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from db.engine import transaction
from db.errors import ImportRejected
from db.event_import import FileColumns, ImportReport, import_events
from db.models import Customer, CustomerEvent

NOW = datetime(2026, 11, 1, 12, 0)
HEADER = "customer_id,occurred_at,event_type,amount\n"
GOOD_ROWS = (
    "c1,2026-10-01T10:00:00Z,visit,\n"
    "c1,2026-10-02 09:30:00+02:00,purchase,19.99\n"
    "c2,2026-10-03 08:00:00,product_view,\n"
)


def write(tmp_path: Path, text: str, name: str = "events.csv", **kwargs) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(kwargs.get("encoding", "utf-8")))
    return path


def run_import(engine, path: Path, **options) -> ImportReport:
    options = {"now": NOW, "future_tolerance": timedelta(hours=1), **options}
    with transaction(engine) as session:
        return import_events(session, path, options.pop("columns", FileColumns()), **options)


@pytest.fixture
def stored_events(table_frame) -> Callable[[], pd.DataFrame]:
    """stored_events(): the events in customer_events, oldest first."""
    names = ["customer_id", "event_type", "occurred_at", "amount"]
    return functools.partial(table_frame, CustomerEvent, names, order_by=CustomerEvent.occurred_at)


def test_import_stores_utc_events_and_creates_customers(engine, tmp_path, stored_events):
    report = run_import(engine, write(tmp_path, HEADER + GOOD_ROWS))
    assert (report.rows_read, report.imported, report.rejected) == (3, 3, 0)
    assert report.customers_created == 2
    events = stored_events()
    assert events["occurred_at"].tolist() == [
        datetime(2026, 10, 1, 10, 0),
        datetime(2026, 10, 2, 7, 30),
        datetime(2026, 10, 3, 8, 0),
    ]
    assert float(events["amount"][1]) == pytest.approx(19.99)
    assert events["amount"][0] is None
    with engine.connect() as connection:
        customers = connection.execute(
            select(Customer.customer_id, Customer.created_at).order_by(Customer.customer_id)
        ).all()
    assert customers == [("c1", datetime(2026, 10, 1, 10, 0)), ("c2", datetime(2026, 10, 3, 8, 0))]


def test_reimport_and_duplicate_rows_add_nothing(engine, tmp_path, stored_events):
    path = write(tmp_path, HEADER + GOOD_ROWS + GOOD_ROWS.splitlines(keepends=True)[0])
    first = run_import(engine, path)
    assert (first.imported, first.duplicates) == (3, 1)
    second = run_import(engine, path)
    assert (second.imported, second.duplicates, second.customers_created) == (0, 4, 0)
    assert len(stored_events()) == 3


def test_bom_and_windows_line_endings(engine, tmp_path, stored_events):
    text = (HEADER + GOOD_ROWS).replace("\n", "\r\n")
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    report = run_import(engine, path)
    assert report.imported == 3
    assert stored_events()["event_type"].tolist() == ["visit", "purchase", "product_view"]


def test_naive_timestamps_use_the_given_timezone(engine, tmp_path, stored_events):
    path = write(
        tmp_path, HEADER + "c1,2026-07-01 12:00:00,visit,\nc1,2026-07-01 12:00:00Z,click,\n"
    )
    run_import(engine, path, timezone="Europe/Berlin")
    assert stored_events()["occurred_at"].tolist() == [
        datetime(2026, 7, 1, 10, 0),
        datetime(2026, 7, 1, 12, 0),
    ]


def test_invalid_rows_reject_the_whole_file_and_keep_stored_data(engine, tmp_path, stored_events):
    run_import(engine, write(tmp_path, HEADER + GOOD_ROWS, name="first.csv"))
    bad = (
        HEADER
        + "c3,2026-10-05T00:00:00Z,visit,\n"
        + ",2026-10-05T00:00:00Z,visit,\n"
        + "c4,not a date,visit,\n"
        + "c5,2026-10-05T00:00:00Z,purchase,twelve\n"
        + "c6,2030-01-01T00:00:00Z,visit,\n"
        + "c7,,visit,\n"
    )
    with pytest.raises(ImportRejected) as rejected:
        run_import(engine, write(tmp_path, bad, name="bad.csv"))
    message = str(rejected.value)
    assert "nothing imported" in message
    assert "5 of 6 rows rejected" in message
    for expected in (
        "row 2: missing customer_id",
        "row 3: unparseable occurred_at: not a date",
        "row 4: non-numeric amount: twelve",
        "row 5: occurred_at in the future",
        "row 6: missing occurred_at",
    ):
        assert expected in message
    assert len(stored_events()) == 3
    with engine.connect() as connection:
        assert "c3" not in connection.execute(select(Customer.customer_id)).scalars().all()


def test_skip_invalid_imports_good_rows_and_writes_rejects(engine, tmp_path):
    path = write(tmp_path, HEADER + GOOD_ROWS + "c9,yesterday-ish,visit,\n")
    rejected_path = tmp_path / "rejected.csv"
    report = run_import(engine, path, skip_invalid=True, rejected_path=rejected_path)
    assert (report.imported, report.rejected) == (3, 1)
    rejected = pd.read_csv(rejected_path)
    assert rejected["row"].tolist() == [4]
    assert rejected["reason"].tolist() == ["unparseable occurred_at: yesterday-ish"]
    assert rejected["customer_id"].tolist() == ["c9"]


def test_missing_columns_are_named(engine, tmp_path):
    path = write(tmp_path, "customer,occurred_at,event_type\nc1,2026-10-01,visit\n")
    with pytest.raises(ImportRejected, match=r"missing column\(s\) 'customer_id', 'amount'"):
        run_import(engine, path)


def test_column_mapping_and_no_amount(engine, tmp_path):
    path = write(tmp_path, "who;when;what\nc1;2026-10-01 10:00;visit\n".replace(";", ","))
    columns = FileColumns(customer_id="who", occurred_at="when", event_type="what", amount=None)
    assert run_import(engine, path, columns=columns).imported == 1


def test_empty_and_header_only_files(engine, tmp_path):
    with pytest.raises(ImportRejected, match="the file is empty"):
        run_import(engine, write(tmp_path, "", name="empty.csv"))
    with pytest.raises(ImportRejected, match="header but no rows"):
        run_import(engine, write(tmp_path, HEADER, name="header.csv"))
    with pytest.raises(ImportRejected, match="unsupported file type"):
        run_import(engine, write(tmp_path, HEADER, name="events.txt"))


def test_unknown_event_types_rejected_when_a_list_is_given(engine, tmp_path):
    path = write(tmp_path, HEADER + GOOD_ROWS)
    with pytest.raises(ImportRejected, match="row 3: unknown event_type: product_view"):
        run_import(engine, path, allowed_event_types=frozenset({"visit", "purchase"}))


def test_parquet_with_timezone_aware_timestamps_in_chunks(engine, tmp_path, stored_events):
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "a"],
            "occurred_at": pd.to_datetime(
                ["2026-10-01 12:00", "2026-10-02 12:00", "2026-10-03 12:00"]
            ).tz_localize("America/New_York"),
            "event_type": ["visit", "purchase", "purchase"],
            "amount": [None, 5.0, 7.5],
        }
    )
    path = tmp_path / "events.parquet"
    frame.to_parquet(path)
    report = run_import(engine, path, chunk_rows=2)
    assert report.imported == 3
    assert stored_events()["occurred_at"].tolist()[0] == datetime(2026, 10, 1, 16, 0)
