"""Every domain and database call the dashboard makes, in one place; routes only shape what comes back."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from outreach import coverage, records
from outreach.coverage import aslog, sheets
from outreach.config import TZ, Config
from outreach.content.names import make_id
from outreach.content.scripts import Problem, Script, approve_script, check_library, script_path
from outreach.db import session
from outreach.delivery import health, sweep
from outreach.delivery.usb.packs import PackFile, read_manifest
from outreach.delivery.usb.stale import StalePack, exports_stamp, plan_stamp, refresh_stale
from outreach.delivery.usb.stale import stale_packs as stored_stale_packs
from outreach.delivery.usb.zipped import PackZip, export_zip, zip_ranges
from outreach.errors import OutputError, OutreachError, RecordError
from outreach.models import (
    STATUS_PROGRESS, Broadcast, BroadcastScript, BroadcastStatus, Campaign, Handout, Market, MarketVillage,
    ScriptEvent, Township, Village,
)
from outreach.planning.plan import PlanResult, Program
from outreach.planning.registry import load_registry
from outreach.planning.workspace import load, mirror, plan_days
from outreach.records import record_handout
from outreach.records.broadcasts import program_scripts, shown_status

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
    """Target villages per campaign from campaigns.yaml; `problem` says why they are missing.

    `scripts` (campaign id → its script ids), `windows` (script id → valid dates) and `titles` (script
    id → title) come from the same load, for the scripts a campaign has not aired yet."""

    by_campaign: dict[str, set[str]] = field(default_factory=dict)
    problem: str = ""
    scripts: dict[str, list[str]] = field(default_factory=dict)
    windows: dict[str, coverage.ValidWindow] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)


def campaign_targets(config: Config) -> Targets:
    """Which villages each campaign targets; on a broken workspace, none and the reason."""
    try:
        loaded = load(config)
    except OutreachError as exc:
        return Targets(problem=str(exc))
    return Targets({c.id: c.target_villages(loaded.registry) for c in loaded.campaigns},
                   scripts={c.id: list(c.scripts) for c in loaded.campaigns},
                   windows={s.id: (s.valid_from, s.valid_until) for s in loaded.library},
                   titles={s.id: s.title for s in loaded.library})


def script_gaps(engine: Engine, campaign_id: str, today: date, targets: Targets) -> list[coverage.ScriptGap]:
    """The campaign's scripts never heard in a township of its villages (by title), as `outreach gaps` lists them."""
    with session(engine) as s:
        return coverage.script_gaps(s, campaign_id=campaign_id, script_ids=targets.scripts.get(campaign_id, []),
                                    target_village_ids=targets.by_campaign.get(campaign_id, set()), end=today,
                                    valid=targets.windows, titles=targets.titles)


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


def coverage_read(config: Config, now: datetime) -> coverage.ReadTime:
    """How coverage pages read the log at `now`: slots past start plus grace are 漏播, including the plan's
    programs of the last coverage.UNRECORDED_DAYS days that left no row (none if the workspace cannot be planned)."""
    today = now.astimezone(TZ).date()
    try:
        expected = coverage.expected_plans(load(config), today - timedelta(days=coverage.UNRECORDED_DAYS - 1),
                                           today, today=today)
    except OutreachError as exc:
        log.warning("排不出计划，没有任何记录的时段不会算作漏播：%s", exc)
        expected = ()
    return coverage.ReadTime(now=now, grace_s=float(config.deliver.grace_s), expected=expected)


def campaign_summary(engine: Engine, c: Campaign, today: date, targets: set[str],
                     read: coverage.ReadTime | None = None) -> CampaignSummary:
    start, end, started = coverage_period(c, today)
    with session(engine) as s:
        rows = coverage.village_coverage(s, start=start, end=end, campaign_id=c.id, target_village_ids=targets,
                                         read=read)
    return CampaignSummary(c, start, end, started, rows, coverage.township_rollup(rows))


