import threading
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select, text

from db.engine import transaction
from db.models import (
    PropensityScore,
    PropensityScoreStaging,
    ScoreRun,
    ScoreRunOutcome,
    ScoreRunOutcomeDecile,
)
from db.outcomes import run_to_evaluate, store_outcome
from db.registry import register_model
from db.scores import (
    Publication,
    ScoreRunConflict,
    abandon_dead_runs,
    clear_partition,
    fail_score_run,
    publish_score_run,
    stage_scores,
    start_score_run,
)
from db.timestamps import utc_now
from db.types import Timestamp

DAY_1, DAY_2, DAY_3, DAY_4 = (datetime(2026, 11, day) for day in (1, 2, 3, 4))
VIEW_COLUMNS = (
    "customer_id, propensity, decile, rank, as_of, model_version_id, scored_at, "
    "reason_1, reason_2, reason_3"
)


def model(engine) -> int:
    with transaction(engine) as session:
        return register_model(
            session,
            artifact=b"not a real model",
            trained_as_of=datetime(2026, 10, 1),
            horizon_days=30,
            kind="gru",
            config={},
            metrics={},
        ).id


def start(engine, model_id: int, as_of: datetime = DAY_1) -> int:
    with transaction(engine) as session:
        return start_score_run(session, as_of, model_id, "flow-run-1")


def stage(engine, run_id: int, scores: pd.DataFrame) -> int:
    with engine.begin() as connection:
        return stage_scores(connection, run_id, scores)


def publish(engine, run_id: int, keep: int = 10) -> int:
    with transaction(engine) as session:
        return publish_score_run(session, run_id, keep).n_scored


