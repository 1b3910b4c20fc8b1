import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError

from db import event_import
from db.engine import transaction
from db.errors import ImportRejected, error_message
from db.event_import import FileColumns, ImportReport, event_keys, import_events
from db.models import Customer, CustomerEvent, CustomerEventStaging

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


# --- the bulk path: staging table, set-based inserts, failures part way -------------------


def staged_rows(engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(CustomerEventStaging))


def stored_counts(engine) -> tuple[int, int]:
    """(customers, events) stored."""
    with engine.connect() as connection:
        return tuple(
            connection.scalar(select(func.count()).select_from(model))
            for model in (Customer, CustomerEvent)
        )


def many_rows(n: int) -> str:
    """n events of 7 customers, one a second from 2026-10-01 10:00."""
    return "".join(
        f"c{i % 7},2026-10-01 10:{i // 60:02d}:{i % 60:02d},visit,{i}\n" for i in range(n)
    )


def test_a_reimport_in_many_chunks_finds_every_row_present(engine, tmp_path):
    path = write(tmp_path, HEADER + many_rows(50))
    first = run_import(engine, path, chunk_rows=7)
    assert (first.imported, first.duplicates, first.customers_created) == (50, 0, 7)
    again = run_import(engine, path, chunk_rows=7)
    assert (again.rows_read, again.imported, again.duplicates, again.customers_created) == (
        50,
        0,
        50,
        0,
    )
    assert stored_counts(engine) == (7, 50)
    assert staged_rows(engine) == 0


def test_a_bad_row_in_the_last_chunk_imports_nothing_and_leaves_staging_empty(engine, tmp_path):
    path = write(tmp_path, HEADER + many_rows(20) + "c1,2026-10-02,visit,lots\n")
    with pytest.raises(ImportRejected) as rejected:
        run_import(engine, path, chunk_rows=4)
    assert "\n" not in str(rejected.value)
    assert "row 21: non-numeric amount: lots" in str(rejected.value)
    assert stored_counts(engine) == (0, 0)
    assert staged_rows(engine) == 0


# Every staged row after the fourth fails with "disk full", as a full disk would make it.
HALF_WAY_FAILURE = {
    "sqlite": [
        "CREATE TRIGGER fail_half_way BEFORE INSERT ON customer_event_staging "
        "WHEN NEW.file_row > 4 BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION fail_half_way() RETURNS trigger AS $$ BEGIN "
        "IF NEW.file_row > 4 THEN RAISE EXCEPTION 'disk full'; END IF; RETURN NEW; END $$ "
        "LANGUAGE plpgsql",
        "CREATE TRIGGER fail_half_way BEFORE INSERT ON customer_event_staging "
        "FOR EACH ROW EXECUTE FUNCTION fail_half_way()",
    ],
    "mysql": [
        "CREATE TRIGGER fail_half_way BEFORE INSERT ON customer_event_staging FOR EACH ROW "
        "IF NEW.file_row > 4 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'disk full'; "
        "END IF"
    ],
}


def test_a_load_failing_half_way_imports_nothing_and_says_why_in_one_line(engine, tmp_path):
    with engine.begin() as connection:
        for statement in HALF_WAY_FAILURE[engine.dialect.name]:
            connection.execute(text(statement))
    path = write(tmp_path, HEADER + many_rows(10))
    with pytest.raises(DBAPIError) as failed:
        run_import(engine, path, chunk_rows=3)
    assert "disk full" in error_message(failed.value)
    assert "\n" not in error_message(failed.value)
    assert stored_counts(engine) == (0, 0)
    assert staged_rows(engine) == 0


KILL_OWN_CONNECTION = {
    "postgresql": ("SELECT pg_backend_pid()", "SELECT pg_terminate_backend({})"),
    "mysql": ("SELECT CONNECTION_ID()", "KILL CONNECTION {}"),
}


def test_a_connection_lost_part_way_imports_nothing(engine, tmp_path):
    if engine.dialect.name not in KILL_OWN_CONNECTION:
        pytest.skip("SQLite has no connection to lose")
    own_id, kill = KILL_OWN_CONNECTION[engine.dialect.name]
    path = write(tmp_path, HEADER + many_rows(10))
    chunks = []

    def lose_connection_after_the_first_chunk(rows: int) -> None:
        chunks.append(rows)
        if len(chunks) == 1:
            with engine.connect() as other:
                other.execute(text(kill.format(int(connection_id))))
                other.commit()

    with pytest.raises(DBAPIError) as lost, transaction(engine) as session:
        connection_id = session.connection().execute(text(own_id)).scalar()
        import_events(
            session,
            path,
            FileColumns(),
            NOW,
            timedelta(hours=1),
            chunk_rows=3,
            on_chunk=lose_connection_after_the_first_chunk,
        )
    assert "\n" not in error_message(lost.value)
    assert len(chunks) == 1
    assert stored_counts(engine) == (0, 0)
    assert staged_rows(engine) == 0


