"""What an import reads of a file, and what it writes beside it: only the mapped columns,
no file wider than 1,000 columns, integer ids as their text, a byte that is not UTF-8 or a
Parquet column that cannot be read named by file, column and row; the rejected rows in a
file only the service's user reads, each cell inert in a spreadsheet."""

import csv
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from db.engine import transaction
from db.errors import ImportRejected
from db.event_import import MAX_FILE_COLUMNS, FileColumns, ImportReport, import_events
from db.models import Customer, CustomerEvent

NOW = datetime(2026, 11, 1, 12, 0)
HEADER = "customer_id,occurred_at,event_type,amount"
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def run_import(engine, path: Path, **options) -> ImportReport:
    with transaction(engine) as session:
        return import_events(session, path, FileColumns(), NOW, timedelta(hours=1), **options)


def stored(engine) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        query = select(CustomerEvent.customer_id, CustomerEvent.event_type)
        return sorted(connection.execute(query).tuples())


def csv_file(tmp_path: Path, content: bytes, name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def parquet_file(tmp_path: Path, table: pa.Table, **options) -> Path:
    path = tmp_path / "events.parquet"
    pq.write_table(table, path, **options)
    return path


def events_table(n: int, **extra: pa.Array) -> pa.Table:
    return pa.table(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "occurred_at": pa.array(pd.date_range("2026-10-01", periods=n, freq="min")),
            "event_type": ["visit"] * n,
            "amount": pa.array([None] * n, pa.float64()),
            **extra,
        }
    )


# --- only the mapped columns, never more than 1,000 of them ------------------------------


@sqlite_only
def test_a_csv_wider_than_1000_columns_is_refused_from_its_header(engine, tmp_path):
    extra = ",".join(f"x{i}" for i in range(MAX_FILE_COLUMNS - 3))  # 1,001 columns in all
    # The rows are not CSV at all: only the header may have been read.
    path = csv_file(tmp_path, f"{HEADER},{extra}\n\x00garbage\n".encode())
    with pytest.raises(ImportRejected) as refused:
        run_import(engine, path)
    assert str(refused.value) == (
        f"{path}: 1,001 columns, more than the 1,000 an event file may have"
    )
    assert stored(engine) == []


@sqlite_only
def test_a_csv_of_exactly_1000_columns_is_imported(engine, tmp_path):
    extra = ",".join(f"x{i}" for i in range(MAX_FILE_COLUMNS - 4))
    cells = ",".join("" for _ in range(MAX_FILE_COLUMNS - 4))
    path = csv_file(tmp_path, f"{HEADER},{extra}\nc1,2026-10-01,visit,,{cells}\n".encode())
    assert run_import(engine, path).imported == 1


@sqlite_only
def test_a_parquet_file_wider_than_1000_columns_is_refused(engine, tmp_path):
    extra = {f"x{i}": pa.array([0]) for i in range(MAX_FILE_COLUMNS - 3)}
    path = parquet_file(tmp_path, events_table(1, **extra))
    with pytest.raises(ImportRejected, match=r"1,001 columns, more than the 1,000"):
        run_import(engine, path)


def corrupt_column(path: Path, column: str, row_group: int) -> None:
    """Scramble the pages of one column chunk in place, past its first bytes."""
    chunk = pq.ParquetFile(path).metadata.row_group(row_group)
    names = [chunk.column(i).path_in_schema for i in range(chunk.num_columns)]
    meta = chunk.column(names.index(column))
    start = meta.dictionary_page_offset or meta.data_page_offset
    content = bytearray(path.read_bytes())
    for i in range(start + 10, start + meta.total_compressed_size - 2):
        content[i] = (content[i] * 7 + 13) % 256
    path.write_bytes(bytes(content))


@sqlite_only
def test_a_parquet_column_that_is_not_mapped_is_never_read(engine, tmp_path):
    path = parquet_file(tmp_path, events_table(3, notes=pa.array(["x" * 200] * 3)))
    corrupt_column(path, "notes", 0)
    assert run_import(engine, path).imported == 3


# --- ids as their text ------------------------------------------------------------------


