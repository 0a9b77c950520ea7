"""Village stations: event ids unique per station, and a table of refused station events.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """station_event's key becomes (event_id, station_id); add station_event_rejected."""
    with op.batch_alter_table("station_event") as batch:
        batch.drop_constraint("pk_station_event", type_="primary")
        batch.create_primary_key("pk_station_event", ["event_id", "station_id"])
    op.create_table(
        "station_event_rejected",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_station_event_rejected")),
    )
    op.create_index("ix_station_event_rejected_station", "station_event_rejected", ["station_id", "received_at"],
                    unique=False)


def downgrade() -> None:
    """Drop station_event_rejected; station_event's key goes back to event_id (fails if ids repeat across stations)."""
    op.drop_index("ix_station_event_rejected_station", table_name="station_event_rejected")
    op.drop_table("station_event_rejected")
    with op.batch_alter_table("station_event") as batch:
        batch.drop_constraint("pk_station_event", type_="primary")
        batch.create_primary_key("pk_station_event", ["event_id"])
