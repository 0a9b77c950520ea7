"""Browser edits of campaigns.yaml and county.yaml: round-trip YAML that keeps comments, the CLI's own
validation on the would-be text, a plan preview, and an atomic write refused when the file changed meanwhile."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from outreach.errors import CampaignError, OutreachError
from outreach.files import temp_dir, write_text_atomic
from outreach.planning.campaigns import Campaign, load_campaigns
from outreach.planning.plan import build_programs
from outreach.planning.registry import FILES, SLOT_NAMES, Registry, Speaker, load_registry

__all__ = [
    "StaleFile", "CampaignValues", "VillageValues", "Checked", "PlanPreview", "stamp", "campaign_values",
    "village_values", "apply_campaign", "apply_village", "check_campaigns", "check_county", "preview_plan",
    "save", "PREVIEW_MAX_DAYS", "campaign_entry", "village_entry", "village_field_errors", "SPEAKERS",
    "campaign_ids", "move",
]

PREVIEW_MAX_DAYS = 14
# The planner's warning for a slot left silent.
_SILENT = re.compile(r"没有可播")
_VILLAGE_FIELD = re.compile(r"villages\[[^\]]+\]\.(\w+)(?:\.(\w+))?")


class StaleFile(OutreachError):
    """The file changed on disk after the form was opened; the edit would overwrite someone's work."""


def stamp(text: str) -> str:
    """A short fingerprint of a file's text, carried in the form to spot a stale edit."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def _yaml() -> YAML:
    y = YAML()  # round-trip: comments, key order and flow style survive
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _load(text: str) -> Any:
    try:
        return _yaml().load(text)
    except Exception as exc:  # ruamel raises many kinds; the CLI loader names the line later
        raise OutreachError(f"文件不是有效的 YAML（{exc}）；请先在服务器上改好") from exc


def _dump(doc: Any) -> str:
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def _set_list(node: CommentedMap, key: str, values: Sequence[str], *, flow: bool | None = None) -> None:
    """Set node[key] to `values`, keeping the old list (and the comments on kept items) when possible."""
    old = node.get(key)
    if isinstance(old, list) and list(old) == list(values):
        return
    new = CommentedSeq(values)
    if isinstance(old, CommentedSeq):
        if old.fa.flow_style():
            new.fa.set_flow_style()
        for i, value in enumerate(values):  # a script's "# why" comment follows it
            if value in old and old.index(value) in old.ca.items:
                new.ca.items[i] = old.ca.items[old.index(value)]
    elif flow:
        new.fa.set_flow_style()
    if not values:
        node.pop(key, None)
    else:
        node[key] = new


def _kept_order(old: Any, values: Sequence[str]) -> list[str]:
    """`values` in the file's order where the file has them, new ones after, so a save reorders nothing."""
    before = [v for v in old if v in values] if isinstance(old, list) else []
    return before + [v for v in values if v not in before]


def _put(node: CommentedMap, key: str, value: Any) -> None:
    """Set node[key] unless it already reads the same: a quoted or typed scalar stays as it is written."""
    if key in node and str(node[key]) == str(value):
        return
    node[key] = value


def _set(node: CommentedMap, key: str, value: Any, default: Any = None) -> None:
    """Set a scalar; a value equal to the loader's default is left out unless the file already has the key."""
    if value == default and key not in node:
        return
    if node.get(key) != value or type(node.get(key)) is not type(value):
        node[key] = value


# --- campaigns ----------------------------------------------------------------------------


@dataclass
class CampaignValues:
    """A campaign as the form edits it."""

    id: str = ""
    name: str = ""
    scripts: list[str] = field(default_factory=list)
    start: str = ""
    end: str = ""
    county: bool = False
    townships: list[str] = field(default_factory=list)
    villages: list[str] = field(default_factory=list)
    markets: list[str] = field(default_factory=list)
    plays_per_slot: str = "1"
    priority: str = "5"
    market_day_boost: str = "0"
    urgent: bool = False


def campaign_values(c: Campaign) -> CampaignValues:
    return CampaignValues(
        id=c.id, name=c.name, scripts=list(c.scripts), start=c.start.isoformat(), end=c.end.isoformat(),
        county=c.targets.county, townships=list(c.targets.townships), villages=list(c.targets.villages),
        markets=list(c.targets.markets), plays_per_slot=str(c.plays_per_slot), priority=str(c.priority),
        market_day_boost=str(c.market_day_boost), urgent=c.urgent)


