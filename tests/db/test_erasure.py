"""Erasing customers and old events as the database holds them, on every database: what is
removed and counted, the ranks closed up, run errors redacted, the suppression list and
its key, imports that skip erased customers, erasures and imports serialised, purges in
bounded batches."""

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select, text

from db.engine import session_factory, transaction
from db.erasure import (
    ERASED_MARK,
    SuppressionKeyError,
    SuppressionList,
    customer_key,
    forget_customers,
    purge_events_before,
)
from db.event_import import (
    FileColumns,
    event_keys,
    import_events,
    insert_staged_events,
    stage_events,
)
from db.models import (
    Customer,
    CustomerEvent,
    CustomerSuppression,
    Erasure,
    PropensityScore,
    ScoreRun,
)
from db.scores import fail_score_run, start_score_run

SECRET = b"a test suppression key, 32 bytes"
T0 = datetime(2026, 6, 1)


def count(engine, model, *where) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(model).where(*where))


def forget(engine, *ids: str, secret: bytes = SECRET):
    with transaction(engine) as session:
        return forget_customers(session, ids, secret)


def events_of(customers: dict[str, int]) -> list[tuple[str, str, datetime]]:
    """`n` visits a day apart for each customer: n."""
    return [
        (customer, "visit", T0 + timedelta(days=day))
        for customer, n in customers.items()
        for day in range(n)
    ]


def event_frame(events: list[tuple[str, str, datetime]]) -> pd.DataFrame:
    frame = pd.DataFrame(events, columns=["customer_id", "event_type", "occurred_at"])
    frame = frame.astype({"occurred_at": "datetime64[us]"}).assign(amount=float("nan"))
    return frame.assign(event_id=event_keys(frame))


def ranks(engine, run_id: int) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(
            select(PropensityScore.customer_id, PropensityScore.rank, PropensityScore.decile)
            .where(PropensityScore.score_run_id == run_id)
            .order_by(PropensityScore.rank),
            connection,
        )


def test_forget_removes_every_row_of_the_customers_and_logs_counts_without_ids(
    engine, hand_scored_run
):
    events = events_of({"alice": 3, "bob": 2, "carol": 4})
    hand_scored_run(engine, T0, {"alice": 0.9, "bob": 0.5, "carol": 0.1}, events)
    hand_scored_run(engine, T0 + timedelta(days=1), {"alice": 0.8, "carol": 0.3}, [])

    forgotten = forget(engine, "alice", "bob", "nobody", "alice")

    assert (forgotten.asked, forgotten.found, forgotten.already_erased) == (3, 2, 0)
    assert forgotten.unknown_ids == ("nobody",)
    assert forgotten.rows_removed == {
        "customer_event_staging": 0,
        "customer_events": 5,
        "propensity_score_staging": 0,
        "propensity_scores": 3,
        "customers": 2,
        "score_runs.error (redacted)": 0,
    }
    for model in (Customer, CustomerEvent, PropensityScore):
        assert count(engine, model, model.customer_id.in_(["alice", "bob"])) == 0
    assert count(engine, CustomerEvent) == 4 and count(engine, PropensityScore) == 2
    with engine.connect() as connection:
        log = connection.execute(select(Erasure)).one()
        keys = set(connection.scalars(select(CustomerSuppression.customer_key)))
    assert (log.kind, log.customers, log.rows_removed) == ("forget", 2, forgotten.rows_removed)
    assert log.note == "3 id(s) asked: 2 found, 0 erased before, 1 not known"
    assert keys >= {customer_key(SECRET, "alice"), customer_key(SECRET, "bob")}
    assert customer_key(SECRET, "nobody") not in keys and len(keys) == 3  # and the key check


def test_the_keys_are_hmac_sha256_of_the_id_under_the_secret(engine):
    import hashlib
    import hmac

    reference = hmac.new(SECRET, "zoë".encode(), hashlib.sha256).hexdigest()
    assert customer_key(SECRET, "zoë") == reference
    assert customer_key(b"another secret, also 32 bytes!!", "zoë") != reference


def test_the_ranks_of_every_run_that_lost_a_customer_are_closed_up(engine, hand_scored_run):
    scores = {f"c{i:02d}": 1 - i / 40 for i in range(30)}  # c00 ranks 1
    first = hand_scored_run(engine, T0, scores, events_of(dict.fromkeys(scores, 1)))
    second = hand_scored_run(engine, T0 + timedelta(days=1), scores, [])
    deciles_before = ranks(engine, second).set_index("customer_id")["decile"]

    forget(engine, "c00", "c07", "c08", "c29")

    kept = [c for c in scores if c not in ("c00", "c07", "c08", "c29")]
    for run_id in (first, second):
        after = ranks(engine, run_id)
        assert after["customer_id"].tolist() == kept  # in the order they were ranked
        assert after["rank"].tolist() == list(range(1, 27))
        assert (after.set_index("customer_id")["decile"] == deciles_before[kept]).all()
    with engine.connect() as connection:
        top = connection.scalar(
            text("SELECT COUNT(*) FROM current_propensity_scores WHERE rank <= 10")
        )
    assert top == 10


def test_a_run_error_that_named_a_customer_keeps_its_text_without_the_id(
    engine, hand_scored_run, judged_package
):
    hand_scored_run(engine, T0, {"C12": 0.5, "C1": 0.2}, events_of({"C12": 1, "C1": 1}))
    with transaction(engine) as session:
        model_id = session.scalar(select(ScoreRun.model_version_id))
        run_id = start_score_run(session, T0, model_id, None)
        fail_score_run(session, run_id, "inputs not finite for 2 customer(s) (C12, C1): amounts")

    forgotten = forget(engine, "C12", "C1")

    with engine.connect() as connection:
        error = connection.scalar(select(ScoreRun.error).where(ScoreRun.id == run_id))
    assert error == f"inputs not finite for 2 customer(s) ({ERASED_MARK}, {ERASED_MARK}): amounts"
    assert forgotten.rows_removed["score_runs.error (redacted)"] == 1