def test_parquet_integer_ids_with_nulls_keep_their_integer_text(engine, tmp_path):
    table = pa.table(
        {
            "customer_id": pa.array([7, None, 12345678901234], pa.int64()),
            "occurred_at": pa.array(pd.to_datetime(["2026-10-01"] * 3)),
            "event_type": pa.array([3, 4, None], pa.int32()),
            "amount": pa.array([1.5, None, 2.0]),
            "event_id": pa.array([100, 101, None], pa.int64()),
        }
    )
    path = parquet_file(tmp_path, table)
    columns = FileColumns(event_id="event_id")
    with transaction(engine) as session:
        report = import_events(session, path, columns, NOW, timedelta(hours=1), skip_invalid=True)
    assert (report.imported, report.rejected) == (1, 2)
    assert report.reasons == {"missing customer_id": 1, "missing event_type": 1}
    with engine.connect() as connection:
        events = connection.execute(
            select(CustomerEvent.event_id, CustomerEvent.customer_id, CustomerEvent.event_type)
        ).all()
        customers = connection.execute(select(Customer.customer_id)).scalars().all()
    assert [tuple(event) for event in events] == [("100", "7", "3")]
    assert customers == ["7"]


# --- undecodable bytes and unreadable columns, named ---------------------------------------


@sqlite_only
@pytest.mark.parametrize(
    ("rows", "where"),
    [
        (b"c1,2026-10-01,visit,\nc\xfe2,2026-10-01,visit,\n", "column 'customer_id', row 2"),
        (b"c1,2026-10-01,visit,\nc2,2026-10-01,vis\xfft,\n", "column 'event_type', row 2"),
    ],
    ids=["customer_id", "event_type"],
)
def test_a_byte_that_is_not_utf8_is_named_by_file_column_and_row(engine, tmp_path, rows, where):
    path = csv_file(tmp_path, f"{HEADER}\n".encode() + rows)
    with pytest.raises(ImportRejected) as refused:
        run_import(engine, path, chunk_rows=1)
    byte = "0xfe" if "customer" in where else "0xff"
    assert str(refused.value) == f"{path}: byte {byte} is not UTF-8 ({where})"
    assert stored(engine) == []


@sqlite_only
def test_a_byte_that_is_not_utf8_in_a_column_not_imported_is_named_too(engine, tmp_path):
    """The CSV reader decodes whole lines before it picks the mapped columns."""
    rows = b"".join(b"c%d,2026-10-01,visit,,fine\n" % i for i in range(1, 2000))
    path = csv_file(tmp_path, f"{HEADER},notes\n".encode() + rows + b"c0,2026-10-01,visit,,\x80\n")
    with pytest.raises(ImportRejected) as refused:
        run_import(engine, path, chunk_rows=500)
    assert str(refused.value) == f"{path}: byte 0x80 is not UTF-8 (column 'notes', row 2,000)"


@sqlite_only
def test_a_header_that_is_not_utf8_is_named(engine, tmp_path):
    path = csv_file(tmp_path, f"{HEADER},n\xe9\n".encode("latin-1"))
    with pytest.raises(ImportRejected, match=r"byte 0xe9 is not UTF-8 \(the header row\)"):
        run_import(engine, path)


@sqlite_only
def test_a_corrupt_parquet_column_is_named_with_its_rows(engine, tmp_path):
    path = parquet_file(tmp_path, events_table(5000), row_group_size=2000)
    corrupt_column(path, "event_type", row_group=1)
    with pytest.raises(ImportRejected) as refused:
        run_import(engine, path, chunk_rows=700)
    message = str(refused.value)
    assert message.startswith(f"{path}: cannot read column 'event_type', rows 2,001-4,000: ")
    assert "\n" not in message
    assert stored(engine) == []


# --- the rejected rows' file ------------------------------------------------------------

HOSTILE = ['=HYPERLINK("http://e/")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


@sqlite_only
def test_rejected_rows_are_written_inert_to_a_file_only_the_user_reads(engine, tmp_path):
    rows = pd.DataFrame(
        {
            "customer_id": ["c1", *HOSTILE],
            "occurred_at": ["2026-10-01", *["yesterday-ish"] * len(HOSTILE)],
            "event_type": "visit",
            "amount": "",
        }
    )
    path = tmp_path / "events.csv"
    rows.to_csv(path, index=False, quoting=csv.QUOTE_ALL)
    rejected_path = tmp_path / "events.csv.rejected.csv"
    report = run_import(engine, path, skip_invalid=True, rejected_path=rejected_path, chunk_rows=2)
    assert (report.imported, report.rejected) == (1, len(HOSTILE))
    assert stat.S_IMODE(rejected_path.stat().st_mode) == 0o600
    rejected = pd.read_csv(rejected_path, dtype=str, keep_default_na=False)
    assert rejected["customer_id"].tolist() == ["'" + value for value in HOSTILE]
    assert rejected["row"].tolist() == [str(row) for row in range(2, 2 + len(HOSTILE))]
    assert set(rejected["reason"]) == {"unparseable occurred_at: yesterday-ish"}
