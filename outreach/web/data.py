"""Every domain and database call the dashboard makes, in one place; routes only shape what comes back."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from outreach import coverage, records
from outreach.config import Config
from outreach.content.scripts import Problem, Script, approve_script, check_library, script_path
from outreach.db import session
from outreach.delivery.usb.packs import PackFile, read_manifest
from outreach.errors import OutputError, OutreachError, RecordError
from outreach.models import (
    STATUS_PROGRESS, Broadcast, BroadcastStatus, Campaign, Handout, Market, MarketVillage, Township, Village,
)
from outreach.planning.plan import PlanResult
from outreach.planning.registry import load_registry
from outreach.planning.workspace import load, plan_days
from outreach.records import record_handout

log = logging.getLogger("outreach.web")

HISTORY_LIMIT = 500


# --- registry mirror look-ups ------------------------------------------------------


def campaigns(engine: Engine) -> list[Campaign]:
    """The campaigns mirrored from campaigns.yaml, newest start first."""
    with session(engine) as s:
        return list(s.scalars(sa.select(Campaign).order_by(Campaign.start.desc(), Campaign.id)))


def campaign(engine: Engine, campaign_id: str) -> Campaign | None:
    with session(engine) as s:
        return s.get(Campaign, campaign_id)


def townships(engine: Engine) -> dict[str, Township]:
    with session(engine) as s:
        return {t.id: t for t in s.scalars(sa.select(Township).order_by(Township.id))}


def villages(engine: Engine) -> list[Village]:
    with session(engine) as s:
        return list(s.scalars(sa.select(Village).order_by(Village.township_id, Village.id)))


def village(engine: Engine, village_id: str) -> Village | None:
    with session(engine) as s:
        return s.get(Village, village_id)


def markets(engine: Engine) -> list[Market]:
    with session(engine) as s:
        return list(s.scalars(sa.select(Market).order_by(Market.id)))


def market(engine: Engine, market_id: str) -> Market | None:
    with session(engine) as s:
        return s.get(Market, market_id)


def market_villages(engine: Engine, market_id: str) -> list[Village]:
    with session(engine) as s:
        stmt = (sa.select(Village).join(MarketVillage, MarketVillage.village_id == Village.id)
                .where(MarketVillage.market_id == market_id).order_by(Village.id))
        return list(s.scalars(stmt))


# --- workspace files (registry, campaigns, plan) ---------------------------------------


@dataclass
class Targets:
    """Target villages per campaign from campaigns.yaml; `problem` says why they are missing."""

    by_campaign: dict[str, set[str]] = field(default_factory=dict)
    problem: str = ""


def campaign_targets(config: Config) -> Targets:
    """Which villages each campaign targets; on a broken workspace, none and the reason."""
    try:
        loaded = load(config)
    except OutreachError as exc:
        return Targets(problem=str(exc))
    return Targets({c.id: c.target_villages(loaded.registry) for c in loaded.campaigns})


@dataclass
class WeekPlan:
    """The planned programs of a date range, and names to show them with."""

    result: PlanResult
    village_names: dict[str, str]
    township_names: dict[str, str]
    village_township: dict[str, str]
    script_titles: dict[str, str]
    campaign_names: dict[str, str]


def week_plan(config: Config, start: date, end: date, village_ids: Sequence[str] | None = None) -> WeekPlan:
    """Plan start..end with the workspace's registry, scripts and campaigns.

    Raises OutreachError when the workspace files are invalid.
    """
    loaded = load(config)
    result = plan_days(loaded, start, end, village_ids=village_ids)
    reg = loaded.registry
    return WeekPlan(
        result=result,
        village_names={v.id: v.name for v in reg.villages.values()},
        township_names={t.id: t.name for t in reg.townships.values()},
        village_township={v.id: v.township_id for v in reg.villages.values()},
        script_titles={s.id: s.title for s in loaded.library},
        campaign_names={c.id: c.name for c in loaded.campaigns},
    )


def registry_village_ids(config: Config) -> set[str] | None:
    """Village ids in schedules/county.yaml, or None if the registry cannot be read."""
    try:
        return set(load_registry(config.schedules_dir).villages)
    except OutreachError:
        return None


def market_days(config: Config, market_id: str, start: date, end: date) -> list[date]:
    """The market's days in start..end by its rule; empty if the registry cannot be read."""
    try:
        reg = load_registry(config.schedules_dir)
        return reg.market_dates(market_id, start, end) if market_id in reg.markets else []
    except OutreachError:
        return []


