"""Browser review: the audit trail of script drafting, previews, approvals and rejections."""
from alembic import op

from outreach.migrations import kit

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    """Add script_event, one row per review step."""
    kit.create_table(
        "script_event",
        "id:int script_id:s64 action:s16 actor:s64 at:ts content_hash:s64 audio_sha256:s64 detail:text")
    op.create_index(op.f("ix_script_event_script_id"), "script_event", ["script_id"], unique=False)


def downgrade() -> None:
    """Drop script_event."""
    op.drop_index(op.f("ix_script_event_script_id"), table_name="script_event")
    op.drop_table("script_event")
