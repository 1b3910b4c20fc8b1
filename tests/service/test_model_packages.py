"""Model packages as files and as model_versions rows, on every database."""

import hashlib
import json
import stat
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import make_url, select, update

from db.engine import make_engine, transaction
from db.migrate import upgrade
from db.models import ModelVersion
from db.registry import ArtifactError, register_model
from llm_model.calibration import Calibrator
from llm_model.manifest import ModelConfig, ModelManifest, ModelMetrics, TrainingData
from llm_model.sequences import SequenceConfig, Vocabulary
from service.registry import (
    ModelPackage,
    database_reports,
    manifest_of,
    metrics_of,
    publish_charts,
    register,
)

# Not the defaults, so that a registration that ignored the manifest would show.
MANIFEST = ModelManifest(
    kind="lstm",
    network=ModelConfig(cell="lstm", units=8),
    sequence=SequenceConfig(horizon_days=21),
    vocabulary=Vocabulary(("purchase", "visit")),
    calibrator=Calibrator("identity"),
    static_names=("frequency", "recency_days"),
    n_snapshots=3,
    snapshot_stride_days=21,
)
METRICS = ModelMetrics(
    table={"lstm": {"roc_auc": 0.75, "log_loss": 0.3}, "recency": {"roc_auc": 0.625}},
    contenders=("lstm",),
    winner="lstm",
    # as_of, n_events, train_cutoffs, holdout_cutoff, n_train, n_holdout, base rates, vocabulary
    data=TrainingData(
        "2026-10-31", 90, ("2026-09-09",), "2026-09-30", 30, 20, 0.25, 0.2, ("visit",)
    ),
    calibration_log_loss={"identity": 0.3},
    # Not in alphabetical order: publication keeps this order.
    charts=("gains.png", "calibration.png", "score_histogram.png"),
)
# Every byte value, zero included.
PACKAGE = ModelPackage(bytes(range(256)) * 4, MANIFEST, METRICS, datetime(2026, 10, 31, 6, 30))


def registered(engine, package: ModelPackage = PACKAGE) -> int:
    with transaction(engine) as session:
        return register(session, package).id


def stored(engine, version_id: int, **values) -> None:
    """Overwrite columns of a model_versions row behind the registry's back."""
    with engine.begin() as connection:
        connection.execute(
            update(ModelVersion).where(ModelVersion.id == version_id).values(**values)
        )


def test_package_save_and_load_round_trip(tmp_path):
    folder = PACKAGE.save(tmp_path / "challenger")
    assert folder == tmp_path / "challenger"
    assert sorted(path.name for path in folder.iterdir()) == [
        "manifest.json",
        "metrics.json",
        "model.keras",
        "trained_as_of.txt",
    ]
    assert (folder / "model.keras").read_bytes() == PACKAGE.artifact
    assert json.loads((folder / "manifest.json").read_text()) == MANIFEST.to_json()
    assert ModelPackage.load(folder) == PACKAGE


def test_register_stores_the_records_json_and_the_manifest_columns(engine):
    version_id = registered(engine)
    with engine.connect() as connection:
        row = connection.execute(select(ModelVersion).where(ModelVersion.id == version_id)).one()
    assert row.config == MANIFEST.to_json()
    assert row.metrics == METRICS.to_json()
    assert (row.horizon_days, row.kind, row.cell) == (21, "lstm", "lstm")
    assert (row.status, row.status_reason) == ("candidate", None)
    assert row.trained_as_of == datetime(2026, 10, 31, 6, 30)
    assert row.artifact == PACKAGE.artifact
    assert row.artifact_sha256 == hashlib.sha256(PACKAGE.artifact).hexdigest()


def test_package_of_a_registered_version_is_the_package(engine):
    version_id = registered(engine)
    with transaction(engine) as session:
        assert ModelPackage.of_version(session.get(ModelVersion, version_id)) == PACKAGE


def test_package_of_a_version_with_altered_bytes_is_refused(engine):
    registered(engine)
    version_id = registered(engine)
    stored(engine, version_id, artifact=PACKAGE.artifact[:-1] + b"\x00")
    with transaction(engine) as session:
        version = session.get(ModelVersion, version_id)
        with pytest.raises(
            ArtifactError, match=rf"^model version {version_id} artifact is corrupt"
        ):
            ModelPackage.of_version(version)


