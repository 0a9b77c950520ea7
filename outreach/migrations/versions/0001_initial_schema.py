"""Initial schema: registry mirrors, broadcast as-run log, handouts, imports.

Written by hand from an autogenerate run; tests/test_db.py checks that it
matches outreach.models on SQLite and PostgreSQL.
"""
import sqlalchemy as sa
from alembic import op

from outreach.migrations import kit

revision = "0001"
down_revision = None

STATUSES = ("planned", "played", "exported", "confirmed", "missed", "failed")
IMPORT_KINDS = ("confirmations", "handouts")


def _fk(table: str, column: str, target: str, **kw: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), **kw)


def _named(table: str, extra: str = "", *constraints: sa.schema.SchemaItem) -> None:
    kit.create_table(table, f"id:s64 name:s200 {extra}", *constraints)


def upgrade() -> None:
    """Create every table."""
    _named("township")
    _named("village", "township_id:s64 population:int speaker:s32", _fk("village", "township_id", "township"))
    op.create_index(op.f("ix_village_township_id"), "village", ["township_id"])
    _named("market")
    kit.create_table(
        "market_village", "market_id:s64 village_id:s64",
        _fk("market_village", "market_id", "market"), _fk("market_village", "village_id", "village"),
        pk=("market_id", "village_id"))
    _named("campaign", "start:date end:date priority:int")
    kit.create_table(
        "broadcast",
        "id:int date:date slot:s32 village_id:s64 township_id:s64 campaign_id:s64 script_ids:s2000 status:s16 "
        "scheduled_at:ts played_at:ts? exported_at:ts? confirmed_at:ts? confirmed_by:s200? program_sha256:s64? "
        "engine:s32? error:text? note:text? updated_at:ts",
        sa.CheckConstraint(kit.check_in("status", STATUSES), name=op.f("ck_broadcast_status")),
        sa.UniqueConstraint(
            "date", "slot", "village_id", "campaign_id", name=op.f("uq_broadcast_date_slot_village_id_campaign_id")
        ),
    )
    op.create_index(op.f("ix_broadcast_date"), "broadcast", ["date"])
    op.create_index("ix_broadcast_coverage", "broadcast", ["campaign_id", "village_id", "status", "date"])
    op.create_index("ix_broadcast_program", "broadcast", ["date", "slot", "village_id"])
    kit.create_table(
        "broadcast_script", "broadcast_id:int position:int script_id:s64",
        sa.ForeignKeyConstraint(
            ["broadcast_id"], ["broadcast.id"],
            name=op.f("fk_broadcast_script_broadcast_id_broadcast"), ondelete="CASCADE",
        ),
        pk=("broadcast_id", "position"))
    op.create_index(op.f("ix_broadcast_script_script_id"), "broadcast_script", ["script_id"])
    kit.create_table(
        "handout",
        "id:int market_id:s64 date:date leaflets:int people:int topics:s200 staff:s200 note:text "
        "natural_key:s64 created_at:ts",
        sa.CheckConstraint("leaflets >= 0", name=op.f("ck_handout_leaflets_not_negative")),
        sa.CheckConstraint("people >= 0", name=op.f("ck_handout_people_not_negative")),
        sa.UniqueConstraint("natural_key", name=op.f("uq_handout_natural_key")),
    )
    op.create_index(op.f("ix_handout_date"), "handout", ["date"])
    op.create_index(op.f("ix_handout_market_id"), "handout", ["market_id"])
    kit.create_table(
        "import_record", "sha256:s64 kind:s16 filename:s500 imported_at:ts rows_ok:int rows_bad:int",
        sa.CheckConstraint(kit.check_in("kind", IMPORT_KINDS), name=op.f("ck_import_record_kind")),
        pk=("sha256",))


def downgrade() -> None:
    """Drop every table (children first)."""
    for table in ("import_record", "handout", "broadcast_script", "broadcast", "campaign",
                  "market_village", "market", "village", "township"):
        op.drop_table(table)
