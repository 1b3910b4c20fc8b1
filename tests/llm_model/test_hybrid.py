"""The recurrent model on top of the boosted baseline: trained on out-of-fold boosted
scores, stored as one archive of its two parts and rebuilt by their safe loaders, scored
with reasons that explain the boosted score by the booster's own features."""

import io
import json
import math
import zipfile

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from llm_model import metrics
from llm_model.attribution import attribute_in_batches, traced_width
from llm_model.baselines import UntrustedArtifact, new_classifier
from llm_model.hybrid import (
    BOOSTER_MEMBER,
    NETWORK_MEMBER,
    HybridModel,
    customer_folds,
    out_of_fold_log_odds,
)
from llm_model.kinds import load_servable
from llm_model.manifest import ModelManifest
from llm_model.model import model_to_bytes, predict
from llm_model.reasons import REASON_COLUMNS
from llm_model.sequences import Features, Snapshot
from llm_model.training import evaluate


def through_json(manifest: ModelManifest) -> ModelManifest:
    return ModelManifest.from_json(json.loads(json.dumps(manifest.to_json())))


def archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
    return buffer.getvalue()


def test_a_hybrid_names_its_kind_and_the_static_features_of_the_events(
    hybrid, training, static_models
):
    manifest = hybrid.manifest
    assert (manifest.kind, manifest.network.cell) == ("gru_hybrid", "gru")
    assert manifest.static_names == training.train.features.static_names
    assert manifest.static_mean == static_models["gbm"].manifest.static_mean
    # Scoring and the holdout use the gbm contender itself, fitted on every training row.
    assert hybrid.booster is static_models["gbm"]


def test_a_hybrid_scores_and_explains_the_same_after_storage(
    hybrid, training, same_scores_and_reasons
):
    artifact = hybrid.to_bytes()
    members = set(zipfile.ZipFile(io.BytesIO(artifact)).namelist())
    assert members == {NETWORK_MEMBER, BOOSTER_MEMBER}

    loaded = load_servable(artifact, through_json(hybrid.manifest))

    assert isinstance(loaded, HybridModel)
    assert loaded.manifest == hybrid.manifest
    same_scores_and_reasons(loaded, hybrid, training.holdout.features)


def test_a_partition_gets_the_scores_and_reasons_it_has_in_a_larger_one(hybrid, training):
    """The booster scores each partition apart: a customer's score must not depend on it."""
    features = training.holdout.features
    whole = hybrid.scores(features, with_reasons=True)
    np.testing.assert_allclose(
        whole["propensity"], hybrid.scores(features, with_reasons=False)["propensity"], rtol=1e-5
    )
    part = hybrid.scores(features.take(np.arange(7, 19)), with_reasons=True)
    pd.testing.assert_frame_equal(part, whole.iloc[7:19].reset_index(drop=True), rtol=1e-6)


def test_the_hybrid_network_scores_and_explains_length_buckets_as_its_padded_rows(
    hybrid, training, gradient_times_input
):
    features = hybrid.with_boosted_score(training.holdout.features)
    corrector = hybrid.corrector
    padded = hybrid.network.predict(
        {"tokens": features.tokens, "numeric": features.numeric, "static": features.static},
        verbose=0,
    )[:, 0]
    assert traced_width(corrector.probability) is traced_width(corrector.attribution) is None
    np.testing.assert_allclose(
        hybrid.raw_scores(training.holdout.features), padded, rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        predict(corrector.probability, features, batch_size=4), padded, rtol=1e-5, atol=1e-7
    )
    vocab_size = hybrid.manifest.vocabulary.size
    attribution = attribute_in_batches(corrector.attribution, features, vocab_size, 4)
    np.testing.assert_allclose(attribution.scores, padded, rtol=1e-5, atol=1e-7)
    reference = gradient_times_input(hybrid.network, features)
    close = {"rtol": 1e-5, "atol": 1e-6}
    np.testing.assert_allclose(attribution.by_token[:, 1:], reference.by_token[:, 1:], **close)
    np.testing.assert_allclose(attribution.static, reference.static, **close)
    np.testing.assert_allclose(attribution.static_gradient, reference.static_gradient, **close)


def booster_explained(hybrid, features: Features, gradient_times_input, occlusion) -> np.ndarray:
    """The hybrid's contributions computed here: its network's per token, and per static
    feature its own plus its gradient with respect to the boosted score times the log-odds
    the booster loses with the feature at its training mean."""
    reference = gradient_times_input(hybrid.network, hybrid.with_boosted_score(features))
    mean = np.array(hybrid.booster.manifest.static_mean)
    lost = occlusion(hybrid.booster.classifier, features.static, mean)
    static = reference.static[:, :-1] + reference.static_gradient[:, -1:] * lost
    return np.concatenate([reference.by_token, static], axis=1)


