from datetime import datetime

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from db.engine import make_engine
from db.errors import SchemaOutdated
from db.migrate import (
    current_revision,
    downgrade,
    head_revision,
    require_current_schema,
    upgrade,
)
from db.models import Base

TABLES = {
    "customers",
    "customer_events",
    "model_versions",
    "score_runs",
    "propensity_scores",
    "score_run_outcomes",
    "score_run_outcome_deciles",
    "score_run_drift",
}
VIEWS = {"current_propensity_scores", "score_run_monitoring"}


def test_upgrade_creates_tables_and_view_then_downgrade_removes_them(database_url):
    engine = make_engine(database_url)
    with engine.begin() as connection:
        upgrade(connection)
    inspector = inspect(engine)
    assert set(inspector.get_table_names()) >= TABLES
    assert set(inspector.get_view_names()) >= VIEWS
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
    with engine.begin() as connection:
        downgrade(connection, "base")
    inspector = inspect(engine)
    assert not TABLES & set(inspector.get_table_names())
    assert not VIEWS & set(inspector.get_view_names())
    with engine.begin() as connection:
        upgrade(connection)
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()


def test_migrated_schema_matches_the_models(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = [
            diff
            for diff in compare_metadata(context, Base.metadata)
            if not (isinstance(diff, tuple) and diff[0].endswith("table_comment"))
        ]
    assert differences == []


def test_extraction_indexes_exist(engine):
    indexes = {index["name"]: index for index in inspect(engine).get_indexes("customer_events")}
    by_customer = indexes["ix_customer_events_customer_id_occurred_at"]
    # Every column a partition reads: the read never visits the table, whatever its order.
    assert by_customer["column_names"] == ["customer_id", "occurred_at", "event_type", "amount"]


def test_dropping_the_score_foreign_keys_keeps_scores_and_the_view(database_url):
    engine = make_engine(database_url)
    with engine.begin() as connection:
        upgrade(connection, "0001")
        connection.execute(
            text(
                "INSERT INTO model_versions (id, created_at, trained_as_of, horizon_days, cell,"
                " config, metrics, status, artifact, artifact_sha256) VALUES (1, :t, :t, 30,"
                " 'gru', '{}', '{}', 'champion', :artifact, 'x')"
            ),
            {"t": datetime(2026, 1, 1), "artifact": b"model"},
        )
        connection.execute(
            text(
                "INSERT INTO score_runs (id, as_of, model_version_id, started_at, finished_at,"
                " status, n_scored) VALUES (7, :t, 1, :t, :t, 'succeeded', 2)"
            ),
            {"t": datetime(2026, 1, 1)},
        )
        connection.execute(
            text(
                "INSERT INTO propensity_scores (score_run_id, customer_id, propensity, decile,"
                " rank) VALUES (7, 'a', 0.9, 1, 1), (7, 'b', 0.1, 10, 2)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO propensity_score_staging (score_run_id, customer_id, propensity)"
                " VALUES (7, 'c', 0.5)"
            )
        )
    with engine.begin() as connection:
        upgrade(connection)
    inspector = inspect(engine)
    assert inspector.get_foreign_keys("propensity_scores") == []
    assert inspector.get_foreign_keys("propensity_score_staging") == []
    with engine.connect() as connection:
        current = connection.execute(
            text("SELECT customer_id, rank FROM current_propensity_scores ORDER BY rank")
        ).all()
        staged = connection.execute(
            text("SELECT customer_id FROM propensity_score_staging")
        ).scalars()
        assert [tuple(row) for row in current] == [("a", 1), ("b", 2)]
        assert list(staged) == ["c"]
    with engine.begin() as connection:
        downgrade(connection, "0001")
    assert len(inspect(engine).get_foreign_keys("propensity_scores")) == 1
    engine.dispose()


def schema_problem(engine) -> str | None:
    """require_current_schema's one-line message, or None when the schema is current."""
    with engine.connect() as connection:
        try:
            require_current_schema(connection)
        except SchemaOutdated as error:
            assert "\n" not in str(error)
            return str(error)
    return None


def test_require_current_schema_names_the_fix_and_upgrades_nothing(database_url):
    engine = make_engine(database_url)
    assert schema_problem(engine) == "database has no propensity schema: run `propensity init-db`"
    with engine.begin() as connection:
        upgrade(connection, "0002")
    assert schema_problem(engine) == (
        f"database schema is at revision 0002, this version needs {head_revision()}: "
        "run `propensity init-db`"
    )
    with engine.connect() as connection:
        assert current_revision(connection) == "0002"
    with engine.begin() as connection:
        upgrade(connection)
    assert schema_problem(engine) is None
    engine.dispose()


def test_require_current_schema_refuses_a_revision_from_a_newer_version(engine):
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    assert schema_problem(engine) == (
        f"database schema is at revision f00d, unknown to this version (which needs "
        f"{head_revision()}): a newer propensity migrated it; upgrade propensity"
    )


def test_existing_models_get_their_cell_as_kind_and_the_kind_goes_on_downgrade(database_url):
    engine = make_engine(database_url)
    with engine.begin() as connection:
        upgrade(connection, "0003")
        for version_id, cell in ((1, "gru"), (2, "lstm")):
            connection.execute(
                text(
                    "INSERT INTO model_versions (id, created_at, trained_as_of, horizon_days,"
                    " cell, config, metrics, status, artifact, artifact_sha256) VALUES (:id, :t,"
                    " :t, 30, :cell, '{}', '{}', 'retired', :artifact, 'x')"
                ),
                {"id": version_id, "t": datetime(2026, 1, 1), "cell": cell, "artifact": b"m"},
            )
        upgrade(connection)
        rows = connection.execute(text("SELECT id, kind, cell FROM model_versions ORDER BY id"))
        assert [tuple(row) for row in rows] == [(1, "gru", "gru"), (2, "lstm", "lstm")]
        downgrade(connection, "0003")
        columns = {column["name"] for column in inspect(connection).get_columns("model_versions")}
        assert "kind" not in columns and "cell" in columns
    engine.dispose()


def test_locks_held_when_upgrading_become_lapsed_leases_and_expiry_goes_on_downgrade(
    database_url,
):
    """A lock of a version without heartbeats is never renewed: the next run takes it over."""
    engine = make_engine(database_url)
    with engine.begin() as connection:
        upgrade(connection, "0006")
        connection.execute(
            text("INSERT INTO service_locks (name, holder, acquired_at) VALUES ('score', 'x', :t)"),
            {"t": datetime(2026, 1, 1, 5, 0)},
        )
        upgrade(connection)
        lapsed = connection.execute(
            text("SELECT name FROM service_locks WHERE expires_at = acquired_at")
        )
        assert list(lapsed.scalars()) == ["score"]
        downgrade(connection, "0006")
        columns = {column["name"] for column in inspect(connection).get_columns("service_locks")}
        assert columns == {"name", "holder", "acquired_at"}
    engine.dispose()


def test_runs_published_before_0009_stay_visible_with_no_weights_or_value(database_url):
    """Older runs read NULL for the reasons' weights and the expected value, count as
    forward results, and the views are written back whole on downgrade."""
    engine = make_engine(database_url)
    with engine.begin() as connection:
        upgrade(connection, "0008")
        connection.execute(
            text(
                "INSERT INTO model_versions (id, created_at, trained_as_of, horizon_days, cell,"
                " kind, config, metrics, status, artifact, artifact_sha256) VALUES (1, :t, :t,"
                " 30, 'gbm', 'gbm', '{}', '{}', 'champion', :artifact, 'x')"
            ),
            {"t": datetime(2026, 1, 1), "artifact": b"model"},
        )
        connection.execute(
            text(
                "INSERT INTO score_runs (id, as_of, model_version_id, started_at, finished_at,"
                " status, n_scored) VALUES (7, :t, 1, :t, :t, 'succeeded', 1)"
            ),
            {"t": datetime(2026, 1, 1)},
        )
        connection.execute(
            text(
                "INSERT INTO propensity_scores (score_run_id, customer_id, propensity, decile,"
                " rank, reason_1) VALUES (7, 'a', 0.9, 1, 1, 'visits')"
            )
        )
        upgrade(connection)
        current = connection.execute(
            text(
                "SELECT customer_id, reason_1, reason_1_weight, expected_value, value_decile"
                " FROM current_propensity_scores"
            )
        ).all()
        monitored = connection.execute(
            text("SELECT score_run_id, realized_revenue FROM score_run_monitoring")
        ).all()
        assert [tuple(row) for row in current] == [("a", "visits", None, None, None)]
        assert [tuple(row) for row in monitored] == [(7, None)]
        connection.execute(text("UPDATE score_runs SET in_sample = :yes"), {"yes": True})
        in_sample = connection.execute(text("SELECT * FROM score_run_monitoring")).all()
        assert in_sample == []
        downgrade(connection, "0008")
        columns = [c["name"] for c in inspect(connection).get_columns("current_propensity_scores")]
        assert columns[-3:] == ["reason_1", "reason_2", "reason_3"]
        assert connection.execute(text("SELECT COUNT(*) FROM score_run_monitoring")).scalar() == 1
    engine.dispose()
