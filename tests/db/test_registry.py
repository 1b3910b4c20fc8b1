import hashlib
import hmac
from datetime import datetime

import pytest
from sqlalchemy import func, select, update

from db.engine import transaction
from db.models import ModelVersion
from db.registry import (
    ArtifactError,
    NoChampion,
    current_champion,
    promote,
    register_model,
    reject,
    require_champion,
    sign_unsigned,
    verified_artifact,
)

TRAINED_AS_OF = datetime(2026, 10, 31)
# Every byte value, zero bytes included, and more than a single page.
ARTIFACT = bytes(range(256)) * 64


KEY = b"0123456789abcdef-signing"
OTHER_KEY = b"fedcba9876543210-signing"


def register(
    engine, artifact: bytes = ARTIFACT, kind: str = "gru", signing_key: bytes | None = None
) -> int:
    with transaction(engine) as session:
        version = register_model(
            session,
            artifact=artifact,
            trained_as_of=TRAINED_AS_OF,
            horizon_days=30,
            kind=kind,
            config={"units": 32, "sidecar": {"vocabulary": ["visit", "purchase"]}},
            metrics={"table": {"model": {"auc": 0.81}}, "baselines": ["recency"]},
            signing_key=signing_key,
        )
        return version.id


def statuses(engine) -> dict[int, tuple[str, str | None]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(ModelVersion.id, ModelVersion.status, ModelVersion.status_reason)
        ).all()
    return {id_: (status, reason) for id_, status, reason in rows}


