"""Import an event file (CSV or Parquet) into customer_events, all or nothing.

Rows are validated chunk by chunk (memory bounded by the chunk size) and written in the
caller's transaction; the caller commits only when the report says so.
"""

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.bulk import insert_new_rows
from db.errors import ImportRejected
from db.models import (
    CUSTOMER_ID_LENGTH,
    EVENT_ID_LENGTH,
    EVENT_TYPE_LENGTH,
    Customer,
    CustomerEvent,
)
from db.timestamps import parse_timestamps

MAX_REJECT_EXAMPLES = 20
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
    _require_columns(path, [name.strip() for name in header], columns)
    reader = pd.read_csv(
        path,
        encoding="utf-8-sig",
        dtype=str,
        keep_default_na=False,
        chunksize=chunk_rows,
        usecols=lambda name: name.strip() in columns.required(),
    )
    for chunk in reader:
        yield chunk.rename(columns=str.strip)


def _parquet_chunks(path: Path, columns: FileColumns, chunk_rows: int) -> Iterator[pd.DataFrame]:
    parquet = pq.ParquetFile(path)
    _require_columns(path, parquet.schema_arrow.names, columns)
    for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns.required()):
        yield batch.to_pandas()


def _text(values: pd.Series) -> pd.Series:
    return values.astype("str").str.strip().where(values.notna(), "")


def _identifier(values: pd.Series) -> pd.Series:
    """Ids as stored: NFC-normalised, invisible characters removed, so ids that differ only
    in how the same characters are encoded or in what cannot be seen are one id."""
    return _text(values).str.replace(INVISIBLE, "", regex=True).str.normalize("NFC").str.strip()


def validate_events(
    chunk: pd.DataFrame,
    columns: FileColumns,
    now: datetime,
    future_tolerance: timedelta,
    timezone: str = "UTC",
    allowed_event_types: frozenset[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a chunk into storable events and rejected rows (row, reason)."""
    customer_id = _identifier(chunk[columns.customer_id])
    event_type = _text(chunk[columns.event_type])
    raw_time = chunk[columns.occurred_at]
    occurred_at = parse_timestamps(raw_time, timezone)
    amount_raw = chunk[columns.amount] if columns.amount else pd.Series(np.nan, index=chunk.index)
    amount_text = _text(amount_raw)
    amount = pd.to_numeric(amount_raw.where(amount_text != "", None), errors="coerce")

    limit = amount_limit()
    reason = pd.Series("", index=chunk.index, dtype="str")
    checks = [
        (customer_id == "", "missing customer_id"),
        (customer_id.str.len() > CUSTOMER_ID_LENGTH, "customer_id too long"),
        (_text(raw_time) == "", "missing occurred_at"),
        (occurred_at.isna(), "unparseable occurred_at: " + _text(raw_time)),
        (occurred_at > pd.Timestamp(now) + future_tolerance, "occurred_at in the future"),
        (event_type == "", "missing event_type"),
        (event_type.str.len() > EVENT_TYPE_LENGTH, "event_type too long"),
        (amount.isna() & (amount_text != ""), "non-numeric amount: " + amount_text),
        (~np.isfinite(amount.fillna(0)), "non-finite amount: " + amount_text),
        (amount.abs() >= limit, f"amount out of range (|amount| < {limit:g}): " + amount_text),
    ]
    if allowed_event_types is not None:
        checks.append((~event_type.isin(allowed_event_types), "unknown event_type: " + event_type))
    for failed, message in checks:
        pending = failed & (reason == "")
        if pending.any():
            reason[pending] = message[pending] if isinstance(message, pd.Series) else message
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
    given_ids = _identifier(chunk[columns.event_id])[~bad] if columns.event_id else None
    good.insert(0, "event_id", event_keys(good, given_ids))
    return good, rejected


def event_keys(events: pd.DataFrame, given_ids: pd.Series | None = None) -> pd.Series:
    """The source's own id where it has one, else a hash of the event's content."""
    content = (
        events["customer_id"]
        + "|"
        + events["event_type"]
        + "|"
        + events["occurred_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
        + "|"
        + events["amount"].map(lambda value: "" if pd.isna(value) else f"{value:.4f}").astype("str")
    )
    hashed = content.map(lambda text: hashlib.blake2b(text.encode(), digest_size=16).hexdigest())
    if given_ids is None:
        return hashed
    return given_ids.where(given_ids != "", hashed).str.slice(0, EVENT_ID_LENGTH)


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


def store_events(session: Session, events: pd.DataFrame) -> None:
    """Insert events (and customers first seen in them); existing event ids are skipped."""
    events = events.drop_duplicates("event_id")
    first_seen = events.groupby("customer_id", sort=False)["occurred_at"].min()
    store_customers(
        session,
        pd.DataFrame(
            {"customer_id": first_seen.index, "is_active": True, "created_at": first_seen.values}
        ),
    )
    rows = pd.DataFrame(
        {
            "event_id": events["event_id"].to_numpy(object),
            "customer_id": events["customer_id"].to_numpy(object),
            "event_type": events["event_type"].to_numpy(object),
            "occurred_at": events["occurred_at"].dt.to_pydatetime(),
            "amount": events["amount"].astype(object).where(events["amount"].notna(), None),
        }
    )
    insert_new_rows(session, CustomerEvent.__table__, rows.to_dict("records"))


def count_rows(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model))


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
) -> ImportReport:
    """Validate and insert every row in the session's transaction.

    Raises ImportRejected (and the caller rolls back) when a row is invalid and
    skip_invalid is False; otherwise rejected rows go to rejected_path.
    """
    report = ImportReport()
    events_before = count_rows(session, CustomerEvent)
    customers_before = count_rows(session, Customer)
    stored = 0
    if rejected_path is not None and rejected_path.exists():
        rejected_path.unlink()
    for chunk in read_event_file(path, columns, chunk_rows):
        report.rows_read += len(chunk)
        good, rejected = validate_events(
            chunk, columns, now, future_tolerance, timezone, allowed_event_types
        )
        if len(rejected):
            report.add_rejects(rejected)
            if skip_invalid and rejected_path is not None:
                rejected.to_csv(
                    rejected_path, mode="a", index=False, header=not rejected_path.exists()
                )
        if not report.rejected or skip_invalid:
            store_events(session, good)
            stored += len(good)
        on_chunk(len(chunk))
    if report.rows_read == 0:
        raise ImportRejected(f"{path}: the file has a header but no rows")
    if report.rejected and not skip_invalid:
        raise ImportRejected(f"{path}: nothing imported. {report.describe_rejects()}")
    session.flush()
    report.imported = count_rows(session, CustomerEvent) - events_before
    report.customers_created = count_rows(session, Customer) - customers_before
    report.duplicates = stored - report.imported
    return report
