"""Import an event file (CSV or Parquet) into customer_events, all or nothing.

Rows are validated chunk by chunk (memory bounded by the chunk size) and bulk-loaded into
the staging table (COPY on PostgreSQL, LOAD DATA on MariaDB); once the whole file is
staged, one INSERT ... SELECT adds the customers first seen in it and one its events, each
skipping rows already present, and the staged rows are deleted. All of it happens in the
caller's transaction; the caller commits only when the report says so.
"""

import hashlib
import math
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Insert, delete, func, literal, select
from sqlalchemy.orm import Session

from db.bulk import MYSQL, bulk_insert, insert_new_from, insert_new_rows
from db.erasure import SuppressionList
from db.errors import ImportRejected
from db.files import write_private_csv
from db.models import (
    CUSTOMER_ID_LENGTH,
    EVENT_ID_LENGTH,
    EVENT_TYPE_LENGTH,
    Customer,
    CustomerEvent,
    CustomerEventStaging,
)
from db.timestamps import parse_timestamps

T = TypeVar("T")
MAX_REJECT_EXAMPLES = 20
# Wider files are refused from their header: no event file needs more, and a reader of one
# would hold every column's names and buffers.
MAX_FILE_COLUMNS = 1_000
# A byte that is not UTF-8, as Python's surrogateescape decodes it.
UNDECODED = re.compile("[\udc80-\udcff]")
PARQUET_READ_ERRORS = (OSError, pa.ArrowException, UnicodeDecodeError)
# Zero-width space, non-joiner and joiner, word joiner, and the byte-order mark: invisible,
# so two ids that differ only by them look the same to anyone reading them.
INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")


def amount_limit() -> float:
    """The smallest magnitude customer_events.amount cannot hold: 10 ** (precision - scale)
    of its NUMERIC type (PostgreSQL and MariaDB refuse more, SQLite would store it)."""
    amount = CustomerEvent.__table__.c.amount.type
    return 10.0 ** (amount.precision - amount.scale)


@dataclass(frozen=True)
class FileColumns:
    """Names of the file's columns for each field the service stores."""

    customer_id: str = "customer_id"
    occurred_at: str = "occurred_at"
    event_type: str = "event_type"
    amount: str | None = "amount"
    event_id: str | None = None

    def required(self) -> list[str]:
        optional = [name for name in (self.amount, self.event_id) if name]
        return [self.customer_id, self.occurred_at, self.event_type, *optional]


@dataclass
class ImportReport:
    rows_read: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    customers_created: int = 0
    # Rows of erased customers (on the suppression list), never imported.
    suppressed: int = 0
    reasons: Counter = field(default_factory=Counter)
    examples: list[tuple[int, str]] = field(default_factory=list)

    def add_rejects(self, rejected: pd.DataFrame) -> None:
        self.rejected += len(rejected)
        self.reasons.update(rejected["reason"].str.split(":").str[0])
        room = MAX_REJECT_EXAMPLES - len(self.examples)
        if room > 0:
            head = rejected.head(room)
            self.examples += list(zip(head["row"].tolist(), head["reason"].tolist(), strict=True))

    def describe_rejects(self) -> str:
        counts = ", ".join(f"{reason}: {n}" for reason, n in self.reasons.most_common())
        rows = "; ".join(f"row {row}: {reason}" for row, reason in self.examples)
        return f"{self.rejected} of {self.rows_read} rows rejected ({counts}). {rows}"