def gaps(engine: Engine, campaign_id: str, today: date, days: int, targets: set[str],
         read: coverage.ReadTime | None = None) -> list[coverage.VillageGap]:
    with session(engine) as s:
        return coverage.village_gaps(s, campaign_id=campaign_id, today=today, days=days, target_village_ids=targets,
                                     read=read)


def unconfirmed(engine: Engine, today: date) -> list[coverage.UnconfirmedExport]:
    with session(engine) as s:
        return coverage.unconfirmed_exports(s, today=today)


def market_totals(engine: Engine, start: date, end: date) -> dict[str, coverage.MarketCoverage]:
    with session(engine) as s:
        return {m.market_id: m for m in coverage.market_coverage(s, start=start, end=end)}


def first_record_day(engine: Engine, now: datetime) -> date:
    """The first day the database has records for (delivery.sweep.first_use): before it, a planned program
    that left no row tells nothing, the county was not using outreach yet."""
    return sweep.first_use(engine, now)


def program_outcomes(config: Config, engine: Engine, start: date, end: date, *, now: datetime,
                     since: date | None = None, programs: Sequence[Program] | None = None,
                     village_ids: Collection[str] | None = None) -> dict[tuple[str, str, date], str]:
    """(village, slot, day) -> the status people see of every program planned or logged from start to end.

    Logged programs fold their rows (delivery.health.program_statuses); planned ones with no row read
    `planned`, or `missed` once past start plus grace, from `since` on (`first_record_day`). `programs`
    is the plan when the caller has it; otherwise the workspace is planned here (nothing if it cannot be).
    """
    grace = float(config.deliver.grace_s)
    logged = health.program_statuses(engine, start, end, now=now, grace_s=grace, village_ids=village_ids)
    if programs is None:
        try:
            programs = plan_days(load(config), start, end, village_ids=village_ids).programs
        except OutreachError:
            programs = []
    if since is not None:
        programs = [p for p in programs if p.date >= since]
    return health.merge_statuses(programs, logged, now=now, grace_s=grace)


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
    aired_at: datetime | None = None  # when the sound went out (a confirmation's slot start), not the entry time
    entered_by: str = ""  # who typed a confirmation in (扫码: the village's QR page)

    @property
    def confirmable(self) -> bool:
        return self.status in (BroadcastStatus("played").value, BroadcastStatus("exported").value)


def village_history(engine: Engine, village_id: str, start: date, end: date, *, config: Config | None = None,
                    now: datetime | None = None) -> list[ProgramRow]:
    """The village's as-run log from start to end, newest first, one row per program.

    With `config` and `now`, each program shows the status people see (records.shown_status: a slot still
    planned after its start plus grace reads 漏播), and the planned programs that left no row at all and are
    past it are listed 漏播 too, from the database's first use on (delivery.sweep.first_use): silence is listed.
    """
    with session(engine) as s:
        rows = list(s.scalars(
            sa.select(Broadcast)
            .where(Broadcast.village_id == village_id, Broadcast.date >= start, Broadcast.date <= end)
            .order_by(Broadcast.date.desc(), Broadcast.scheduled_at.desc(), Broadcast.campaign_id)
            .limit(HISTORY_LIMIT * 4)))
    grace = float(config.deliver.grace_s) if config is not None else 0.0
    missed_reason = _missed_reason(config, engine, village_id)
    programs: dict[tuple[date, str], list[Broadcast]] = {}
    for b in rows:
        programs.setdefault((b.date, b.slot), []).append(b)
    out = []
    for (day, slot), group in list(programs.items())[:HISTORY_LIMIT]:
        statuses = [str(getattr(b.status, "value", b.status)) if now is None else
                    shown_status(BroadcastStatus(b.status), b.scheduled_at, now=now, grace_s=grace).value
                    for b in group]
        scripts = program_scripts(group)  # once aired, only what aired

        def first(attr: str) -> Any:
            return next((getattr(b, attr) for b in group if getattr(b, attr)), None)

        status = max(statuses, key=lambda st: STATUS_PROGRESS.index(st) if st in STATUS_PROGRESS else -1)
        out.append(ProgramRow(
            # A folded program shows the furthest-along status of its rows, as records.program_status does.
            date=day, slot=slot, status=status,
            campaigns=[b.campaign_id for b in group], script_ids=scripts, scheduled_at=first("scheduled_at"),
            played_at=first("played_at"), exported_at=first("exported_at"), confirmed_at=first("confirmed_at"),
            confirmed_by=first("confirmed_by") or "",
            error=first("error") or (missed_reason if status == BroadcastStatus.MISSED.value else ""),
            aired_at=first("aired_at"), entered_by=first("entered_by") or "",
        ))
    if config is not None and now is not None:
        out += _silent_programs(config, engine, village_id, start, end, set(programs), now)
        out.sort(key=lambda r: (r.date, r.scheduled_at.timestamp() if r.scheduled_at else 0.0), reverse=True)
    return out[:HISTORY_LIMIT]


