"""What people read about models and score runs: tables, headlines and the model card, against
hand-written text; the card and the score summary from real rows on every database."""

from datetime import datetime, timedelta

import pandas as pd
import pytest

from db.engine import transaction
from db.models import ModelVersion
from db.registry import reject
from db.scores import publish_score_run, stage_scores, start_score_run
from flows.registry import ModelPackage, register
from flows.report import (
    RetrainOutcome,
    ScoreSummary,
    TextTable,
    metrics_markdown,
    metrics_table,
    reasons_text,
    score_summary,
)
from llm_model.calibration import Calibrator
from llm_model.manifest import ModelConfig, ModelManifest, ModelMetrics, TrainingData
from llm_model.sequences import SequenceConfig, Vocabulary

COLUMNS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_lift")
# Holdout metrics as stored, with keys the card does not show (gini, n).
TABLE = {
    name: {**dict(zip(COLUMNS, values, strict=True)), "gini": 0.5, "n": 400}
    for name, values in {
        "model": (0.81234, 0.4, 0.29, 0.085, 0.0125, 3.25),
        "model_raw": (0.80001, 0.39996, 0.31, 0.09, 0.04, 3.0),
        "champion": (0.7, 0.35, 0.3, 0.088, 0.02, 2.75),
        "recency": (0.65, 0.2, 0.33, 0.1, 0.05, 1.5),
    }.items()
}
TABLE_ROWS = [
    ["model", "0.8123", "0.4000", "0.2900", "0.0850", "0.0125", "3.2500"],
    ["model_raw", "0.8000", "0.4000", "0.3100", "0.0900", "0.0400", "3.0000"],
    ["champion", "0.7000", "0.3500", "0.3000", "0.0880", "0.0200", "2.7500"],
    ["recency", "0.6500", "0.2000", "0.3300", "0.1000", "0.0500", "1.5000"],
]

# as_of, n_events, train_cutoffs, holdout_cutoff, n_train, n_holdout, base rates, vocabulary
DATA = TrainingData(
    "2026-10-31", 12345, ("2026-08-02", "2026-09-01"), "2026-10-01", 1200, 400, 0.1251, 0.0981, ()
)
PACKAGE = ModelPackage(
    artifact=b"x",
    manifest=ModelManifest(
        "lstm",
        SequenceConfig(horizon_days=14),
        Vocabulary(("purchase", "visit")),
        Calibrator("platt", slope=1.5, intercept=-0.25),
        ("frequency",),
        3,
        30,
        network=ModelConfig(cell="lstm"),
    ),
    metrics=ModelMetrics(
        TABLE, ("model",), "model", DATA, charts=("/srv/reports/model-9/gains.png",)
    ),
    trained_as_of=datetime(2026, 10, 31),
)


def registered(engine) -> int:
    with transaction(engine) as session:
        return register(session, PACKAGE).id


# --- tables and text ---------------------------------------------------------------------


def test_text_table_as_markdown():
    table = TextTable("t", ("a", "bee"), [["1", "two"], ["", "x y"]])
    assert table.markdown() == "| a | bee |\n|---|---|\n| 1 | two |\n|  | x y |"
    assert TextTable("t", ("only",), []).markdown() == "| only |\n|---|"


SUMMARY = ScoreSummary(
    score_run_id=5,
    as_of=datetime(2026, 11, 1),
    model_version_id=7,
    n_scored=12_345,
    seconds=2.5,
    deciles=[
        {"decile": 1, "customers": 1_235, "mean": 0.91234, "min": 0.80001, "max": 0.99999},
        {"decile": 2, "customers": 1_234, "mean": 0.5, "min": 0.25, "max": 0.8},
    ],
    top=[
        {"rank": 1, "customer_id": "c-17", "propensity": 0.99999, "reason_1": "visit"}
        | {"reason_2": None, "reason_3": "purchase"},
        {"rank": 2, "customer_id": "c-3", "propensity": 0.98766, "reason_1": None}
        | {"reason_2": None, "reason_3": None},
    ],
)


def test_score_summary_headline():
    assert SUMMARY.customers_per_second == pytest.approx(4_938.0)
    assert SUMMARY.headline() == (
        "score run 5: 12,345 customers scored as of 2026-11-01 00:00:00 with model version 7 "
        "in 2.5 s (4,938 customers/s)"
    )


def test_a_run_of_no_measurable_time_has_no_rate():
    instant = ScoreSummary(1, datetime(2026, 11, 1), 2, 10, 0.0, [], [])
    assert instant.customers_per_second == 0.0
    assert instant.headline().endswith("in 0.0 s (0 customers/s)")


def test_score_summary_decile_table():
    table = SUMMARY.decile_table()
    assert (table.title, table.header) == (
        "scores by decile (1 = best)",
        ("decile", "customers", "mean", "min", "max"),
    )
    assert table.rows == [
        ["1", "1,235", "0.9123", "0.8000", "1.0000"],
        ["2", "1,234", "0.5000", "0.2500", "0.8000"],
    ]