def read_event_file(path: Path, columns: FileColumns, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Yield chunks of the file as strings (CSV) or typed values (Parquet), with a 1-based row."""
    if not path.is_file():
        raise ImportRejected(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImportRejected(f"{path}: the file is empty")
    suffixes = "".join(path.suffixes[-2:]).lower()
    if path.suffix.lower() == ".parquet":
        chunks = _parquet_chunks(path, columns, chunk_rows)
    elif path.suffix.lower() == ".csv" or suffixes in (".csv.gz", ".csv.zip", ".csv.bz2"):
        chunks = _csv_chunks(path, columns, chunk_rows)
    else:
        raise ImportRejected(f"{path}: unsupported file type (expected .csv or .parquet)")
    first_row = 1
    for chunk in chunks:
        chunk.insert(0, "row", np.arange(first_row, first_row + len(chunk)))
        first_row += len(chunk)
        yield chunk


def _require_columns(path: Path, present: list[str], columns: FileColumns) -> None:
    # Checked on the header alone: a file this wide is refused before any row is read.
    if len(present) > MAX_FILE_COLUMNS:
        raise ImportRejected(
            f"{path}: {len(present):,} columns, more than the {MAX_FILE_COLUMNS:,} an event "
            "file may have"
        )
    missing = [name for name in columns.required() if name not in present]
    if missing:
        raise ImportRejected(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; "
            f"the file has {', '.join(map(repr, present)) or 'no columns'}"
        )


def _csv_chunks(path: Path, columns: FileColumns, chunk_rows: int) -> Iterator[pd.DataFrame]:
    # utf-8-sig drops a byte-order mark; pandas reads \r\n line endings as they are.
    try:
        header = pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns.tolist()
    except pd.errors.EmptyDataError:
        raise ImportRejected(f"{path}: the file has no header row") from None
    except UnicodeDecodeError as error:
        raise _undecodable(path, error, chunk_rows) from None
    _require_columns(path, [name.strip() for name in header], columns)
    reader = pd.read_csv(
        path,
        encoding="utf-8-sig",
        dtype=str,
        keep_default_na=False,
        chunksize=chunk_rows,
        usecols=lambda name: name.strip() in columns.required(),
    )
    try:
        for chunk in reader:
            yield chunk.rename(columns=str.strip)
    except UnicodeDecodeError as error:
        raise _undecodable(path, error, chunk_rows) from None


def _undecodable(path: Path, error: UnicodeDecodeError, chunk_rows: int) -> ImportRejected:
    """The file refused, naming where its first byte that is not UTF-8 is: found by reading
    it again, header included, with each such byte kept as a lone surrogate. Any column
    counts: the reader decodes whole lines before it picks the mapped columns."""
    byte = f"byte 0x{error.object[error.start]:02x} is not UTF-8"
    lines = pd.read_csv(
        path,
        header=None,
        encoding="utf-8-sig",
        encoding_errors="surrogateescape",
        dtype=object,
        keep_default_na=False,
        chunksize=chunk_rows,
    )
    names: list[str] = []
    for chunk in lines:
        names = names or chunk.iloc[0].tolist()
        found = chunk.apply(lambda cells: cells.str.contains(UNDECODED.pattern, na=False))
        if found.to_numpy().any():
            row = found.any(axis="columns").idxmax()
            column = names[found.loc[row].to_numpy().argmax()]
            where = "the header row" if row == 0 else f"column {column!r}, row {row:,}"
            return ImportRejected(f"{path}: {byte} ({where})")
    return ImportRejected(f"{path}: {byte}")


def _parquet_chunks(path: Path, columns: FileColumns, chunk_rows: int) -> Iterator[pd.DataFrame]:
    # Only the footer is read here; the batches read the mapped columns alone.
    parquet = pq.ParquetFile(path)
    _require_columns(path, parquet.schema_arrow.names, columns)
    batches = parquet.iter_batches(batch_size=chunk_rows, columns=columns.required())
    rows_read = 0
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                return
            chunk = _ids_as_text(batch, columns).to_pandas()
        except PARQUET_READ_ERRORS as error:
            raise _unreadable(parquet, path, columns, rows_read, error) from None
        rows_read += len(chunk)
        yield chunk


def _ids_as_text(batch: pa.RecordBatch, columns: FileColumns) -> pa.RecordBatch:
    """Integer id and type columns as text: pandas would turn one holding nulls into floats,
    and the id 7 into "7.0"."""
    for name in (columns.customer_id, columns.event_type, columns.event_id):
        index = batch.schema.get_field_index(name) if name else -1
        if index >= 0 and pa.types.is_integer(batch.schema.field(index).type):
            batch = batch.set_column(index, name, pc.cast(batch.column(index), pa.string()))
    return batch


def _unreadable(
    parquet: pq.ParquetFile, path: Path, columns: FileColumns, rows_read: int, error: Exception
) -> ImportRejected:
    """The file refused, naming the first mapped column that cannot be read in a row group
    not yet (wholly) read, each read alone to find it, with the row group's rows. The reader
    reads ahead, so the failing row group may lie past `rows_read`."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    first = 1
    for group in range(parquet.num_row_groups):
        rows = parquet.metadata.row_group(group).num_rows
        if first + rows > rows_read + 1:
            for name in columns.required():
                try:
                    parquet.read_row_group(group, columns=[name]).to_pandas()
                except PARQUET_READ_ERRORS:
                    where = f"column {name!r}, rows {first:,}-{first + rows - 1:,}"
                    return ImportRejected(f"{path}: cannot read {where}: {reason}")
        first += rows
    return ImportRejected(f"{path}: cannot read it after row {rows_read:,}: {reason}")


def prefetched(items: Iterator[T]) -> Iterator[T]:
    """The items, each next one produced on a thread while the caller works on the one
    before: reading and validating a chunk overlaps the database's work on the previous one.
    One item at most is made ahead, so memory holds two chunks, not the file."""
    end = object()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-read") as ahead:
        upcoming = ahead.submit(next, items, end)
        while (item := upcoming.result()) is not end:
            upcoming = ahead.submit(next, items, end)
            yield item


def _text(values: pd.Series) -> pd.Series:
    return values.astype("str").str.strip().where(values.notna(), "")


def stored_ids(values: pd.Series) -> pd.Series:
    """Ids as stored: NFC-normalised, invisible characters removed, so ids that differ only
    in how the same characters are encoded or in what cannot be seen are one id."""
    # The pattern as text, not compiled: pandas then runs it in Arrow, not row by row in Python.
    visible = _text(values).str.replace(INVISIBLE.pattern, "", regex=True)
    return visible.str.normalize("NFC").str.strip()


def validate_events(
    chunk: pd.DataFrame,
    columns: FileColumns,
    now: datetime,
    future_tolerance: timedelta,
    timezone: str = "UTC",
    allowed_event_types: frozenset[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a chunk into storable events and rejected rows (row, reason)."""
    customer_id = stored_ids(chunk[columns.customer_id])
    event_type = _text(chunk[columns.event_type])
    raw_time = chunk[columns.occurred_at]
    occurred_at = parse_timestamps(raw_time, timezone)
    amount_raw = chunk[columns.amount] if columns.amount else pd.Series(np.nan, index=chunk.index)
    amount_text = _text(amount_raw)
    amount = pd.to_numeric(amount_raw.where(amount_text != "", None), errors="coerce")

    limit = amount_limit()
    reason = pd.Series("", index=chunk.index, dtype="str")
    # (rows failing, reason, the value quoted after it): the first failed check is the reason.
    checks = [
        (customer_id == "", "missing customer_id", None),
        (customer_id.str.len() > CUSTOMER_ID_LENGTH, "customer_id too long", None),
        (_text(raw_time) == "", "missing occurred_at", None),
        (occurred_at.isna(), "unparseable occurred_at", _text(raw_time)),
        (occurred_at > pd.Timestamp(now) + future_tolerance, "occurred_at in the future", None),
        (event_type == "", "missing event_type", None),
        (event_type.str.len() > EVENT_TYPE_LENGTH, "event_type too long", None),
        (amount.isna() & (amount_text != ""), "non-numeric amount", amount_text),
        (~np.isfinite(amount.fillna(0)), "non-finite amount", amount_text),
        (amount.abs() >= limit, f"amount out of range (|amount| < {limit:g})", amount_text),
    ]
    if allowed_event_types is not None:
        checks.append((~event_type.isin(allowed_event_types), "unknown event_type", event_type))
    for failed, message, value in checks:
        pending = failed & (reason == "")
        if pending.any():
            # Quoted values are built for the failing rows only: most chunks have none.
            reason[pending] = message if value is None else f"{message}: " + value[pending]
    bad = reason != ""
    rejected = chunk.loc[bad].assign(reason=reason[bad])
    good = pd.DataFrame(
        {
            "customer_id": customer_id[~bad],
            "event_type": event_type[~bad],
            "occurred_at": occurred_at[~bad],
            "amount": amount[~bad].astype("float64"),
        }
    )
    given_ids = stored_ids(chunk[columns.event_id])[~bad] if columns.event_id else None
    good.insert(0, "event_id", event_keys(good, given_ids))
    return good, rejected


def event_keys(events: pd.DataFrame, given_ids: pd.Series | None = None) -> pd.Series:
    """The source's own id where it has one, else a hash of the event's content."""
    hashed = pd.Series(_content_hashes(events), index=events.index, dtype="str")
    if given_ids is None:
        return hashed
    return given_ids.where(given_ids != "", hashed).str.slice(0, EVENT_ID_LENGTH)


def _content_hashes(events: pd.DataFrame) -> list[str]:
    """blake2b-128 of "customer|type|time|amount": the time to the microsecond, the amount to
    4 decimals (empty when missing). Events stored by earlier imports carry hashes of this
    exact text; changing it would import a file again instead of finding it present."""
    stamps = pa.array(events["occurred_at"].to_numpy("datetime64[us]")).cast(pa.string())
    moments = pc.replace_substring(stamps, " ", "T", max_replacements=1)  # ISO 8601
    amounts = events["amount"].to_numpy(dtype=float, na_value=np.nan).tolist()
    digest = hashlib.blake2b
    return [
        digest(
            f"{customer}|{kind}|{moment}|{'' if math.isnan(amount) else f'{amount:.4f}'}".encode(),
            digest_size=16,
        ).hexdigest()
        for customer, kind, moment, amount in zip(
            events["customer_id"].tolist(),
            events["event_type"].tolist(),
            moments.to_pylist(),
            amounts,
            strict=True,
        )
    ]


def store_customers(session: Session, customers: pd.DataFrame) -> None:
    """Insert customers (customer_id, is_active, created_at); existing ones are left as they are."""
    rows = pd.DataFrame(
        {
            "customer_id": customers["customer_id"].to_numpy(object),
            "is_active": customers["is_active"].astype(bool).to_numpy(object),
            "created_at": customers["created_at"].dt.to_pydatetime(),
        }
    )
    insert_new_rows(session, Customer.__table__, rows.to_dict("records"))


def new_import_id() -> int:
    """A random key for one import's staged rows, unique among concurrent imports."""
    return secrets.randbits(63)


def stage_events(session: Session, import_id: int, events: pd.DataFrame, rows: np.ndarray) -> None:
    """Bulk-load events (event_id, customer_id, event_type, occurred_at, amount), the
    `rows` of the file they were read from, into the staging table under import_id."""
    frame = pd.DataFrame(
        {
            "import_id": np.full(len(events), import_id, dtype=np.int64),
            "file_row": np.asarray(rows, dtype=np.int64),
            "event_id": events["event_id"].to_numpy(),
            "customer_id": events["customer_id"].to_numpy(),
            "event_type": events["event_type"].to_numpy(),
            "occurred_at": events["occurred_at"].to_numpy("datetime64[us]"),
            "amount": events["amount"].to_numpy(dtype=float, na_value=np.nan),
        }
    )
    bulk_insert(session.connection(), CustomerEventStaging.__table__, frame)


def insert_staged_events(session: Session, import_id: int) -> tuple[int, int]:
    """Insert the customers first seen in the import's staged rows (created_at: their
    earliest event), then its events, each skipping rows already present (of two staged
    rows sharing an event id, the first in the file is kept), and delete the staged rows.
    (customers created, events inserted)."""
    staged = CustomerEventStaging
    mine = staged.import_id == import_id
    dialect = session.get_bind().dialect.name
    customers = (
        select(
            staged.customer_id,
            literal(True).label("is_active"),
            func.min(staged.occurred_at).label("created_at"),
        )
        .where(mine)
        .group_by(staged.customer_id)
    )
    created = _inserted(session, insert_new_from(Customer.__table__, customers, dialect))
    events = (
        select(
            staged.event_id,
            staged.customer_id,
            staged.event_type,
            staged.occurred_at,
            staged.amount,
        )
        .where(mine)
        # InnoDB stores rows in key order: inserted in that order, they are appended to (and
        # on a re-import looked up in) the table page by page instead of at random.
        .order_by(*([staged.event_id] if dialect in MYSQL else []), staged.file_row)
    )
    inserted = _inserted(session, insert_new_from(CustomerEvent.__table__, events, dialect))
    session.execute(delete(staged).where(mine))
    return created, inserted


def _inserted(session: Session, statement: Insert) -> int:
    # SQLAlchemy keeps an INSERT's rowcount only when asked to.
    return session.execute(statement.execution_options(preserve_rowcount=True)).rowcount


def store_events(session: Session, events: pd.DataFrame, chunk_rows: int = 200_000) -> int:
    """Insert events (and customers first seen in them) through the staging table, as an
    import does; existing event ids are skipped. The number of events inserted."""
    import_id = new_import_id()
    for start in range(0, len(events), chunk_rows):
        part = events.iloc[start : start + chunk_rows]
        stage_events(session, import_id, part, np.arange(start + 1, start + 1 + len(part)))
    return insert_staged_events(session, import_id)[1]


def import_events(
    session: Session,
    path: Path,
    columns: FileColumns,
    now: datetime,
    future_tolerance: timedelta,
    timezone: str = "UTC",
    skip_invalid: bool = False,
    rejected_path: Path | None = None,
    allowed_event_types: frozenset[str] | None = None,
    chunk_rows: int = 200_000,
    on_chunk: Callable[[int], None] = lambda rows: None,
    on_insert: Callable[[int], None] = lambda rows: None,
    suppression_key: bytes | None = None,
) -> ImportReport:
    """Validate and insert every row in the session's transaction.

    Raises ImportRejected (and the caller rolls back) when a row is invalid and
    skip_invalid is False; otherwise rejected rows go to rejected_path. on_chunk is called
    with each chunk's rows once staged, on_insert with all staged rows before they are
    inserted (on PostgreSQL most of an import's time). Rows of customers on the suppression
    list (made with `suppression_key`) are dropped before they are staged, and counted.
    """
    report = ImportReport()
    import_id = new_import_id()
    staged = 0
    if rejected_path is not None and rejected_path.exists():
        rejected_path.unlink()
    rules = (columns, now, future_tolerance, timezone, allowed_event_types)
    # Read under a lock held until commit: no customer is erased while the import runs.
    suppression = SuppressionList.read(session, suppression_key)

    def checked(chunk: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
        good, rejected = validate_events(chunk, *rules)
        erased = suppression.suppressed(good["customer_id"])
        return chunk, good[~erased], rejected, int(erased.sum())

    chunks = read_event_file(path, columns, chunk_rows)
    # Validated and checked on the reading thread, while the database takes the chunk before.
    for chunk, good, rejected, erased in prefetched(map(checked, chunks)):
        report.rows_read += len(chunk)
        report.suppressed += erased
        if len(rejected):
            report.add_rejects(rejected)
            if skip_invalid and rejected_path is not None:
                write_private_csv(rejected, rejected_path, append=True)
        if not report.rejected or skip_invalid:
            stage_events(session, import_id, good, chunk.loc[good.index, "row"].to_numpy())
            staged += len(good)
        on_chunk(len(chunk))
    if report.rows_read == 0:
        raise ImportRejected(f"{path}: the file has a header but no rows")
    if report.rejected and not skip_invalid:
        raise ImportRejected(f"{path}: nothing imported. {report.describe_rejects()}")
    on_insert(staged)
    report.customers_created, report.imported = insert_staged_events(session, import_id)
    report.duplicates = staged - report.imported
    return report
