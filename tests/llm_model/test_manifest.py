"""The typed records kept beside a model: their JSON is the shape stored since the first model
version plus what later versions added (literal dicts below), so rows written by earlier
versions still load; and how an evaluation ranks its contenders."""

import copy
import dataclasses
import json

import pytest

from llm_model.calibration import Calibrator
from llm_model.drift import Bins, DriftReference
from llm_model.level import Level
from llm_model.manifest import (
    Evaluation,
    ManifestError,
    ModelConfig,
    ModelManifest,
    ModelMetrics,
    TrainingData,
    ValueMetrics,
)
from llm_model.sequences import SequenceConfig, Vocabulary

# A model_versions.config row as the retrain flow stored it before the typed records (and
# before kinds: no "kind", no "static_mean").
STORED_CONFIG = {
    "sidecar": {
        "model": {
            "cell": "lstm",
            "units": 16,
            "recurrent_layers": 2,
            "embedding_dim": 8,
            "dense_units": 32,
            "dropout": 0.2,
            "l2": 0.0001,
            "learning_rate": 0.003,
            "batch_size": 256,
            "epochs": 7,
            "patience": 3,
            "validation_share": 0.15,
            "seed": 9,
        },
        "sequence": {
            "max_len": 20,
            "target_event": "purchase",
            "horizon_days": 14,
            "windows_days": [7, 30, 90, 365],
            "lookback_days": None,
        },
        "vocabulary": {"event_types": ["add_to_cart", "purchase", "visit"]},
        "calibrator": {
            "method": "platt",
            "x_thresholds": [],
            "y_thresholds": [],
            "slope": 1.25,
            "intercept": -0.5,
        },
        "static_names": ["recency_days", "frequency", "monetary"],
    },
    "n_snapshots": 4,
    "snapshot_stride_days": 30,
}

# The same manifest, built from its parts: a row without a kind held a recurrent network.
MANIFEST = ModelManifest(
    kind="lstm",
    # The stored values of the other fields are ModelConfig's defaults.
    network=ModelConfig(
        cell="lstm", units=16, recurrent_layers=2, embedding_dim=8, epochs=7, seed=9
    ),
    sequence=SequenceConfig(max_len=20, horizon_days=14, lookback_days=None),
    vocabulary=Vocabulary(("add_to_cart", "purchase", "visit")),
    calibrator=Calibrator("platt", slope=1.25, intercept=-0.5),
    static_names=("recency_days", "frequency", "monetary"),
    n_snapshots=4,
    snapshot_stride_days=30,
)

# The row this version writes for it: the same plus its kind, (empty) static means, no
# drift reference and no value model.
CONFIG = {
    **STORED_CONFIG,
    "kind": "lstm",
    "sidecar": {**STORED_CONFIG["sidecar"], "static_mean": [], "drift_reference": None},
    "value_kind": None,
    "value_scale": 1.0,
}

# A static kind: no network, the training means its occlusion reasons measure from.
STATIC_CONFIG = {
    "kind": "gbm",
    "sidecar": {
        **STORED_CONFIG["sidecar"],
        "model": None,
        "static_mean": [1.5, 0.25, 3.0],
        "drift_reference": None,
        "calibrator": {
            "method": "identity",
            "x_thresholds": [],
            "y_thresholds": [],
            "slope": 1.0,
            "intercept": 0.0,
        },
    },
    "n_snapshots": 4,
    "snapshot_stride_days": 30,
    "value_kind": "two_stage",
    "value_scale": 0.8,
}
STATIC_MANIFEST = dataclasses.replace(
    MANIFEST,
    kind="gbm",
    network=None,
    static_mean=(1.5, 0.25, 3.0),
    calibrator=Calibrator("identity"),
    value_kind="two_stage",
    value_scale=0.8,
)


def contender(roc_auc: float) -> dict:
    """A table entry as llm_model.metrics.summary writes it."""
    return {
        "roc_auc": roc_auc,
        "pr_auc": 0.25,
        "log_loss": 0.31,
        "brier": 0.09,
        "ece": 0.02,
        "top_decile_lift": 2.5,
        "gini": 2 * roc_auc - 1,
        "base_rate": 0.1,
        "n": 400,
    }