def test_the_hybrid_explains_the_boosted_score_by_the_boosters_features(
    hybrid, training, reasons_are_the_largest, gradient_times_input, occlusion
):
    features = training.holdout.features
    evaluation = evaluate({"gru_hybrid": hybrid}, training)
    assert set(evaluation.table) == {"gru_hybrid", "gru_hybrid_raw", "recency"}
    for name in ("gru_hybrid", "gru_hybrid_raw"):
        row = evaluation.table[name]
        assert all(math.isfinite(row[m]) for m in ("roc_auc", "log_loss", "brier", "ece"))

    _, reasons = hybrid.raw_scores_with_reasons(features)

    contributions = booster_explained(hybrid, features, gradient_times_input, occlusion)
    reasons_are_the_largest(reasons, contributions)
    texts = reasons[REASON_COLUMNS].stack().dropna().tolist()
    assert texts and not [t for t in texts if "," in t or "boosted" in t]


def test_a_customer_built_by_hand_reads_their_own_values_through_the_booster(
    hybrid, hand_case, gradient_times_input, occlusion
):
    features = hand_case.features(hybrid.manifest)
    contributions = booster_explained(hybrid, features, gradient_times_input, occlusion)
    without_booster = booster_explained(
        hybrid, features, gradient_times_input, lambda *_: np.zeros(features.static.shape)
    )
    # The booster's share moves the reasons' weights: a real check of it.
    assert np.nanmax(np.abs(contributions - without_booster)) > 0.05

    _, reasons = hybrid.raw_scores_with_reasons(features)

    hand_case.assert_reasons(reasons, contributions, hybrid.manifest)


def memorable_snapshots(n_customers: int = 400, n_snapshots: int = 3) -> Snapshot:
    """Every customer in several snapshots with the same features and a label drawn at
    random per customer: a booster that has seen a customer's rows memorises their label;
    one that has not cannot guess it."""
    rng = np.random.default_rng(0)
    customer_static = rng.normal(size=(n_customers, 5)).astype(np.float32)
    customer_labels = rng.random(n_customers) < 0.3
    ids = np.array([f"c{i:04d}" for i in range(n_customers)], dtype=object)
    rows = np.tile(np.arange(n_customers), n_snapshots)
    n = len(rows)
    features = Features(
        customer_ids=ids[rows],
        tokens=np.zeros((n, 4), dtype=np.int32),
        numeric=np.zeros((n, 4, 3), dtype=np.float32),
        static=customer_static[rows],
        static_names=tuple(f"s{i}" for i in range(5)),
    )
    return Snapshot(pd.Timestamp("2026-01-01"), features, customer_labels[rows].astype(np.int64))


def test_the_boosted_score_the_network_trains_on_is_out_of_fold_by_customer():
    train = memorable_snapshots()
    in_sample = new_classifier("gbm", 42).fit(train.features.static, train.labels)
    # The premise: in-sample scores (or folds by row, which put a customer's other
    # snapshots in the booster's data) know the random labels.
    assert metrics.roc_auc(train.labels, in_sample.predict_proba(train.features.static)[:, 1]) > 0.9

    boosted = out_of_fold_log_odds(train, seed=42)

    assert boosted.shape == train.labels.shape and np.isfinite(boosted).all()
    assert abs(metrics.roc_auc(train.labels, boosted) - 0.5) < 0.1


def test_a_customer_is_in_one_fold_and_every_fold_is_used():
    train = memorable_snapshots(n_customers=200)
    folds = customer_folds(train.features.customer_ids, 5)
    by_customer = pd.Series(folds).groupby(train.features.customer_ids).nunique()
    assert (by_customer == 1).all()
    assert set(folds) == set(range(5))


def test_a_booster_fold_with_one_class_is_refused():
    train = memorable_snapshots(n_customers=50)
    one_class = Snapshot(train.cutoff, train.features, np.zeros_like(train.labels))
    with pytest.raises(ValueError, match=r"booster fold \d of 5 holds one class only"):
        out_of_fold_log_odds(one_class, seed=42)


@pytest.mark.parametrize(
    "make_artifact",
    [
        lambda hybrid: b"",
        lambda hybrid: model_to_bytes(hybrid.network),
        lambda hybrid: archive({NETWORK_MEMBER: model_to_bytes(hybrid.network)}),
        lambda hybrid: archive(
            {
                NETWORK_MEMBER: model_to_bytes(hybrid.network),
                BOOSTER_MEMBER: hybrid.booster.to_bytes(),
                "extra.pkl": b"\x80\x04",
            }
        ),
    ],
    ids=["empty", "keras-file", "no-booster", "extra-member"],
)
def test_bytes_that_are_no_hybrid_archive_are_refused_in_one_line(hybrid, make_artifact):
    with pytest.raises(
        UntrustedArtifact, match=r"^gru_hybrid artifact is not an archive"
    ) as raised:
        load_servable(make_artifact(hybrid), hybrid.manifest)
    assert "\n" not in str(raised.value)


def test_a_booster_with_an_untrusted_type_is_refused_naming_it(hybrid):
    untrusted = skops.io.dumps(
        make_pipeline(FunctionTransformer(func=math.sqrt), LogisticRegression())
    )
    artifact = archive({NETWORK_MEMBER: model_to_bytes(hybrid.network), BOOSTER_MEMBER: untrusted})
    with pytest.raises(UntrustedArtifact, match=r"does not trust: math\.sqrt$"):
        load_servable(artifact, hybrid.manifest)
