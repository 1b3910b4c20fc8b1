"""What people read about models and score runs: tables, headlines and the model card, against
hand-written text; the card, the score summary and the monitoring section from real rows on
every database (service/rendering.py and service/reports.py)."""

import base64
import dataclasses
import io
import re
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from sklearn.metrics import log_loss
from sqlalchemy import func, select

from db.engine import transaction
from db.models import ModelVersion
from db.outcomes import RunToEvaluate
from db.registry import reject
from db.scores import DecileRow, TopScore, publish_score_run, stage_scores, start_score_run
from db.source import EventSource
from llm_model.calibration import Calibrator
from llm_model.level import Level
from llm_model.manifest import ModelConfig, ModelManifest, ModelMetrics, TrainingData
from llm_model.sequences import SequenceConfig, Vocabulary
from service.databases import Databases
from service.outcomes import evaluate_runs
from service.pseudonyms import BY_ID
from service.registry import ModelPackage, database_reports, register
from service.rendering import (
    TextTable,
    chart_lines,
    customers_read,
    decile_table,
    drift_line,
    drift_table,
    drift_verdict,
    evaluation_table,
    level_markdown,
    markdown_text,
    metrics_markdown,
    metrics_table,
    monitoring_table,
    outcomes_markdown,
    printable,
    reasons_text,
    retrain_decision,
    score_headline,
    score_markdown,
    top_table,
)
from service.reports import monitoring_png, monitoring_report, score_summary
from service.results import DriftCheck, RetrainOutcome, RunEvaluation, ScoreSummary

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
    "2026-10-31",
    12345,
    ("2026-08-02", "2026-09-01"),
    "2026-10-01",
    1200,
    400,
    0.1251,
    0.0981,
    (),
    n_calibration=390,
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
        DecileRow(decile=1, customers=1_235, mean=0.91234, min=0.80001, max=0.99999),
        DecileRow(decile=2, customers=1_234, mean=0.5, min=0.25, max=0.8),
    ],
    top=[
        TopScore(
            rank=1,
            customer_id="c-17",
            propensity=0.99999,
            reasons=("visit", "purchase"),
            expected_value=1234.567,
        ),
        TopScore(rank=2, customer_id="c-3", propensity=0.98766, reasons=()),
    ],
)


def test_score_summary_headline():
    assert SUMMARY.customers_per_second == pytest.approx(4_938.0)
    assert score_headline(SUMMARY) == (
        "score run 5: 12,345 customers scored as of 2026-11-01 00:00:00 with model version 7 "
        "in 2.5 s (4,938 customers/s)"
    )


def test_a_run_of_no_measurable_time_has_no_rate():
    instant = ScoreSummary(1, datetime(2026, 11, 1), 2, 10, 0.0, [], [])
    assert instant.customers_per_second == 0.0
    assert score_headline(instant).endswith("in 0.0 s (0 customers/s)")


def test_score_summary_decile_table():
    table = decile_table(SUMMARY)
    assert (table.title, table.header) == (
        "scores by decile (1 = best)",
        ("decile", "customers", "mean", "min", "max"),
    )
    assert table.rows == [
        ["1", "1,235", "0.9123", "0.8000", "1.0000"],
        ["2", "1,234", "0.5000", "0.2500", "0.8000"],
    ]


def test_score_summary_top_table():
    table = top_table(SUMMARY)
    assert (table.title, table.header) == (
        "top customers",
        ("rank", "customer_id", "propensity", "expected value", "reasons"),
    )
    # A run published without values has none to show.
    assert table.rows == [
        ["1", "c-17", "1.0000", "1,234.57", "visit, purchase"],
        ["2", "c-3", "0.9877", "n/a", ""],
    ]


DRIFT = DriftCheck({"recency": 0.05, "frequency": 1.4732, "propensity": 0.2, "monetary": 0.31}, 0.2)


