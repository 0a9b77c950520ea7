"""Campaigns: which scripts go to which villages, when, and how often (schedules/campaigns.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from outreach.dates import TextDate
from outreach.errors import CampaignError
from outreach.yamlread import construct_timestamp

if TYPE_CHECKING:
    from outreach.registry import Registry
    from outreach.scripts import Script

__all__ = ["Campaign", "Targets", "load_campaigns"]


class Targets(BaseModel):
    """Where a campaign is heard; a market target means the villages that market serves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    county: bool = False
    townships: list[str] = []
    villages: list[str] = []
    markets: list[str] = []

    @property
    def empty(self) -> bool:
        return not (self.county or self.townships or self.villages or self.markets)


class Campaign(BaseModel):
    """One campaign: its scripts, its dates (inclusive) and its audience."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = Field(min_length=1)
    scripts: list[str] = Field(min_length=1)
    start: TextDate = Field(alias="from")
    end: TextDate = Field(alias="to")
    targets: Targets
    plays_per_slot: int = Field(1, ge=1, le=20)
    priority: int = Field(5, ge=1, le=9)
    market_day_boost: int = Field(0, ge=0, le=20)
    urgent: bool = False
    default: bool = False

    def active_on(self, day: date) -> bool:
        """True when `day` lies within the campaign's from/to dates (inclusive)."""
        return self.start <= day <= self.end

    def target_villages(self, registry: Registry) -> set[str]:
        """Ids of every village the campaign reaches (county, townships, villages, markets)."""
        villages = registry.villages
        if self.targets.county:
            return set(villages)
        townships = set(self.targets.townships)
        out = {vid for vid, v in villages.items() if v.township_id in townships}
        out.update(vid for vid in self.targets.villages if vid in villages)
        for market_id in self.targets.markets:
            out.update(registry.market_villages(market_id))
        return out


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise CampaignError(f"{path}: file not found; create it (see the sample schedules/campaigns.yaml)") from exc
    except OSError as exc:
        raise CampaignError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CampaignError(
            f"{path}: not UTF-8 (bad byte at offset {exc.start}); save the file as UTF-8"
        ) from exc


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps an impossible date such as 2026-02-30 as text, so validation names its campaign."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp", construct_timestamp)


def _parse(path: Path, text: str) -> tuple[list[Any], list[int]]:
    """Return the campaign entries and the line number of each."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CampaignError(f"{path}{where}: not valid YAML ({problem}); fix the syntax") from exc
    except ValueError as exc:  # PyYAML raises a bare ValueError for a date such as 2026-13-01
        raise CampaignError(f"{path}: bad date ({exc}); write dates as YYYY-MM-DD") from exc
    duplicates = _duplicate_keys(root)
    if duplicates:
        raise CampaignError("\n".join([f"{path}: {len(duplicates)} duplicate key(s):",
                                        *(f"  - {path}:{d}" for d in duplicates)]))
    if not isinstance(data, dict) or not isinstance(data.get("campaigns"), list):
        raise CampaignError(f"{path}: expected a top-level key 'campaigns:' holding a list of campaigns")
    lines = [0] * len(data["campaigns"])
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "campaigns" and isinstance(value, yaml.SequenceNode):
                lines = [item.start_mark.line + 1 for item in value.value]
    return data["campaigns"], lines


def _duplicate_keys(node: yaml.Node | None) -> list[str]:
    """Keys given twice in one mapping (YAML keeps only the last, silently)."""
    out: list[str] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                out.append(f"{key.start_mark.line + 1}: key '{key.value}' is given twice; keep one")
            seen.add(key.value)
            out.extend(_duplicate_keys(value))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            out.extend(_duplicate_keys(item))
    return out


def _model_problems(exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(campaign)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key; check the spelling (allowed: id, name, scripts, from, to, targets, " \
                  "plays_per_slot, priority, market_day_boost, urgent, default)"
        elif err["type"] == "missing":
            msg = "required key is missing; add it"
        out.append((field, msg))
    return out


def _cross_problems(c: Campaign, registry: Registry, scripts: Mapping[str, Script]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if c.end < c.start:
        out.append(("to", f"'to' {c.end} is before 'from' {c.start}; swap or fix the dates"))
    if c.targets.empty:
        out.append(("targets", "no targets; add `county: true` or townships/villages/markets"))
    for field, ids, known, what in (
        ("targets.townships", c.targets.townships, registry.townships, "township"),
        ("targets.villages", c.targets.villages, registry.villages, "village"),
        ("targets.markets", c.targets.markets, registry.markets, "market"),
    ):
        for i in ids:
            if i not in known:
                out.append((field, f"unknown {what} '{i}'; use an id from the registry in schedules/"))
    for sid in c.scripts:
        script = scripts.get(sid)
        if script is None:
            out.append(("scripts", f"unknown script '{sid}'; use an id from audio_scripts/"))
        elif not script.approved and not script.edited_after_approval:  # an edited script is blocked at plan time
            out.append(("scripts", f"script '{sid}' is not approved (status {script.status}); "
                                   "approve it or remove it from the campaign"))
    if len(set(c.scripts)) != len(c.scripts):
        out.append(("scripts", "a script is listed twice; list each script once"))
    if c.default and c.urgent:
        out.append(("urgent", "the default campaign cannot be urgent; set urgent: false"))
    return out


def load_campaigns(path: Path, registry: Registry, scripts: Mapping[str, Script]) -> list[Campaign]:
    """Load and validate campaigns.yaml against the registry and the script library.

    Raises CampaignError listing every problem (file, campaign id, line, field, fix).
    """
    path = Path(path)
    entries, lines = _parse(path, _read_text(path))
    problems: list[str] = []
    campaigns: list[Campaign] = []
    seen: dict[str, int] = {}
    for index, (entry, line) in enumerate(zip(entries, lines, strict=True)):
        label = f"campaign #{index + 1}"
        if isinstance(entry, dict) and entry.get("id"):
            label = f"campaign '{entry['id']}'"
        where = f"{path}:{line}: {label}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping of keys (id, name, scripts, ...)")
            continue
        try:
            campaign = Campaign.model_validate(entry)
        except ValidationError as exc:
            problems.extend(f"{where}, field '{f}': {m}" for f, m in _model_problems(exc))
            continue
        problems.extend(f"{where}, field '{f}': {m}" for f, m in _cross_problems(campaign, registry, scripts))
        if campaign.id in seen:
            problems.append(f"{where}, field 'id': duplicate id (first at line {seen[campaign.id]}); rename one")
        seen.setdefault(campaign.id, line)
        campaigns.append(campaign)
    # Counted from the raw entries so a default campaign with another error still counts.
    defaults = [str(e.get("id", f"#{i + 1}")) for i, e in enumerate(entries)
                if isinstance(e, dict) and e.get("default") is True]
    if len(defaults) > 1:
        problems.append(f"{path}: field 'default': {len(defaults)} default campaigns ({', '.join(defaults)}); "
                        "keep `default: true` on exactly one")
    elif not defaults:
        problems.append(f"{path}: field 'default': no default campaign; mark exactly one always-on "
                        "campaign with `default: true`")
    if problems:
        head = f"{path}: {len(problems)} problem(s) in campaigns:"
        raise CampaignError("\n".join([head, *("  - " + p for p in problems)]))
    return campaigns
