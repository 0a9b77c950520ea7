"""Records follow the truth: who entered a confirmation, apart from the village person who gave it.

Per-row import keys need no schema change: handouts already carry a unique
natural key and a confirmation's key is its program (village, date, slot);
import_record now only logs the latest import of each file.
"""
import sqlalchemy as sa
from alembic import op

from outreach.migrations import kit

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    """Add broadcast.entered_by."""
    with op.batch_alter_table("broadcast") as batch:
        batch.add_column(sa.Column("entered_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    """Drop broadcast.entered_by."""
    # SQLite drops a column by copying the table; kit.broadcast_copy keeps broadcast_script's rows.
    with kit.broadcast_copy("0003"), op.batch_alter_table("broadcast") as batch:
        batch.drop_column("entered_by")
