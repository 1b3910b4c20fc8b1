"""What a retrain trains and judges on, built from a frame of events or read in chunks of
customers, and kept in a folder between the step that reads it and the step that trains
(plain arrays, no pickle). No TensorFlow here: reading needs none."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llm_model.level import LevelInputs, PurchaseSummary, purchase_summary
from llm_model.manifest import ModelManifest, TrainingPlan
from llm_model.sequences import (
    Features,
    Snapshot,
    TrainingSet,
    Vocabulary,
    build_features,
    build_training_set,
)

ARRAYS = ("tokens", "numeric", "static")
# The level's purchase summaries, as LevelInputs names them and level.npz prefixes them.
LEVEL_SUMMARIES = ("before", "now")


@dataclass(frozen=True, eq=False)
class TrainingInputs:
    """What a retrain trains and judges on: its training set; the champion's features of
    the holdout's customers, built with the champion's own vocabulary and sequence settings
    (None without a champion); the customers' features at the data cutoff itself, the
    population drift is measured against; the events read; the customers read, of how
    many; the earliest event read; and the purchase summaries the level of the expected
    values is forecast from."""

    training: TrainingSet
    champion_holdout: Features | None
    reference: Features
    n_events: int
    n_customers: int
    population: int
    first_event: pd.Timestamp
    level: LevelInputs


def training_inputs(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    plan: TrainingPlan,
    champion: ModelManifest | None = None,
) -> TrainingInputs:
    """The inputs of a retrain from every customer's events in one frame."""
    training = build_training_set(events, as_of, plan.sequence, plan.n_snapshots, plan.stride_days)
    n_customers = events["customer_id"].nunique()
    return TrainingInputs(
        training,
        champion_features(events, training, champion),
        reference_features(events, as_of, training, plan),
        len(events),
        n_customers,
        n_customers,
        pd.Timestamp(events["occurred_at"].min()),
        level_inputs(events, training.holdout.cutoff, as_of, plan),
    )


def level_inputs(
    events: pd.DataFrame, holdout_cutoff: pd.Timestamp, as_of: pd.Timestamp, plan: TrainingPlan
) -> LevelInputs:
    """The purchase summaries of these customers at the holdout's cutoff and the data
    cutoff."""
    sequence = plan.sequence
    return LevelInputs(
        *(
            purchase_summary(events, cutoff, sequence.horizon_days, sequence.target_event)
            for cutoff in (holdout_cutoff, as_of)
        )
    )


def champion_features(
    events: pd.DataFrame, training: TrainingSet, champion: ModelManifest | None
) -> Features | None:
    """The champion's inputs for the holdout customers whose events these are."""
    if champion is None:
        return None
    holdout = training.holdout
    return build_features(
        events,
        holdout.features.customer_ids,
        holdout.cutoff,
        champion.vocabulary,
        champion.sequence,
    )


def reference_features(
    events: pd.DataFrame, as_of: pd.Timestamp, training: TrainingSet, plan: TrainingPlan
) -> Features:
    """The features at the data cutoff of the customers with an event at or before it."""
    present = events.loc[events["occurred_at"] <= as_of, "customer_id"].astype(str)
    return build_features(events, sorted(present.unique()), as_of, training.vocab, plan.sequence)


def save_inputs(inputs: TrainingInputs, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    training = inputs.training
    _save_snapshot(folder / "train.npz", training.train)
    _save_snapshot(folder / "holdout.npz", training.holdout)
    _save_features(folder / "reference.npz", inputs.reference)
    np.savez(
        folder / "level.npz",
        **{
            f"{when}_{name}": array
            for when in LEVEL_SUMMARIES
            for name, array in getattr(inputs.level, when).arrays().items()
        },
    )
    if inputs.champion_holdout is not None:
        _save_features(folder / "champion_holdout.npz", inputs.champion_holdout)
    about = {
        "train_cutoff": str(training.train.cutoff),
        "holdout_cutoff": str(training.holdout.cutoff),
        "train_cutoffs": [str(c) for c in training.train_cutoffs],
        "skipped_cutoffs": [str(c) for c in training.skipped_cutoffs],
        "vocabulary": training.vocab.to_dict(),
        "n_events": inputs.n_events,
        "n_customers": inputs.n_customers,
        "population": inputs.population,
        "first_event": str(inputs.first_event),
    }
    (folder / "inputs.json").write_text(json.dumps(about))
    return folder


def load_inputs(folder: Path) -> TrainingInputs:
    about = json.loads((folder / "inputs.json").read_text())
    champion = folder / "champion_holdout.npz"
    training = TrainingSet(
        train=_load_snapshot(folder / "train.npz", pd.Timestamp(about["train_cutoff"])),
        holdout=_load_snapshot(folder / "holdout.npz", pd.Timestamp(about["holdout_cutoff"])),
        train_cutoffs=tuple(pd.Timestamp(c) for c in about["train_cutoffs"]),
        vocab=Vocabulary.from_dict(about["vocabulary"]),
        skipped_cutoffs=tuple(pd.Timestamp(c) for c in about["skipped_cutoffs"]),
    )
    return TrainingInputs(
        training,
        _load_features(champion)[0] if champion.exists() else None,
        _load_features(folder / "reference.npz")[0],
        about["n_events"],
        about["n_customers"],
        about["population"],
        pd.Timestamp(about["first_event"]),
        _load_level(folder / "level.npz"),
    )


def _load_level(path: Path) -> LevelInputs:
    with np.load(path, allow_pickle=False) as stored:
        return LevelInputs(
            *(
                PurchaseSummary(**{f: stored[f"{when}_{f}"] for f in PurchaseSummary.field_names()})
                for when in LEVEL_SUMMARIES
            )
        )


def _save_snapshot(path: Path, snapshot: Snapshot) -> None:
    _save_features(path, snapshot.features, labels=snapshot.labels, values=snapshot.values)


def _load_snapshot(path: Path, cutoff: pd.Timestamp) -> Snapshot:
    features, labels = _load_features(path)
    with np.load(path, allow_pickle=False) as stored:
        values = stored.get("values")
    return Snapshot(cutoff, features, labels, values)


def _save_features(path: Path, features: Features, **outcomes: np.ndarray | None) -> None:
    # Ids as UTF-8 bytes and their lengths: an object array would need a pickle.
    encoded = [str(customer).encode() for customer in features.customer_ids]
    np.savez(
        path,
        id_bytes=np.frombuffer(b"".join(encoded), dtype=np.uint8),
        id_lengths=np.array([len(e) for e in encoded], dtype=np.int64),
        static_names=np.array(features.static_names, dtype=str),
        **{name: getattr(features, name) for name in ARRAYS},
        **{name: array for name, array in outcomes.items() if array is not None},
    )


def _load_features(path: Path) -> tuple[Features, np.ndarray | None]:
    with np.load(path, allow_pickle=False) as stored:
        ends = np.cumsum(stored["id_lengths"])
        data = stored["id_bytes"].tobytes()
        ids = [
            data[end - length : end].decode()
            for end, length in zip(ends, stored["id_lengths"], strict=True)
        ]
        features = Features(
            customer_ids=np.array(ids, dtype=object),
            static_names=tuple(str(name) for name in stored["static_names"]),
            **{name: stored[name] for name in ARRAYS},
        )
        return features, stored.get("labels")