def _missed_reason(config: Config | None, engine: Engine, village_id: str) -> str:
    """Why a program of the village reads 漏播 with no reason written yet (read-time missed), for its channel."""
    if config is None:
        return ""
    v = village(engine, village_id)
    return sweep.missed_reason(config, sweep.village_channel(config, v.speaker if v else None))


def _silent_programs(config: Config, engine: Engine, village_id: str, start: date, end: date,
                     logged: set[tuple[date, str]], now: datetime) -> list[ProgramRow]:
    """Planned programs of the village with no row at all whose start plus grace has passed: 漏播 rows."""
    first = max(start, sweep.first_use(engine, now))
    last = min(end, now.astimezone(TZ).date())
    if first > last:
        return []
    try:
        planned = plan_days(load(config), first, last, village_ids=[village_id]).programs
    except OutreachError:
        return []
    grace = float(config.deliver.grace_s)
    reason = _missed_reason(config, engine, village_id)
    return [ProgramRow(date=p.date, slot=p.slot, status=BroadcastStatus.MISSED.value, campaigns=list(p.campaign_ids),
                       script_ids=list(p.script_ids), scheduled_at=p.start, played_at=None, exported_at=None,
                       confirmed_at=None, confirmed_by="", error=reason)
            for p in planned if (p.date, p.slot) not in logged
            and shown_status(BroadcastStatus.PLANNED, p.start, now=now, grace_s=grace) is BroadcastStatus.MISSED]


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


def script_titles(config: Config) -> dict[str, str]:
    """Script id → title, to show titles where a record holds ids."""
    return {s.id: s.title for s in script_library(config)[0]}


class _Taken:
    """The ids a new script or campaign must not take: those in its files, and any the database has
    records of (a reused id would inherit their review trail or their coverage)."""

    def __init__(self, engine: Engine, in_files: Collection[str], columns: Sequence[Any]) -> None:
        self.engine, self.in_files, self.columns = engine, set(in_files), columns

    def __contains__(self, ident: object) -> bool:
        if ident in self.in_files:
            return True
        with session(self.engine) as s:
            return any(s.execute(sa.select(sa.literal(1)).where(c == ident).limit(1)).first() for c in self.columns)


def new_script_id(config: Config, engine: Engine, title: str) -> str:
    """The id of a new script, made from its title (快递退款 → kuaidi-tuikuan), free in files and records."""
    files = {p.stem for p in Path(config.scripts_dir).glob("*.md")}
    return make_id(title, _Taken(engine, files, [ScriptEvent.script_id, BroadcastScript.script_id]),
                   fallback="script")


def new_campaign_id(engine: Engine, name: str, in_file: Collection[str]) -> str:
    """The id of a new campaign, made from its name, free in campaigns.yaml (`in_file`) and in records."""
    return make_id(name, _Taken(engine, in_file, [Campaign.id, Broadcast.campaign_id]), fallback="campaign")


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


def pack_zip(config: Config, engine: Engine, village_ids: Collection[str], *, now: datetime) -> PackZip:
    """The pack `outreach export` would write for these villages' listed days from today on, ready to zip.

    Raises OutreachError when the workspace cannot be planned or the pack could not be made whole.
    """
    entries, _ = pack_entries(config)
    ranges = zip_ranges(entries, set(village_ids), today=now.astimezone(TZ).date())
    return export_zip(load(config), engine, ranges, now=now)