def champion_count(engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(
            select(func.count()).select_from(ModelVersion).where(ModelVersion.status == "champion")
        )


def test_register_model_stores_artifact_and_sha256(engine):
    version_id = register(engine)
    with transaction(engine) as session:
        version = session.get(ModelVersion, version_id)
        assert version.artifact == ARTIFACT
        assert version.artifact_sha256 == hashlib.sha256(ARTIFACT).hexdigest()
        assert version.status == "candidate"
        assert version.status_reason is None
        assert version.trained_as_of == TRAINED_AS_OF
        assert (version.horizon_days, version.kind, version.cell) == (30, "gru", "gru")
        assert version.config["sidecar"] == {"vocabulary": ["visit", "purchase"]}
        assert version.metrics["baselines"] == ["recency"]
        assert verified_artifact(version) == ARTIFACT


@pytest.mark.parametrize(
    "stored",
    [ARTIFACT[:-1], ARTIFACT[:100] + b"\x00" + ARTIFACT[101:]],
    ids=["truncated", "one-byte-changed"],
)
def test_verified_artifact_refuses_altered_bytes(engine, stored):
    version_id = register(engine)
    with engine.begin() as connection:
        connection.execute(
            update(ModelVersion).where(ModelVersion.id == version_id).values(artifact=stored)
        )
    with transaction(engine) as session:
        version = session.get(ModelVersion, version_id)
        assert version.artifact == stored
        with pytest.raises(ArtifactError, match=rf"model version {version_id} .*corrupt"):
            verified_artifact(version)


def test_verified_artifact_refuses_an_emptied_artifact(engine):
    version_id = register(engine)
    with engine.begin() as connection:
        connection.execute(
            update(ModelVersion).where(ModelVersion.id == version_id).values(artifact=b"")
        )
    with transaction(engine) as session:
        version = session.get(ModelVersion, version_id)
        with pytest.raises(ArtifactError, match=rf"model version {version_id} has no artifact"):
            verified_artifact(version)


def test_register_model_refuses_an_empty_artifact(engine):
    with pytest.raises(ArtifactError, match="empty artifact"):
        register(engine, artifact=b"")
    assert statuses(engine) == {}


def test_promote_keeps_exactly_one_champion(engine):
    first, second = register(engine), register(engine, kind="lstm")
    with transaction(engine) as session:
        promote(session, session.get(ModelVersion, first), "first model")
    assert statuses(engine) == {first: ("champion", "first model"), second: ("candidate", None)}
    assert champion_count(engine) == 1

    with transaction(engine) as session:
        promote(session, session.get(ModelVersion, second), "beats the champion by 0.02 AUC")
        # The switch is visible inside the same transaction, too.
        assert current_champion(session).id == second
    assert statuses(engine)[first][0] == "retired"
    assert statuses(engine)[second] == ("champion", "beats the champion by 0.02 AUC")
    assert champion_count(engine) == 1
    with transaction(engine) as session:
        assert require_champion(session).id == second


def test_promoting_the_champion_again_keeps_it_the_only_champion(engine):
    version_id = register(engine)
    for reason in ("first", "forced"):
        with transaction(engine) as session:
            promote(session, session.get(ModelVersion, version_id), reason)
    assert statuses(engine) == {version_id: ("champion", "forced")}


def test_reject_records_reason_and_keeps_champion(engine):
    champion, challenger = register(engine), register(engine)
    with transaction(engine) as session:
        promote(session, session.get(ModelVersion, champion), "first model")
    with transaction(engine) as session:
        reject(session, session.get(ModelVersion, challenger), "AUC 0.70 below champion 0.81")
    assert statuses(engine) == {
        champion: ("champion", "first model"),
        challenger: ("rejected", "AUC 0.70 below champion 0.81"),
    }
    with transaction(engine) as session:
        assert require_champion(session).id == champion


def test_require_champion_raises_when_there_is_none(engine):
    with transaction(engine) as session, pytest.raises(NoChampion, match="no champion model"):
        require_champion(session)
    rejected = register(engine)
    register(engine)
    with transaction(engine) as session:
        reject(session, session.get(ModelVersion, rejected), "worse than the baseline")
    with transaction(engine) as session:
        assert current_champion(session) is None
        with pytest.raises(NoChampion, match="propensity retrain"):
            require_champion(session)


# --- signatures ---------------------------------------------------------------------------


def load(engine, version_id: int, signing_key: bytes | None) -> bytes:
    with transaction(engine) as session:
        return verified_artifact(session.get(ModelVersion, version_id), signing_key)


def test_a_signed_version_verifies_under_its_key_only(engine):
    version_id = register(engine, signing_key=KEY)
    with engine.connect() as connection:
        stored = connection.scalar(
            select(ModelVersion.artifact_signature).where(ModelVersion.id == version_id)
        )
    # An independent HMAC of what the signature covers: id, kind and the artifact's sha256.
    message = f"propensity model version {version_id}\ngru\n{hashlib.sha256(ARTIFACT).hexdigest()}"
    assert stored == hmac.new(KEY, message.encode(), hashlib.sha256).hexdigest()
    assert load(engine, version_id, KEY) == ARTIFACT
    assert load(engine, version_id, None) == ARTIFACT
    with pytest.raises(ArtifactError, match=rf"model version {version_id} .*did not sign"):
        load(engine, version_id, OTHER_KEY)


def test_an_artifact_swapped_in_with_its_hash_is_refused_under_the_key(engine):
    """A writer of model_versions copies another valid artifact, its sha256 and even its
    signature into the champion's row: the sha256 matches, the signature does not."""
    gbm = register(engine, b"gbm artifact", kind="gbm", signing_key=KEY)
    logistic = register(engine, b"logistic artifact", kind="logistic", signing_key=KEY)
    with engine.begin() as connection:
        source = connection.execute(
            select(
                ModelVersion.artifact,
                ModelVersion.artifact_sha256,
                ModelVersion.artifact_signature,
            ).where(ModelVersion.id == logistic)
        ).one()
        connection.execute(
            update(ModelVersion)
            .where(ModelVersion.id == gbm)
            .values(
                artifact=source.artifact,
                artifact_sha256=source.artifact_sha256,
                artifact_signature=source.artifact_signature,
            )
        )
    assert load(engine, gbm, None) == b"logistic artifact"  # the sha256 alone is fooled
    with pytest.raises(ArtifactError, match=rf"^model version {gbm} has an artifact or signature"):
        load(engine, gbm, KEY)
    assert load(engine, logistic, KEY) == b"logistic artifact"


def test_under_a_key_an_unsigned_version_is_refused_until_signed(engine):
    intact = register(engine)
    damaged = register(engine, b"will be damaged")
    with engine.begin() as connection:
        connection.execute(
            update(ModelVersion).where(ModelVersion.id == damaged).values(artifact=b"damaged")
        )
    with pytest.raises(ArtifactError, match=rf"model version {intact} is not signed"):
        load(engine, intact, KEY)

    with transaction(engine) as session:
        assert sign_unsigned(session, KEY) == [intact]
    with transaction(engine) as session:
        assert sign_unsigned(session, KEY) == []

    assert load(engine, intact, KEY) == ARTIFACT
    with pytest.raises(ArtifactError, match=rf"model version {damaged} .*corrupt"):
        load(engine, damaged, KEY)
