"""Run the packaged Alembic migrations programmatically (works from an installed package)."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection

from db.errors import SchemaOutdated

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    command.upgrade(alembic_config(connection), revision)


def downgrade(connection: Connection, revision: str = "base") -> None:
    command.downgrade(alembic_config(connection), revision)


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head_revision() -> str:
    return _scripts().get_current_head()


def require_current_schema(connection: Connection) -> None:
    """Refuse a database whose schema is not this version's, naming the fix in one line.

    Upgrading is `propensity init-db`'s job, never a side effect of other work."""
    current, head = current_revision(connection), head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaOutdated("database has no propensity schema: run `propensity init-db`")
    try:
        _scripts().get_revision(current)
    except CommandError:
        raise SchemaOutdated(
            f"database schema is at revision {current}, unknown to this version (which needs "
            f"{head}): a newer propensity migrated it; upgrade propensity"
        ) from None
    raise SchemaOutdated(
        f"database schema is at revision {current}, this version needs {head}: "
        "run `propensity init-db`"
    )
