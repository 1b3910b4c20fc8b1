"""Dialect-aware bulk writes: multi-row inserts that skip rows whose key already exists."""

from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Insert, Table
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring_duplicates(table: Table, dialect_name: str) -> Insert:
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect_name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    if dialect_name in ("mysql", "mariadb"):
        # Not INSERT IGNORE: that would also swallow truncation and other data errors.
        statement = mysql.insert(table)
        key = table.primary_key.columns[0].name
        return statement.on_duplicate_key_update({key: statement.inserted[key]})
    raise NotImplementedError(f"bulk insert is not supported on {dialect_name}")


def insert_new_rows(
    bind: Session | Connection, table: Table, rows: Sequence[dict[str, Any]]
) -> None:
    """Insert rows in large multi-row batches; rows whose primary key exists are skipped."""
    if rows:
        bind.execute(insert_ignoring_duplicates(table, bind.get_bind().dialect.name), list(rows))


def bulk_insert(connection: Connection, table: Table, frame: pd.DataFrame) -> None:
    """Fastest plain insert per database: COPY on PostgreSQL, multi-row INSERTs elsewhere."""
    if frame.empty:
        return
    if connection.dialect.name == "postgresql":
        _copy_csv(connection, table, frame)
    else:
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        connection.execute(table.insert(), records)


def _copy_csv(connection: Connection, table: Table, frame: pd.DataFrame) -> None:
    # Identifiers come from the table's own metadata, quoted by the dialect.
    quote = connection.dialect.identifier_preparer
    columns = ", ".join(quote.quote(name) for name in frame.columns)
    statement = f"COPY {quote.format_table(table)} ({columns}) FROM STDIN WITH (FORMAT csv)"
    cursor = connection.connection.driver_connection.cursor()
    try:
        with cursor.copy(statement) as copy:
            copy.write(frame.to_csv(index=False, header=False))
    finally:
        cursor.close()
