"""Exactly-once play: slot claims, scheduler leadership, the interrupted status.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OLD_STATUSES = ("planned", "played", "exported", "confirmed", "missed", "failed")
STATUSES = (*OLD_STATUSES, "interrupted")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _status_check(values: Sequence[str]) -> None:
    # SQLite cannot alter a CHECK constraint: batch mode copies the table. With
    # foreign keys on (they cannot be switched off inside the migration's
    # transaction) dropping the old table cascades into broadcast_script, so
    # its rows are kept aside and put back.
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("CREATE TEMP TABLE keep_broadcast_script AS SELECT * FROM broadcast_script")
    with op.batch_alter_table("broadcast", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_broadcast_status"), type_="check")
        batch.create_check_constraint(op.f("ck_broadcast_status"), _in("status", values))
    if sqlite:
        op.execute("INSERT OR IGNORE INTO broadcast_script SELECT * FROM keep_broadcast_script")
        op.execute("DROP TABLE keep_broadcast_script")


def upgrade() -> None:
    """Allow `interrupted`; add the slot claim and scheduler leader tables."""
    _status_check(STATUSES)
    op.create_table(
        "slot_claim",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("slot", sa.String(length=32), nullable=False),
        sa.Column("village_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("player_pid", sa.Integer(), nullable=True),
        sa.Column("player_pgid", sa.Integer(), nullable=True),
        sa.Column("player_started", sa.BigInteger(), nullable=True),
        sa.Column("claimed_at", _ts(), nullable=False),
        sa.Column("heartbeat_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slot_claim")),
        sa.UniqueConstraint("date", "slot", "village_id", name=op.f("uq_slot_claim_date_slot_village_id")),
    )
    op.create_table(
        "scheduler_leader",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("heartbeat_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_leader")),
    )


def downgrade() -> None:
    """Drop the new tables; interrupted rows become failed so the old constraint holds."""
    op.drop_table("scheduler_leader")
    op.drop_table("slot_claim")
    op.execute("UPDATE broadcast SET status = 'failed' WHERE status = 'interrupted'")
    _status_check(OLD_STATUSES)
