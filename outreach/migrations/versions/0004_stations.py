"""Village stations: registered stations, hashed tokens, presence, as-run event ids, alerts."""
import sqlalchemy as sa
from alembic import op

from outreach.migrations import kit

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    """Add stations, ingested station events, alerts and alert deliveries."""
    kit.create_table(
        "station",
        "id:s64 village_id:s64 token_sha256:s64 broker_hash:s200 created_at:ts revoked_at:ts? online:bool "
        "last_seen:ts? buffered_until:date? clock_offset_s:float? version:s32? free_disk_mb:int? last_play:s200?",
        sa.UniqueConstraint("token_sha256", name=op.f("uq_station_token_sha256")),
    )
    op.create_index(op.f("ix_station_village_id"), "station", ["village_id"], unique=False)
    kit.create_table("station_event", "event_id:s64 station_id:s64 kind:s16 at:ts received_at:ts", pk=("event_id",))
    op.create_index(op.f("ix_station_event_station_id"), "station_event", ["station_id"], unique=False)
    kit.create_table("alert", "id:s32 script_id:s64 sha256:s64 targets:text sent_at:ts expires_at:ts")
    kit.create_table("alert_delivery", "alert_id:s32 station_id:s64 delivered_at:ts? played_at:ts?",
                     pk=("alert_id", "station_id"))


def downgrade() -> None:
    """Drop the station tables."""
    op.drop_table("alert_delivery")
    op.drop_table("alert")
    op.drop_index(op.f("ix_station_event_station_id"), table_name="station_event")
    op.drop_table("station_event")
    op.drop_index(op.f("ix_station_village_id"), table_name="station")
    op.drop_table("station")