def test_ids_found_nowhere_change_nothing(engine, hand_scored_run):
    hand_scored_run(engine, T0, {"alice": 0.9}, events_of({"alice": 2}))

    forgotten = forget(engine, "nobody", "no one")

    assert (forgotten.found, forgotten.unknown_ids) == (0, ("no one", "nobody"))
    assert count(engine, Erasure) == count(engine, CustomerSuppression) == 0
    assert count(engine, CustomerEvent) == 2


def test_an_id_erased_before_is_reported_so_and_nothing_is_written(engine, add_events):
    add_events(engine, events_of({"alice": 2}))
    forget(engine, "alice")
    keys = count(engine, CustomerSuppression)

    forgotten = forget(engine, "alice")

    assert (forgotten.found, forgotten.already_erased, forgotten.unknown_ids) == (0, 1, ())
    assert count(engine, Erasure) == 1 and count(engine, CustomerSuppression) == keys


def write_events(path: Path, events: list[tuple[str, str, datetime]]) -> Path:
    frame = pd.DataFrame(events, columns=["customer_id", "event_type", "occurred_at"])
    frame.to_csv(path, index=False)
    return path


def import_file(engine, path: Path, secret: bytes | None = SECRET):
    with transaction(engine) as session:
        return import_events(
            session,
            path,
            FileColumns(amount=None),
            now=datetime(2027, 1, 1),
            future_tolerance=timedelta(0),
            chunk_rows=2,
            suppression_key=secret,
        )


def test_an_import_skips_the_rows_of_erased_customers_and_counts_them(engine, tmp_path):
    path = write_events(tmp_path / "events.csv", events_of({"alice": 3, "bob": 2, "carol": 1}))
    import_file(engine, path)
    forget(engine, "alice", "carol")

    report = import_file(engine, path)

    assert (report.rows_read, report.suppressed, report.imported, report.duplicates) == (6, 4, 0, 2)
    assert count(engine, Customer) == 1 and count(engine, CustomerEvent) == 2
    # Ids are matched as imports store them: outer blanks and invisible characters dropped.
    write_events(path, [(" alice\u200b", "purchase", T0), ("dave", "visit", T0)])
    assert (import_file(engine, path).suppressed, count(engine, Customer)) == (1, 2)


def test_the_suppression_list_is_read_only_with_the_key_it_was_made_with(engine, tmp_path):
    path = write_events(tmp_path / "events.csv", events_of({"alice": 1, "bob": 1}))
    assert import_file(engine, path, secret=None).imported == 2  # an empty list needs no key
    forget(engine, "alice")
    other = b"not the key the list was made by"

    with pytest.raises(SuppressionKeyError, match="set PROPENSITY_SUPPRESSION_KEY"):
        import_file(engine, path, secret=None)
    with pytest.raises(SuppressionKeyError, match="not the key the suppression list was made"):
        import_file(engine, path, secret=other)
    with pytest.raises(SuppressionKeyError, match="not the key the suppression list was made"):
        forget(engine, "bob", secret=other)
    assert count(engine, Customer) == 1 and count(engine, Erasure) == 1


def in_thread(work) -> tuple[threading.Thread, list]:
    """work() started on a thread; the list gets its result or exception."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as error:  # handed to the test
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_an_erasure_waits_for_an_import_in_flight_then_removes_what_it_stored(engine):
    """The import has read the suppression list (empty); the erasure must not slip in
    before the import's rows are committed, or they would outlive it."""
    with session_factory(engine)() as importing, importing.begin():
        SuppressionList.read(importing, SECRET)
        erasure, outcome = in_thread(lambda: forget(engine, "alice"))
        time.sleep(1.0)
        assert erasure.is_alive(), "the erasure did not wait for the import's lock"
        stage_events(importing, 1, event_frame(events_of({"alice": 2, "bob": 1})), [1, 2, 3])
        insert_staged_events(importing, 1)
    erasure.join(timeout=60)

    assert outcome[0].found == 1
    assert count(engine, CustomerEvent, CustomerEvent.customer_id == "alice") == 0
    assert count(engine, Customer) == 1


def test_an_import_waits_for_an_erasure_in_flight_then_skips_the_erased(engine, add_events):
    add_events(engine, events_of({"alice": 1}))
    with session_factory(engine)() as erasing, erasing.begin():
        forget_customers(erasing, ["alice"], SECRET)
        reading, outcome = in_thread(lambda: _read_list(engine))
        time.sleep(1.0)
        assert reading.is_alive(), "the import read the list while an erasure was writing it"
    reading.join(timeout=60)

    suppressed = outcome[0].suppressed(pd.Series(["alice", "bob"]))
    assert suppressed.tolist() == [True, False]


def _read_list(engine) -> SuppressionList:
    with transaction(engine) as session:
        return SuppressionList.read(session, SECRET)


def test_a_purge_batch_deletes_at_most_its_size_of_events_before_the_cutoff(engine, add_events):
    add_events(engine, events_of({"alice": 6, "bob": 3}))  # days 0..5 and 0..2
    cutoff = T0 + timedelta(days=2)  # days 0 and 1 go: 4 events

    deleted = []
    while not deleted or deleted[-1]:
        with transaction(engine) as session:
            deleted.append(purge_events_before(session, cutoff, batch_rows=3))

    assert deleted == [3, 1, 0]
    with engine.connect() as connection:
        first = connection.scalar(select(func.min(CustomerEvent.occurred_at)))
    assert first == cutoff and count(engine, CustomerEvent) == 5
