"""Village stations: registered stations, hashed tokens, presence, as-run event ids, alerts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add stations, ingested station events, alerts and alert deliveries."""
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "station",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("village_id", sa.String(length=64), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("broker_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("revoked_at", ts, nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("last_seen", ts, nullable=True),
        sa.Column("buffered_until", sa.Date(), nullable=True),
        sa.Column("clock_offset_s", sa.Float(), nullable=True),
        sa.Column("version", sa.String(length=32), nullable=True),
        sa.Column("free_disk_mb", sa.Integer(), nullable=True),
        sa.Column("last_play", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_station")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_station_token_sha256")),
    )
    op.create_index(op.f("ix_station_village_id"), "station", ["village_id"], unique=False)
    op.create_table(
        "station_event",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", ts, nullable=False),
        sa.Column("received_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_station_event")),
    )
    op.create_index(op.f("ix_station_event_station_id"), "station_event", ["station_id"], unique=False)
    op.create_table(
        "alert",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("script_id", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("targets", sa.Text(), nullable=False),
        sa.Column("sent_at", ts, nullable=False),
        sa.Column("expires_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert")),
    )
    op.create_table(
        "alert_delivery",
        sa.Column("alert_id", sa.String(length=32), nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("delivered_at", ts, nullable=True),
        sa.Column("played_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("alert_id", "station_id", name=op.f("pk_alert_delivery")),
    )


def downgrade() -> None:
    """Drop the station tables."""
    op.drop_table("alert_delivery")
    op.drop_table("alert")
    op.drop_index(op.f("ix_station_event_station_id"), table_name="station_event")
    op.drop_table("station_event")
    op.drop_index(op.f("ix_station_village_id"), table_name="station")
    op.drop_table("station")