def test_drift_names_the_features_above_the_threshold_largest_first():
    assert DRIFT.drifted == {"frequency": 1.4732, "monetary": 0.31}
    assert drift_verdict(DRIFT) == "drift: PSI above 0.2 for frequency (1.47), monetary (0.31)"
    table = drift_table(DRIFT, "t")
    assert table.header == ("feature", "PSI", "above 0.2")
    assert table.rows == [
        ["frequency", "1.4732", "drifted"],
        ["monetary", "0.3100", "drifted"],
        ["propensity", "0.2000", ""],
        ["recency", "0.0500", ""],
    ]


def test_a_run_within_the_threshold_names_its_largest_psi():
    stable = DriftCheck({"recency": 0.05, "frequency": 0.125}, 0.2)
    assert stable.drifted == {}
    assert drift_verdict(stable) == (
        "no drift: every PSI is at most 0.2 (the largest 0.125, frequency)"
    )


def test_tenure_is_measured_but_never_an_alarm():
    """Every customer who stays is older at every run: in a closed population tenure shifts
    by construction, which says nothing about the customers."""
    aged = DriftCheck({"tenure": 1.05, "recency": 0.05}, 0.2)
    assert aged.drifted == {}
    assert drift_verdict(aged) == (
        "no drift: every PSI is at most 0.2 (the largest 0.050, recency); "
        "tenure 1.05: grows with time, not an alarm"
    )
    assert drift_table(aged, "t").rows[0] == ["tenure", "1.0500", "grows with time: not an alarm"]
    both = DriftCheck({"tenure": 1.05, "recency": 0.3}, 0.2)
    assert drift_verdict(both) == (
        "drift: PSI above 0.2 for recency (0.30); tenure 1.05: grows with time, not an alarm"
    )


def test_the_score_summary_says_whether_drift_was_measured():
    measured = dataclasses.replace(SUMMARY, drift=DRIFT)
    markdown = score_markdown(measured, BY_ID)
    assert "drift: PSI above 0.2 for frequency (1.47), monetary (0.31)." in markdown
    assert "| frequency | 1.4732 | drifted |" in markdown
    assert drift_line(SUMMARY) == (
        "drift not measured: model version 7 was trained without a drift reference "
        "(before drift was measured); retrain to measure it"
    )
    assert f"{drift_line(SUMMARY)}." in score_markdown(SUMMARY, BY_ID)
    assert "| feature | PSI |" not in score_markdown(SUMMARY, BY_ID)


@pytest.mark.parametrize(
    ("reasons", "text"),
    [
        (("visit", "purchase", "add_to_cart"), "visit, purchase, add_to_cart"),
        (("visit",), "visit"),
        (("visit", "purchase"), "visit, purchase"),
        ((), ""),
    ],
)
def test_reasons_text_joins_the_reasons_given(reasons, text):
    assert reasons_text(reasons) == text


def test_metrics_table_rows_in_contender_order():
    table = metrics_table(TABLE)
    assert table.title == "holdout metrics (every contender, the champion, the recency reference)"
    assert table.header == ("contender", *COLUMNS)
    assert table.rows == TABLE_ROWS


def test_the_card_says_which_level_the_expected_values_were_put_on():
    level = Level(
        "carried_forward",
        52_345.678,
        {"carried_forward": 0.97, "dropout": 0.816},
        {},
    )
    assert level_markdown(level) == (
        "The expected values' total is put on the `carried_forward` forecast of the next "
        "horizon's spend (52,345.68 for the customers read), the forecaster nearest what came "
        "in on the newest labelled window (forecast / realized: `carried_forward` 0.97, "
        "`dropout` 0.82)."
    )
    failed = Level("carried_forward", 40.0, {"carried_forward": 0.8}, {"dropout": "3 customers_x"})
    assert level_markdown(failed).endswith(r"`dropout` could not forecast: 3 customers\_x.")
    assert "recorded before levels were" in level_markdown(None)