def scored(customers: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": list(customers), "propensity": list(customers.values())})


def scored_run(engine, model_id: int, as_of: datetime, customers: dict[str, float], keep=10):
    run_id = start(engine, model_id, as_of)
    stage(engine, run_id, scored(customers))
    publish(engine, run_id, keep)
    return run_id


def judge(engine, *run_ids: int) -> None:
    """Store an outcome for each run, as evaluating it would."""
    figures = {"n_customers": 1, "n_converted": 0, "base_rate": 0.0, "roc_auc": None}
    figures |= {"pr_auc": None, "log_loss": 0.1, "brier": 0.01, "ece": 0.1}
    figures |= {"top_decile_lift": None, "note": "no customer converted"}
    deciles = pd.DataFrame({"decile": [1], "customers": [1], "expected": [0.5], "actual": [0]})
    with transaction(engine) as session:
        for run_id in run_ids:
            store_outcome(session, run_to_evaluate(session, run_id), figures, deciles)


def judged_runs(engine) -> list[int]:
    """Runs with an outcome row, and with decile rows: the two lists must agree."""
    with engine.connect() as connection:
        return [
            list(
                connection.scalars(
                    select(table.score_run_id).distinct().order_by(table.score_run_id)
                )
            )
            for table in (ScoreRunOutcome, ScoreRunOutcomeDecile)
        ]


def run_row(engine, run_id: int):
    with engine.connect() as connection:
        return connection.execute(select(ScoreRun).where(ScoreRun.id == run_id)).one_or_none()


def run_ids(engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.scalars(select(ScoreRun.id).order_by(ScoreRun.id)))


def staged(engine, run_id: int | None = None) -> list[str]:
    query = select(PropensityScoreStaging.customer_id).order_by(
        PropensityScoreStaging.score_run_id, PropensityScoreStaging.customer_id
    )
    if run_id is not None:
        query = query.where(PropensityScoreStaging.score_run_id == run_id)
    with engine.connect() as connection:
        return list(connection.scalars(query))


SCORED = ["customer_id", "propensity", "reason_1", "reason_2", "reason_3"]
RANKED = [*SCORED[:2], "decile", "rank", *SCORED[2:]]


@pytest.fixture
def scores_of(table_frame):
    """scores_of(run_id): a run's published scores, best first."""

    def published(run_id: int) -> pd.DataFrame:
        score = PropensityScore
        return table_frame(score, RANKED, score.score_run_id == run_id, order_by=score.rank)

    return published


def current(engine) -> list[dict]:
    with engine.connect() as connection:
        rows = connection.execute(
            # SQLite hands back timestamps of a raw query as text: type those columns.
            text(f"SELECT {VIEW_COLUMNS} FROM current_propensity_scores ORDER BY rank").columns(
                as_of=Timestamp, scored_at=Timestamp
            )
        ).all()
    return [row._asdict() for row in rows]


def visible_customers(engine) -> dict[str, float]:
    return {row["customer_id"]: row["propensity"] for row in current(engine)}


# --- starting runs -----------------------------------------------------------------------


def test_start_creates_a_running_run(engine):
    model_id = model(engine)
    before = utc_now()
    run_id = start(engine, model_id)
    run = run_row(engine, run_id)
    assert (run.status, run.as_of, run.model_version_id) == ("running", DAY_1, model_id)
    assert (run.flow_run_id, run.finished_at, run.n_scored, run.error) == (
        "flow-run-1",
        None,
        None,
        None,
    )
    assert before - timedelta(seconds=1) <= run.started_at <= utc_now() + timedelta(seconds=1)


def test_second_start_while_running_conflicts_and_adds_no_row(engine):
    model_id, other_model = model(engine), model(engine)
    first = start(engine, model_id)
    for version in (model_id, other_model):
        with pytest.raises(ScoreRunConflict, match=rf"score run {first} is still running"):
            start(engine, version, DAY_2)
    # Even a caller that swallows the conflict and commits must not leave a second run.
    with transaction(engine) as session, pytest.raises(ScoreRunConflict):
        start_score_run(session, DAY_2, model_id, None)
    assert run_ids(engine) == [first]
    assert run_row(engine, first).status == "running"


def test_dead_runs_are_abandoned_and_every_staged_row_is_deleted(engine):
    model_id = model(engine)
    failed = start(engine, model_id)
    with transaction(engine) as session:
        fail_score_run(session, failed, "TerminationSignal: SIGTERM")
    # Rows a partition of the failed run wrote after its failure was recorded.
    with transaction(engine) as session:
        session.add(PropensityScoreStaging(score_run_id=failed, customer_id="c9", propensity=0.5))
    dead = start(engine, model_id, DAY_2)
    stage(engine, dead, scored({"c1": 0.5, "c2": 0.25}))

    with transaction(engine) as session:
        assert abandon_dead_runs(session) == [dead]
    fresh = start(engine, model_id, DAY_3)

    old = run_row(engine, dead)
    assert (old.status, old.finished_at is not None) == ("abandoned", True)
    assert old.error.startswith("abandoned: found running by the next score run")
    assert run_row(engine, failed).status == "failed"
    assert (run_row(engine, fresh).status, staged(engine)) == ("running", [])
    # The abandoned run can no longer stage, nor be published over the new one.
    with pytest.raises(ScoreRunConflict, match=rf"score run {dead} is abandoned"):
        stage(engine, dead, scored({"c3": 0.5}))
    with pytest.raises(ScoreRunConflict, match=rf"score run {dead} is abandoned"):
        publish(engine, dead)
    assert (run_row(engine, dead).status, staged(engine)) == ("abandoned", [])


def test_without_dead_runs_nothing_is_abandoned(engine):
    model_id = model(engine)
    published = scored_run(engine, model_id, DAY_1, {"c1": 0.5})
    with transaction(engine) as session:
        assert abandon_dead_runs(session) == []
    assert run_row(engine, published).status == "succeeded"
    assert visible_customers(engine) == {"c1": 0.5}


def test_a_failed_run_stages_nothing(engine):
    model_id = model(engine)
    run_id = start(engine, model_id)
    with transaction(engine) as session:
        fail_score_run(session, run_id, "boom")
    with pytest.raises(ScoreRunConflict, match=rf"score run {run_id} is failed"):
        stage(engine, run_id, scored({"c1": 0.5}))
    assert staged(engine) == []


def test_a_failure_recorded_while_a_partition_stages_waits_and_removes_its_rows(engine):
    """The SIGTERM case: the run is marked failed while a partition's write is under way;
    the failure waits for that write's commit and deletes its rows after it."""
    model_id = model(engine)
    run_id = start(engine, model_id)

    def fail() -> None:
        with transaction(engine) as session:
            fail_score_run(session, run_id, "TerminationSignal: SIGTERM")

    with engine.connect() as partition:
        with partition.begin():
            stage_scores(partition, run_id, scored({"c1": 0.5, "c2": 0.25}))
            failing = threading.Thread(target=fail)
            failing.start()
            failing.join(timeout=1)
            assert failing.is_alive()  # waiting for the partition's transaction
        failing.join(timeout=30)
    assert not failing.is_alive()
    assert (run_row(engine, run_id).status, staged(engine)) == ("failed", [])


# --- staging and publication -------------------------------------------------------------


def expected_ranking(frame: pd.DataFrame, n_deciles: int = 10) -> pd.DataFrame:
    """Rank 1 = highest propensity, ties by customer_id; deciles as SQL's NTILE splits them."""
    ordered = frame.sort_values(
        ["propensity", "customer_id"], ascending=[False, True], ignore_index=True
    )
    ordered["rank"] = np.arange(1, len(ordered) + 1)
    ordered["decile"] = 0
    for decile, positions in enumerate(np.array_split(np.arange(len(ordered)), n_deciles), 1):
        ordered.loc[positions, "decile"] = decile
    return ordered


def test_publish_ranks_and_deciles_like_ntile(engine, scores_of):
    rng = np.random.default_rng(7)
    n = 95
    customer_ids = [f"cust-{i:03d}" for i in rng.permutation(n)]
    frame = pd.DataFrame(
        {
            "customer_id": customer_ids,
            # Multiples of 1/64 are exact in every float type, and give plenty of ties.
            "propensity": rng.integers(0, 65, n) / 64,
            "reason_1": [f"visits up {i}" if i % 3 else None for i in range(n)],
            "reason_2": [f'cart, "fresh" {i}' if i % 2 else None for i in range(n)],
            "reason_3": None,
        }
    )
    assert frame.propensity.duplicated().any()
    model_id = model(engine)
    run_id = start(engine, model_id)
    # Two partitions, staged in separate transactions like the partition tasks do.
    assert stage(engine, run_id, frame.iloc[:40]) == 40
    assert stage(engine, run_id, frame.iloc[40:]) == 55
    assert len(staged(engine, run_id)) == n
    assert current(engine) == []

    before = utc_now()
    assert publish(engine, run_id) == n

    stored = scores_of(run_id)
    expected = expected_ranking(frame)
    assert stored.customer_id.tolist() == expected.customer_id.tolist()
    assert stored["rank"].tolist() == list(range(1, n + 1))
    assert stored.decile.tolist() == expected.decile.tolist()
    assert stored.decile.value_counts().sort_index().tolist() == [10] * 5 + [9] * 5
    assert stored.propensity.tolist() == expected.propensity.tolist()
    for column in ("reason_1", "reason_2", "reason_3"):
        assert stored[column].tolist() == expected[column].tolist()
    assert staged(engine) == []
    run = run_row(engine, run_id)
    assert (run.status, run.n_scored, run.error) == ("succeeded", n, None)
    assert before - timedelta(seconds=1) <= run.finished_at <= utc_now() + timedelta(seconds=1)
    assert run.finished_at >= run.started_at


def test_publishing_twice_is_harmless(engine):
    # A retried publish task whose first commit went through must not fail or change anything.
    model_id = model(engine)
    run_id = scored_run(engine, model_id, DAY_1, {"c1": 0.5, "c2": 0.75})
    finished = run_row(engine, run_id).finished_at
    assert publish(engine, run_id) == 2
    assert run_row(engine, run_id).finished_at == finished
    assert visible_customers(engine) == {"c2": 0.75, "c1": 0.5}


def test_publishing_an_empty_run_is_refused(engine):
    model_id = model(engine)
    scored_run(engine, model_id, DAY_1, {"c1": 0.5})
    run_id = start(engine, model_id, DAY_1)
    with pytest.raises(ScoreRunConflict, match="no staged scores"):
        publish(engine, run_id)
    assert run_row(engine, run_id).status == "running"
    assert visible_customers(engine) == {"c1": 0.5}


# --- the current view --------------------------------------------------------------------


def test_view_shows_only_the_latest_succeeded_run(engine, scores_of):
    model_id = model(engine)
    assert current(engine) == []
    first = scored_run(engine, model_id, DAY_1, {"a": 0.25, "b": 0.75, "c": 0.5})
    rows = current(engine)
    first_run = run_row(engine, first)
    assert [row["customer_id"] for row in rows] == ["b", "c", "a"]
    assert [(row["rank"], row["decile"]) for row in rows] == [(1, 1), (2, 2), (3, 3)]
    assert {(row["as_of"], row["model_version_id"]) for row in rows} == {(DAY_1, model_id)}
    assert {row["scored_at"] for row in rows} == {first_run.finished_at}

    # A running run with staged scores for the same and new customers is invisible.
    second = start(engine, model_id, DAY_2)
    stage(engine, second, scored({"a": 0.875, "b": 0.125, "d": 0.625}))
    assert visible_customers(engine) == {"b": 0.75, "c": 0.5, "a": 0.25}

    with transaction(engine) as session:
        fail_score_run(session, second, "ValueError: partition 2 failed")
    failed = run_row(engine, second)
    assert (failed.status, failed.error) == ("failed", "ValueError: partition 2 failed")
    assert failed.finished_at is not None
    assert staged(engine) == []
    assert scores_of(second).empty
    assert visible_customers(engine) == {"b": 0.75, "c": 0.5, "a": 0.25}

    third = scored_run(engine, model_id, DAY_2, {"a": 0.875, "d": 0.625})
    rows = current(engine)
    assert [(row["customer_id"], row["rank"]) for row in rows] == [("a", 1), ("d", 2)]
    assert {row["as_of"] for row in rows} == {DAY_2}
    assert {row["scored_at"] for row in rows} == {run_row(engine, third).finished_at}
    # The older run is still stored, just not visible.
    assert len(scores_of(first)) == 3


def test_failing_a_published_run_changes_nothing(engine):
    # mark_run_failed runs when anything after the publish commit fails (e.g. the summary).
    model_id = model(engine)
    run_id = scored_run(engine, model_id, DAY_1, {"c1": 0.5})
    with transaction(engine) as session:
        fail_score_run(session, run_id, "OperationalError: summary query failed")
    run = run_row(engine, run_id)
    assert (run.status, run.error, run.n_scored) == ("succeeded", None, 1)
    assert visible_customers(engine) == {"c1": 0.5}


def test_backfill_of_an_older_date_does_not_replace_current_scores(engine):
    model_id = model(engine)
    scored_run(engine, model_id, DAY_2, {"new": 0.5})
    scored_run(engine, model_id, DAY_1, {"old": 0.5})
    assert visible_customers(engine) == {"new": 0.5}


def test_view_has_one_row_per_customer(engine):
    model_id = model(engine)
    for as_of in (DAY_1, DAY_2, DAY_3):
        scored_run(engine, model_id, as_of, {"a": 0.5, "b": 0.25})
    with engine.connect() as connection:
        counts = connection.execute(
            text(
                "SELECT customer_id, COUNT(*) FROM current_propensity_scores "
                "GROUP BY customer_id ORDER BY customer_id"
            )
        ).all()
    assert [tuple(row) for row in counts] == [("a", 1), ("b", 1)]


# --- reruns and retention ----------------------------------------------------------------


def test_rerun_of_the_same_as_of_and_model_replaces_the_first(engine, scores_of):
    model_id, other_model = model(engine), model(engine)
    other = scored_run(engine, other_model, DAY_1, {"a": 0.125, "b": 0.25})
    first = scored_run(engine, model_id, DAY_1, {"a": 0.5, "b": 0.25, "c": 0.125})
    judge(engine, other, first)
    second = start(engine, model_id, DAY_1)
    stage(engine, second, scored({"a": 0.375, "b": 0.75, "c": 0.125}))
    with transaction(engine) as session:
        publication = publish_score_run(session, second, keep_succeeded=10)

    assert publication == Publication(n_scored=3, replaced=(first,))
    assert run_row(engine, first) is None
    # The rerun is judged in its place: the first one's outcome goes with it.
    assert judged_runs(engine) == [[other], [other]]
    assert scores_of(first).empty
    assert run_ids(engine) == [other, second]
    with engine.connect() as connection:
        per_customer = connection.execute(
            select(PropensityScore.customer_id, func.count())
            .join(ScoreRun, ScoreRun.id == PropensityScore.score_run_id)
            .where(ScoreRun.as_of == DAY_1, ScoreRun.model_version_id == model_id)
            .group_by(PropensityScore.customer_id)
            .order_by(PropensityScore.customer_id)
        ).all()
    assert [tuple(row) for row in per_customer] == [("a", 1), ("b", 1), ("c", 1)]
    assert visible_customers(engine) == {"b": 0.75, "a": 0.375, "c": 0.125}
    # A run of another model for the same date is a different result and stays.
    assert len(scores_of(other)) == 2


def test_retention_prunes_the_scores_of_judged_runs_and_keeps_their_history(engine, scores_of):
    model_id, other_model = model(engine), model(engine)
    day_1 = scored_run(engine, model_id, DAY_1, {"a": 0.5})
    day_3 = scored_run(engine, model_id, DAY_3, {"a": 0.5})
    # Same as_of, another model: the higher id is the newer one.
    day_3_other = scored_run(engine, other_model, DAY_3, {"a": 0.75})
    failed = start(engine, model_id, DAY_4)
    with transaction(engine) as session:
        fail_score_run(session, failed, "boom")
    judge(engine, day_1, day_3, day_3_other)

    # A backfill of DAY_2 published with keep=3: the two DAY_3 runs and itself keep their
    # scores; DAY_1 loses them, and only them.
    day_2 = scored_run(engine, model_id, DAY_2, {"a": 0.25}, keep=3)
    assert run_ids(engine) == [day_1, day_3, day_3_other, failed, day_2]
    assert scores_of(day_1).empty
    assert len(scores_of(day_2)) == len(scores_of(day_3)) == 1

    # keep=1: of the two DAY_3 runs only the higher id, the visible one, keeps its scores;
    # the DAY_2 runs keep theirs until they are judged.
    day_2_other = scored_run(engine, other_model, DAY_2, {"a": 0.125}, keep=1)
    assert scores_of(day_3).empty
    assert len(scores_of(day_2)) == len(scores_of(day_2_other)) == 1
    assert visible_customers(engine) == {"a": 0.75}
    assert {row["model_version_id"] for row in current(engine)} == {other_model}

    judge(engine, day_2, day_2_other)
    day_4 = scored_run(engine, model_id, DAY_4, {"b": 0.5}, keep=1)
    for pruned in (day_2, day_2_other, day_3_other):
        assert scores_of(pruned).empty
    assert visible_customers(engine) == {"b": 0.5}
    assert run_ids(engine) == [day_1, day_3, day_3_other, failed, day_2, day_2_other, day_4]
    judged = sorted([day_1, day_3, day_3_other, day_2, day_2_other])
    assert judged_runs(engine) == [judged, judged]


def test_retention_never_prunes_the_visible_run(engine):
    model_id = model(engine)
    first = scored_run(engine, model_id, DAY_1, {"a": 0.5})
    judge(engine, first)
    latest = scored_run(engine, model_id, DAY_2, {"b": 0.5}, keep=0)
    assert run_ids(engine) == [first, latest]
    assert visible_customers(engine) == {"b": 0.5}


# --- partitions and the bulk path --------------------------------------------------------


def test_clear_partition_deletes_only_that_range_of_that_run(engine):
    model_id = model(engine)
    run_id = start(engine, model_id)
    customers = ["a1", "a2", "b0", "b1", "b2", "c0", "c1"]
    stage(engine, run_id, scored(dict.fromkeys(customers, 0.5)))
    with transaction(engine) as session:
        other = ScoreRun(
            as_of=DAY_1, model_version_id=model_id, started_at=utc_now(), status="running"
        )
        session.add(other)
        session.flush()
        other_id = other.id
    stage(engine, other_id, scored(dict.fromkeys(customers, 0.25)))

    with engine.begin() as connection:
        clear_partition(connection, run_id, ("b0", "c0"))
    assert staged(engine, run_id) == ["a1", "a2", "c0", "c1"]
    assert staged(engine, other_id) == customers

    with engine.begin() as connection:
        clear_partition(connection, run_id, ("c0", None))
    assert staged(engine, run_id) == ["a1", "a2"]
    assert staged(engine, other_id) == customers

    # A retried partition: clear, then stage again, without key conflicts.
    with engine.begin() as connection:
        clear_partition(connection, run_id, ("a", "b"))
        stage_scores(connection, run_id, scored({"a1": 0.125, "a2": 0.875}))
    assert staged(engine, run_id) == ["a1", "a2"]


ODD_CUSTOMERS = [
    "comma,separated",
    'quote"d',
    "it's",
    '"fully quoted"',
    "Zürich – ñandú 日本 🎯",
    "back\\slash",
    "\\.",
    "tab\there",
    "line\nbreak",
]


def as_tuples(frame: pd.DataFrame) -> list[tuple]:
    """The rows as tuples of Python values, every missing value None."""
    return list(frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None))


