"""What is kept beside a model's bytes, as typed records.

`ModelConfig` is the network's hyperparameters; `ModelManifest` is how to rebuild and use a
model (stored as model_versions.config); `ModelMetrics` is how it did on its temporal
holdout beside the other contenders (stored as model_versions.metrics). Both records write
and read the JSON shape stored since the first model version, so older rows still load.
"""

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from llm_model.calibration import Calibrator
from llm_model.drift import DriftReference
from llm_model.kinds import CellName
from llm_model.level import Level
from llm_model.selection import Evaluation
from llm_model.sequences import SequenceConfig, TrainingSet, Vocabulary

JSON = dict[str, Any]


class ManifestError(ValueError):
    """Stored JSON that is not a manifest or metrics record of this service."""


@dataclass(frozen=True)
class ModelConfig:
    """The recurrent network's hyperparameters (see llm_model.model.build_model)."""

    cell: CellName = "gru"
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
class TrainingPlan:
    """How a retrain trains: the snapshots' settings, the network's, and whether the
    recurrent model on top of gradient boosting joins the contenders."""

    sequence: SequenceConfig
    network: ModelConfig
    n_snapshots: int
    stride_days: int
    hybrid: bool = True


@dataclass(frozen=True)
class ModelManifest:
    """Everything besides a model's fitted parameters that turns events into propensities:
    its kind, how its inputs are built, its calibrator, and for the recurrent kinds the
    network's hyperparameters."""

    kind: str
    sequence: SequenceConfig
    vocabulary: Vocabulary
    calibrator: Calibrator
    static_names: tuple[str, ...]
    n_snapshots: int
    snapshot_stride_days: int
    network: ModelConfig | None = None
    # Training means of the static features: the reference occlusion reasons measure from.
    static_mean: tuple[float, ...] = ()
    # What score runs measure drift against; None in rows written before drift was measured.
    drift_reference: DriftReference | None = None
    # The kind of the value model that rides with it (llm_model.value); None without one;
    # and the factor its predictions are put on the newest labelled period's level with.
    value_kind: str | None = None
    value_scale: float = 1.0

    @classmethod
    def for_training(
        cls,
        training: TrainingSet,
        sequence: SequenceConfig,
        kind: str,
        calibrator: Calibrator,
        **fitted: Any,
    ) -> "ModelManifest":
        """The manifest of a model of `kind` fitted on these snapshots; `fitted` adds the
        kind's own parts (its network, its static means)."""
        return cls(
            kind=kind,
            sequence=sequence,
            vocabulary=training.vocab,
            calibrator=calibrator,
            static_names=training.train.features.static_names,
            n_snapshots=len(training.train_cutoffs) + 1,
            snapshot_stride_days=(training.holdout.cutoff - training.train_cutoffs[-1]).days,
            **fitted,
        )

    def to_json(self) -> JSON:
        return {
            "kind": self.kind,
            "sidecar": {
                "model": asdict(self.network) if self.network else None,
                "static_mean": list(self.static_mean),
                "sequence": {
                    **asdict(self.sequence),
                    "windows_days": list(self.sequence.windows_days),
                },
                "vocabulary": self.vocabulary.to_dict(),
                "calibrator": self.calibrator.to_dict(),
                "static_names": list(self.static_names),
                "drift_reference": (
                    self.drift_reference.to_json() if self.drift_reference else None
                ),
            },
            "n_snapshots": self.n_snapshots,
            "snapshot_stride_days": self.snapshot_stride_days,
            "value_kind": self.value_kind,
            "value_scale": self.value_scale,
        }

    @classmethod
    def from_json(cls, data: JSON) -> "ModelManifest":
        try:
            sidecar = data["sidecar"]
            sequence = {
                **sidecar["sequence"],
                "windows_days": tuple(sidecar["sequence"]["windows_days"]),
            }
            network = ModelConfig(**sidecar["model"]) if sidecar.get("model") else None
            drift = sidecar.get("drift_reference")
            return cls(
                # Rows written before kinds existed hold a recurrent network: its cell.
                kind=data.get("kind") or network.cell,
                network=network,
                static_mean=tuple(float(v) for v in sidecar.get("static_mean", ())),
                drift_reference=DriftReference.from_json(drift) if drift else None,
                sequence=SequenceConfig(**sequence),
                vocabulary=Vocabulary.from_dict(sidecar["vocabulary"]),
                calibrator=Calibrator.from_dict(sidecar["calibrator"]),
                static_names=tuple(sidecar["static_names"]),
                n_snapshots=int(data["n_snapshots"]),
                snapshot_stride_days=int(data["snapshot_stride_days"]),
                value_kind=data.get("value_kind"),
                value_scale=float(data.get("value_scale", 1.0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ManifestError(f"not a model manifest ({type(error).__name__}: {error})") from None


# TrainingData fields that rows written by earlier versions may lack.
LATER_TRAINING_FIELDS = frozenset(
    {"skipped_cutoffs", "n_calibration", "n_customers", "population", "first_event"}
)


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
    # Cutoffs left out because no customer existed yet; absent from rows written before.
    skipped_cutoffs: tuple[str, ...] = ()
    # Holdout customers set aside to choose the calibrators, never in the reported figures;
    # 0 in rows written before, when the calibrators were chosen on the reported holdout.
    n_calibration: int = 0
    # The customers read (a sample of the population when there are more than the sample
    # size) and the earliest event they had; 0 and "" in rows written before.
    n_customers: int = 0
    population: int = 0
    first_event: str = ""

    def to_json(self) -> JSON:
        return {
            **asdict(self),
            "train_cutoffs": list(self.train_cutoffs),
            "vocabulary": list(self.vocabulary),
            "skipped_cutoffs": list(self.skipped_cutoffs),
        }

    @classmethod
    def from_json(cls, data: JSON) -> "TrainingData":
        later = {f.name: f.default for f in fields(cls) if f.name in LATER_TRAINING_FIELDS}
        values = {f.name: data[f.name] for f in fields(cls) if f.name not in later}
        lists = {name: tuple(data[name]) for name in ("train_cutoffs", "vocabulary")}
        added = {name: data.get(name) or default for name, default in later.items()}
        return cls(
            **{**values, **lists, **added, "skipped_cutoffs": tuple(added["skipped_cutoffs"])}
        )


@dataclass(frozen=True)
class ValueMetrics:
    """How the value contenders did on the same holdout's realized spend (`table`, keyed by
    contender, beside the champion's value model), the one that rides with the registered
    model (`winner`; None when none could be), its strongest drivers (mean change of the
    expected value when the feature is set to its mean), why any kind was skipped, and the
    level forecast the served model was scaled to (None: recorded before levels were)."""

    table: dict[str, dict[str, float]]
    contenders: tuple[str, ...]
    winner: str | None
    drivers: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    level: Level | None = None

    def to_json(self) -> JSON:
        return {**asdict(self), "contenders": list(self.contenders)}

    @classmethod
    def from_json(cls, data: JSON) -> "ValueMetrics":
        return cls(
            table=dict(data["table"]),
            contenders=tuple(data["contenders"]),
            winner=data.get("winner"),
            drivers=dict(data.get("drivers") or {}),
            skipped=dict(data.get("skipped") or {}),
            level=Level(**data["level"]) if data.get("level") else None,
        )


@dataclass(frozen=True)
class ModelMetrics:
    """How a retrain's contenders did on its temporal holdout (`table`, keyed by contender),
    which of them could be served, the one registered (`winner`) and by which metric, the
    data, the champion it was compared with, the calibrators' holdout log loss and the
    chart files."""

    table: dict[str, dict[str, float]]
    contenders: tuple[str, ...]
    winner: str
    data: TrainingData
    selection_metric: str = "roc_auc"
    champion_version_id: int | None = None
    calibration_log_loss: dict[str, float] = field(default_factory=dict)
    skipped_contenders: dict[str, str] = field(default_factory=dict)
    charts: tuple[str, ...] = ()
    value: "ValueMetrics | None" = None

    def to_json(self) -> JSON:
        return {
            "table": self.table,
            "contenders": list(self.contenders),
            "winner": self.winner,
            "selection_metric": self.selection_metric,
            "data": self.data.to_json(),
            "champion_version_id": self.champion_version_id,
            "calibration_log_loss": self.calibration_log_loss,
            "skipped_contenders": self.skipped_contenders,
            "charts": list(self.charts),
            "value": self.value.to_json() if self.value else None,
        }

    def evaluation(self) -> Evaluation:
        return Evaluation(table=self.table, contenders=self.contenders)

    def value_evaluation(self) -> Evaluation | None:
        """The value contenders' holdout table; None where value was off."""
        if self.value is None or not self.value.table:
            return None
        return Evaluation(
            table=self.value.table, contenders=self.value.contenders, tie_breaker="mae"
        )

    @classmethod
    def from_json(cls, data: JSON) -> "ModelMetrics":
        try:
            return cls(
                table=dict(data["table"]),
                # Rows written before every contender was servable registered the recurrent
                # model, named "model", beside its baselines.
                contenders=tuple(data.get("contenders") or ("model", *data["baselines"])),
                winner=data.get("winner", "model"),
                selection_metric=data.get("selection_metric", "roc_auc"),
                data=TrainingData.from_json(data["data"]),
                champion_version_id=data.get("champion_version_id"),
                calibration_log_loss=data.get("calibration_log_loss") or {},
                skipped_contenders=data.get("skipped_contenders") or {},
                charts=tuple(data.get("charts") or ()),
                value=ValueMetrics.from_json(data["value"]) if data.get("value") else None,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ManifestError(f"not a metrics record ({type(error).__name__}: {error})") from None