# --- coverage ---------------------------------------------------------------------------


@dataclass
class CampaignSummary:
    """One campaign's reach over a period, with its township roll-up and village rows."""

    campaign: Campaign
    start: date
    end: date
    started: bool
    villages: list[coverage.VillageCoverage]
    townships: list[coverage.TownshipCoverage]

    @property
    def villages_targeted(self) -> int:
        return len(self.villages)

    @property
    def villages_reached(self) -> int:
        return sum(1 for v in self.villages if v.reached > 0)

    def total(self, name: str) -> int:
        return sum(getattr(v, name) for v in self.villages)


def coverage_period(c: Campaign, today: date) -> tuple[date, date, bool]:
    """The campaign's days so far (at most coverage.MAX_DAYS, ending today or at its end)."""
    end = min(c.end, today)
    if end < c.start:  # not started yet: show the (empty) first day
        return c.start, c.start, False
    start = max(c.start, end - timedelta(days=coverage.MAX_DAYS - 1))
    return start, end, True


def campaign_summary(engine: Engine, c: Campaign, today: date, targets: set[str]) -> CampaignSummary:
    start, end, started = coverage_period(c, today)
    with session(engine) as s:
        rows = coverage.village_coverage(s, start=start, end=end, campaign_id=c.id, target_village_ids=targets)
    return CampaignSummary(c, start, end, started, rows, coverage.township_rollup(rows))


def gaps(engine: Engine, campaign_id: str, today: date, days: int, targets: set[str]) -> list[coverage.VillageGap]:
    with session(engine) as s:
        return coverage.village_gaps(s, campaign_id=campaign_id, today=today, days=days, target_village_ids=targets)


def unconfirmed(engine: Engine, today: date) -> list[coverage.UnconfirmedExport]:
    with session(engine) as s:
        return coverage.unconfirmed_exports(s, today=today)


def market_totals(engine: Engine, start: date, end: date) -> dict[str, coverage.MarketCoverage]:
    with session(engine) as s:
        return {m.market_id: m for m in coverage.market_coverage(s, start=start, end=end)}


# --- as-run history and handouts --------------------------------------------------------------


@dataclass(frozen=True)
class ProgramRow:
    """One village program (date, slot) with its campaign rows folded together."""

    date: date
    slot: str
    status: str
    campaigns: list[str]
    script_ids: list[str]
    scheduled_at: datetime | None
    played_at: datetime | None
    exported_at: datetime | None
    confirmed_at: datetime | None
    confirmed_by: str
    error: str

    @property
    def confirmable(self) -> bool:
        return self.status in (BroadcastStatus("played").value, BroadcastStatus("exported").value)


def village_history(engine: Engine, village_id: str, start: date, end: date) -> list[ProgramRow]:
    """The village's as-run log from start to end, newest first, one row per program."""
    with session(engine) as s:
        rows = list(s.scalars(
            sa.select(Broadcast)
            .where(Broadcast.village_id == village_id, Broadcast.date >= start, Broadcast.date <= end)
            .order_by(Broadcast.date.desc(), Broadcast.scheduled_at.desc(), Broadcast.campaign_id)
            .limit(HISTORY_LIMIT * 4)))
    programs: dict[tuple[date, str], list[Broadcast]] = {}
    for b in rows:
        programs.setdefault((b.date, b.slot), []).append(b)
    out = []
    for (day, slot), group in list(programs.items())[:HISTORY_LIMIT]:
        statuses = [str(getattr(b.status, "value", b.status)) for b in group]
        scripts: list[str] = []
        for b in group:
            scripts += [sid for sid in b.script_ids.split(",") if sid and sid not in scripts]

        def first(attr: str) -> Any:
            return next((getattr(b, attr) for b in group if getattr(b, attr)), None)

        out.append(ProgramRow(
            # A folded program shows the furthest-along status of its rows, as records.program_status does.
            date=day, slot=slot,
            status=max(statuses, key=lambda st: STATUS_PROGRESS.index(st) if st in STATUS_PROGRESS else -1),
            campaigns=[b.campaign_id for b in group], script_ids=scripts, scheduled_at=first("scheduled_at"),
            played_at=first("played_at"), exported_at=first("exported_at"), confirmed_at=first("confirmed_at"),
            confirmed_by=first("confirmed_by") or "", error=first("error") or "",
        ))
    return out