def test_publish_charts_copies_the_named_charts_in_order_and_records_them(engine, tmp_path):
    package = PACKAGE.save(tmp_path / "challenger")
    (package / "charts").mkdir()
    for name in (*METRICS.charts, "not_named.png"):
        (package / "charts" / name).write_bytes(f"chart {name}".encode())
    reports = tmp_path / "reports"
    registered(engine)
    version_id = registered(engine)
    with transaction(engine) as session:
        paths = publish_charts(session, session.get(ModelVersion, version_id), package, reports)
    folder = database_reports(reports, engine.url) / f"model-{version_id}"
    expected = [str(folder / name) for name in METRICS.charts]
    assert paths == expected
    assert all(Path(path).is_absolute() for path in paths)
    assert sorted(folder.iterdir()) == sorted(Path(path) for path in expected)
    for name in METRICS.charts:
        assert (folder / name).read_bytes() == f"chart {name}".encode()
    with transaction(engine) as session:
        version = session.get(ModelVersion, version_id)
        assert metrics_of(version) == replace(METRICS, charts=tuple(expected))
        assert version.metrics["charts"] == expected


def test_model_1_of_two_databases_keeps_its_own_charts(engine, tmp_path):
    """Each new database's first model is model 1: publishing the second database's charts
    into the same reports folder leaves the first one's charts as they were."""
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    with other.begin() as connection:
        upgrade(connection)
    reports = tmp_path / "reports"
    published = {}
    for database in (engine, other):
        package = PACKAGE.save(tmp_path / f"package-{len(published)}")
        (package / "charts").mkdir()
        for name in METRICS.charts:
            (package / "charts" / name).write_bytes(f"{name} of {database.url}".encode())
        with transaction(database) as session:
            version = register(session, PACKAGE)
            assert version.id == 1
            published[database] = publish_charts(session, version, package, reports)
    other.dispose()

    assert set(published[engine]).isdisjoint(published[other])
    for database, paths in published.items():
        assert [Path(path).read_bytes() for path in paths] == [
            f"{name} of {database.url}".encode() for name in METRICS.charts
        ]
        # A database's charts show its customers' scores: for the service's user only.
        assert stat.S_IMODE(Path(paths[0]).parents[1].stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("postgresql+psycopg://a:pw@db:5432/scores", "postgresql+psycopg://a:pw@db:5432/shop"),
        ("postgresql+psycopg://a@db:5432/scores", "postgresql+psycopg://a@db2:5432/scores"),
        ("postgresql+psycopg://a@db:5432/scores", "postgresql+psycopg://a@db:5433/scores"),
        ("mysql+pymysql://a@db/scores", "postgresql+psycopg://a@db/scores"),
        ("sqlite:///one/propensity.db", "sqlite:///two/propensity.db"),
    ],
)
def test_every_database_reports_into_a_folder_of_its_own(one, other, tmp_path):
    assert database_reports(tmp_path, make_url(one)) != database_reports(tmp_path, make_url(other))


def test_a_database_reports_into_one_folder_however_it_is_reached(tmp_path, monkeypatch):
    """Whatever the driver, user or password (changed by a rotation), and for SQLite
    whether the path is relative or absolute, the folder is the same; it names the back-end
    and the database, never a password."""
    folder = database_reports(tmp_path, make_url("postgresql+psycopg://svc:s3cret@db/scores"))
    for url in (
        "postgresql://svc:rotated@db/scores",
        "postgresql+psycopg://reader@db/scores?password=s3cret",
    ):
        assert database_reports(tmp_path, make_url(url)) == folder
    assert folder.parent == tmp_path
    assert folder.name.startswith("postgresql-scores-")
    assert "s3cret" not in folder.name
    monkeypatch.chdir(tmp_path)
    relative = database_reports(tmp_path, make_url("sqlite:///propensity.db"))
    absolute = database_reports(tmp_path, make_url(f"sqlite:///{tmp_path / 'propensity.db'}"))
    assert relative == absolute
    assert relative.name.startswith("sqlite-propensity-")


@pytest.mark.parametrize(
    "config",
    [{}, {"sidecar": {}, "n_snapshots": 3}, {**MANIFEST.to_json(), "n_snapshots": "three"}],
    ids=["empty", "empty-sidecar", "text-count"],
)
def test_a_version_whose_config_is_no_manifest_is_refused(engine, config):
    with transaction(engine) as session:
        version = register_model(
            session,
            artifact=b"x",
            trained_as_of=datetime(2026, 10, 31),
            horizon_days=30,
            kind="gru",
            config=config,
            metrics=METRICS.to_json(),
        )
        with pytest.raises(ArtifactError, match=rf"^model version {version.id}: not a model"):
            manifest_of(version)
        with pytest.raises(ArtifactError) as raised:
            ModelPackage.of_version(version)
    assert "\n" not in str(raised.value)
    assert metrics_of(version) == METRICS
