"""Proof of coverage: each broadcast row says how we know (evidence), when it aired, its proof-of-air
figures and whether its exported pack went stale; and the villages' QR confirmation tokens.
"""
import sqlalchemy as sa
from alembic import op

from outreach.migrations import kit

revision = "0007"
down_revision = "0006"

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
    kit.create_table(
        "confirm_token",
        "token_sha256:s64 village_id:s64 first_day:date last_day:date created_at:ts expires_at:ts revoked_at:ts?",
        pk=("token_sha256",))
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
