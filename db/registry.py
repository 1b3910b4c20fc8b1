"""Model registry in model_versions: store artifacts with their sha256, load them back
verified, and switch the champion in one transaction."""

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.errors import DataLayerError
from db.models import ModelStatus, ModelVersion
from db.timestamps import utc_now


class ArtifactError(DataLayerError):
    pass


class NoChampion(DataLayerError):
    pass


def register_model(
    session: Session,
    *,
    artifact: bytes,
    trained_as_of: datetime,
    horizon_days: int,
    kind: str,
    config: dict[str, Any],
    metrics: dict[str, Any],
) -> ModelVersion:
    if not artifact:
        raise ArtifactError("refusing to register a model with an empty artifact")
    version = ModelVersion(
        created_at=utc_now(),
        trained_as_of=trained_as_of,
        horizon_days=horizon_days,
        kind=kind,
        cell=kind,
        config=config,
        metrics=metrics,
        status=ModelStatus.CANDIDATE,
        artifact=artifact,
        artifact_sha256=hashlib.sha256(artifact).hexdigest(),
    )
    session.add(version)
    session.flush()
    return version


def current_champion(session: Session, lock: bool = False) -> ModelVersion | None:
    query = select(ModelVersion).where(ModelVersion.status == ModelStatus.CHAMPION)
    if lock:
        query = query.with_for_update()
    return session.scalars(query.order_by(ModelVersion.id.desc())).first()


def require_champion(session: Session) -> ModelVersion:
    champion = current_champion(session)
    if champion is None:
        raise NoChampion("no champion model: run `propensity retrain` first")
    return champion


def verified_artifact(version: ModelVersion) -> bytes:
    """The artifact bytes, refused if missing or if they no longer match their sha256."""
    if not version.artifact:
        raise ArtifactError(f"model version {version.id} has no artifact")
    digest = hashlib.sha256(version.artifact).hexdigest()
    if digest != version.artifact_sha256:
        raise ArtifactError(
            f"model version {version.id} artifact is corrupt: sha256 {digest[:12]}... "
            f"does not match the recorded {version.artifact_sha256[:12]}..."
        )
    return version.artifact


def promote(session: Session, version: ModelVersion, reason: str) -> None:
    """Make `version` the only champion; the previous one is retired in the same transaction."""
    current_champion(session, lock=True)
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.status == ModelStatus.CHAMPION, ModelVersion.id != version.id)
        .values(status=ModelStatus.RETIRED)
    )
    version.status = ModelStatus.CHAMPION
    version.status_reason = reason
    session.flush()


def reject(session: Session, version: ModelVersion, reason: str) -> None:
    version.status = ModelStatus.REJECTED
    version.status_reason = reason
    session.flush()


def latest_version(session: Session) -> ModelVersion | None:
    return session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc())).first()
