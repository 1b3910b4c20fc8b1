"""Models between the trainer and the registry, as files and rows: a package of a model's
bytes, manifest and metrics that the retrain's tasks hand each other through a folder, its
registration, and the typed records of a registered version. No TensorFlow here (the
model card reads these), and no Prefect (the benchmarks register through it too)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from db.models import ModelVersion
from db.registry import ArtifactError, register_model, verified_artifact
from llm_model.manifest import ManifestError, ModelManifest, ModelMetrics

if TYPE_CHECKING:
    from llm_model.training import RetrainResult

ARTIFACT, MANIFEST, METRICS, AS_OF, CHARTS = (
    "model.keras",
    "manifest.json",
    "metrics.json",
    "trained_as_of.txt",
    "charts",
)


@dataclass(frozen=True)
class ModelPackage:
    """A model's bytes with what the registry stores beside them."""

    artifact: bytes
    manifest: ModelManifest
    metrics: ModelMetrics
    trained_as_of: datetime

    @classmethod
    def of(
        cls,
        result: RetrainResult,
        contender: str,
        metric: str,
        trained_as_of: datetime,
        champion_version_id: int | None,
        charts: tuple[str, ...] = (),
    ) -> ModelPackage:
        """One contender of a retrain (its winner by `metric`, as a rule); `charts` names the
        chart files drawn into the package's CHARTS folder."""
        model = result.contenders.models[contender]
        metrics = result.metrics(contender, metric, champion_version_id)
        return cls(
            artifact=model.to_bytes(),
            manifest=model.manifest,
            metrics=replace(metrics, charts=charts),
            trained_as_of=trained_as_of,
        )

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ARTIFACT).write_bytes(self.artifact)
        (folder / MANIFEST).write_text(json.dumps(self.manifest.to_json()))
        (folder / METRICS).write_text(json.dumps(self.metrics.to_json()))
        (folder / AS_OF).write_text(self.trained_as_of.isoformat())
        return folder

    @classmethod
    def of_version(cls, version: ModelVersion) -> ModelPackage:
        """A registered version, its bytes checked against their sha256."""
        return cls(
            artifact=verified_artifact(version),
            manifest=manifest_of(version),
            metrics=metrics_of(version),
            trained_as_of=version.trained_as_of,
        )

    @classmethod
    def load(cls, folder: Path) -> ModelPackage:
        return cls(
            artifact=(folder / ARTIFACT).read_bytes(),
            manifest=ModelManifest.from_json(json.loads((folder / MANIFEST).read_text())),
            metrics=ModelMetrics.from_json(json.loads((folder / METRICS).read_text())),
            trained_as_of=datetime.fromisoformat((folder / AS_OF).read_text()),
        )


def register(session: Session, package: ModelPackage) -> ModelVersion:
    """A `candidate` row with the artifact, its manifest and its metrics."""
    return register_model(
        session,
        artifact=package.artifact,
        trained_as_of=package.trained_as_of,
        horizon_days=package.manifest.sequence.horizon_days,
        kind=package.manifest.kind,
        config=package.manifest.to_json(),
        metrics=package.metrics.to_json(),
    )


def publish_charts(
    session: Session, version: ModelVersion, package: Path, reports_dir: Path
) -> list[str]:
    """Copy the charts drawn into a package to the version's report folder and record their
    paths in its metrics."""
    folder = reports_dir / f"model-{version.id}"
    folder.mkdir(parents=True, exist_ok=True)
    metrics = metrics_of(version)
    paths = [str(shutil.copy(package / CHARTS / name, folder / name)) for name in metrics.charts]
    metrics = replace(metrics, charts=tuple(paths))
    version.metrics = metrics.to_json()
    session.flush()
    return paths


def manifest_of(version: ModelVersion) -> ModelManifest:
    try:
        return ModelManifest.from_json(version.config)
    except ManifestError as error:
        raise ArtifactError(f"model version {version.id}: {error}") from None


def metrics_of(version: ModelVersion) -> ModelMetrics:
    try:
        return ModelMetrics.from_json(version.metrics)
    except ManifestError as error:
        raise ArtifactError(f"model version {version.id}: {error}") from None
