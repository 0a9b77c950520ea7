"""Browser review: the audit trail of script drafting, previews, approvals and rejections.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add script_event, one row per review step."""
    op.create_table(
        "script_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("script_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("audio_sha256", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_script_event")),
    )
    op.create_index(op.f("ix_script_event_script_id"), "script_event", ["script_id"], unique=False)


def downgrade() -> None:
    """Drop script_event."""
    op.drop_index(op.f("ix_script_event_script_id"), table_name="script_event")
    op.drop_table("script_event")