# A model_versions.metrics row as stored before the typed records, charts attached.
STORED_METRICS = {
    "table": {
        "model": contender(0.9),
        "model_raw": contender(0.875),
        "champion": contender(0.75),
        "recency": contender(0.625),
        "rfm_logistic": contender(0.8),
        "frequency": contender(0.5),
    },
    "baselines": ["recency", "rfm_logistic", "frequency"],
    "champion_version_id": 3,
    "calibration_log_loss": {"identity": 0.33, "isotonic": 0.32, "platt": 0.31},
    "data": {
        "as_of": "2026-10-31 00:00:00",
        "n_events": 12345,
        "train_cutoffs": ["2026-08-02 00:00:00", "2026-09-01 00:00:00"],
        "holdout_cutoff": "2026-10-01 00:00:00",
        "n_train": 800,
        "n_holdout": 400,
        "train_base_rate": 0.125,
        "holdout_base_rate": 0.1,
        "vocabulary": ["purchase", "visit"],
    },
    "charts": ["reports/model-4/gains.png", "reports/model-4/calibration.png"],
}

DATA = TrainingData(
    as_of="2026-10-31 00:00:00",
    n_events=12345,
    train_cutoffs=("2026-08-02 00:00:00", "2026-09-01 00:00:00"),
    holdout_cutoff="2026-10-01 00:00:00",
    n_train=800,
    n_holdout=400,
    train_base_rate=0.125,
    holdout_base_rate=0.1,
    vocabulary=("purchase", "visit"),
)


def through_json(record: dict) -> dict:
    return json.loads(json.dumps(record))


DROP = object()


def edited(record, *path: str, to=DROP):
    """A deep copy of `record` with the value at `path` replaced by `to`, or removed."""
    copied = copy.deepcopy(record)
    *parents, key = path
    inner = copied
    for parent in parents:
        inner = inner[parent]
    if to is DROP:
        del inner[key]
    else:
        inner[key] = to
    return copied


# --- manifests ---------------------------------------------------------------------------


def test_a_stored_manifest_loads_as_its_parts():
    assert ModelManifest.from_json(STORED_CONFIG) == MANIFEST


def test_manifest_json_is_the_stored_shape_with_its_kind():
    assert MANIFEST.to_json() == CONFIG
    assert json.dumps(MANIFEST.to_json(), sort_keys=True) == json.dumps(CONFIG, sort_keys=True)
    assert ModelManifest.from_json(CONFIG) == MANIFEST


def test_a_static_manifest_has_no_network_and_keeps_its_training_means():
    assert STATIC_MANIFEST.to_json() == STATIC_CONFIG
    assert ModelManifest.from_json(STATIC_CONFIG) == STATIC_MANIFEST


# A drift reference: bins of each static feature, then of the score.
DRIFT_REFERENCE = DriftReference(
    names=("recency_days", "frequency", "monetary", "propensity"),
    bins=(
        Bins((1.0, 2.5), (0.25, 0.5, 0.25)),
        Bins((0.0,), (1.0, 0.0)),
        Bins((0.0, 3.0), (0.5, 0.25, 0.25)),
        Bins((0.05, 0.1, 0.4), (0.25, 0.25, 0.25, 0.25)),
    ),
)
DRIFT_JSON = [
    {"name": "recency_days", "edges": [1.0, 2.5], "shares": [0.25, 0.5, 0.25]},
    {"name": "frequency", "edges": [0.0], "shares": [1.0, 0.0]},
    {"name": "monetary", "edges": [0.0, 3.0], "shares": [0.5, 0.25, 0.25]},
    {"name": "propensity", "edges": [0.05, 0.1, 0.4], "shares": [0.25, 0.25, 0.25, 0.25]},
]


def test_a_manifest_keeps_its_drift_reference_as_a_list_in_column_order():
    manifest = dataclasses.replace(STATIC_MANIFEST, drift_reference=DRIFT_REFERENCE)
    stored = through_json(manifest.to_json())
    assert stored == edited(STATIC_CONFIG, "sidecar", "drift_reference", to=DRIFT_JSON)
    assert ModelManifest.from_json(stored) == manifest


def test_the_stored_kind_wins_over_the_network_cell():
    manifest = ModelManifest.from_json({**STORED_CONFIG, "kind": "gru"})
    assert (manifest.kind, manifest.network.cell) == ("gru", "lstm")


@pytest.mark.parametrize(
    "manifest",
    [
        MANIFEST,
        ModelManifest(
            kind="gru",
            network=ModelConfig(),
            sequence=SequenceConfig(windows_days=(3, 10)),
            vocabulary=Vocabulary(("purchase", "visit")),
            calibrator=Calibrator("isotonic", x_thresholds=[0.0, 0.5], y_thresholds=[0.1, 0.7]),
            static_names=(),
            n_snapshots=2,
            snapshot_stride_days=45,
        ),
        STATIC_MANIFEST,
        dataclasses.replace(MANIFEST, drift_reference=DRIFT_REFERENCE),
    ],
    ids=["platt-lstm", "isotonic-defaults", "gbm", "with-drift-reference"],
)
def test_manifest_round_trips_through_json(manifest):
    assert ModelManifest.from_json(through_json(manifest.to_json())) == manifest


