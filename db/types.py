"""Column types that need a per-dialect variant; shared by the models and the migrations."""

from sqlalchemy import DateTime, LargeBinary
from sqlalchemy.dialects import mysql

# MySQL's plain DATETIME drops fractions of a second and its BLOB stops at 64 KB.
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Artifact = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
