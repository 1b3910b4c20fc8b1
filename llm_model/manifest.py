"""What is kept beside a model's bytes, as typed records.

`ModelConfig` is the network's hyperparameters; `ModelManifest` is how to rebuild and use a
model (stored as model_versions.config); `ModelMetrics` is how it did on its temporal
holdout beside the other contenders (stored as model_versions.metrics). Both records write
and read the JSON shape stored since the first model version, so older rows still load.
"""

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np

from llm_model.calibration import Calibrator
from llm_model.sequences import SequenceConfig, Vocabulary

JSON = dict[str, Any]


class ManifestError(ValueError):
    """Stored JSON that is not a manifest or metrics record of this service."""


@dataclass(frozen=True)
class ModelConfig:
    """The recurrent network's hyperparameters (see llm_model.model.build_model)."""

    cell: Literal["gru", "lstm"] = "gru"
    units: int = 32
    recurrent_layers: int = 1
    embedding_dim: int = 16
    dense_units: int = 32
    dropout: float = 0.2
    l2: float = 1e-4
    learning_rate: float = 3e-3
    batch_size: int = 256
    epochs: int = 20
    patience: int = 3
    validation_share: float = 0.15
    seed: int = 42


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


@dataclass(frozen=True)
class ModelManifest:
    """Everything besides the network's weights that turns events into propensities."""

    model: ModelConfig
    sequence: SequenceConfig
    vocabulary: Vocabulary
    calibrator: Calibrator
    static_names: tuple[str, ...]
    n_snapshots: int
    snapshot_stride_days: int

    def to_json(self) -> JSON:
        return {
            "sidecar": {
                "model": asdict(self.model),
                "sequence": {
                    **asdict(self.sequence),
                    "windows_days": list(self.sequence.windows_days),
                },
                "vocabulary": self.vocabulary.to_dict(),
                "calibrator": self.calibrator.to_dict(),
                "static_names": list(self.static_names),
            },
            "n_snapshots": self.n_snapshots,
            "snapshot_stride_days": self.snapshot_stride_days,
        }

    @classmethod
    def from_json(cls, data: JSON) -> "ModelManifest":
        try:
            sidecar = data["sidecar"]
            sequence = {
                **sidecar["sequence"],
                "windows_days": tuple(sidecar["sequence"]["windows_days"]),
            }
            return cls(
                model=ModelConfig(**sidecar["model"]),
                sequence=SequenceConfig(**sequence),
                vocabulary=Vocabulary.from_dict(sidecar["vocabulary"]),
                calibrator=Calibrator.from_dict(sidecar["calibrator"]),
                static_names=tuple(sidecar["static_names"]),
                n_snapshots=int(data["n_snapshots"]),
                snapshot_stride_days=int(data["snapshot_stride_days"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ManifestError(f"not a model manifest ({type(error).__name__}: {error})") from None


@dataclass(frozen=True)
class TrainingData:
    """What a retrain trained and judged on."""

    as_of: str
    n_events: int
    train_cutoffs: tuple[str, ...]
    holdout_cutoff: str
    n_train: int
    n_holdout: int
    train_base_rate: float
    holdout_base_rate: float
    vocabulary: tuple[str, ...]

    def to_json(self) -> JSON:
        return {
            **asdict(self),
            "train_cutoffs": list(self.train_cutoffs),
            "vocabulary": list(self.vocabulary),
        }

    @classmethod
    def from_json(cls, data: JSON) -> "TrainingData":
        values = {f.name: data[f.name] for f in fields(cls)}
        lists = {name: tuple(data[name]) for name in ("train_cutoffs", "vocabulary")}
        return cls(**{**values, **lists})


@dataclass(frozen=True)
class ModelMetrics:
    """Holdout metrics of every contender (`table`, keyed by contender), which of them are
    baselines, the data, the champion it was compared with, the calibrators' holdout log
    loss and the chart files."""

    table: dict[str, dict[str, float]]
    baselines: tuple[str, ...]
    data: TrainingData
    champion_version_id: int | None = None
    calibration_log_loss: dict[str, float] = field(default_factory=dict)
    charts: tuple[str, ...] = ()

    def to_json(self) -> JSON:
        return {
            "table": self.table,
            "baselines": list(self.baselines),
            "data": self.data.to_json(),
            "champion_version_id": self.champion_version_id,
            "calibration_log_loss": self.calibration_log_loss,
            "charts": list(self.charts),
        }

    def evaluation(self) -> Evaluation:
        return Evaluation(table=self.table, baselines=self.baselines)

    @classmethod
    def from_json(cls, data: JSON) -> "ModelMetrics":
        try:
            return cls(
                table=data["table"],
                baselines=tuple(data["baselines"]),
                data=TrainingData.from_json(data["data"]),
                champion_version_id=data.get("champion_version_id"),
                calibration_log_loss=data.get("calibration_log_loss") or {},
                charts=tuple(data.get("charts") or ()),
            )
        except (KeyError, TypeError) as error:
            raise ManifestError(f"not a metrics record ({type(error).__name__}: {error})") from None
