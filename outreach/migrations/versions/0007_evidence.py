"""Proof of coverage: each broadcast row says how we know (evidence), when it aired, its proof-of-air
figures and whether its exported pack went stale; and the villages' QR confirmation tokens.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

EVIDENCE = ("none", "exported", "player", "heard", "confirmed")


def upgrade() -> None:
    """Add the evidence columns (backfilled from status), evidence in the coverage index, and confirm_token."""
    with op.batch_alter_table("broadcast") as batch:
        batch.add_column(sa.Column(
            "evidence", sa.Enum(*EVIDENCE, name="evidence", native_enum=False, create_constraint=True, length=16),
            nullable=False, server_default="none"))
        batch.add_column(sa.Column("aired_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("proof_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("proof_delay_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("proof_snr_db", sa.Float(), nullable=True))
        batch.add_column(sa.Column("stale_reason", sa.Text(), nullable=True))
    # Rows written before evidence existed: a play claims only that the player ran, a confirmation
    # aired at its slot start (the entry time is confirmed_at).
    op.execute("UPDATE broadcast SET evidence = 'player', aired_at = played_at WHERE status = 'played'")
    op.execute("UPDATE broadcast SET evidence = 'exported' WHERE status = 'exported'")
    op.execute("UPDATE broadcast SET evidence = 'confirmed', aired_at = scheduled_at WHERE status = 'confirmed'")
    # Reach needs evidence: coverage queries filter on it, so it joins the coverage index before date.
    op.drop_index("ix_broadcast_coverage", table_name="broadcast")
    op.create_index("ix_broadcast_coverage", "broadcast", ["campaign_id", "village_id", "status", "evidence", "date"])
    op.create_table(
        "confirm_token",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("village_id", sa.String(length=64), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_confirm_token")),
    )
    op.create_index(op.f("ix_confirm_token_village_id"), "confirm_token", ["village_id"], unique=False)


def downgrade() -> None:
    """Drop confirm_token and the evidence columns."""
    op.drop_index(op.f("ix_confirm_token_village_id"), table_name="confirm_token")
    op.drop_table("confirm_token")
    op.drop_index("ix_broadcast_coverage", table_name="broadcast")
    op.create_index("ix_broadcast_coverage", "broadcast", ["campaign_id", "village_id", "status", "date"])
    with op.batch_alter_table("broadcast") as batch:
        for column in ("stale_reason", "proof_snr_db", "proof_delay_s", "proof_score", "aired_at", "evidence"):
            batch.drop_column(column)
