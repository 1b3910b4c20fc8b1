"""The walk-forward backtest: which cutoffs it replays, the real flow on tiny data in a
scratch database, and its one-line errors on the command line."""

import json
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sklearn.metrics
from prefect.artifacts import Artifact
from sqlalchemy import func, select
from typer.testing import CliRunner

from cli.main import app
from db.engine import make_engine, transaction
from db.models import (
    Customer,
    CustomerEvent,
    ModelVersion,
    PropensityScore,
    ScoreRun,
    ScoreRunOutcome,
)
from flows.backtest import backtest
from service.registry import metrics_of
from service.rendering import backtest_record
from service.settings import BacktestRequest, Settings
from service.walk_forward import walk_forward

FIRST, LAST = datetime(2026, 1, 1), datetime(2026, 11, 30, 12)
runner = CliRunner()
# Horizon 30 days and a 30-day snapshot stride: cutoffs from 2026-03-02 to 2026-10-31 12:00.
PLAN = Settings(_env_file=None, horizon_days=30, snapshot_stride_days=30).training_plan()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_cutoffs_every_n_days_skip_those_without_history_or_a_judged_horizon():
    walk = walk_forward(datetime(2026, 2, 1), datetime(2026, 12, 31), 60, PLAN, (FIRST, LAST))

    assert walk.cutoffs == [datetime(2026, m, d) for m, d in [(4, 2), (6, 1), (7, 31), (9, 29)]]
    assert walk.skipped == [
        "2026-02-01 skipped: too little history to train (cutoffs from 2026-03-02 have a "
        "training and a holdout snapshot after the first event)",
        "2026-11-28 skipped: its 30-day horizon ends after the latest event "
        "(2026-11-30 12:00), so it cannot be judged",
    ]


def test_a_cutoff_whose_horizon_ends_with_the_latest_event_is_kept():
    last_usable = LAST - timedelta(days=30)
    walk = walk_forward(last_usable, last_usable + timedelta(seconds=1), 1, PLAN, (FIRST, LAST))
    assert walk.cutoffs == [last_usable]


def test_a_start_after_the_end_and_a_range_without_a_usable_cutoff_are_refused():
    with pytest.raises(ValueError, match=r"starts \(2026-06-01\) after it ends \(2026-05-01\)"):
        walk_forward(datetime(2026, 6, 1), datetime(2026, 5, 1), 7, PLAN, (FIRST, LAST))
    with pytest.raises(ValueError, match="between 2026-03-02 00:00 and 2026-10-31 12:00"):
        walk_forward(datetime(2025, 1, 1), datetime(2026, 2, 1), 30, PLAN, (FIRST, LAST))
    with pytest.raises(ValueError, match="no events in the source"):
        walk_forward(datetime(2026, 6, 1), datetime(2026, 7, 1), 7, PLAN, None)


def row_counts(engine) -> dict[str, int]:
    tables = (ModelVersion, ScoreRun, PropensityScore, ScoreRunOutcome)
    with engine.connect() as connection:
        return {
            table.__tablename__: connection.scalar(select(func.count()).select_from(table))
            for table in tables
        }


def realized_auc(production, scratch, row) -> float:
    """scikit-learn's AUC of the run's scores, kept in the scratch database, against the
    purchases in its horizon, read from production's events."""
    with scratch.connect() as connection:
        scores = pd.read_sql(
            select(PropensityScore.customer_id, PropensityScore.propensity).where(
                PropensityScore.score_run_id == row.score_run_id
            ),
            connection,
        )
    with production.connect() as connection:
        bought = set(
            connection.scalars(
                select(CustomerEvent.customer_id).where(
                    CustomerEvent.event_type == "purchase",
                    CustomerEvent.occurred_at > row.cutoff,
                    CustomerEvent.occurred_at <= row.cutoff + timedelta(days=30),
                )
            )
        )
    assert len(scores) == row.outcome.n_customers
    return sklearn.metrics.roc_auc_score(scores["customer_id"].isin(bought), scores["propensity"])


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_the_backtest_judges_the_champion_and_each_baseline_at_every_cutoff(
    champion, configure, tmp_path
):
    """Production holds a champion; the backtest neither uses it nor writes beside it."""
    configure(score_retention=10)  # every run's scores stay to check
    before = row_counts(champion)
    kept = tmp_path / "backtest.db"

    result = backtest(
        request=BacktestRequest(
            start=datetime(2026, 8, 1),
            end=datetime(2026, 10, 15),
            every_days=31,
            csv_path=str(tmp_path / "backtest.csv"),
            database_path=str(kept),
        )
    )

    assert row_counts(champion) == before
    cutoffs = [datetime(2026, 8, 1), datetime(2026, 9, 1)]
    baselines = ("logistic", "gbm", "gru")  # each with its value contender
    assert [(row.cutoff, row.model) for row in result.rows] == [
        (cutoff, model) for cutoff in cutoffs for model in ("champion", *baselines)
    ]
    values = {row.model: row.value_kind for row in result.rows if row.model != "champion"}
    assert values == {"logistic": "two_stage", "gbm": "gbm_poisson", "gru": "ziln"}
    assert all(row.outcome.value_gini is not None for row in result.rows)
    assert result.skipped == [
        "2026-10-02 skipped: its 30-day horizon ends after the latest event "
        "(2026-10-31 22:47), so it cannot be judged"
    ]
    scratch = make_engine(f"sqlite:///{kept}")
    for row in result.rows:
        assert row.outcome.roc_auc == pytest.approx(realized_auc(champion, scratch, row), abs=1e-6)
    assert all(row.kind == row.model for row in result.rows if row.model != "champion")
    # The first cutoff's champion met the second cutoff's contenders on their holdout.
    first_champion = result.rows[0].model_version_id
    with transaction(scratch) as session:
        second = session.scalars(
            select(ModelVersion).where(ModelVersion.trained_as_of == cutoffs[1])
        ).all()
        assert {metrics_of(v).champion_version_id for v in second} == {first_champion}
        assert all("champion" in metrics_of(v).table for v in second)
        assert session.scalars(select(ModelVersion.status)).all().count("champion") == 1
    csv = pd.read_csv(result.csv_path)
    assert list(csv["model"]) == [row.model for row in result.rows]
    assert csv["roc_auc"].tolist() == pytest.approx([row.outcome.roc_auc for row in result.rows])
    # The artifact's figures rounded to 4 digits (the UI shows them as stored), the CSV's not.
    shown = json.loads(Artifact.get("backtest").data)
    for record, row in zip(shown, result.rows, strict=True):
        full = backtest_record(row)
        assert record.keys() == full.keys()
        assert record["roc_auc"] == round(row.outcome.roc_auc, 4)
        assert all(
            v == (round(full[k], 4) if isinstance(full[k], float) else full[k])
            for k, v in record.items()
        )


