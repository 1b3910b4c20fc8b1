"""Model registry in model_versions: store artifacts with their sha256 (and, given a
signing key, a signature), load them back verified, and switch the champion in one
transaction.

The sha256 finds an artifact damaged in storage; it does not stop someone who can write
model_versions, who can store any artifact with its matching sha256. The signature does:
HMAC-SHA256 under a key the service holds and the database does not, of the version's id,
its kind and the artifact's sha256, so neither other bytes nor another row's artifact (with
its signature) passes as this version's."""

import hashlib
import hmac
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


def signature(version: ModelVersion, signing_key: bytes) -> str:
    """The version's signature under `signing_key`: what its artifact_signature holds."""
    signed = f"propensity model version {version.id}\n{version.kind}\n{version.artifact_sha256}"
    return hmac.new(signing_key, signed.encode(), hashlib.sha256).hexdigest()


def register_model(
    session: Session,
    *,
    artifact: bytes,
    trained_as_of: datetime,
    horizon_days: int,
    kind: str,
    config: dict[str, Any],
    metrics: dict[str, Any],
    signing_key: bytes | None = None,
) -> ModelVersion:
    """A `candidate` row with the artifact and its sha256, signed with `signing_key` (its
    id, known once inserted, is part of what is signed)."""
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
    if signing_key is not None:
        version.artifact_signature = signature(version, signing_key)
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


def verified_artifact(version: ModelVersion, signing_key: bytes | None = None) -> bytes:
    """The artifact bytes, refused if missing, if they no longer match their sha256, or,
    given a signing key, if the row's signature is missing or does not verify."""
    if not version.artifact:
        raise ArtifactError(f"model version {version.id} has no artifact")
    digest = hashlib.sha256(version.artifact).hexdigest()
    if digest != version.artifact_sha256:
        raise ArtifactError(
            f"model version {version.id} artifact is corrupt: sha256 {digest[:12]}... "
            f"does not match the recorded {version.artifact_sha256[:12]}..."
        )
    if signing_key is not None:
        require_signature(version, signing_key)
    return version.artifact


def require_signature(version: ModelVersion, signing_key: bytes) -> None:
    if version.artifact_signature is None:
        raise ArtifactError(
            f"model version {version.id} is not signed (registered without the signing key): "
            "refused; sign it with `propensity sign-models` if it is trusted"
        )
    if not hmac.compare_digest(version.artifact_signature, signature(version, signing_key)):
        raise ArtifactError(
            f"model version {version.id} has an artifact or signature that the signing key "
            "did not sign: refused"
        )


def sign_unsigned(session: Session, signing_key: bytes) -> list[int]:
    """Sign every version that has no signature yet and whose artifact still matches its
    sha256 (a damaged one stays unsigned, so it stays refused); the ids signed. A signature
    that does not verify is left as it is: whoever changed the row must not be vouched for."""
    unsigned = session.scalars(
        select(ModelVersion)
        .where(ModelVersion.artifact_signature.is_(None))
        .order_by(ModelVersion.id)
        .with_for_update()
    ).all()
    signed = []
    for version in unsigned:
        try:
            verified_artifact(version)
        except ArtifactError:
            continue
        version.artifact_signature = signature(version, signing_key)
        signed.append(version.id)
    session.flush()
    return signed


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