def test_odd_customer_ids_and_null_reasons_round_trip(engine, table_frame):
    n = len(ODD_CUSTOMERS)
    frame = pd.DataFrame(
        {
            "customer_id": ODD_CUSTOMERS,
            "propensity": [(i + 1) / 16 for i in range(n)],
            "reason_1": ['viewed "Sofa, grey"', "Größe ändern", *[None] * (n - 2)],
            "reason_2": [None, "a,b", *["r2"] * (n - 2)],
            "reason_3": [np.nan] * n,
        }
    )
    model_id = model(engine)
    run_id = start(engine, model_id)
    stage(engine, run_id, frame)
    rows = table_frame(
        PropensityScoreStaging, SCORED, PropensityScoreStaging.score_run_id == run_id
    )
    assert sorted(as_tuples(rows)) == sorted(as_tuples(frame))

    publish(engine, run_id)
    visible = {row["customer_id"]: row for row in current(engine)}
    assert set(visible) == set(ODD_CUSTOMERS)
    assert visible["comma,separated"]["reason_1"] == 'viewed "Sofa, grey"'
    assert visible['quote"d']["reason_1"] == "Größe ändern"
    assert visible['quote"d']["reason_2"] == "a,b"
    assert visible["comma,separated"]["reason_2"] is None
    assert all(row["reason_3"] is None for row in visible.values())
    assert visible["line\nbreak"]["rank"] == 1