def test_retrain_outcome_decision():
    outcome = RetrainOutcome(4, "gbm", "rejected", "roc_auc 0.70 below the champion's", TABLE)
    assert retrain_decision(outcome) == (
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
        "| customers read | every customer (not counted) |",
        "| events read | 12,345 |",
        "| earliest event read | not recorded |",
        "| drift reference | none (trained before drift was measured) |",
        "| training rows / base rate | 1,200 / 0.125 |",
        "| holdout rows / base rate | 400 / 0.098 |",
        "| calibrator | platt, chosen on 390 other holdout customers |",
        # Underscores escaped: Markdown shows them as they are.
        r"| contender | roc\_auc | pr\_auc | log\_loss | brier | ece | top\_decile\_lift |",
        *("| " + " | ".join(row).replace("_", r"\_") + " |" for row in TABLE_ROWS),
        "- gains: `/srv/reports/model-9/gains.png`",
    ]:
        assert line in card


@pytest.mark.parametrize(
    ("n_customers", "population", "shown"),
    [
        (0, 0, "every customer (not counted)"),
        (500, 500, "all 500"),
        (250_000, 2_000_000, "a sample of 250,000 of 2,000,000 (the first by md5 of the id)"),
    ],
)
def test_the_card_says_which_customers_a_retrain_read(n_customers, population, shown):
    data = dataclasses.replace(DATA, n_customers=n_customers, population=population)
    assert customers_read(data) == shown


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
        run_id = start_score_run(session, datetime(2026, 11, 1), model_id, None)
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
    deciles = [(d.decile, d.customers, d.mean, d.min, d.max) for d in summary.deciles]
    assert [d[:2] for d in deciles] == [d[:2] for d in DECILES]
    assert [d[2:] for d in deciles] == [pytest.approx(d[2:]) for d in DECILES]
    by_id = {customer: (p, reasons) for customer, p, *reasons in STAGED_ROWS}
    expected_top = [
        TopScore(rank, customer, by_id[customer][0], tuple(r for r in by_id[customer][1] if r))
        for rank, customer in enumerate(BEST_FIRST[:10], 1)
    ]
    assert summary.top == expected_top


def test_evaluation_table_says_when_a_run_matures_or_why_it_was_skipped():
    waiting = RunToEvaluate(7, datetime(2026, 6, 1), 3, "gbm", 30, {})
    gone = RunToEvaluate(8, datetime(2026, 6, 2, 6), 4, None, None, None)
    table = evaluation_table(
        [RunEvaluation(waiting), RunEvaluation(gone, skipped="its model version 4 is gone")]
    )
    assert table.header == (
        *("run", "as_of", "model", "customers", "converted", "base rate"),
        *("AUC", "log loss", "ECE", "lift", "value Gini", "expected revenue", "revenue"),
    )
    assert table.rows == [
        ["7", "2026-06-01 00:00", "gbm", "not matured until 2026-07-01 00:00", *[""] * 9],
        ["8", "2026-06-02 06:00", "gone", "skipped: its model version 4 is gone", *[""] * 9],
    ]


def test_monitoring_section_sets_realized_figures_beside_the_holdout(
    engine, hand_scored_run, tmp_path
):
    as_of = datetime(2026, 6, 1)
    scores = {f"c{i:02d}": (i + 1) / 21 for i in range(20)}
    buyers = ["c19", "c18", "c15", "c10", "c03"]
    events = [(c, "purchase", as_of + timedelta(days=1)) for c in buyers]
    run_id = hand_scored_run(
        engine, as_of, scores, [*events, ("c00", "visit", as_of + timedelta(days=31))]
    )
    hand_scored_run(engine, as_of + timedelta(days=10), scores, [])
    url = engine.url.render_as_string(hide_password=False)
    evaluate_runs(Databases(url, url), EventSource())

    with engine.connect() as connection:
        report = monitoring_report(connection, tmp_path / "reports")

    with transaction(engine) as session:
        model_id = session.scalar(select(func.min(ModelVersion.id)))
    y = [int(c in buyers) for c in scores]
    # Positives outrank 15, 15, 13, 9 and 3 of the 15 negatives: 55 of 75 pairs. Decile 1 is
    # c19 and c18, both buyers: a rate of 1 over a base rate of 0.25.
    table = monitoring_table(report.runs)
    assert table.rows == [
        [
            str(run_id),
            "2026-06-01",
            f"logistic #{model_id}",
            "20",
            "10.0",
            "5",
            "0.2500 / 0.2500",
            "0.7333 / 0.7500",
            f"{log_loss(y, list(scores.values())):.4f} / 0.4000",
            table.rows[0][9],
            "4.00 / 2.50",
            # Published without values: no value figures, and none on the holdout either.
            *["n/a / n/a"] * 3,
        ]
    ]
    assert table.rows[0][9].endswith(" / 0.0300")
    # In the database's own folder: another database's report never overwrites it.
    assert report.chart == database_reports(tmp_path / "reports", engine.url) / "monitoring.png"
    image = imread(report.chart)
    assert image.shape[:2] == (495, 1320)
    assert len(np.unique(image.reshape(-1, 4), axis=0)) > 20


