"""Hostile values refused at the door: amounts the stored column cannot hold, ids that look
alike, ids that differ only in case, model inputs a mapped source makes infinite."""

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from db.engine import transaction
from db.errors import ImportRejected
from db.event_import import FileColumns, amount_limit, import_events
from db.models import (
    Customer,
    CustomerEvent,
    PropensityScore,
    PropensityScoreStaging,
    ScoreRun,
)
from flows.score import score
from service.pseudonyms import pseudonym
from service.settings import ScoreRequest

NOW = datetime(2026, 11, 1, 12, 0)


def import_csv(engine, tmp_path: Path, rows: str, **options):
    path = tmp_path / "events.csv"
    path.write_text("customer_id,occurred_at,event_type,amount\n" + rows, encoding="utf-8")
    with transaction(engine) as session:
        return import_events(session, path, FileColumns(), NOW, timedelta(hours=1), **options)


def stored(engine, *columns) -> list[tuple]:
    """The rows' columns, sorted in Python: each database orders `C1` and `c1` its own way."""
    with engine.connect() as connection:
        return sorted(tuple(row) for row in connection.execute(select(*columns)))


def test_the_amount_limit_is_the_stored_column_s():
    amount = CustomerEvent.__table__.c.amount.type
    assert amount_limit() == 10.0 ** (amount.precision - amount.scale) == 1e14


def test_amounts_the_column_cannot_hold_are_rejected_by_row_on_every_database(engine, tmp_path):
    rows = (
        "c1,2026-10-01,purchase,1e308\n"
        "c1,2026-10-02,purchase,-1.5e308\n"
        "c2,2026-10-03,purchase,100000000000000\n"
        "c2,2026-10-04,purchase,99999999999999.5\n"
        "c3,2026-10-05,purchase,inf\n"
    )
    with pytest.raises(ImportRejected) as rejected:
        import_csv(engine, tmp_path, rows)
    message = str(rejected.value)
    assert "4 of 5 rows rejected" in message
    for row, amount in ((1, "1e308"), (2, "-1.5e308"), (3, "100000000000000")):
        assert f"row {row}: amount out of range (|amount| < 1e+14): {amount}" in message
    assert "row 5: non-finite amount: inf" in message
    assert stored(engine, CustomerEvent.event_id) == []

    report = import_csv(engine, tmp_path, rows, skip_invalid=True)
    assert (report.imported, report.rejected) == (1, 4)
    assert [
        (c, float(a)) for c, a in stored(engine, CustomerEvent.customer_id, CustomerEvent.amount)
    ] == [("c2", 99999999999999.5)]


def test_ids_are_one_id_whatever_their_unicode_form_or_invisible_characters(engine, tmp_path):
    rows = (
        "Cafe\u0301,2026-10-01,visit,\n"  # e + combining acute accent
        "Caf\u00e9,2026-10-02,visit,\n"  # precomposed é
        "c\u200b1,2026-10-03,visit,\n"
        "\ufeffc1\u2060,2026-10-04,visit,\n"
        "c1,2026-10-05,visit,\n"
        "\u200d,2026-10-06,visit,\n"
    )
    with pytest.raises(ImportRejected, match="row 6: missing customer_id"):
        import_csv(engine, tmp_path, rows)
    report = import_csv(engine, tmp_path, rows, skip_invalid=True)
    assert (report.imported, report.customers_created) == (5, 2)
    assert stored(engine, Customer.customer_id) == [("Caf\u00e9",), ("c1",)]


def test_ids_differing_only_in_case_are_two_customers_stored_as_spelled(engine, tmp_path):
    """MariaDB's default collation made `c1` and `C1` one key (migration 0006)."""
    import_csv(engine, tmp_path, "c1,2026-10-01,visit,\nC1,2026-10-02,purchase,5\n")
    import_csv(engine, tmp_path, "C1,2026-10-03,visit,\n")
    assert stored(engine, Customer.customer_id) == sorted([("C1",), ("c1",)])
    assert stored(engine, CustomerEvent.customer_id, CustomerEvent.occurred_at) == sorted(
        [
            ("c1", datetime(2026, 10, 1)),
            ("C1", datetime(2026, 10, 2)),
            ("C1", datetime(2026, 10, 3)),
        ]
    )
    with engine.connect() as connection:
        exact = connection.scalar(
            select(func.count()).select_from(Customer).where(Customer.customer_id == "c1")
        )
    assert exact == 1


@pytest.mark.usefixtures("champion")
def test_recent_events_rule_scores_c1_and_C1_as_two_customers(populated, configure, tmp_path):
    configure(active_rule="recent_events", active_within_days=30)
    with populated.connect() as connection:
        latest = connection.scalar(select(func.max(CustomerEvent.occurred_at)))
    day = f"{latest - timedelta(days=1):%Y-%m-%d %H:%M:%S}"
    import_csv(populated, tmp_path, f"c1,{day},visit,\nC1,{day},purchase,5\n")
    summary = score()
    with populated.connect() as connection:
        scored = connection.scalars(text("SELECT customer_id FROM current_propensity_scores"))
        scored = {customer for customer in scored.all() if customer.lower() == "c1"}
    assert scored == {"c1", "C1"}
    assert summary.n_scored > 2


@pytest.mark.usefixtures("champion")
def test_a_mapped_source_whose_amounts_overflow_fails_the_run_naming_customer_and_column(
    huge_amounts_source, configure
):
    """The customer by pseudonym: the error reaches Prefect's logs and score_runs.error."""
    key = "a-pseudonym-key-of-32-characters"
    configure(pseudonym_key=key)
    named = rf"for 1 customer\(s\) \(pseudonyms {pseudonym('big', key.encode())}\).*'revenue'"
    # The source's events end months before the champion's training cutoff.
    with pytest.raises(ValueError, match=named):
        score(ScoreRequest(in_sample=True))
    with huge_amounts_source.connect() as connection:
        ((status, error),) = connection.execute(select(ScoreRun.status, ScoreRun.error)).all()
        published = connection.scalar(select(func.count()).select_from(PropensityScore))
        staged = connection.scalar(select(func.count()).select_from(PropensityScoreStaging))
    assert status == "failed"
    assert error.startswith("ValueError: model inputs monetary are not finite")
    assert "small" not in error and "big" not in error
    assert (published, staged) == (0, 0)