def _scalar(text: str) -> Any:
    """A form value as YAML would read it: whole numbers and ISO dates typed, anything else kept as text
    so the CLI's validation names it."""
    text = text.strip()
    if re.fullmatch(r"-?\d{1,6}", text):
        return int(text)
    try:
        return date.fromisoformat(text)
    except ValueError:
        return text


def apply_campaign(text: str, original_id: str | None, v: CampaignValues) -> str:
    """campaigns.yaml text with the campaign `original_id` (or a new one, if None) set to `v`; comments kept."""
    doc = _load(text)
    if not isinstance(doc, CommentedMap) or not isinstance(doc.get("campaigns"), list):
        raise OutreachError("campaigns.yaml 里没有 'campaigns:' 列表；请先在服务器上改好这个文件")
    items = doc["campaigns"]
    node = next((c for c in items if isinstance(c, dict) and c.get("id") == original_id), None) if original_id else None
    if original_id and node is None:
        raise StaleFile(f"宣传活动「{original_id}」已经不在 campaigns.yaml 里了（被别人删除或改了编号）；"
                        "请回到「宣传活动」列表重新打开")
    if node is None:
        node = CommentedMap()
        items.append(node)
    _put(node, "id", v.id.strip())
    _put(node, "name", v.name.strip())
    _set_list(node, "scripts", v.scripts)  # the editor's order is the rotation: kept as given
    _put(node, "from", _scalar(v.start))
    _put(node, "to", _scalar(v.end))
    targets = node.get("targets")
    if not isinstance(targets, CommentedMap):
        targets = CommentedMap()
        node["targets"] = targets
    if v.county:
        targets["county"] = True
    else:
        targets.pop("county", None)
    for key in ("townships", "villages", "markets"):
        _set_list(targets, key, _kept_order(targets.get(key), getattr(v, key)), flow=True)
    if not targets:  # an empty block map under a commented key would dump as invalid YAML; the loader names it
        targets.fa.set_flow_style()
    _set(node, "plays_per_slot", _scalar(v.plays_per_slot), 1)
    _set(node, "priority", _scalar(v.priority), 5)
    _set(node, "market_day_boost", _scalar(v.market_day_boost), 0)
    _set(node, "urgent", bool(v.urgent), False)
    return _dump(doc)


def campaign_ids(text: str) -> set[str]:
    """The ids campaigns.yaml `text` has (valid or not), which a new campaign's id must not take."""
    doc = _load(text)
    items = doc.get("campaigns") if isinstance(doc, Mapping) else None
    return {str(c["id"]) for c in items or [] if isinstance(c, Mapping) and c.get("id")}


def move(scripts: Sequence[str], script_id: str, step: int) -> list[str]:
    """The rotation with `script_id` moved `step` places (-1 up, 1 down), kept within the list."""
    out = list(scripts)
    if script_id in out:
        i = out.index(script_id)
        j = min(max(i + step, 0), len(out) - 1)
        out.insert(j, out.pop(i))
    return out


@dataclass
class Checked:
    """The outcome of validating would-be text: the campaigns (or registry), or errors by form field."""

    campaigns: list[Campaign] = field(default_factory=list)
    registry: Registry | None = None
    fields: dict[str, list[str]] = field(default_factory=dict)
    other: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.fields and not self.other


def _sort_problems(message: str, mine: Any, out: Checked, key_of: Any) -> None:
    """Put each problem line of a loader's message beside its form field (when `mine(line)`), else in `other`."""
    for line in message.splitlines()[1:] or message.splitlines():
        line = line.strip().removeprefix("- ")
        if mine(line):
            found = key_of(line)
            if found:
                key, text = found
                out.fields.setdefault(key, []).append(text or line)
                continue
        out.other.append(line)


def _campaign_key(field: str | None) -> str | None:
    """The form field of a campaigns.yaml field: targets.townships → townships, from → start; None: not on the form."""
    name = (field or "").split(".")
    if name[0] == "targets" and len(name) > 1:
        return name[1]
    return {"from": "start", "to": "end", "default": None, "": None}.get(name[0], name[0])


def check_campaigns(text: str, campaign_id: str, registry: Registry, scripts: Mapping[str, Any]) -> Checked:
    """Validate would-be campaigns.yaml with the CLI's loader; errors of `campaign_id` are keyed by form field."""
    out = Checked()
    with temp_dir("edit") as tmp:
        path = Path(tmp) / "campaigns.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            out.campaigns = load_campaigns(path, registry, scripts)
        except OutreachError as exc:
            problems = exc.problems if isinstance(exc, CampaignError) else []
            for p in problems:
                key = _campaign_key(p.field) if p.entry == campaign_id else None
                if key:
                    out.fields.setdefault(key, []).append(p.message)
                else:
                    out.other.append(p.text.replace(str(path), "campaigns.yaml"))
            if not problems:  # a file-level error (YAML syntax, no list): it belongs to no field
                _sort_problems(str(exc).replace(str(path), "campaigns.yaml"), lambda line: False, out, None)
    return out


