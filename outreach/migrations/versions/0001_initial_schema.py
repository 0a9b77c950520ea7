"""Initial schema: registry mirrors, broadcast as-run log, handouts, imports.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Written by hand from an autogenerate run; tests/test_db.py checks that it
matches outreach.models on SQLite and PostgreSQL.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

STATUSES = ("planned", "played", "exported", "confirmed", "missed", "failed")
IMPORT_KINDS = ("confirmations", "handouts")


def _s(n: int) -> sa.String:
    return sa.String(length=n)


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    """Create every table."""
    op.create_table(
        "township",
        sa.Column("id", _s(64), nullable=False),
        sa.Column("name", _s(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_township")),
    )
    op.create_table(
        "village",
        sa.Column("id", _s(64), nullable=False),
        sa.Column("name", _s(200), nullable=False),
        sa.Column("township_id", _s(64), nullable=False),
        sa.Column("population", sa.Integer(), nullable=False),
        sa.Column("speaker", _s(32), nullable=False),
        sa.ForeignKeyConstraint(["township_id"], ["township.id"], name=op.f("fk_village_township_id_township")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_village")),
    )
    op.create_index(op.f("ix_village_township_id"), "village", ["township_id"])
    op.create_table(
        "market",
        sa.Column("id", _s(64), nullable=False),
        sa.Column("name", _s(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market")),
    )
    op.create_table(
        "market_village",
        sa.Column("market_id", _s(64), nullable=False),
        sa.Column("village_id", _s(64), nullable=False),
        sa.ForeignKeyConstraint(["market_id"], ["market.id"], name=op.f("fk_market_village_market_id_market")),
        sa.ForeignKeyConstraint(["village_id"], ["village.id"], name=op.f("fk_market_village_village_id_village")),
        sa.PrimaryKeyConstraint("market_id", "village_id", name=op.f("pk_market_village")),
    )
    op.create_table(
        "campaign",
        sa.Column("id", _s(64), nullable=False),
        sa.Column("name", _s(200), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("end", sa.Date(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign")),
    )
    op.create_table(
        "broadcast",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("slot", _s(32), nullable=False),
        sa.Column("village_id", _s(64), nullable=False),
        sa.Column("township_id", _s(64), nullable=False),
        sa.Column("campaign_id", _s(64), nullable=False),
        sa.Column("script_ids", _s(2000), nullable=False),
        sa.Column("status", _s(16), nullable=False),
        sa.Column("scheduled_at", _ts(), nullable=False),
        sa.Column("played_at", _ts(), nullable=True),
        sa.Column("exported_at", _ts(), nullable=True),
        sa.Column("confirmed_at", _ts(), nullable=True),
        sa.Column("confirmed_by", _s(200), nullable=True),
        sa.Column("program_sha256", _s(64), nullable=True),
        sa.Column("engine", _s(32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.CheckConstraint(_in("status", STATUSES), name=op.f("ck_broadcast_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast")),
        sa.UniqueConstraint(
            "date", "slot", "village_id", "campaign_id", name=op.f("uq_broadcast_date_slot_village_id_campaign_id")
        ),
    )
    op.create_index(op.f("ix_broadcast_date"), "broadcast", ["date"])
    op.create_index("ix_broadcast_coverage", "broadcast", ["campaign_id", "village_id", "status", "date"])
    op.create_index("ix_broadcast_program", "broadcast", ["date", "slot", "village_id"])
    op.create_table(
        "broadcast_script",
        sa.Column("broadcast_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("script_id", _s(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["broadcast_id"], ["broadcast.id"],
            name=op.f("fk_broadcast_script_broadcast_id_broadcast"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("broadcast_id", "position", name=op.f("pk_broadcast_script")),
    )
    op.create_index(op.f("ix_broadcast_script_script_id"), "broadcast_script", ["script_id"])
    op.create_table(
        "handout",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("market_id", _s(64), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("leaflets", sa.Integer(), nullable=False),
        sa.Column("people", sa.Integer(), nullable=False),
        sa.Column("topics", _s(200), nullable=False),
        sa.Column("staff", _s(200), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("natural_key", _s(64), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.CheckConstraint("leaflets >= 0", name=op.f("ck_handout_leaflets_not_negative")),
        sa.CheckConstraint("people >= 0", name=op.f("ck_handout_people_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handout")),
        sa.UniqueConstraint("natural_key", name=op.f("uq_handout_natural_key")),
    )
    op.create_index(op.f("ix_handout_date"), "handout", ["date"])
    op.create_index(op.f("ix_handout_market_id"), "handout", ["market_id"])
    op.create_table(
        "import_record",
        sa.Column("sha256", _s(64), nullable=False),
        sa.Column("kind", _s(16), nullable=False),
        sa.Column("filename", _s(500), nullable=False),
        sa.Column("imported_at", _ts(), nullable=False),
        sa.Column("rows_ok", sa.Integer(), nullable=False),
        sa.Column("rows_bad", sa.Integer(), nullable=False),
        sa.CheckConstraint(_in("kind", IMPORT_KINDS), name=op.f("ck_import_record_kind")),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_import_record")),
    )


def downgrade() -> None:
    """Drop every table (children first)."""
    for table in ("import_record", "handout", "broadcast_script", "broadcast", "campaign",
                  "market_village", "market", "village", "township"):
        op.drop_table(table)
