"""Shared fixtures: every database test runs on SQLite, PostgreSQL and MariaDB; the flows
run on one Prefect test server per session with settings handed to them (never the
environment's), a tiny model, a populated service database, champions of each kind trained
once, and hand-built score runs to judge.

PostgreSQL and MariaDB tests need PROPENSITY_TEST_POSTGRES_URL / PROPENSITY_TEST_MYSQL_URL
(a server URL; each test gets its own fresh database there, dropped afterwards). Without
them the tests skip locally; with CI set, a missing server is a failure.
"""

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime

import pandas as pd
import pytest
from prefect.settings import PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import Engine, create_engine, make_url, text

from cli.process import without_flow_heartbeats
from db.engine import make_engine, transaction
from db.event_import import event_keys, store_events
from db.migrate import upgrade
from db.registry import promote
from db.scores import publish_score_run, stage_scores, start_score_run
from llm_model.calibration import Calibrator
from llm_model.manifest import ModelManifest, ModelMetrics, TrainingData
from llm_model.sequences import SequenceConfig, Vocabulary
from llm_model.training import train_and_evaluate
from service.demo_data import load_synthetic_events
from service.registry import ModelPackage, register
from service.settings import Settings, using_settings
from service.synthetic import generate

SERVER_URL_VARIABLES = {
    "postgresql": "PROPENSITY_TEST_POSTGRES_URL",
    "mysql": "PROPENSITY_TEST_MYSQL_URL",
}


def server_url(backend: str) -> str:
    variable = SERVER_URL_VARIABLES[backend]
    url = os.environ.get(variable)
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"{variable} is not set: CI must test {backend}")
    pytest.skip(f"{variable} not set: {backend} tests skipped")


def _fresh_server_database(backend: str) -> Iterator[str]:
    base = make_url(server_url(backend))
    name = f"propensity_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
    except Exception as error:
        admin.dispose()
        pytest.fail(f"cannot create a {backend} test database: {error}")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        drop = f"DROP DATABASE IF EXISTS {name}"
        if backend == "postgresql":
            drop += " WITH (FORCE)"
        with admin.connect() as connection:
            connection.execute(text(drop))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def database_url(request, tmp_path) -> Iterator[str]:
    """An empty database on each back-end, dropped after the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'propensity.db'}"
    else:
        yield from _fresh_server_database(request.param)


@pytest.fixture
def engine(database_url) -> Iterator[Engine]:
    """A migrated database on each back-end."""
    engine = make_engine(database_url)
    with engine.begin() as connection:
        upgrade(connection)
    yield engine
    engine.dispose()


# Every insert into the staging table fails with "disk gone", as a full disk would make it.
STAGING_FAILURE = {
    "sqlite": [
        "CREATE TRIGGER fail_staging BEFORE INSERT ON propensity_score_staging "
        "BEGIN SELECT RAISE(ABORT, 'disk gone'); END"
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION fail_staging() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'disk gone'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER fail_staging BEFORE INSERT ON propensity_score_staging "
        "FOR EACH ROW EXECUTE FUNCTION fail_staging()",
    ],
    "mysql": [
        "CREATE TRIGGER fail_staging BEFORE INSERT ON propensity_score_staging FOR EACH ROW "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'disk gone', MYSQL_ERRNO = 1062"
    ],
}
STAGING_RECOVERY = {
    "sqlite": "DROP TRIGGER fail_staging",
    "postgresql": "DROP TRIGGER fail_staging ON propensity_score_staging",
    "mysql": "DROP TRIGGER fail_staging",
}


@pytest.fixture
def failing_staging(engine) -> Callable[[bool], None]:
    """failing_staging(True): every staged score write fails with "disk gone" (a trigger),
    until failing_staging(False)."""

    def switch(failing: bool) -> None:
        name = engine.dialect.name
        statements = STAGING_FAILURE[name] if failing else [STAGING_RECOVERY[name]]
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))

    return switch


# --- the service: settings handed to the flows, one Prefect test server, models -----------

POPULATION, SEED = 400, 3


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    # As in local_flow_runs: the harness's server ends with the session. Offline, as the CLI
    # runs it: no telemetry calls from the server.
    offline = temporary_settings(updates={PREFECT_SERVER_ANALYTICS_ENABLED: False})
    with offline, prefect_test_harness(server_startup_timeout=90), without_flow_heartbeats():
        yield


# A tiny model that trains in seconds; the hybrid network is trained where a test asks.
TINY_SERVICE = {
    "epochs": 1,
    "units": 8,
    "n_snapshots": 3,
    "max_len": 20,
    "partition_size": 120,
    "hybrid": False,
}


def tiny_settings(**values) -> Settings:
    """The service's settings with a tiny model, whatever the environment says of those."""
    return Settings(_env_file=None, **{**TINY_SERVICE, **values})