def test_score_summary_top_table():
    table = SUMMARY.top_table()
    assert (table.title, table.header) == (
        "top customers",
        ("rank", "customer_id", "propensity", "reasons"),
    )
    assert table.rows == [["1", "c-17", "1.0000", "visit, purchase"], ["2", "c-3", "0.9877", ""]]


@pytest.mark.parametrize(
    ("reasons", "text"),
    [
        (("visit", "purchase", "add_to_cart"), "visit, purchase, add_to_cart"),
        ((None, "visit", None), "visit"),
        (("visit", None, "purchase"), "visit, purchase"),
        ((None, None, None), ""),
    ],
)
def test_reasons_text_skips_missing_reasons(reasons, text):
    assert (
        reasons_text(dict(zip(("reason_1", "reason_2", "reason_3"), reasons, strict=True))) == text
    )


def test_metrics_table_rows_in_contender_order():
    table = metrics_table(TABLE)
    assert table.title == "holdout metrics (every contender, the champion, the recency reference)"
    assert table.header == ("contender", *COLUMNS)
    assert table.rows == TABLE_ROWS


def test_retrain_outcome_decision():
    outcome = RetrainOutcome(4, "gbm", "rejected", "roc_auc 0.70 below the champion's", TABLE)
    assert outcome.decision() == (
        "model version 4 (gbm): rejected — roc_auc 0.70 below the champion's"
    )


# --- from the database -------------------------------------------------------------------


def test_model_card_of_a_registered_version(engine):
    version_id = registered(engine)
    with transaction(engine) as session:
        version = session.get(ModelVersion, version_id)
        reject(session, version, "no better than the champion")
        card = metrics_markdown(version).splitlines()
    assert card[0] == f"# Model card: version {version_id} (lstm)"
    assert "**Status:** rejected — no better than the champion" in card
    for line in [
        "| as of | 2026-10-31 |",
        "| horizon | 14 days |",
        "| training cutoffs | 2026-08-02, 2026-09-01 |",
        "| holdout cutoff | 2026-10-01 |",
        "| events read | 12,345 |",
        "| training rows / base rate | 1,200 / 0.125 |",
        "| holdout rows / base rate | 400 / 0.098 |",
        "| calibrator | platt |",
        "| contender | roc_auc | pr_auc | log_loss | brier | ece | top_decile_lift |",
        *("| " + " | ".join(row) + " |" for row in TABLE_ROWS),
        "- [gains](file:///srv/reports/model-9/gains.png)",
    ]:
        assert line in card


# Staged in no particular order; c00..c11 by propensity, best first:
BEST_FIRST = ["c01", "c05", "c08", "c03", "c09", "c06", "c10", "c02", "c07", "c11", "c04", "c00"]
PROPENSITIES = [0.05, 0.9, 0.3, 0.65, 0.1, 0.8, 0.45, 0.2, 0.7, 0.55, 0.35, 0.15]
REASONS = [
    ("visit", None, None),
    ("purchase", "visit", None),
    (None, None, "add_to_cart"),
    ("visit", None, None),
    (None, "purchase", None),
    ("visit", None, "purchase"),
] * 2
SCORED = ["customer_id", "propensity", "reason_1", "reason_2", "reason_3"]
STAGED_ROWS = [
    (f"c{i:02d}", p, *reasons)
    for i, (p, reasons) in enumerate(zip(PROPENSITIES, REASONS, strict=True))
]
STAGED = pd.DataFrame(STAGED_ROWS, columns=SCORED)
# NTILE(10) of 12 customers: two in deciles 1 and 2, one in each other decile.
DECILES = [(1, 2, 0.85, 0.8, 0.9), (2, 2, 0.675, 0.65, 0.7)] + [
    (decile, 1, p, p, p)
    for decile, p in zip(range(3, 11), (0.55, 0.45, 0.35, 0.3, 0.2, 0.15, 0.1, 0.05), strict=True)
]


def test_score_summary_of_a_published_run(engine):
    model_id = registered(engine)
    with transaction(engine) as session:
        run_id = start_score_run(session, datetime(2026, 11, 1), model_id, None, timedelta(hours=1))
    with engine.begin() as connection:
        stage_scores(connection, run_id, STAGED)
    with transaction(engine) as session:
        publish_score_run(session, run_id, keep_succeeded=3)
    with engine.connect() as connection:
        summary = score_summary(connection, run_id)
    assert (summary.score_run_id, summary.model_version_id, summary.n_scored) == (
        run_id,
        model_id,
        12,
    )
    assert summary.as_of == datetime(2026, 11, 1)
    assert 0 <= summary.seconds < 60
    deciles = [
        tuple(d[k] for k in ("decile", "customers", "mean", "min", "max")) for d in summary.deciles
    ]
    assert [d[:2] for d in deciles] == [d[:2] for d in DECILES]
    assert [d[2:] for d in deciles] == [pytest.approx(d[2:]) for d in DECILES]
    by_id = {row[0]: dict(zip(SCORED, row, strict=True)) for row in STAGED_ROWS}
    expected_top = [
        {"rank": rank, **by_id[customer]} for rank, customer in enumerate(BEST_FIRST[:10], 1)
    ]
    assert summary.top == expected_top
