"""SQLModel tables: the as-run broadcast log, market handouts, imports, and registry mirrors.

The mirror tables (townships, villages, markets, campaigns) copy the YAML
registry into the database so that coverage queries can be pure SQL. The log
tables (broadcasts, handouts) deliberately have no foreign keys to the
mirrors: history must survive a village or market being removed from the
registry.
"""

import datetime as dt
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

Base = SQLModel
"""Declarative base; `Base.metadata` holds every table (alembic's target)."""

# Every constraint gets a predictable name, so later migrations (SQLite batch
# mode included) can drop or alter it by name on both backends.
Base.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class BroadcastStatus(StrEnum):
    """Where one campaign's part of a village program stands."""

    PLANNED = "planned"
    PLAYED = "played"
    EXPORTED = "exported"
    CONFIRMED = "confirmed"
    MISSED = "missed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # a play cut short by a crash; not reached


REACHED: tuple[BroadcastStatus, ...] = (BroadcastStatus.PLAYED, BroadcastStatus.CONFIRMED)
"""The statuses of a program that was heard: the village was reached."""

STATUS_PROGRESS: tuple[BroadcastStatus, ...] = (
    BroadcastStatus.PLANNED, BroadcastStatus.FAILED, BroadcastStatus.INTERRUPTED, BroadcastStatus.MISSED,
    BroadcastStatus.EXPORTED, BroadcastStatus.PLAYED, BroadcastStatus.CONFIRMED,
)
"""From least to furthest along. A program whose campaign rows differ shows the furthest along, so a
program that aired once never looks unplayed because a campaign was added later."""

PROBLEMS: tuple[BroadcastStatus, ...] = (BroadcastStatus.FAILED, BroadcastStatus.MISSED, BroadcastStatus.INTERRUPTED)
"""The statuses that need someone's attention, in the order the 今天 page lists them."""

ATTENTION_ORDER: tuple[BroadcastStatus, ...] = (
    *PROBLEMS, BroadcastStatus.PLANNED, BroadcastStatus.EXPORTED, BroadcastStatus.PLAYED, BroadcastStatus.CONFIRMED,
)
"""How programs are listed for people: problems first, then what is still to come, then what went well."""


class Evidence(StrEnum):
    """How we know a broadcast row's program went out: what a reach rests on."""

    NONE = "none"
    EXPORTED = "exported"  # written to the stick and read back; not yet played
    PLAYER = "player"  # the player ran for the program's length
    HEARD = "heard"  # a microphone beside the horn heard the program (proof of air)
    CONFIRMED = "confirmed"  # a village person says it played


EVIDENCE_STRENGTH: tuple[Evidence, ...] = (
    Evidence.NONE, Evidence.EXPORTED, Evidence.PLAYER, Evidence.HEARD, Evidence.CONFIRMED,
)
"""From weakest to strongest: a later record never lowers what an earlier one proved."""


class Topic(StrEnum):
    """Leaflet topics handed out on market days."""

    TRAFFIC = "traffic"
    ANTI_FRAUD = "anti_fraud"