def test_customers_are_created_at_their_earliest_event_in_the_whole_file(engine, tmp_path):
    rows = "c1,2026-10-05,visit,\nc2,2026-10-06,visit,\nc1,2026-10-01,purchase,3\n"
    run_import(engine, write(tmp_path, HEADER + rows), chunk_rows=2)
    with engine.connect() as connection:
        created = connection.execute(
            select(Customer.customer_id, Customer.created_at).order_by(Customer.customer_id)
        ).all()
    assert created == [("c1", datetime(2026, 10, 1)), ("c2", datetime(2026, 10, 6))]


def test_of_rows_sharing_an_event_id_the_first_in_the_file_is_kept(engine, tmp_path, stored_events):
    text_ = (
        "id,customer_id,occurred_at,event_type,amount\n"
        "e9,c1,2026-10-01,visit,\n"
        "e1,c1,2026-10-02,visit,\n"
        "e5,c1,2026-10-03,visit,\n"
        "e1,c2,2026-10-04,purchase,5\n"
        "e1,c3,2026-10-05,purchase,7\n"
    )
    report = run_import(
        engine, write(tmp_path, text_), columns=FileColumns(event_id="id"), chunk_rows=2
    )
    assert (report.imported, report.duplicates) == (3, 2)
    with engine.connect() as connection:
        kept = connection.execute(
            select(CustomerEvent.customer_id, CustomerEvent.event_type).where(
                CustomerEvent.event_id == "e1"
            )
        ).one()
    assert tuple(kept) == ("c1", "visit")


def test_rows_another_import_left_staged_are_neither_imported_nor_removed(engine, tmp_path):
    other = {"import_id": 1, "file_row": 1, "event_id": "x", "customer_id": "intruder"}
    other |= {"event_type": "visit", "occurred_at": datetime(2026, 10, 1), "amount": None}
    with engine.begin() as connection:
        connection.execute(insert(CustomerEventStaging), [other])
    report = run_import(engine, write(tmp_path, HEADER + GOOD_ROWS))
    assert (report.imported, report.customers_created) == (3, 2)
    with engine.connect() as connection:
        assert "intruder" not in connection.scalars(select(Customer.customer_id)).all()
    assert staged_rows(engine) == 1


def test_no_bulk_load_is_larger_than_the_chunk(engine, tmp_path, monkeypatch):
    """Memory is bounded by the chunk, not the file: the file is never loaded at once."""
    loads = []
    real_bulk_insert = event_import.bulk_insert

    def counting_bulk_insert(connection, table, frame):
        loads.append(len(frame))
        real_bulk_insert(connection, table, frame)

    monkeypatch.setattr(event_import, "bulk_insert", counting_bulk_insert)
    run_import(engine, write(tmp_path, HEADER + many_rows(25)), chunk_rows=6)
    assert loads == [6, 6, 6, 6, 1]


def test_content_hashes_are_those_earlier_versions_stored():
    """Ids of events imported by an earlier version: a change here would import them again."""
    events = pd.DataFrame(
        {
            "customer_id": ["c1", "Caf\u00e9", "C1", "x|y", "c1"],
            "event_type": ["visit", "purchase", "purchase", "a|b", "visit"],
            "occurred_at": pd.to_datetime(
                [
                    "2026-10-01 10:00:00",
                    "2026-10-02 07:30:00.000001",
                    "1999-01-02 03:04:05",
                    "2026-01-01",
                    "2026-10-01 10:00:00",
                ],
                format="ISO8601",
            ).astype("datetime64[us]"),
            "amount": [None, 19.99, -0.0, 99999999999999.5, 0.00005],
        }
    )
    assert event_keys(events).tolist() == [
        "3f144650756688e1bb7201f0cc16f490",
        "b765d743b26333066535193b6d256713",
        "fc4a7afd6d87d5ef9965bf4dc19c4272",
        "1893a8f104fee0252d51def8c1f4e29d",
        "de4100f44238a29373d9c391fe6db7e0",
    ]