def test_staging_without_reason_columns_stores_nulls(engine, scores_of):
    model_id = model(engine)
    run_id = start(engine, model_id)
    assert stage(engine, run_id, scored({"c1": 0.5, "c2": 0.25})) == 2
    assert stage(engine, run_id, scored({})) == 0
    publish(engine, run_id)
    stored = scores_of(run_id)
    assert stored.customer_id.tolist() == ["c1", "c2"]
    assert stored[["reason_1", "reason_2", "reason_3"]].isna().all().all()
    assert all(value is None for value in stored.reason_1)


def test_value_deciles_are_cut_by_expected_value_and_absent_without_one(engine, table_frame):
    rng = np.random.default_rng(11)
    n = 37
    frame = pd.DataFrame(
        {
            "customer_id": [f"v-{i:02d}" for i in rng.permutation(n)],
            "propensity": rng.random(n),
            # Quarters are exact in every float type, and tie often.
            "expected_value": rng.integers(0, 40, n) / 4,
        }
    )
    model_id = model(engine)
    run_id = start(engine, model_id)
    stage(engine, run_id, frame)
    publish(engine, run_id)
    score = PropensityScore
    columns = ["customer_id", "expected_value", "value_decile"]
    stored = table_frame(score, columns, score.score_run_id == run_id, order_by=score.customer_id)
    by_value = frame[["customer_id", "expected_value"]].rename(
        columns={"expected_value": "propensity"}
    )
    expected = expected_ranking(by_value).sort_values("customer_id", ignore_index=True)
    assert stored["value_decile"].tolist() == expected["decile"].tolist()
    assert stored["expected_value"].tolist() == expected["propensity"].tolist()

    without = scored_run(engine, model_id, DAY_1 + timedelta(days=1), {"c1": 0.5, "c2": 0.2})
    stored = table_frame(score, columns, score.score_run_id == without)
    assert stored[["expected_value", "value_decile"]].isna().all().all()
