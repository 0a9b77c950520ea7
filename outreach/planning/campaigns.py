"""Campaigns: which scripts go to which villages, when, and how often (schedules/campaigns.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from outreach.content.names import did_you_mean
from outreach.dates import TextDate
from outreach.errors import CampaignError
from outreach.yamlread import Problem, YamlOptions, describe_error, load_yaml_and_nodes, yaml_problem

if TYPE_CHECKING:
    from outreach.content.script_model import Script
    from outreach.planning.registry import Registry

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
        raise CampaignError(f"{path}: 文件不存在；请创建它（参见示例 schedules/campaigns.yaml）") from exc
    except OSError as exc:
        raise CampaignError(f"{path}: 无法读取（{exc.strerror}）；请检查文件权限") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CampaignError(
            f"{path}: 不是 UTF-8 编码（偏移 {exc.start} 处的字节无法识别）；请把文件另存为 UTF-8"
        ) from exc


# An impossible date such as 2026-02-30 stays text, so validation names its campaign; repeated keys
# are kept here and listed all at once by _duplicate_keys.
_OPTIONS = YamlOptions(clock_text=False, repeated_key=None)


def _parse(path: Path, text: str) -> tuple[list[Any], list[int]]:
    """Return the campaign entries and the line number of each."""
    try:
        data, root = load_yaml_and_nodes(text, _OPTIONS)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise CampaignError(f"{path}{where}: 不是有效的 YAML：{yaml_problem(exc)}；请修正语法") from exc
    except ValueError as exc:  # PyYAML raises a bare ValueError for a date such as 2026-13-01
        raise CampaignError(f"{path}: 有日期不是真实存在的日期；请检查月和日，日期写成 YYYY-MM-DD") from exc
    duplicates = _duplicate_keys(root)
    if duplicates:
        raise CampaignError("\n".join([f"{path}: 有 {len(duplicates)} 个重复的键：",
                                        *(f"  - {path}:{d}" for d in duplicates)]))
    if not isinstance(data, dict) or not isinstance(data.get("campaigns"), list):
        raise CampaignError(f"{path}: 顶层须有键 'campaigns:'，其下是宣传活动的列表")
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
                out.append(f"{key.start_mark.line + 1}: 键 '{key.value}' 写了两次；只保留一个")
            seen.add(key.value)
            out.extend(_duplicate_keys(value))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            out.extend(_duplicate_keys(item))
    return out


def _model_problems(exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden" and err["loc"][:1] == ("targets",):
            msg = "未知的键；请检查拼写（targets 下可用的键：county、townships、villages、markets）"
        elif err["type"] == "extra_forbidden":
            msg = "未知的键；请检查拼写（可用的键：id、name、scripts、from、to、targets、" \
                  "plays_per_slot、priority、market_day_boost、urgent、default）"
        elif err["type"] == "missing":
            msg = "缺少必填项；请补上"
        else:
            msg = describe_error(err)
        out.append((field, msg))
    return out


def _problem(path: Path, line: int, label: str, campaign: str | None, field: str, message: str) -> Problem:
    """A problem of one campaign entry, worded `path:LINE: 宣传活动 'x'，字段 'from'：message`.

    `campaign` is the entry's id (None when it has none); `field` is e.g. "from" or
    "targets.townships", "" for the whole entry.
    """
    where = f"{path}:{line}: {label}"
    text = f"{where}，字段 '{field}'：{message}" if field else f"{where}：{message}"
    return Problem(path, field, message, line or None, campaign, text)


def _cross_problems(c: Campaign, registry: Registry, scripts: Mapping[str, Script]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if c.end < c.start:
        out.append(("to", f"'to' {c.end} 早于 'from' {c.start}；请对调或改正日期"))
    if c.targets.empty:
        out.append(("targets", "没有播放对象；请写 `county: true`，或填写 townships/villages/markets"))
    for field, ids, known, what in (
        ("targets.townships", c.targets.townships, registry.townships, "乡镇"),
        ("targets.villages", c.targets.villages, registry.villages, "村"),
        ("targets.markets", c.targets.markets, registry.markets, "集市"),
    ):
        for i in ids:
            if i not in known:
                hint = did_you_mean(str(i), {k: getattr(e, "name", "") for k, e in known.items()})
                out.append((field, f"未知的{what} '{i}'；{hint}请使用 schedules/ 县名录里的编号"))
    for sid in c.scripts:
        script = scripts.get(sid)
        if script is None:
            hint = did_you_mean(sid, {k: getattr(s, "title", "") for k, s in scripts.items()})
            out.append(("scripts", f"未知的广播稿 '{sid}'；{hint}请使用 audio_scripts/ 里的编号"))
        elif not script.approved and not script.edited_after_approval:  # an edited script is blocked at plan time
            out.append(("scripts", f"广播稿 '{sid}' 还没有批准（状态 {script.status}）；"
                                   "请先批准，或把它从这个宣传活动里删掉"))
    if len(set(c.scripts)) != len(c.scripts):
        out.append(("scripts", "有广播稿列了两次；每篇广播稿只列一次"))
    if c.default and c.urgent:
        out.append(("urgent", "默认宣传活动不能设为紧急；请写 `urgent: false`"))
    return out


def load_campaigns(path: Path, registry: Registry, scripts: Mapping[str, Script]) -> list[Campaign]:
    """Load and validate campaigns.yaml against the registry and the script library.

    Raises CampaignError listing every problem (file, campaign id, line, field, fix).
    """
    path = Path(path)
    entries, lines = _parse(path, _read_text(path))
    problems: list[Problem] = []
    campaigns: list[Campaign] = []
    seen: dict[str, int] = {}
    for index, (entry, line) in enumerate(zip(entries, lines, strict=True)):
        ident = str(entry["id"]) if isinstance(entry, dict) and entry.get("id") else None
        label = f"宣传活动 '{ident}'" if ident else f"第 {index + 1} 个宣传活动"
        if not isinstance(entry, dict):
            problems.append(_problem(path, line, label, None, "", "须为“键: 值”的映射（id、name、scripts 等）"))
            continue
        try:
            campaign = Campaign.model_validate(entry)
        except ValidationError as exc:
            problems.extend(_problem(path, line, label, ident, f, m) for f, m in _model_problems(exc))
            continue
        problems.extend(_problem(path, line, label, ident, f, m)
                        for f, m in _cross_problems(campaign, registry, scripts))
        if campaign.id in seen:
            problems.append(_problem(path, line, label, ident, "id",
                                     f"编号重复（第一次出现在第 {seen[campaign.id]} 行）；请改掉其中一个"))
        seen.setdefault(campaign.id, line)
        campaigns.append(campaign)
    # Counted from the raw entries so a default campaign with another error still counts.
    defaults = [str(e.get("id", f"#{i + 1}")) for i, e in enumerate(entries)
                if isinstance(e, dict) and e.get("default") is True]
    message = (f"有 {len(defaults)} 个默认宣传活动（{'、'.join(defaults)}）；只能有一个写 `default: true`"
               if len(defaults) > 1 else
               "没有默认宣传活动；请给一个常年播放的宣传活动加上 `default: true`" if not defaults else "")
    if message:
        problems.append(Problem(path, "default", message, text=f"{path}: 字段 'default'：{message}"))
    if problems:
        head = f"{path}: 宣传活动有 {len(problems)} 处问题："
        raise CampaignError("\n".join([head, *("  - " + str(p) for p in problems)]), problems)
    return campaigns
