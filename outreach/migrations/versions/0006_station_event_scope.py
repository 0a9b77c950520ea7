"""Village stations: event ids unique per station, and a table of refused station events."""
from alembic import op

from outreach.migrations import kit

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    """station_event's key becomes (event_id, station_id); add station_event_rejected."""
    with op.batch_alter_table("station_event") as batch:
        batch.drop_constraint("pk_station_event", type_="primary")
        batch.create_primary_key("pk_station_event", ["event_id", "station_id"])
    kit.create_table(
        "station_event_rejected",
        "id:int station_id:s64 event_id:s64 status:int reason:text received_at:ts payload:text")
    op.create_index("ix_station_event_rejected_station", "station_event_rejected", ["station_id", "received_at"],
                    unique=False)


def downgrade() -> None:
    """Drop station_event_rejected; station_event's key goes back to event_id (fails if ids repeat across stations)."""
    op.drop_index("ix_station_event_rejected_station", table_name="station_event_rejected")
    op.drop_table("station_event_rejected")
    with op.batch_alter_table("station_event") as batch:
        batch.drop_constraint("pk_station_event", type_="primary")
        batch.create_primary_key("pk_station_event", ["event_id"])
