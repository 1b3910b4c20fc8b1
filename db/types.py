"""Column types that need a per-dialect variant; shared by the models and the migrations."""

from sqlalchemy import DateTime, LargeBinary, String
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeEngine

# MySQL's plain DATETIME drops fractions of a second and its BLOB stops at 64 KB.
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Artifact = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def exact_string(length: int) -> TypeEngine[str]:
    """A string key compared exactly, as on SQLite and PostgreSQL: MySQL/MariaDB's default
    collations are case-insensitive (`c1` and `C1` would be one key), so there it is binary."""
    exact = mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin")
    return String(length).with_variant(exact, "mysql", "mariadb")