@dataclass
class PlanPreview:
    """What a campaign would put on air: programs per day and township, and the planner's warnings."""

    start: date
    end: date
    by_day: dict[date, Counter[str]]
    townships: list[str]
    programs: int
    clips: int
    villages: int
    warnings: list[str]
    other_warnings: int


def preview_plan(registry: Registry, campaigns: Sequence[Campaign], campaign_id: str, scripts: Mapping[str, Any],
                 durations: Mapping[str, float], *, today: date, days: int = PREVIEW_MAX_DAYS,
                 gap_s: float = 1.0) -> PlanPreview:
    """Run the pure planner on the edited campaign list over the campaign's first `days` days (from today if it
    already started) and count the programs that carry `campaign_id`."""
    c = next(c for c in campaigns if c.id == campaign_id)
    start = max(c.start, min(today, c.end))
    end = min(c.end, start + timedelta(days=days - 1))
    reach = c.target_villages(registry)
    result = build_programs(registry, campaigns, scripts, durations, start, end, village_ids=sorted(reach),
                            gap_s=gap_s)
    by_day: dict[date, Counter[str]] = defaultdict(Counter)
    clips = 0
    for p in result.programs:
        mine = [i for i in p.items if i.campaign_id == campaign_id]
        if mine:
            by_day[p.date][p.township_id] += 1
            clips += len(mine)
    day_list = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    ours = re.compile(rf"[(（]{re.escape(campaign_id)}[,，、]")
    mine_w = [w for w in result.warnings if ours.search(w) or _SILENT.search(w)]
    return PlanPreview(start=start, end=end, by_day={d: by_day.get(d, Counter()) for d in day_list},
                       townships=sorted({registry.villages[v].township_id for v in reach}),
                       programs=sum(sum(c.values()) for c in by_day.values()), clips=clips, villages=len(reach),
                       warnings=mine_w, other_warnings=len(result.warnings) - len(mine_w))


# --- villages ------------------------------------------------------------------------------


@dataclass
class VillageValues:
    """The editable part of a village: its own slot start times, speaker kind and the name of its player."""

    slots: dict[str, str] = field(default_factory=dict)  # slot name -> "HH:MM" or "" for the county time
    speaker: str = "networked"
    player: str = ""  # a name from outreach.toml [players]; "" for the township's or [deliver] player


SPEAKERS: tuple[str, ...] = tuple(kind.value for kind in Speaker)
_FORM_HHMM = re.compile(r"[0-9]{1,2}:[0-9]{2}")


def village_values(registry: Registry, village_id: str) -> VillageValues:
    v = registry.villages[village_id]
    return VillageValues(slots={n: (v.slot_overrides[n].strftime("%H:%M") if n in v.slot_overrides else "")
                                for n in SLOT_NAMES},
                         speaker=v.speaker, player=v.player or "")


def village_field_errors(v: VillageValues, players: Collection[str]) -> dict[str, list[str]]:
    """Form values outside their closed sets, by field, before any YAML is built from them.

    The player must be one of `players` (outreach.toml [players]) or "" (the default): a form never
    carries a command. The speaker must be a known kind; a slot time is HH:MM or "".
    """
    errors: dict[str, list[str]] = {}
    if v.player and v.player not in players:
        names = "、".join(sorted(players))
        choices = f"「默认」或 {names}" if names else "「默认」（outreach.toml 里还没有定义 [players]）"
        errors["player"] = [f"{v.player[:60]!r} 不是已定义的播放程序；只能从下拉框里选{choices}。"
                            "播放命令只能由管理员在 outreach.toml 的 [players] 里定义"]
    if v.speaker not in SPEAKERS:
        errors["speaker"] = [f"未知的喇叭类型 {v.speaker[:40]!r}；只能是 {'、'.join(SPEAKERS)} 之一"]
    for name in SLOT_NAMES:
        t = v.slots.get(name, "").strip()
        if t and not _FORM_HHMM.fullmatch(t):
            errors[f"slot_{name}"] = [f"{t[:20]!r} 不是时刻；请写成 HH:MM，如 06:30，或留空用全县统一时间"]
    unknown = sorted(set(v.slots) - set(SLOT_NAMES))
    if unknown:
        errors["slots"] = [f"未知的时段 {unknown[0][:20]!r}；只有 morning（早间）和 evening（晚间）"]
    return errors