# --- metrics -----------------------------------------------------------------------------


def stored_metrics_record() -> ModelMetrics:
    """STORED_METRICS as this version reads it: the recurrent model, named "model", was the
    one registered, beside its baselines."""
    return ModelMetrics(
        table=STORED_METRICS["table"],
        contenders=("model", "recency", "rfm_logistic", "frequency"),
        winner="model",
        data=DATA,
        champion_version_id=3,
        calibration_log_loss={"identity": 0.33, "isotonic": 0.32, "platt": 0.31},
        charts=("reports/model-4/gains.png", "reports/model-4/calibration.png"),
    )


# A model_versions.metrics row as this version writes it: every contender servable.
METRICS = {
    "table": {
        "gru": contender(0.9),
        "gru_raw": contender(0.875),
        "champion": contender(0.75),
        "recency": contender(0.625),
        "logistic": contender(0.8),
        "gbm": contender(0.85),
    },
    "contenders": ["gru", "logistic", "gbm"],
    "winner": "gru",
    "selection_metric": "log_loss",
    "data": {
        **STORED_METRICS["data"],
        "skipped_cutoffs": ["2026-07-03 00:00:00"],
        "n_calibration": 390,
        "n_customers": 2_500,
        "population": 40_000,
        "first_event": "2025-01-01 08:00:00",
    },
    "champion_version_id": 3,
    "calibration_log_loss": {"identity": 0.33, "platt": 0.31},
    "skipped_contenders": {"lstm": "too few positive labels to train and validate"},
    "charts": ["reports/model-5/gains.png"],
    "value": {
        "table": {"two_stage": {"value_gini": 0.5, "mae": 3.0}},
        "contenders": ["two_stage"],
        "winner": "two_stage",
        "drivers": {"monetary": 2.5},
        "skipped": {"gbm_poisson": "no spend"},
        "level": {
            "kind": "dropout",
            "total": 1234.5,
            "checks": {"carried_forward": 1.2, "dropout": 0.9},
            "failures": {},
        },
    },
}


def metrics_record() -> ModelMetrics:
    return ModelMetrics(
        table=METRICS["table"],
        contenders=("gru", "logistic", "gbm"),
        winner="gru",
        selection_metric="log_loss",
        data=dataclasses.replace(
            DATA,
            skipped_cutoffs=("2026-07-03 00:00:00",),
            n_calibration=390,
            n_customers=2_500,
            population=40_000,
            first_event="2025-01-01 08:00:00",
        ),
        champion_version_id=3,
        calibration_log_loss={"identity": 0.33, "platt": 0.31},
        skipped_contenders={"lstm": "too few positive labels to train and validate"},
        charts=("reports/model-5/gains.png",),
        value=ValueMetrics(
            table={"two_stage": {"value_gini": 0.5, "mae": 3.0}},
            contenders=("two_stage",),
            winner="two_stage",
            drivers={"monetary": 2.5},
            skipped={"gbm_poisson": "no spend"},
            level=Level("dropout", 1234.5, {"carried_forward": 1.2, "dropout": 0.9}, {}),
        ),
    )


def test_stored_metrics_load_as_their_parts():
    assert ModelMetrics.from_json(STORED_METRICS) == stored_metrics_record()
    assert ModelMetrics.from_json(METRICS) == metrics_record()


def test_metrics_json_is_the_stored_shape():
    assert metrics_record().to_json() == METRICS
    # Value rows written before the level forecast load without one.
    before_levels = {k: v for k, v in METRICS["value"].items() if k != "level"}
    assert ValueMetrics.from_json(before_levels).level is None
    # Data rows written before skipped cutoffs, the calibration half and the training sample
    # existed load with none of them.
    assert TrainingData.from_json(STORED_METRICS["data"]) == DATA
    assert DATA.to_json() == {
        **STORED_METRICS["data"],
        "skipped_cutoffs": [],
        "n_calibration": 0,
        "n_customers": 0,
        "population": 0,
        "first_event": "",
    }


@pytest.mark.parametrize(
    "metrics",
    [
        stored_metrics_record(),
        metrics_record(),
        ModelMetrics(
            table={"gru": contender(0.7), "recency": contender(0.6)},
            contenders=("gru",),
            winner="gru",
            data=DATA,
        ),
    ],
    ids=["stored", "full", "defaults"],
)
def test_metrics_round_trip_through_json(metrics):
    assert ModelMetrics.from_json(through_json(metrics.to_json())) == metrics


