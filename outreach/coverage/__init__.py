"""Coverage queries: reach per village and township, scripts aired, markets, gaps, heatmap."""

# Every figure is a SQL aggregate (COUNT/SUM/MAX over CASE, GROUP BY) computed by the
# database; Python only shapes the aggregated rows (one per village, market or
# village-day), never the broadcast rows themselves. Filters are bound parameters.
# No function reads the clock: `today`, date ranges and a ReadTime (`now`, grace, the plan) are
# arguments. A reach is a played or confirmed row with evidence (common.evidence_level).

from __future__ import annotations

from outreach.coverage.common import (
    MAX_DAYS,
    PENDING,
    REACH_EVIDENCE,
    REACHED,
    SHOWN_EVIDENCE,
    campaign_by_name,
    check_campaign,
    check_days,
    check_period,
    check_township,
    parse_period,
)
from outreach.coverage.gaps import (
    EXPORT_GRACE_DAYS,
    ScriptGap,
    UnconfirmedExport,
    ValidWindow,
    VillageGap,
    script_gaps,
    valid_on,
    unconfirmed_exports,
    village_gaps,
)
from outreach.coverage.readtime import UNRECORDED_DAYS, ReadTime, expected_plans
from outreach.coverage.heatmap import Heatmap, HeatmapRow, village_day_matrix
from outreach.coverage.markets import HandoutDay, MarketCoverage, handout_timeline, market_coverage
from outreach.coverage.airings import ScriptAiring, scripts_aired
from outreach.coverage.reach import (
    LISTEN_SHARE,
    TownshipCoverage,
    VillageCoverage,
    estimate_listeners,
    township_rollup,
    village_coverage,
)

__all__ = [
    "EXPORT_GRACE_DAYS",
    "LISTEN_SHARE",
    "MAX_DAYS",
    "PENDING",
    "REACH_EVIDENCE",
    "REACHED",
    "SHOWN_EVIDENCE",
    "UNRECORDED_DAYS",
    "ReadTime",
    "Heatmap",
    "HeatmapRow",
    "HandoutDay",
    "MarketCoverage",
    "ScriptAiring",
    "ScriptGap",
    "TownshipCoverage",
    "UnconfirmedExport",
    "ValidWindow",
    "VillageCoverage",
    "VillageGap",
    "campaign_by_name",
    "check_campaign",
    "check_days",
    "check_period",
    "check_township",
    "estimate_listeners",
    "expected_plans",
    "handout_timeline",
    "market_coverage",
    "parse_period",
    "script_gaps",
    "scripts_aired",
    "township_rollup",
    "unconfirmed_exports",
    "valid_on",
    "village_coverage",
    "village_day_matrix",
    "village_gaps",
]