def confirm_program(engine: Engine, *, village_id: str, day: date, slot: str, by: str, at: datetime) -> int:
    """Confirm a played or exported program through the same rules as the CLI; 0 if it was already confirmed.

    The logged-in staff member both hears the village's word and enters it. Raises RecordError
    when the program does not exist, has not started yet, or is not exported or played.
    """
    with session(engine) as s:
        return int(records.confirm_program(s, village_id=village_id, day=day, slot=slot, confirmed_by=by,
                                           entered_by=by, now=at))


def handouts(engine: Engine, market_id: str, start: date, end: date) -> list[Handout]:
    with session(engine) as s:
        return list(s.scalars(
            sa.select(Handout).where(Handout.market_id == market_id, Handout.date >= start, Handout.date <= end)
            .order_by(Handout.date.desc(), Handout.id.desc()).limit(HISTORY_LIMIT)))


class DuplicateHandout(RecordError):
    """The very same handout record is already stored; nothing was added."""


def add_handout(engine: Engine, *, market_id: str, day: date, leaflets: int, people: int, topics: list[str],
                staff: str, note: str, now: datetime) -> Handout:
    """Store one handout record. Raises DuplicateHandout for a record already stored, RecordError for an invalid one."""
    try:
        with session(engine) as s:
            return record_handout(s, market_id=market_id, day=day, leaflets=leaflets, people=people,
                                  topics=topics, staff=staff, note=note, now=now)
    except RecordError as exc:
        try:
            key = records.handout_key(market_id, day, leaflets, people, records.parse_topics(topics), staff, note)
        except RecordError:
            raise exc from None
        with session(engine) as s:
            if s.scalars(sa.select(Handout.id).where(Handout.natural_key == key)).first() is not None:
                raise DuplicateHandout(str(exc)) from exc
        raise


# --- scripts ---------------------------------------------------------------------------


def script_library(config: Config) -> tuple[list[Script], list[Problem]]:
    """Every valid script and every problem; never raises for a bad file."""
    return check_library(config.scripts_dir, max_chars=config.render.max_chars)


def approve(config: Config, script_id: str, *, by: str, on: date) -> Script:
    """Approve a draft. Raises ScriptError for an unknown id, an approved or invalid script."""
    return approve_script(script_path(config.scripts_dir, script_id), by=by, on=on)


# --- packs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PackEntry(PackFile):
    """A manifest entry whose file is in the export folder, with the file's size for the listing."""

    size: int


def packs_dir(config: Config) -> Path:
    return (config.workspace / config.deliver.export_dir).resolve()


def pack_entries(config: Config) -> tuple[list[PackEntry], str]:
    """Files in the pack manifest that exist, and a problem message if the manifest is unusable."""
    root = packs_dir(config)
    try:
        listed = read_manifest(root)
    except OutputError as exc:
        return [], str(exc)
    out = []
    for f in listed.values():
        try:
            target = pack_file(root, f.path)  # None for a missing file or a path out of the folder
            if target is not None:
                out.append(PackEntry(**vars(f), size=target.stat().st_size))
        except (OSError, ValueError):
            continue
    out.sort(key=lambda e: (e.date, e.village_id, e.slot, e.path), reverse=False)
    return out, ""


def pack_file(root: Path, rel: str) -> Path | None:
    """The file at `rel` under `root`, or None if it is missing or would lie outside `root`."""
    if not rel or "\x00" in rel or Path(rel).is_absolute():
        return None
    target = (root / rel).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        return None
    return target


def find_pack_file(config: Config, rel: str) -> tuple[Path, PackEntry] | None:
    """A downloadable file: listed in manifest.json and inside the export folder."""
    entries, _ = pack_entries(config)
    entry = next((e for e in entries if e.path == rel), None)
    if entry is None:
        return None
    path = pack_file(packs_dir(config), entry.path)
    return (path, entry) if path is not None else None
