"""Models between the trainer and the registry, as files and rows: a package of a model's
bytes, manifest and metrics that the retrain's tasks hand each other through a folder, its
registration, and the typed records of a registered version. No TensorFlow here (the
model card reads these), and no Prefect (the benchmarks register through it too)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import URL
from sqlalchemy.orm import Session

from db.engine import sqlite_file
from db.files import private_folder
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
        value_kind: str | None = None,
    ) -> ModelPackage:
        """One contender of a retrain (its winner by `metric`, as a rule), with the value
        model that serves best beside it (or the one of `value_kind`); `charts` names the
        chart files drawn into the package's CHARTS folder."""
        model, value = result.valued(contender, value_kind)
        metrics = result.metrics(contender, metric, champion_version_id, value)
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
    def of_version(cls, version: ModelVersion, signing_key: bytes | None = None) -> ModelPackage:
        """A registered version, its bytes checked against their sha256 and, given the
        signing key, its signature."""
        return cls(
            artifact=verified_artifact(version, signing_key),
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


def register(
    session: Session, package: ModelPackage, signing_key: bytes | None = None
) -> ModelVersion:
    """A `candidate` row with the artifact, its manifest and its metrics, signed with the
    signing key if one is given."""
    return register_model(
        session,
        artifact=package.artifact,
        trained_as_of=package.trained_as_of,
        horizon_days=package.manifest.sequence.horizon_days,
        kind=package.manifest.kind,
        config=package.manifest.to_json(),
        metrics=package.metrics.to_json(),
        signing_key=signing_key,
    )


def database_reports(reports_dir: Path, url: URL) -> Path:
    """The folder under `reports_dir` of one database's charts: model ids and the monitoring
    chart belong to a database, and two databases reporting into one folder must not
    overwrite each other's files. Named by the back-end and the database, and a short hash
    of where it is (its absolute file for SQLite, else host, port and database): the same
    from every process and user, whatever the driver, and never from a password."""
    backend = url.get_backend_name()
    file = sqlite_file(url) if backend == "sqlite" else None
    place = str(file.resolve()) if file else f"{url.host}:{url.port}/{url.database}"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{backend}-{file.stem if file else url.database}")
    digest = hashlib.sha256(f"{backend}://{place}".encode()).hexdigest()[:8]
    return reports_dir / f"{name[:40]}-{digest}"


def publish_charts(
    session: Session, version: ModelVersion, package: Path, reports_dir: Path
) -> list[str]:
    """Copy the charts drawn into a package to the version's report folder, in its
    database's folder under `reports_dir`, and record their paths in its metrics."""
    folder = database_reports(reports_dir, session.get_bind().url) / f"model-{version.id}"
    private_folder(folder.parent)  # readable by the service's user only, like the database
    folder.mkdir(exist_ok=True)
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