def apply_village(text: str, village_id: str, v: VillageValues) -> str:
    """county.yaml text with the village's slots, speaker and player set; comments and flow style kept."""
    doc = _load(text)
    villages = doc.get("villages") if isinstance(doc, CommentedMap) else None
    node = next((x for x in villages or [] if isinstance(x, dict) and x.get("id") == village_id), None)
    if node is None:
        raise StaleFile(f"村「{village_id}」已经不在 county.yaml 里了；请回到「村庄」列表重新打开")
    node["speaker"] = v.speaker.strip()
    slots = {n: DoubleQuotedScalarString(t.strip()) for n, t in v.slots.items() if t.strip()}
    if slots:
        old = node.get("slots")
        target = old if isinstance(old, CommentedMap) else CommentedMap()
        for name in list(target):
            if name not in slots:
                del target[name]
        for name, value in slots.items():
            if target.get(name) != value:
                target[name] = value
        if not isinstance(old, CommentedMap):
            target.fa.set_flow_style()
            node["slots"] = target
    else:
        node.pop("slots", None)
    if v.player.strip():
        node["player"] = v.player.strip()  # a name; village_field_errors and check_county refuse anything else
    else:
        node.pop("player", None)
    return _dump(doc)


def _village_key(line: str) -> tuple[str, str] | None:
    m = _VILLAGE_FIELD.search(line)
    if m is None:
        return None
    text = re.sub(r"^\s*[:：]\s*", "", line[m.end():])
    return (f"slot_{m[2]}" if m[1] == "slots" and m[2] else m[1]), text


def check_county(schedules_dir: Path, county_text: str, village_id: str, *,
                 players: Collection[str] | None = None) -> Checked:
    """Validate would-be county.yaml with the CLI's registry loader, next to the other registry files.

    `players` are outreach.toml's player names; pass them so a `player:` naming another is refused.
    """
    out = Checked()
    with temp_dir("edit") as tmp:
        for name in FILES:
            if name != "county.yaml" and (Path(schedules_dir) / name).is_file():
                shutil.copy2(Path(schedules_dir) / name, Path(tmp) / name)
        (Path(tmp) / "county.yaml").write_text(county_text, encoding="utf-8")
        try:
            out.registry = load_registry(Path(tmp), players=players)
        except OutreachError as exc:
            _sort_problems(str(exc).replace(str(tmp), str(schedules_dir)),
                           lambda line: f"villages[{village_id}]" in line, out, _village_key)
    return out


# --- saving ---------------------------------------------------------------------------------


def save(path: Path, new_text: str, base_stamp: str) -> None:
    """Write `new_text` to `path` atomically, unless the file changed since the form read it (StaleFile)."""
    current = Path(path).read_bytes().decode("utf-8-sig")
    if stamp(current) != base_stamp:
        raise StaleFile(f"{path.name} 在您打开表单之后被别人改过了；为免覆盖别人的修改，没有保存。"
                        "请看清改了什么，核对后再保存")
    write_text_atomic(Path(path), new_text)


# --- what the form was opened with --------------------------------------------------------


def _plain(node: Any) -> Any:
    """A loaded YAML node without comments or flow style, for a one-key-a-line dump."""
    if isinstance(node, Mapping):
        out = CommentedMap()
        for key, value in node.items():
            out[key] = _plain(value)
        return out
    if isinstance(node, list):
        return CommentedSeq([_plain(v) for v in node])
    return node


def _entry(text: str, key: str, ident: str | None) -> str:
    """The item of the list `key` whose id is `ident`, as block YAML one key a line; '' when absent or unreadable."""
    if not ident:
        return ""
    try:
        doc = _load(text)
    except OutreachError:
        return ""
    items = doc.get(key) if isinstance(doc, Mapping) else None
    node = next((x for x in items or [] if isinstance(x, Mapping) and x.get("id") == ident), None)
    if node is None:
        return ""
    y = _yaml()
    y.default_flow_style = False
    out = io.StringIO()
    y.dump(_plain(node), out)
    return out.getvalue()


def campaign_entry(text: str, campaign_id: str | None) -> str:
    """The campaign `campaign_id` of campaigns.yaml `text`, one key a line (to show how it changed)."""
    return _entry(text, "campaigns", campaign_id)


def village_entry(text: str, village_id: str) -> str:
    """The village `village_id` of county.yaml `text`, one key a line (to show how it changed)."""
    return _entry(text, "villages", village_id)
