"""Alembic environment: runs on the connection handed in by db.migrate, or on a URL."""

from alembic import context
from sqlalchemy import create_engine

from db.models import Base

config = context.config


def run_on(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_on(connection)
else:
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as fresh:
        run_on(fresh)
