"""Records follow the truth: who entered a confirmation, apart from the village person who gave it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Per-row import keys need no schema change: handouts already carry a unique
natural key and a confirmation's key is its program (village, date, slot);
import_record now only logs the latest import of each file.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add broadcast.entered_by."""
    with op.batch_alter_table("broadcast") as batch:
        batch.add_column(sa.Column("entered_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    """Drop broadcast.entered_by."""
    # SQLite drops a column by copying the table; with foreign keys on, dropping the
    # old copy would cascade into broadcast_script, so its rows are kept aside (as in 0002).
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("CREATE TEMP TABLE keep_broadcast_script_0003 AS SELECT * FROM broadcast_script")
    with op.batch_alter_table("broadcast") as batch:
        batch.drop_column("entered_by")
    if sqlite:
        op.execute("INSERT OR IGNORE INTO broadcast_script SELECT * FROM keep_broadcast_script_0003")
        op.execute("DROP TABLE keep_broadcast_script_0003")
