"""The SQL of the three database roles (`propensity grants`), built from the schema the code
defines: nothing here connects.

- owner: runs `propensity init-db` (the Alembic migrations) and owns what they create.
- service: the flows and commands at run time: SELECT, INSERT, UPDATE, DELETE on every table
  of db.models and SELECT on Alembic's version table (the schema check), no CREATE, no TEMP.
  What the service does beyond plain DML needs no more: LOCK TABLE ... IN SHARE [ROW
  EXCLUSIVE] MODE on the suppression list (PostgreSQL allows it with UPDATE or DELETE),
  COPY into the UNLOGGED import staging table (INSERT), LOAD DATA LOCAL INFILE on MariaDB
  (INSERT), SELECT ... FOR UPDATE (SELECT and UPDATE), nextval() of the id sequences
  (USAGE on them).
- reader: SELECT on the views SQL consumers read (db.views), nothing else; a view reads its
  tables with its owner's privileges.

The script comes in two parts: the roles, once, as an administrator, before the first
init-db; and the grants on the tables, views and sequences, again after every init-db (a
migration that adds a table or a view needs them; on PostgreSQL the owner's default
privileges already cover the service's new tables).
"""

import re
from dataclasses import dataclass

from sqlalchemy.dialects import mysql, postgresql

from db import views
from db.models import Base

# Alembic's own table: the service reads it to check the schema is current, never writes it.
VERSION_TABLE = "alembic_version"
# Role names are printed into SQL unquoted: plain identifiers only.
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# The schema the migrations create the tables in on PostgreSQL (the default search_path).
SCHEMA = "public"
SQLITE_NOTE = (
    "-- SQLite has no roles: the database file's permissions (0600, as the service creates "
    "it) are the only access control."
)


def service_tables() -> tuple[str, ...]:
    """Every table of the service's schema, as db.models declares it."""
    return tuple(sorted(Base.metadata.tables))


def view_name(create_view: str) -> str:
    found = re.search(r"CREATE\s+VIEW\s+(\w+)", create_view, re.IGNORECASE)
    if found is None:
        raise ValueError(f"no CREATE VIEW in {create_view[:40]!r}")
    return found.group(1)


def reader_views() -> tuple[str, ...]:
    """The views of the latest schema: the current scores and the monitoring view."""
    return tuple(view_name(sql) for sql in (views.CURRENT_SCORES_VIEW, views.MONITORING_VIEW))


@dataclass(frozen=True)
class Roles:
    owner: str = "propensity_owner"
    service: str = "propensity_service"
    reader: str = "propensity_reader"

    def __post_init__(self) -> None:
        names = (self.owner, self.service, self.reader)
        for name in names:
            if not ROLE_NAME.fullmatch(name):
                raise ValueError(
                    f"role name {name!r}: lower-case letters, digits and _, not starting with "
                    "a digit, at most 63"
                )
        if len(set(names)) != 3:
            raise ValueError("the owner, service and reader roles need three different names")

    def of(self, kind: str) -> str:
        return {"owner": self.owner, "service": self.service, "reader": self.reader}[kind]


ROLE_KINDS = ("owner", "service", "reader")


def password_placeholder(backend: str, kind: str) -> str:
    """What stands for a role's password in the script: a psql variable on PostgreSQL
    (`psql -v service_password=...`), an unquoted marker on MariaDB, which is a syntax error
    until replaced by the password in quotes. Passwords are never printed."""
    if backend == "postgresql":
        return f":'{kind}_password'"
    return f"<{kind} password>"


@dataclass(frozen=True)
class GrantScript:
    """The roles' SQL: `setup` once before the first init-db, `grants` after every init-db.
    Each statement is one line; comments are lines starting with `--`."""

    setup: tuple[str, ...]
    grants: tuple[str, ...]

    def text(self, after_init_db_only: bool = False) -> str:
        lines = self.grants if after_init_db_only else (*self.setup, *self.grants)
        return "\n".join(lines)


def statements(lines: tuple[str, ...] | list[str]) -> list[str]:
    """The statements among script lines (comments and blank lines left out)."""
    return [line for line in lines if line.strip() and not line.lstrip().startswith("--")]


def grant_script(backend: str, database: str, roles: Roles, host: str = "%") -> GrantScript:
    """The script for a database of `backend` (a SQLAlchemy backend name) named `database`;
    `host` is the MariaDB/MySQL accounts' host part."""
    if backend == "postgresql":
        return postgresql_script(database, roles)
    if backend in ("mysql", "mariadb"):
        return mysql_script(database, roles, host)
    if backend == "sqlite":
        return GrantScript((SQLITE_NOTE,), ())
    raise ValueError(f"no roles for {backend}: PostgreSQL and MariaDB/MySQL have them")