@pytest.fixture
def tiny() -> Callable[..., Settings]:
    """tiny(name=value, ...): the tiny model's settings with these values."""
    return tiny_settings


@pytest.fixture
def tiny_model(monkeypatch) -> None:
    """The tiny model's settings in the environment, where the CLI reads them."""
    for name, value in TINY_SERVICE.items():
        monkeypatch.setenv(f"PROPENSITY_{name.upper()}", str(value))


@pytest.fixture
def configure(database_url, tmp_path) -> Iterator[Callable[..., Settings]]:
    """The settings the flows use in this test: the tiny model on the test's database;
    `configure(name=value, ...)` changes them for the rest of the test (and returns them)."""
    with ExitStack() as stack:
        current = stack.enter_context(
            using_settings(
                tiny_settings(
                    database_url=database_url,
                    reports_dir=str(tmp_path / "reports"),
                    work_dir=tmp_path / "work",
                )
            )
        )

        def change(**values) -> Settings:
            nonlocal current
            current = stack.enter_context(using_settings(current.overridden(**values)))
            return current

        yield change


@pytest.fixture
def service(engine, configure, prefect_harness):
    """A migrated database that the flows' settings point at, with a tiny model config."""
    return engine


@pytest.fixture
def populated(service):
    load_synthetic_events(service, n_customers=POPULATION, seed=SEED)
    return service


@pytest.fixture(scope="session")
def trained_packages() -> dict[str, ModelPackage]:
    """Every contender of a retrain on the `populated` data, by kind, trained once per test
    session with the flows' tiny settings, as the retrain flow would package it.

    Retraining is most of a flow test's time; tests that only need some champion register
    one of these instead. The data is the same: the generator is seeded.
    """
    settings = tiny_settings()
    events = generate(POPULATION, seed=SEED).events
    as_of = pd.Timestamp(events["occurred_at"].max())
    result = train_and_evaluate(events, as_of, settings.training_plan(), verbose=0)
    metric = settings.selection_metric
    return {
        kind: ModelPackage.of(result, kind, metric, as_of.to_pydatetime(), None)
        for kind in result.contenders.models
    }


# Days before the latest event that `early_champion` was trained at: its runs of the last
# weeks are forward results.
EARLY_DAYS = 60


@pytest.fixture(scope="session")
def early_gbm_package() -> ModelPackage:
    """Gradient boosting trained on the `populated` data as it was EARLY_DAYS before its
    latest event: a champion whose later score runs its training never saw."""
    settings = tiny_settings(hybrid=False)
    events = generate(POPULATION, seed=SEED).events
    as_of = pd.Timestamp(events["occurred_at"].max()) - pd.Timedelta(days=EARLY_DAYS)
    result = train_and_evaluate(events, as_of, settings.training_plan(), verbose=0)
    return ModelPackage.of(result, "gbm", settings.selection_metric, as_of.to_pydatetime(), None)


