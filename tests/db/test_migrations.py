from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from db.engine import make_engine
from db.migrate import current_revision, downgrade, head_revision, upgrade
from db.models import Base

TABLES = {"customers", "customer_events", "model_versions", "score_runs", "propensity_scores"}


def test_upgrade_creates_tables_and_view_then_downgrade_removes_them(database_url):
    engine = make_engine(database_url)
    with engine.begin() as connection:
        upgrade(connection)
    inspector = inspect(engine)
    assert set(inspector.get_table_names()) >= TABLES
    assert "current_propensity_scores" in inspector.get_view_names()
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
    with engine.begin() as connection:
        downgrade(connection, "base")
    inspector = inspect(engine)
    assert not TABLES & set(inspector.get_table_names())
    assert "current_propensity_scores" not in inspector.get_view_names()
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
    indexes = {
        index["name"]: index["column_names"]
        for index in inspect(engine).get_indexes("customer_events")
    }
    assert indexes["ix_customer_events_customer_id_occurred_at"] == ["customer_id", "occurred_at"]
