"""Coverage as the dashboard shows it: campaign reach, gaps, program outcomes and the Excel downloads."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Engine

from outreach import coverage
from outreach.config import TZ, Config
from outreach.coverage import aslog, sheets
from outreach.db import session
from outreach.delivery import health, sweep
from outreach.errors import OutreachError
from outreach.models import Campaign
from outreach.planning.plan import Program
from outreach.planning.workspace import load, plan_days
from outreach.web.data_places import Targets, campaign_targets
from outreach.web.data_scripts import script_library

log = logging.getLogger("outreach.web")


def script_gaps(engine: Engine, campaign_id: str, today: date, targets: Targets) -> list[coverage.ScriptGap]:
    """The campaign's scripts never heard in a township of its villages (by title), as `outreach gaps` lists them."""
    with session(engine) as s:
        return coverage.script_gaps(s, campaign_id=campaign_id, script_ids=targets.scripts.get(campaign_id, []),
                                    target_village_ids=targets.by_campaign.get(campaign_id, set()), end=today,
                                    valid=targets.windows, titles=targets.titles)


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