@pytest.fixture
def early_champion(populated, early_gbm_package):
    """`populated` with `early_gbm_package` as champion."""
    with transaction(populated) as session:
        promote(session, register(session, early_gbm_package), "trained before the runs")
    return populated


@pytest.fixture
def make_champion(populated, trained_packages) -> Callable[[str], int]:
    """make_champion(kind): that contender registered as champion in `populated`; its id."""

    def register_as_champion(kind: str) -> int:
        package = trained_packages[kind]
        with transaction(populated) as session:
            version = register(session, package)
            promote(session, version, f"test champion ({kind})")
            return version.id

    return register_as_champion


@pytest.fixture
def champion(populated, make_champion):
    """`populated` with the recurrent contender registered as champion."""
    make_champion("gru")
    return populated


@pytest.fixture
def gbm_champion(populated, make_champion):
    """`populated` with the gradient boosting contender registered as champion."""
    make_champion("gbm")
    return populated


# --- hand-built score runs for monitoring ------------------------------------------------


@pytest.fixture
def judged_package() -> ModelPackage:
    """A model with the manifest and holdout metrics of a registered logistic model (target
    purchase, 30-day horizon); its bytes are never loaded."""
    data = TrainingData("2026-05-01", 1000, ("2026-03-02",), "2026-04-01", 300, 100, 0.2, 0.25, ())
    holdout = {"roc_auc": 0.75, "pr_auc": 0.5, "log_loss": 0.4, "brier": 0.12, "ece": 0.03}
    return ModelPackage(
        artifact=b"never loaded",
        manifest=ModelManifest(
            "logistic",
            SequenceConfig(horizon_days=30, target_event="purchase"),
            Vocabulary(("purchase", "visit")),
            Calibrator("identity"),
            ("frequency",),
            2,
            30,
        ),
        metrics=ModelMetrics(
            {"logistic": {**holdout, "top_decile_lift": 2.5}}, ("logistic",), "logistic", data
        ),
        trained_as_of=datetime(2026, 5, 1),
    )


def event_frame(events: list[tuple]) -> pd.DataFrame:
    """(customer_id, event_type, occurred_at[, amount]) tuples as store_events takes them;
    an amount left out is missing."""
    rows = [(*event, float("nan"))[:4] for event in events]
    frame = pd.DataFrame(rows, columns=["customer_id", "event_type", "occurred_at", "amount"])
    frame = frame.astype({"occurred_at": "datetime64[us]", "amount": float})
    return frame.assign(event_id=event_keys(frame))


@pytest.fixture
def add_events() -> Callable[[Engine, list[tuple[str, str, datetime]]], None]:
    """add_events(engine, events): store (customer_id, event_type, occurred_at) events."""

    def store(engine: Engine, events: list[tuple[str, str, datetime]]) -> None:
        with transaction(engine) as session:
            store_events(session, event_frame(events))

    return store


@pytest.fixture
def hand_scored_run(judged_package) -> Callable[..., int]:
    """hand_scored_run(engine, as_of, propensities, events, values=None): a published score
    run as of `as_of` of `judged_package` with these propensities (and expected values) by
    customer, the (customer_id, event_type, occurred_at[, amount]) `events` stored beside;
    its id."""

    def publish(
        engine: Engine,
        as_of: datetime,
        propensities: dict[str, float],
        events: list[tuple],
        values: dict[str, float] | None = None,
    ) -> int:
        with transaction(engine) as session:
            if events:
                store_events(session, event_frame(events))
            model_id = register(session, judged_package).id
            run_id = start_score_run(session, as_of, model_id, None)
        scores = pd.DataFrame(
            {"customer_id": list(propensities), "propensity": list(propensities.values())}
        )
        if values is not None:
            scores["expected_value"] = scores["customer_id"].map(values)
        with engine.begin() as connection:
            stage_scores(connection, run_id, scores)
        with transaction(engine) as session:
            publish_score_run(session, run_id, keep_succeeded=5)
        return run_id

    return publish
