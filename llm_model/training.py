"""Fit the recurrent model on training snapshots, calibrate it, and compare it on the
temporal holdout with the champion and the baselines."""

from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from llm_model import metrics
from llm_model.baselines import fit_baselines
from llm_model.calibration import choose_calibrator
from llm_model.model import (
    ModelConfig,
    TrainedModel,
    build_model,
    model_inputs,
    predict,
    probability_function,
)
from llm_model.sequences import SequenceConfig, TrainingSet, build_training_set


def validation_mask(customer_ids: np.ndarray, share: float) -> np.ndarray:
    """Hold out whole customers (all their snapshots) so validation never sees their past."""
    hashed = pd.util.hash_array(np.asarray(customer_ids, dtype=object))
    return (hashed % 10_000) < int(share * 10_000)


def fit_model(
    training: TrainingSet,
    config: ModelConfig,
    sequence_config: SequenceConfig,
    verbose: int | str = "auto",
) -> tuple[TrainedModel, dict[str, float]]:
    """Train with early stopping on a customer split of the training snapshots; choose the
    calibrator fitted there by its log loss on the temporal holdout."""
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    train = training.train
    held = validation_mask(train.features.customer_ids, config.validation_share)
    fit_part, validation = (
        train.features.take(np.flatnonzero(~held)),
        train.features.take(np.flatnonzero(held)),
    )
    fit_labels, validation_labels = train.labels[~held], train.labels[held]
    if fit_labels.sum() == 0 or validation_labels.sum() == 0:
        raise ValueError("too few positive labels to train and validate: nothing to learn")

    network = build_model(
        config,
        vocab_size=training.vocab.size,
        max_len=sequence_config.max_len,
        static_mean=fit_part.static.mean(axis=0),
        static_variance=np.maximum(fit_part.static.var(axis=0), 1e-6),
        base_rate=float(fit_labels.mean()),
    )
    network.fit(
        model_inputs(fit_part),
        fit_labels,
        validation_data=(model_inputs(validation), validation_labels),
        epochs=config.epochs,
        batch_size=config.batch_size,
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.patience, restore_best_weights=True
            )
        ],
        verbose=verbose,
    )
    probability = probability_function(
        network, sequence_config.max_len, len(train.features.static_names)
    )
    calibrator, calibration_report = choose_calibrator(
        validation_labels,
        predict(probability, validation),
        training.holdout.labels,
        predict(probability, training.holdout.features),
    )
    trained = TrainedModel(
        network=network,
        config=config,
        sequence_config=sequence_config,
        vocab=training.vocab,
        calibrator=calibrator,
        static_names=train.features.static_names,
    )
    return trained, calibration_report


@dataclass(frozen=True)
class Evaluation:
    """Holdout metrics of every contender, keyed by name ("model", "model_raw", "champion",
    and one per baseline); `scores` keeps the holdout predictions for charts (not stored)."""

    table: dict[str, dict[str, float]]
    baselines: tuple[str, ...]
    labels: np.ndarray | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)

    def best_baseline(self) -> str:
        return max(self.baselines, key=lambda name: self.table[name]["roc_auc"])

    def to_dict(self) -> dict:
        return {"table": self.table, "baselines": list(self.baselines)}


def evaluate(
    candidate: TrainedModel,
    training: TrainingSet,
    events: pd.DataFrame,
    champion: TrainedModel | None = None,
    seed: int = 0,
) -> Evaluation:
    """Score every contender on the same temporal holdout. The champion rebuilds the holdout
    features with its own vocabulary and sequence settings."""
    holdout = training.holdout
    raw = candidate.raw_scores(holdout.features)
    scores = {
        "model": candidate.calibrator.transform(raw),
        "model_raw": np.clip(raw, 1e-6, 1 - 1e-6),
    }
    if champion is not None:
        champion_features = champion.features(events, holdout.features.customer_ids, holdout.cutoff)
        scores["champion"] = champion.propensity(champion_features)
    baselines = fit_baselines(training.train, seed)
    for baseline in baselines:
        scores[baseline.name] = baseline.propensity(holdout.features)
    table = {name: metrics.summary(holdout.labels, score) for name, score in scores.items()}
    return Evaluation(
        table=table,
        baselines=tuple(b.name for b in baselines),
        labels=holdout.labels,
        scores=scores,
    )


@dataclass(frozen=True)
class RetrainResult:
    trained: TrainedModel
    evaluation: Evaluation
    calibration: dict[str, float]
    data: dict


def resolve_as_of(
    requested: pd.Timestamp | None,
    first_event: pd.Timestamp,
    last_event: pd.Timestamp,
    now: pd.Timestamp,
) -> pd.Timestamp:
    """The data cutoff: as requested, or the latest event time; never in the future."""
    as_of = pd.Timestamp(requested) if requested is not None else pd.Timestamp(last_event)
    if as_of > now:
        raise ValueError(f"as_of {as_of} is in the future (now is {now:%Y-%m-%d %H:%M} UTC)")
    if as_of < first_event:
        raise ValueError(f"as_of {as_of} is before the first event ({first_event})")
    return as_of


def train_and_evaluate(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    sequence_config: SequenceConfig,
    model_config: ModelConfig,
    n_snapshots: int,
    stride_days: int,
    champion: TrainedModel | None = None,
    verbose: int | str = "auto",
) -> RetrainResult:
    training = build_training_set(events, as_of, sequence_config, n_snapshots, stride_days)
    trained, calibration = fit_model(training, model_config, sequence_config, verbose)
    evaluation = evaluate(trained, training, events, champion, model_config.seed)
    data = {
        "as_of": str(as_of),
        "n_events": len(events),
        "train_cutoffs": [str(c) for c in training.train_cutoffs],
        "holdout_cutoff": str(training.holdout.cutoff),
        "n_train": len(training.train.labels),
        "n_holdout": len(training.holdout.labels),
        "train_base_rate": float(training.train.labels.mean()),
        "holdout_base_rate": float(training.holdout.labels.mean()),
        "vocabulary": list(training.vocab.event_types),
    }
    return RetrainResult(trained, evaluation, calibration, data)