def postgresql_script(database: str, roles: Roles) -> GrantScript:
    quote = postgresql.dialect().identifier_preparer.quote
    db, schema = quote(database), quote(SCHEMA)
    owner, service, reader = roles.owner, roles.service, roles.reader
    tables = ", ".join(quote(name) for name in service_tables())
    views_ = ", ".join(quote(name) for name in reader_views())
    dml = "SELECT, INSERT, UPDATE, DELETE"

    def placeholder(kind: str) -> str:
        return password_placeholder("postgresql", kind)

    passwords = " ".join(f"-v {kind}_password=..." for kind in ROLE_KINDS)
    setup = (
        f"-- propensity roles for PostgreSQL database {db}, schema {schema}.",
        f"-- Passwords are never printed: run with psql {passwords}",
        "-- (or replace each :'..._password' by the password in quotes).",
        f"-- 1. Once, before the first init-db, as a superuser connected to {db}:",
        *(
            f"CREATE ROLE {roles.of(kind)} LOGIN PASSWORD {placeholder(kind)};"
            for kind in ROLE_KINDS
        ),
        "-- No TEMP and no CREATE for anyone but the owner (PUBLIC has both by default).",
        f"REVOKE ALL ON DATABASE {db} FROM PUBLIC;",
        f"GRANT CONNECT ON DATABASE {db} TO {owner}, {service}, {reader};",
        f"REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC;",
        f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {owner};",
        f"GRANT USAGE ON SCHEMA {schema} TO {service}, {reader};",
        "-- Tables and id sequences a later init-db creates are the service's at once:",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} "
        f"GRANT {dml} ON TABLES TO {service};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} "
        f"GRANT USAGE, SELECT ON SEQUENCES TO {service};",
    )
    grants = (
        f"-- 2. After every `propensity init-db` (run it as {owner}), as {owner}: exactly these",
        "-- privileges, whatever was granted before (new views need this; the reader gets no",
        "-- default privileges).",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {service}, {reader};",
        f"GRANT {dml} ON {tables} TO {service};",
        f"GRANT SELECT ON {quote(VERSION_TABLE)} TO {service};",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {service};",
        f"GRANT SELECT ON {views_} TO {reader};",
    )
    return GrantScript(setup, grants)


def mysql_script(database: str, roles: Roles, host: str) -> GrantScript:
    preparer = mysql.dialect().identifier_preparer
    db = preparer.quote_identifier(database)
    if "'" in host or "\\" in host:
        raise ValueError(f"account host {host!r}: no quotes or backslashes")

    def account(kind: str) -> str:
        return f"'{roles.of(kind)}'@'{host}'"

    owner, service, reader = (account(kind) for kind in ROLE_KINDS)
    # What the migrations do: tables, indexes, foreign keys, views, and the rows they move.
    migrations = (
        "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES, CREATE VIEW, "
        "SHOW VIEW"
    )
    setup = (
        f"-- propensity accounts for MariaDB/MySQL database {db}.",
        "-- Passwords are never printed: replace each <... password> by the password in quotes.",
        "-- 1. Once, before the first init-db, as an administrator (CREATE USER, GRANT OPTION):",
        *(
            f"CREATE USER {account(kind)} IDENTIFIED BY {password_placeholder('mysql', kind)};"
            for kind in ROLE_KINDS
        ),
        f"GRANT {migrations} ON {db}.* TO {owner} WITH GRANT OPTION;",
    )
    table_grants = (
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {db}.{preparer.quote_identifier(name)} "
        f"TO {service};"
        for name in service_tables()
    )
    view_grants = (
        f"GRANT SELECT ON {db}.{preparer.quote_identifier(name)} TO {reader};"
        for name in reader_views()
    )
    grants = (
        f"-- 2. After every `propensity init-db` (run it as {roles.owner}), as {roles.owner}:",
        "-- a table or view a migration adds is granted here (imports bulk-load with LOAD DATA",
        "-- LOCAL INFILE: INSERT, and the server's local_infile on).",
        *table_grants,
        f"GRANT SELECT ON {db}.{preparer.quote_identifier(VERSION_TABLE)} TO {service};",
        *view_grants,
    )
    return GrantScript(setup, grants)