def test_training_data_round_trips_through_json():
    assert TrainingData.from_json(through_json(DATA.to_json())) == DATA


@pytest.mark.parametrize(
    ("missing", "default"),
    [
        ("champion_version_id", None),
        ("calibration_log_loss", {}),
        ("skipped_contenders", {}),
        ("selection_metric", "roc_auc"),
        ("charts", ()),
    ],
)
def test_metrics_without_an_optional_key_load_with_its_default(missing, default):
    loaded = ModelMetrics.from_json(edited(METRICS, missing))
    assert getattr(loaded, missing) == default
    assert loaded.table == METRICS["table"]
    assert (loaded.contenders, loaded.winner) == (("gru", "logistic", "gbm"), "gru")


def test_metrics_of_the_first_versions_load_with_defaults():
    first = {key: STORED_METRICS[key] for key in ("table", "baselines", "data")}
    loaded = ModelMetrics.from_json(first)
    assert (loaded.champion_version_id, loaded.calibration_log_loss, loaded.charts) == (
        None,
        {},
        (),
    )
    assert loaded.contenders == ("model", "recency", "rfm_logistic", "frequency")
    assert (loaded.winner, loaded.selection_metric, loaded.skipped_contenders) == (
        "model",
        "roc_auc",
        {},
    )


def test_null_optional_metrics_load_with_defaults():
    nulls = {
        **METRICS,
        "champion_version_id": None,
        "calibration_log_loss": None,
        "skipped_contenders": None,
    }
    loaded = ModelMetrics.from_json({**nulls, "charts": None})
    assert (
        loaded.champion_version_id,
        loaded.calibration_log_loss,
        loaded.skipped_contenders,
        loaded.charts,
    ) == (None, {}, {}, ())


# (record, dotted key path, replacement or DROP, the start of what the error message says)
BROKEN = [
    (ModelManifest, "sidecar", DROP, "KeyError: 'sidecar'"),
    (ModelManifest, "n_snapshots", DROP, "KeyError: 'n_snapshots'"),
    (ModelManifest, "sidecar.calibrator", DROP, "KeyError: 'calibrator'"),
    (ModelManifest, "sidecar.sequence.windows_days", DROP, "KeyError: 'windows_days'"),
    (ModelManifest, "sidecar.sequence.windows_days", 7, "TypeError"),
    (ModelManifest, "sidecar.model", {"neurons": 8}, "TypeError"),
    # Without a kind the row must hold a network to take the kind from.
    (ModelManifest, "sidecar.model", None, "AttributeError"),
    (ModelManifest, "snapshot_stride_days", None, "TypeError"),
    (ModelManifest, "n_snapshots", "four", "ValueError"),
    (ModelManifest, "sidecar.calibrator", {"method": "sigmoid"}, "ValueError"),
    (ModelManifest, "sidecar.vocabulary", {"event_types": ["visit", "add"]}, "ValueError"),
    (ModelMetrics, "table", DROP, "KeyError: 'table'"),
    (ModelMetrics, "baselines", DROP, "KeyError: 'baselines'"),
    (ModelMetrics, "data", DROP, "KeyError: 'data'"),
    (ModelMetrics, "data.n_holdout", DROP, "KeyError: 'n_holdout'"),
    (ModelMetrics, "baselines", 5, "TypeError"),
    (ModelMetrics, "data", ["as_of"], "TypeError"),
    (ModelMetrics, "data.train_cutoffs", 3, "TypeError"),
    (ModelMetrics, "charts", 2, "TypeError"),
]
STORED = {ModelManifest: STORED_CONFIG, ModelMetrics: STORED_METRICS}
PREFIX = {ModelManifest: "not a model manifest (", ModelMetrics: "not a metrics record ("}


def raised_message(record_type, record) -> str:
    with pytest.raises(ManifestError) as raised:
        record_type.from_json(record)
    message = str(raised.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("record_type", "path", "to", "reason"),
    [
        pytest.param(
            *case, id=f"{case[0].__name__}-{case[1]}-{'dropped' if case[2] is DROP else 'bad'}"
        )
        for case in BROKEN
    ],
)
def test_broken_json_raises_manifest_error_saying_why(record_type, path, to, reason):
    record = edited(STORED[record_type], *path.split("."), to=to)
    assert raised_message(record_type, record).startswith(PREFIX[record_type] + reason)