class ImportKind(StrEnum):
    """Which kind of CSV file an ImportRecord remembers."""

    CONFIRMATIONS = "confirmations"
    HANDOUTS = "handouts"


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """A timestamp stored as UTC and always returned timezone-aware.

    SQLite has no time zone type and hands back naive values; PostgreSQL uses
    `timestamptz`. Naive datetimes are refused on the way in, because guessing
    their zone is how as-run logs end up eight hours off.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"不带时区的时间 {value!r}：请传入带时区的时间（timezone-aware datetime）")
        value = value.astimezone(dt.timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


def _utc(nullable: bool = False, **kw: Any) -> Any:
    return Field(sa_column=sa.Column(UTCDateTime(), nullable=nullable, **kw))


def _enum(enum: type[StrEnum], name: str) -> sa.Enum:
    # Stored as VARCHAR + CHECK (not a native PostgreSQL enum) so that adding a
    # value later is a plain migration on both backends.
    return sa.Enum(
        enum, name=name, native_enum=False, create_constraint=True, length=16,
        values_callable=lambda e: [m.value for m in e],
    )


# --- registry mirrors ---------------------------------------------------------


class Township(Base, table=True):
    """A township (乡镇): groups villages for roll-ups."""

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)


class Village(Base, table=True):
    """A village (行政村) with a loudspeaker."""

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    township_id: str = Field(foreign_key="township.id", index=True, max_length=64)
    population: int = 0
    speaker: str = Field(default="", max_length=32)


class Market(Base, table=True):
    """A market (集市) where staff hand out leaflets on market days."""

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)


class MarketVillage(Base, table=True):
    """Which villages a market serves."""

    __tablename__ = "market_village"

    market_id: str = Field(foreign_key="market.id", primary_key=True, max_length=64)
    village_id: str = Field(foreign_key="village.id", primary_key=True, max_length=64)


class Campaign(Base, table=True):
    """A campaign: a topic push over a date range, with a priority."""

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    start: dt.date
    end: dt.date
    priority: int = 0


# --- as-run log ---------------------------------------------------------------


class Broadcast(Base, table=True):
    """One campaign's part of one village program in one slot: the as-run log row."""

    __table_args__ = (
        sa.UniqueConstraint("date", "slot", "village_id", "campaign_id"),
        sa.Index("ix_broadcast_coverage", "campaign_id", "village_id", "status", "evidence", "date"),
        sa.Index("ix_broadcast_program", "date", "slot", "village_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    date: dt.date = Field(index=True)
    slot: str = Field(max_length=32)
    village_id: str = Field(max_length=64)
    township_id: str = Field(max_length=64)
    campaign_id: str = Field(max_length=64)
    script_ids: str = Field(max_length=2000)
    status: BroadcastStatus = Field(
        default=BroadcastStatus.PLANNED,
        sa_column=sa.Column(_enum(BroadcastStatus, "status"), nullable=False),
    )
    scheduled_at: dt.datetime = _utc()
    played_at: dt.datetime | None = _utc(nullable=True)
    exported_at: dt.datetime | None = _utc(nullable=True)
    confirmed_at: dt.datetime | None = _utc(nullable=True)
    confirmed_by: str | None = Field(default=None, max_length=200)  # the village person who confirmed
    entered_by: str | None = Field(default=None, max_length=200)  # the staff member who recorded it
    program_sha256: str | None = Field(default=None, max_length=64)
    engine: str | None = Field(default=None, max_length=32)
    error: str | None = Field(default=None, sa_type=sa.Text)
    note: str | None = Field(default=None, sa_type=sa.Text)
    updated_at: dt.datetime = _utc()
    evidence: Evidence = Field(
        default=Evidence.NONE,
        sa_column=sa.Column(_enum(Evidence, "evidence"), nullable=False, server_default=Evidence.NONE.value),
    )
    aired_at: dt.datetime | None = _utc(nullable=True)  # when the sound went out (not when it was typed in)
    proof_score: float | None = None  # proof of air: match score of the captured windows, 0..1
    proof_delay_s: float | None = None  # proof of air: delay of the program in the capture
    proof_snr_db: float | None = None  # proof of air: estimated signal-to-noise ratio of the capture
    stale_reason: str | None = Field(default=None, sa_type=sa.Text)  # an exported pack the plan has since changed


class BroadcastScript(Base, table=True):
    """The scripts of a broadcast row, in play order (so per-script reach is SQL)."""

    __tablename__ = "broadcast_script"

    broadcast_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("broadcast.id", ondelete="CASCADE"), primary_key=True)
    )
    position: int = Field(primary_key=True)
    script_id: str = Field(index=True, max_length=64)


# --- exactly-once play ----------------------------------------------------------


class SlotClaim(Base, table=True):
    """Who plays one village slot: taken atomically before the player starts (one per village, slot, date)."""

    __tablename__ = "slot_claim"
    __table_args__ = (sa.UniqueConstraint("date", "slot", "village_id"),)

    id: int | None = Field(default=None, primary_key=True)
    date: dt.date
    slot: str = Field(max_length=32)
    village_id: str = Field(max_length=64)
    owner: str = Field(max_length=200)  # scheduler instance: host:pid:token
    state: str = Field(default="claimed", max_length=16)  # claimed | playing | done
    attempts: int = 1
    player_pid: int | None = None
    player_pgid: int | None = None
    player_started: int | None = Field(default=None, sa_type=sa.BigInteger)  # /proc start time, against pid reuse
    claimed_at: dt.datetime = _utc()
    heartbeat_at: dt.datetime = _utc()


class SchedulerLeader(Base, table=True):
    """The scheduler that leads a database (SQLite's lock row; on PostgreSQL a record beside the advisory lock)."""

    __tablename__ = "scheduler_leader"

    name: str = Field(primary_key=True, max_length=32)
    owner: str = Field(max_length=200)
    started_at: dt.datetime = _utc()
    heartbeat_at: dt.datetime = _utc()


# --- market-day handouts and imports -------------------------------------------