def events_up_to(engine, cutoff: datetime) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).where(CustomerEvent.occurred_at <= cutoff))


def models_trained_at(database: Path, cutoff: datetime) -> dict[str, tuple[dict, dict]]:
    """The manifest and metrics (model_versions.config and .metrics) of each model the
    scratch database kept from the retrain at `cutoff`, by kind; the metrics without the
    paths of their charts, which name the backtest's temporary folder."""
    scratch = make_engine(f"sqlite:///{database}")
    with scratch.connect() as connection:
        rows = connection.execute(
            select(ModelVersion.kind, ModelVersion.config, ModelVersion.metrics).where(
                ModelVersion.trained_as_of == cutoff
            )
        ).all()
    scratch.dispose()
    return {
        kind: (config, {name: v for name, v in metrics.items() if name != "charts"})
        for kind, config, metrics in rows
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_each_cutoff_trains_only_on_the_events_up_to_it(populated, configure, add_events, tmp_path):
    """A cutoff's retrain must see what production saw at that moment, however many events
    came after it. Events between the first and the second cutoff (a new event type and a
    purchase for every customer, from a microsecond after the first) enter the second
    cutoff's training, yet the first cutoff's models are registered exactly as a backtest
    run before those events existed registered them: the same manifests (vocabulary,
    static means, calibrator, drift reference) and metrics (events read, training and
    holdout rows, every contender's holdout figures)."""
    configure(hybrid=False, reason_codes=False)
    first, second = datetime(2026, 4, 1), datetime(2026, 6, 2)

    def replay(end: datetime, database: Path) -> None:
        request = BacktestRequest(
            start=first,
            end=end,
            every_days=(second - first).days,
            csv_path=str(database.with_suffix(".csv")),
            database_path=str(database),
        )
        backtest(request=request)

    replay(first, tmp_path / "without.db")
    with populated.connect() as connection:
        customers = connection.scalars(select(Customer.customer_id)).all()
    later = [first + timedelta(microseconds=1) + timedelta(minutes=i) for i in range(3)]
    add_events(
        populated,
        [(c, "coupon_redeemed", at) for c in customers for at in later]
        + [(c, "purchase", later[-1] + timedelta(hours=1)) for c in customers],
    )
    replay(second, tmp_path / "with.db")

    without = models_trained_at(tmp_path / "without.db", first)
    assert set(without) == {"gru", "logistic", "gbm"}
    with_them = models_trained_at(tmp_path / "with.db", first)
    for kind, (config, metrics) in without.items():
        assert with_them[kind][1]["data"] == metrics["data"], kind
        assert with_them[kind][1]["table"] == metrics["table"], kind
        assert with_them[kind][0] == config, kind
    assert with_them == without
    for _, metrics in without.values():
        assert metrics["data"]["n_events"] == events_up_to(populated, first)
        assert "coupon_redeemed" not in metrics["data"]["vocabulary"]
    # The added events are in the second cutoff's training data: they would change the first's.
    for _, metrics in models_trained_at(tmp_path / "with.db", second).values():
        assert metrics["data"]["n_events"] == events_up_to(populated, second)
        assert "coupon_redeemed" in metrics["data"]["vocabulary"]


def test_the_command_refuses_a_reversed_range_and_one_without_a_usable_cutoff_in_one_line(
    tmp_path, monkeypatch, add_events
):
    url = f"sqlite:///{tmp_path / 'service.db'}"
    monkeypatch.setenv("PROPENSITY_DATABASE_URL", url)
    assert invoke("init-db").exit_code == 0
    add_events(
        make_engine(url),
        [("c1", "visit", datetime(2026, 1, 1)), ("c1", "purchase", datetime(2026, 6, 30))],
    )

    reversed_range = invoke(
        "backtest", "--from", "2026-05-01", "--to", "2026-04-01", "--every", "7"
    )
    unusable = invoke("backtest", "--from", "2026-06-01", "--to", "2026-06-30", "--every", "7")

    assert reversed_range.exit_code == unusable.exit_code == 1
    assert reversed_range.output.strip().splitlines() == [
        "error: the backtest starts (2026-05-01) after it ends (2026-04-01)"
    ]
    assert unusable.output.strip().splitlines() == [
        "error: no usable cutoff from 2026-06-01 to 2026-06-30 every 7 days: a cutoff needs a "
        "training and a holdout snapshot after the first event and its 30-day horizon ended "
        "by the latest, so it must fall between 2026-03-02 00:00 and 2026-05-31 00:00"
    ]