# --- charts where the Prefect UI shows them ----------------------------------------------


def embedded_png(markdown: str, name: str) -> bytes:
    found = re.search(rf"!\[{name}\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert found, f"no embedded {name} image"
    return base64.b64decode(found.group(1))


def test_charts_for_the_prefect_ui_carry_their_png_beside_their_paths(tmp_path):
    gains = tmp_path / "gains.png"
    gains.write_bytes(b"\x89PNG gains")
    elsewhere = tmp_path / "calibration.png"  # drawn on another host: nothing to embed

    lines = chart_lines((str(gains), str(elsewhere)), embed=True)

    assert embedded_png(lines, "gains") == b"\x89PNG gains"
    assert "[calibration](data:" not in lines
    # Paths, never file:// links: those are dead in a browser on another machine.
    assert lines.endswith(f"- gains: `{gains}`\n- calibration: `{elsewhere}`")
    assert "file://" not in lines
    assert chart_lines((str(gains),)) == f"- gains: `{gains}`"
    assert chart_lines((), embed=True) == "none"


def test_the_outcomes_artifact_carries_the_monitoring_chart(engine, hand_scored_run):
    as_of = datetime(2026, 6, 1)
    scores = {f"c{i:02d}": (i + 1) / 21 for i in range(20)}
    events = [(c, "purchase", as_of + timedelta(days=1)) for c in ("c19", "c04")]
    hand_scored_run(engine, as_of, scores, [*events, ("c00", "visit", as_of + timedelta(days=31))])
    url = engine.url.render_as_string(hide_password=False)
    evaluations = evaluate_runs(Databases(url, url), EventSource())

    with engine.connect() as connection:
        markdown = outcomes_markdown(evaluations, *monitoring_png(connection))

    assert evaluation_table(evaluations).markdown() in markdown
    # The latest judged runs: the realized base rate beside the model's holdout one.
    assert "| 0.1000 / 0.2500 |" in markdown
    image = imread(io.BytesIO(embedded_png(markdown, "realized AUC and conversions by score run")))
    assert image.shape[:2] == (495, 1320)


# --- text from the data ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("esc\x1b[2J", "esc\\x1b[2J"),
        ("two\nlines\r\tx", "two\\nlines\\r\\tx"),
        ("bell\x07 del\x7f c1\x9b", "bell\\x07 del\\x7f c1\\x9b"),
        ("plain é ü 中", "plain é ü 中"),
    ],
)
def test_control_characters_are_written_out(raw, shown):
    assert printable(raw) == shown


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("![x](http://e/x.png)", r"\!\[x\]\(http://e/x.png\)"),
        ("a|b", r"a\|b"),
        ("<img src=x>", r"\<img src=x\>"),
        ("*bold* _it_ `code` ~s~ &amp;", r"\*bold\* \_it\_ \`code\` \~s\~ \&amp;"),
        ("back\\slash", r"back\\slash"),
        ("line\nbreak", r"line\\nbreak"),
    ],
)
def test_markdown_text_is_shown_as_itself(raw, escaped):
    assert markdown_text(raw) == escaped