class Handout(Base, table=True):
    """Leaflets handed out and people reached at one market on one day."""

    __table_args__ = (
        sa.CheckConstraint("leaflets >= 0", name="leaflets_not_negative"),
        sa.CheckConstraint("people >= 0", name="people_not_negative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    market_id: str = Field(index=True, max_length=64)
    date: dt.date = Field(index=True)
    leaflets: int = 0
    people: int = 0
    topics: str = Field(max_length=200)
    staff: str = Field(default="", max_length=200)
    note: str = Field(default="", sa_type=sa.Text)
    natural_key: str = Field(unique=True, max_length=64)  # see records.handout_key
    created_at: dt.datetime = _utc()


class ImportRecord(Base, table=True):
    """A CSV file already imported, keyed by the SHA-256 of its bytes."""

    __tablename__ = "import_record"

    sha256: str = Field(primary_key=True, max_length=64)
    kind: ImportKind = Field(sa_column=sa.Column(_enum(ImportKind, "kind"), nullable=False))
    filename: str = Field(max_length=500)
    imported_at: dt.datetime = _utc()
    rows_ok: int = 0
    rows_bad: int = 0


# --- village stations (outreach/delivery/stations/) -----------------


class Station(Base, table=True):
    """A registered village station (村委会广播室的播放盒): its hashed token and its last presence report."""

    id: str = Field(primary_key=True, max_length=64)
    village_id: str = Field(index=True, max_length=64)
    token_sha256: str = Field(unique=True, max_length=64)  # HTTP bearer token, hashed
    broker_hash: str = Field(max_length=200)  # the same token in Mosquitto's password-file format
    created_at: dt.datetime = _utc()
    revoked_at: dt.datetime | None = _utc(nullable=True)
    online: bool = False
    last_seen: dt.datetime | None = _utc(nullable=True)
    buffered_until: dt.date | None = None
    clock_offset_s: float | None = None
    version: str | None = Field(default=None, max_length=32)
    free_disk_mb: int | None = None
    last_play: str | None = Field(default=None, max_length=200)


class StationEvent(Base, table=True):
    """An as-run event already ingested from a station: its (station, id) makes a repeated upload change nothing.

    Event ids are made on each station, so they are unique per station only.
    """

    __tablename__ = "station_event"

    event_id: str = Field(primary_key=True, max_length=64)
    station_id: str = Field(primary_key=True, index=True, max_length=64)
    kind: str = Field(max_length=16)
    at: dt.datetime = _utc()
    received_at: dt.datetime = _utc()


class StationEventRejected(Base, table=True):
    """A station event the server refused (unknown slot, campaign or alert, impossible time, malformed)."""

    __tablename__ = "station_event_rejected"
    __table_args__ = (sa.Index("ix_station_event_rejected_station", "station_id", "received_at"),)

    id: int | None = Field(default=None, primary_key=True)
    station_id: str = Field(max_length=64)
    event_id: str = Field(default="", max_length=64)  # "" when the payload had no usable id
    status: int = 400
    reason: str = Field(sa_type=sa.Text)
    received_at: dt.datetime = _utc()
    payload: str = Field(default="", sa_type=sa.Text)  # a bounded copy of what was sent


class Alert(Base, table=True):
    """An emergency insert (紧急插播) sent to stations."""

    id: str = Field(primary_key=True, max_length=32)
    script_id: str = Field(max_length=64)
    sha256: str = Field(max_length=64)
    targets: str = Field(sa_type=sa.Text)  # JSON list of station ids
    sent_at: dt.datetime = _utc()
    expires_at: dt.datetime = _utc()


class AlertDelivery(Base, table=True):
    """When one station received and played one alert."""

    __tablename__ = "alert_delivery"

    alert_id: str = Field(primary_key=True, max_length=32)
    station_id: str = Field(primary_key=True, max_length=64)
    delivered_at: dt.datetime | None = _utc(nullable=True)
    played_at: dt.datetime | None = _utc(nullable=True)


class ConfirmToken(Base, table=True):
    """A village's QR link to confirm its exported programs on a phone, without a login (hashed token)."""

    __tablename__ = "confirm_token"

    token_sha256: str = Field(primary_key=True, max_length=64)
    village_id: str = Field(index=True, max_length=64)
    first_day: dt.date  # the exported programs it may confirm: this village, these days
    last_day: dt.date
    created_at: dt.datetime = _utc()
    expires_at: dt.datetime = _utc()
    revoked_at: dt.datetime | None = _utc(nullable=True)


# --- browser review of scripts (outreach/authoring/review.py) -------------------------------


class ScriptEvent(Base, table=True):
    """One step in a script's review trail: drafted, edited (with a diff), previewed, approved or rejected."""

    __tablename__ = "script_event"

    id: int | None = Field(default=None, primary_key=True)
    script_id: str = Field(index=True, max_length=64)
    action: str = Field(max_length=16)
    actor: str = Field(max_length=64)
    at: dt.datetime = _utc()
    content_hash: str = Field(default="", max_length=64)  # script_model.approval_hash of the text at this step
    audio_sha256: str = Field(default="", max_length=64)  # the preview clip heard (previewed, approved)
    detail: str = Field(default="", sa_type=sa.Text)  # the diff of an edit, the comment of a rejection
