"""The county as the dashboard reads it: places and campaigns mirrored in the database, and the workspace
files behind them (campaign targets, the plan of a date range, market days). Pages reach the domain only
through the web/data_*.py modules; routes only shape what comes back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa
from sqlalchemy import Engine

from outreach import coverage
from outreach.config import Config
from outreach.db import session
from outreach.errors import OutreachError
from outreach.models import Campaign, Market, MarketVillage, Township, Village
from outreach.planning.plan import PlanResult
from outreach.planning.registry import load_registry
from outreach.planning.workspace import load, mirror, plan_days


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


@dataclass
class WeekPlan:
    """The planned programs of a date range, and names to show them with."""

    result: PlanResult
    village_names: dict[str, str]
    township_names: dict[str, str]
    village_township: dict[str, str]  # village id -> its township's id
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


def mirror_registry(config: Config, engine: Engine) -> str | None:
    """Mirror the saved workspace (villages, townships, markets, campaigns) into the database, so lists and
    reports show a change at once; the problem when the workspace does not load now (nothing mirrored)."""
    try:
        loaded = load(config)
    except OutreachError as exc:
        return str(exc)
    mirror(loaded, engine)
    return None