@pytest.mark.parametrize(
    ("record_type", "record", "path", "to", "reason"),
    [
        (ModelManifest, STATIC_CONFIG, "sidecar.static_mean", 5, "TypeError"),
        (ModelManifest, STATIC_CONFIG, "sidecar.static_mean", ["high"], "ValueError"),
        (ModelManifest, STATIC_CONFIG, "sidecar.drift_reference", 5, "TypeError"),
        (ModelManifest, STATIC_CONFIG, "sidecar.drift_reference", [{"name": "x"}], "KeyError"),
        (ModelMetrics, METRICS, "contenders", 5, "TypeError"),
        (ModelMetrics, METRICS, "table", 5, "TypeError"),
    ],
    ids=[
        *("static_mean-number", "static_mean-text"),
        *("drift_reference-number", "drift_reference-no-bins", "contenders", "table"),
    ],
)
def test_broken_json_of_this_version_raises_manifest_error(record_type, record, path, to, reason):
    broken = edited(record, *path.split("."), to=to)
    assert raised_message(record_type, broken).startswith(PREFIX[record_type] + reason)


@pytest.mark.parametrize("record_type", [ModelManifest, ModelMetrics])
@pytest.mark.parametrize(
    ("record", "reason"),
    [([], "TypeError"), ("text", "TypeError"), (None, "TypeError"), ({}, "KeyError")],
)
def test_json_that_is_no_record_raises_manifest_error(record_type, record, reason):
    assert raised_message(record_type, record).startswith(PREFIX[record_type] + reason)


# --- evaluation --------------------------------------------------------------------------


def test_evaluation_of_metrics_keeps_table_and_contenders():
    evaluation = ModelMetrics.from_json(METRICS).evaluation()
    assert evaluation == Evaluation(table=METRICS["table"], contenders=("gru", "logistic", "gbm"))
    assert (evaluation.labels, evaluation.scores) == (None, {})


def row(roc_auc: float, log_loss: float, brier: float = 0.1) -> dict[str, float]:
    return {"roc_auc": roc_auc, "log_loss": log_loss, "brier": brier}


# References and the champion lead on every metric: only contenders are ranked.
TABLE = {
    "gru": row(0.80, 0.300, brier=0.090),
    "logistic": row(0.82, 0.320, brier=0.095),
    "gbm": row(0.78, 0.290, brier=0.085),
    "gru_raw": row(0.99, 0.010, brier=0.001),
    "recency": row(0.99, 0.010, brier=0.001),
    "champion": row(0.99, 0.010, brier=0.001),
}


@pytest.mark.parametrize(
    ("metric", "ranked"),
    [
        ("roc_auc", ["logistic", "gru", "gbm"]),  # higher is better
        ("log_loss", ["gbm", "gru", "logistic"]),  # lower is better
        ("brier", ["gbm", "gru", "logistic"]),  # lower is better
    ],
)
def test_contenders_rank_best_first_in_the_metric_direction(metric, ranked):
    evaluation = Evaluation(table=TABLE, contenders=("gru", "logistic", "gbm"))
    assert evaluation.ranked(metric) == ranked
    assert evaluation.winner(metric) == ranked[0]


@pytest.mark.parametrize("contenders", [("gru", "logistic", "gbm"), ("gbm", "logistic", "gru")])
def test_a_tie_goes_to_the_lower_log_loss_whatever_the_order(contenders):
    table = {
        "gru": row(0.80, 0.300),
        "logistic": row(0.80, 0.290),  # as good by AUC, better calibrated
        "gbm": row(0.75, 0.100),
    }
    evaluation = Evaluation(table=table, contenders=contenders)
    assert evaluation.ranked("roc_auc") == ["logistic", "gru", "gbm"]
    assert evaluation.winner("roc_auc") == "logistic"


def test_contenders_within_the_tie_margin_go_by_log_loss():
    table = {
        "gru_hybrid": row(0.8104, 0.3453),
        "gru": row(0.8102, 0.3437),  # 0.0002 behind: a tie, better calibrated
        "gbm": row(0.8093, 0.3400),  # 0.0011 behind: no tie, whatever its log loss
        "logistic": row(0.8082, 0.3475),
    }
    evaluation = Evaluation(table=table, contenders=tuple(table))
    assert evaluation.ranked("roc_auc") == ["gru", "gru_hybrid", "gbm", "logistic"]
    assert evaluation.winner("roc_auc") == "gru"
    assert evaluation.tied_with_best("roc_auc") == {"gru", "gru_hybrid"}
    # In a lower-is-better metric the margin counts the other way.
    by_brier = Evaluation(
        table={"a": row(0.7, 0.31, brier=0.0900), "b": row(0.8, 0.30, brier=0.0909)},
        contenders=("a", "b"),
    )
    assert by_brier.winner("brier") == "b"
    assert by_brier.winner("log_loss") == "b"
