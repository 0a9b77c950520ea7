"""A workspace loaded whole: config, registry, script library and campaigns.

Commands that plan, export, play or serve load it once through `load`; the
plan helpers here turn the pure planner's programs into as-run log rows.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Engine

from outreach.audio.render import clip_durations
from outreach.config import Config
from outreach.content.script_model import Script
from outreach.content.scripts import load_library
from outreach.db import open_migrated, session, sync_registry
from outreach.planning.campaigns import Campaign, load_campaigns
from outreach.planning.plan import PlanResult, build_programs
from outreach.planning.registry import Registry, load_registry

CAMPAIGNS_FILE = "campaigns.yaml"
# Silence between clips of a program, in seconds.
GAP_S = 1.0


@dataclass(frozen=True)
class Loaded:
    """Everything a workspace defines, validated."""

    config: Config
    registry: Registry
    library: list[Script]
    campaigns: list[Campaign]
    scripts: dict[str, Script] = field(default_factory=dict)

    def campaign(self, campaign_id: str) -> Campaign | None:
        return next((c for c in self.campaigns if c.id == campaign_id), None)


def load(config: Config) -> Loaded:
    """Load and cross-check the registry, the script library and the campaigns."""
    registry = load_registry(config.schedules_dir, players=config.player_names)
    library = load_library(config.scripts_dir, max_chars=config.render.max_chars)
    scripts = {s.id: s for s in library}
    campaigns = load_campaigns(config.schedules_dir / CAMPAIGNS_FILE, registry, scripts)
    return Loaded(config, registry, library, campaigns, scripts)


def plan_days(loaded: Loaded, start: date, end: date, *, village_ids: Collection[str] | None = None) -> PlanResult:
    """Programs for every village and slot from `start` to `end` (inclusive)."""
    durations = clip_durations(loaded.config, loaded.library)
    return build_programs(loaded.registry, loaded.campaigns, loaded.scripts, durations, start, end,
                          village_ids=village_ids, gap_s=GAP_S)


def urgent_draft_alerts(loaded: Loaded, start: date, end: date) -> list[str]:
    """Loud lines for urgent campaigns whose scripts were edited after approval (`run` shows them too)."""
    if not any(s.edited_after_approval for s in loaded.library):
        return []
    return plan_days(loaded, start, end).alerts


def open_database(loaded: Loaded, url: str | None = None) -> Engine:
    """The project database (or the one at `url`, e.g. the demo's), migrated, with the registry mirrored in."""
    engine = open_migrated(url or loaded.config.resolved_database_url())
    mirror(loaded, engine)
    return engine


def mirror(loaded: Loaded, engine: Engine) -> None:
    """Mirror the workspace's townships, villages, markets and campaigns into the database."""
    registry = loaded.registry
    with session(engine) as s:
        sync_registry(s, townships=registry.townships.values(), villages=registry.villages.values(),
                      markets=registry.markets.values(), campaigns=loaded.campaigns,
                      market_villages={m: registry.market_villages(m) for m in registry.markets})
