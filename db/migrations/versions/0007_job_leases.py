"""Job locks become leases: service_locks.expires_at, renewed by the holder's heartbeat.

A lock used to be taken over only once older than PROPENSITY_JOB_STALE_HOURS, so a killed
run blocked the next ones for hours. A lease not renewed by `expires_at` belongs to a dead
run and is taken over at once. Rows present when upgrading were written by a version
without heartbeats, which will never renew them: they expire at their acquisition time.
score_runs.status gains `abandoned` (a plain string column: only its comment changes).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from db.types import Timestamp

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

EXPIRES_COMMENT = "UTC; a lease not renewed by then belongs to a dead run"
TABLE_COMMENTS = (
    "Locks held by running jobs; a row exists while one runs.",
    "Leases of running jobs, renewed by their heartbeat.",
)
STATUS_COMMENTS = ("running, succeeded or failed", "running, succeeded, failed or abandoned")


def upgrade() -> None:
    with op.batch_alter_table("service_locks") as batch:
        batch.add_column(sa.Column("expires_at", Timestamp, nullable=True, comment=EXPIRES_COMMENT))
    op.execute("UPDATE service_locks SET expires_at = acquired_at")
    with op.batch_alter_table("service_locks") as batch:
        batch.alter_column(
            "expires_at", existing_type=Timestamp, nullable=False, existing_comment=EXPIRES_COMMENT
        )
    _comment(*TABLE_COMMENTS, *STATUS_COMMENTS)


def downgrade() -> None:
    _comment(*reversed(TABLE_COMMENTS), *reversed(STATUS_COMMENTS))
    with op.batch_alter_table("service_locks") as batch:
        batch.drop_column("expires_at")


def _comment(old_table: str, new_table: str, old_status: str, new_status: str) -> None:
    if op.get_bind().dialect.name == "sqlite":  # SQLite keeps no comments
        return
    op.create_table_comment("service_locks", new_table, existing_comment=old_table)
    op.alter_column(
        "score_runs",
        "status",
        existing_type=sa.String(16),
        existing_nullable=False,
        comment=new_status,
        existing_comment=old_status,
    )
