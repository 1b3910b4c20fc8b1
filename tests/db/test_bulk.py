"""Each database's bulk path (COPY, LOAD DATA, executemany) stores what SQLAlchemy would."""

from datetime import datetime

import pandas as pd
import pytest
from sqlalchemy import insert, select

from db import bulk
from db.bulk import BulkLoadRefused, bulk_insert
from db.models import CustomerEventStaging

TEXTS = ["NULL", "", None, 'say "hi", twice', "line\nbreak", "back\\slash", "Größe"]


def staging_frame(**columns) -> pd.DataFrame:
    """Staged events, one per value given in each column (defaults for the rest)."""
    n = len(next(iter(columns.values())))
    defaults = {
        "import_id": [1] * n,
        "file_row": list(range(1, n + 1)),
        "event_id": [f"e{i}" for i in range(n)],
        "customer_id": ["c1"] * n,
        "event_type": ["visit"] * n,
        "occurred_at": pd.to_datetime(["2026-10-01 10:00"] * n).astype("datetime64[us]"),
        "amount": [None] * n,
    }
    return pd.DataFrame(defaults | columns).astype({"amount": "float64"})


def stored(engine, column, import_id: int = 1) -> list:
    """The column's values staged under import_id, in row order."""
    with engine.connect() as connection:
        query = select(column).where(CustomerEventStaging.import_id == import_id)
        return list(connection.execute(query.order_by(CustomerEventStaging.file_row)).scalars())


def test_text_null_empty_text_and_null_stay_three_values(engine):
    texts = staging_frame(customer_id=[text for text in TEXTS if text is not None])
    amounts = staging_frame(amount=[None, 0.0, 19.99]).assign(import_id=2)
    with engine.begin() as connection:
        bulk_insert(connection, CustomerEventStaging.__table__, texts)
        bulk_insert(connection, CustomerEventStaging.__table__, amounts)
    assert stored(engine, CustomerEventStaging.customer_id) == texts["customer_id"].tolist()
    amount = stored(engine, CustomerEventStaging.amount, import_id=2)
    assert [None if value is None else float(value) for value in amount] == [None, 0.0, 19.99]


def test_bulk_timestamps_compare_equal_to_those_sqlalchemy_writes(engine):
    """SQLite keeps timestamps as text: written another way, `=` and `<=` would miss them."""
    moments = [datetime(2026, 10, 1, 10, 0), datetime(2026, 10, 1, 10, 0, 0, 7)]
    with engine.begin() as connection:
        frame = staging_frame(occurred_at=pd.to_datetime(moments).astype("datetime64[us]"))
        bulk_insert(connection, CustomerEventStaging.__table__, frame)
        rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
        orm = [row | {"import_id": 2} for row in rows]
        connection.execute(insert(CustomerEventStaging), orm)
    with engine.connect() as connection:
        for moment in moments:
            same = select(CustomerEventStaging.import_id).where(
                CustomerEventStaging.occurred_at == moment
            )
            assert sorted(connection.execute(same).scalars()) == [1, 2]


def test_mysql_refuses_a_load_that_would_change_a_value(engine):
    if engine.dialect.name != "mysql":
        pytest.skip("COPY and executemany fail on such a value by themselves")
    frame = staging_frame(event_type=["visit", "x" * 65])
    too_long = pytest.raises(BulkLoadRefused, match="column 'event_type'")
    with too_long, engine.begin() as connection:
        bulk_insert(connection, CustomerEventStaging.__table__, frame)
    assert stored(engine, CustomerEventStaging.event_type) == []


def test_mysql_without_local_infile_inserts_the_rows_instead(engine, monkeypatch):
    if engine.dialect.name != "mysql":
        pytest.skip("LOAD DATA LOCAL INFILE is MariaDB's and MySQL's")
    monkeypatch.setattr(bulk, "_local_infile_allowed", lambda connection: False)
    frame = staging_frame(customer_id=[text for text in TEXTS if text is not None])
    with engine.begin() as connection:
        bulk_insert(connection, CustomerEventStaging.__table__, frame)
    assert stored(engine, CustomerEventStaging.customer_id) == frame["customer_id"].tolist()
