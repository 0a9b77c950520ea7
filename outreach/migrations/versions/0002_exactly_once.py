"""Exactly-once play: slot claims, scheduler leadership, the interrupted status."""
import sqlalchemy as sa
from alembic import op

from outreach.migrations import kit

revision = "0002"
down_revision = "0001"

OLD_STATUSES = ("planned", "played", "exported", "confirmed", "missed", "failed")
STATUSES = (*OLD_STATUSES, "interrupted")


def _status_check(values: tuple[str, ...]) -> None:
    with kit.broadcast_copy("0002"), op.batch_alter_table("broadcast", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_broadcast_status"), type_="check")
        batch.create_check_constraint(op.f("ck_broadcast_status"), kit.check_in("status", values))


def upgrade() -> None:
    """Allow `interrupted`; add the slot claim and scheduler leader tables."""
    _status_check(STATUSES)
    kit.create_table(
        "slot_claim",
        "id:int date:date slot:s32 village_id:s64 owner:s200 state:s16 attempts:int player_pid:int? "
        "player_pgid:int? player_started:bigint? claimed_at:ts heartbeat_at:ts",
        sa.UniqueConstraint("date", "slot", "village_id", name=op.f("uq_slot_claim_date_slot_village_id")),
    )
    kit.create_table("scheduler_leader", "name:s32 owner:s200 started_at:ts heartbeat_at:ts", pk=("name",))


def downgrade() -> None:
    """Drop the new tables; interrupted rows become failed so the old constraint holds."""
    op.drop_table("scheduler_leader")
    op.drop_table("slot_claim")
    op.execute("UPDATE broadcast SET status = 'failed' WHERE status = 'interrupted'")
    _status_check(OLD_STATUSES)