# --- stale USB packs -----------------------------------------------------------------------

# The last stale check per database: (what it depended on, what it found).
_STALE_SEEN: dict[str, tuple[tuple[Any, ...], list[StalePack]]] = {}


def stale_packs(config: Config, engine: Engine, now: datetime) -> list[StalePack]:
    """USB packs the plan has changed since their export (节目包已过期), in airing order.

    Planned again only when a workspace file, the exported rows or the day changed since the
    last look; on a workspace that cannot be planned, what the last check wrote.
    """
    today = now.astimezone(TZ).date()
    stamp = (plan_stamp(config), exports_stamp(engine, today=today), today)
    key = config.resolved_database_url()
    seen = _STALE_SEEN.get(key)
    if seen is not None and seen[0] == stamp:
        return seen[1]
    try:
        packs = refresh_stale(load(config), engine, now=now)
    except OutreachError as exc:
        log.warning("检查U盘节目包是否过期失败：%s", exc)
        return stored_stale_packs(engine, today=today)
    _STALE_SEEN[key] = ((plan_stamp(config), exports_stamp(engine, today=today), today), packs)
    return packs


@dataclass(frozen=True)
class StaleVillage:
    """A village whose USB pack is stale: its name and its stale programs in airing order."""

    village_id: str
    name: str
    packs: list[StalePack]


def stale_villages(config: Config, engine: Engine, now: datetime) -> list[StaleVillage]:
    """`stale_packs` by village, in the order of each village's first stale program (今天 and 节目包 pages)."""
    by_village: dict[str, list[StalePack]] = {}
    for p in stale_packs(config, engine, now):
        by_village.setdefault(p.village_id, []).append(p)
    names = {v.id: v.name for v in villages(engine)} if by_village else {}
    return [StaleVillage(vid, names.get(vid, vid), packs) for vid, packs in by_village.items()]


def stale_index(stale: Sequence[StaleVillage]) -> dict[str, dict[tuple[str, str], str]]:
    """What changed, by village id and (ISO date, slot): how the pack listing marks a stale file."""
    return {v.village_id: {(p.day.isoformat(), p.slot): p.reason for p in v.packs} for v in stale}


# --- Excel downloads -------------------------------------------------------------------------


def coverage_sheet(config: Config, engine: Engine, *, start: date, end: date, campaign_id: str | None,
                   township_id: str | None, now: datetime) -> sheets.Table:
    """Coverage per village and campaign as `outreach coverage --format xlsx` writes it, read at `now`.

    Raises OutreachError (CoverageError) for an unknown campaign or township, or a bad range."""
    targets = campaign_targets(config).by_campaign.get(campaign_id, set()) if campaign_id else set()
    with session(engine) as s:
        rows = coverage.village_coverage(s, start=start, end=end, campaign_id=campaign_id, township_id=township_id,
                                         target_village_ids=targets, read=coverage_read(config, now))
    return sheets.coverage_table(rows)


def log_sheet(config: Config, engine: Engine, *, start: date, end: date, campaign_id: str | None,
              township_id: str | None, village_id: str | None, now: datetime) -> sheets.Table:
    """The as-run log one broadcast a row, as `outreach log --format xlsx` writes it, read at `now`."""
    scripts, _ = script_library(config)
    with session(engine) as s:
        rows = aslog.broadcast_log(s, start=start, end=end, read=coverage_read(config, now),
                                   campaign_id=campaign_id, township_id=township_id, village_id=village_id)
    return aslog.log_table(rows, {sc.id: sc.title for sc in scripts})


def mirror_registry(config: Config, engine: Engine) -> str | None:
    """Mirror the saved workspace (villages, townships, markets, campaigns) into the database, so lists and
    reports show a change at once; the problem when the workspace does not load now (nothing mirrored)."""
    try:
        loaded = load(config)
    except OutreachError as exc:
        return str(exc)
    mirror(loaded, engine)
    return None
