"""The county registry: townships, villages, markets, broadcast slots and blackout days.

Loaded once from three human-edited files in a workspace's ``schedules/`` folder
(county.yaml, markets.yaml, slots.yaml) and validated into typed, frozen models.
load_registry() reports every problem at once, each naming the file, line, key
or id, and the fix.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, PlainValidator, model_validator

from outreach.config import PlayerName, unknown_player
from outreach.content.names import resolve
from outreach.dates import TextDate
from outreach.errors import MarketRuleError, RegistryError
from outreach.labels import SLOT
from outreach.planning.market_days import MarketRule, parse_rule
from outreach.tts.voices import EDGE_VOICES, is_known_voice
from outreach.yamlread import (
    Entry, Problems, StrictModel, YamlMap, check_keys, declared_ids, read_yaml, validate_entry, validate_items,
)

__all__ = [
    "SlotName", "SlotSpec", "Township", "Village", "Market", "Blackout", "Registry",
    "load_registry", "FILES", "MAX_SLOT_MINUTES", "resolve_village", "resolve_market", "resolve_township",
    "village_voice",
]

SlotName = Literal["morning", "evening"]
SLOT_NAMES: tuple[SlotName, ...] = ("morning", "evening")
FILES = ("county.yaml", "markets.yaml", "slots.yaml")
MAX_SLOT_MINUTES = 60
# What an id names, in messages.
_KINDS = {"township": "乡镇", "village": "村", "townships": "乡镇", "villages": "村"}
_ID = re.compile(r"[a-z0-9][a-z0-9-]*")
_HHMM = re.compile(r"(\d{1,2}):(\d{2})")


def _parse_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    m = _HHMM.fullmatch(str(value).strip())
    if m is None or int(m[1]) > 23 or int(m[2]) > 59:
        raise ValueError(f"{value!r} 不是时刻；请写成 HH:MM，如 06:30")
    return time(int(m[1]), int(m[2]))


def _check_id(value: Any) -> Any:
    if isinstance(value, str) and not _ID.fullmatch(value):
        raise ValueError(f"{value!r} 不是有效的编号；只能用小写字母、数字和 '-'（如 dazhuang-01）")
    return value


def _to_rule(value: Any) -> MarketRule:
    if isinstance(value, MarketRule):
        return value
    if isinstance(value, date):  # YAML reads an unquoted 2026-12-05 as a date
        value = value.isoformat()
    elif isinstance(value, list):
        value = ", ".join(v.isoformat() if isinstance(v, date) else str(v) for v in value)
    if not isinstance(value, str):
        raise ValueError("须为文字，如 逢农历三、八")
    try:
        return parse_rule(value)
    except MarketRuleError as exc:
        raise ValueError(str(exc)) from None


def _check_name(value: Any) -> Any:
    # Names end up in file names, ID3 tags and reports: one line, no control characters.
    if isinstance(value, str):
        bad = next((ch for ch in value if unicodedata.category(ch) in ("Cc", "Zl", "Zp")), None)
        if bad is not None:
            raise ValueError(f"含有控制字符（U+{ord(bad):04X}）；请把名称写在一行里")
        if not value.strip():
            raise ValueError("是空的；请填写名称")
        if "/" in value or "\\" in value or value.strip().strip(".") == "":
            raise ValueError(f"{value!r} 里有 / 或 \\，或只有点号；名称会用作U盘上的文件夹名，请去掉这些字符")
    return value


def _check_voice(value: Any) -> Any:
    if isinstance(value, str) and not is_known_voice(value):
        dialects = "、".join(v.name for v in EDGE_VOICES if v.locale != "zh-CN")
        raise ValueError(f"未知的音色 {value!r}；请使用方言音色，如 {dialects}，"
                         "或 `outreach voices` 列出的任一音色")
    return value


Clock = Annotated[time, BeforeValidator(_parse_time), PlainSerializer(lambda t: t.strftime("%H:%M"))]
Name = Annotated[str, BeforeValidator(_check_name), Field(min_length=1, max_length=100)]
Id = Annotated[str, BeforeValidator(_check_id)]
Rule = Annotated[MarketRule, PlainValidator(_to_rule), PlainSerializer(str)]
VoiceName = Annotated[str, BeforeValidator(_check_voice)]


class SlotSpec(StrictModel):
    """A daily broadcast slot: when it starts and how long a program may run."""

    name: SlotName
    start: Clock
    max_minutes: int = Field(ge=1, le=MAX_SLOT_MINUTES)

    @property
    def end_minute(self) -> int:
        """Minutes after midnight at which the slot's longest program ends."""
        return self.start.hour * 60 + self.start.minute + self.max_minutes


class Township(StrictModel):
    """A township (镇/乡)."""

    id: Id
    name: Name
    # Name of the player (outreach.toml [players]) for this township's networked villages (overrides [deliver] player).
    player: PlayerName | None = None
    # TTS voice for this township's villages, e.g. an edge dialect voice (see village_voice).
    voice: VoiceName | None = None


class Speaker(StrEnum):
    """A village loudspeaker's kind (YAML `speaker:`); outreach.delivery.CHANNELS names the channel serving each."""

    NETWORKED = "networked"  # played centrally at slot time
    STATION = "station"  # a village station plays its own buffer
    OFFLINE = "offline"  # USB packs


class Village(StrictModel):
    """A village and its loudspeaker; YAML keys `township` and `slots`."""

    id: Id
    name: Name
    township_id: str = Field(alias="township")
    population: int = Field(ge=1, le=100_000)
    speaker: Speaker
    slot_overrides: dict[SlotName, Clock] = Field(default_factory=dict, alias="slots")
    # Name of the player (outreach.toml [players]) for this village (overrides its township's and [deliver] player).
    player: PlayerName | None = None
    # TTS voice for this village's clips (overrides its township's voice).
    voice: VoiceName | None = None


class Market(StrictModel):
    """A market (集) with its market-day rule and the villages it serves."""

    id: Id
    name: Name
    rule: Rule
    township_ids: list[str] = Field(default_factory=list, alias="townships")
    village_ids: list[str] = Field(default_factory=list, alias="villages")

    @model_validator(mode="after")
    def _serves_someone(self) -> Market:
        if not self.township_ids and not self.village_ids:
            raise ValueError("没有服务任何村；请填写 `townships` 或 `villages`（或两者都填）")
        return self


class Blackout(StrictModel):
    """Days on which some villages stay silent (all slots, or only those listed)."""

    dates: list[TextDate] = Field(min_length=1)
    township_ids: list[str] = Field(default_factory=list, alias="townships")
    village_ids: list[str] = Field(default_factory=list, alias="villages")
    slots: list[SlotName] = Field(default_factory=list)
    reason: str = Field(min_length=1)

    @model_validator(mode="after")
    def _targets_someone(self) -> Blackout:
        if not self.township_ids and not self.village_ids:
            raise ValueError("没有指定停播的村；请填写 `townships` 或 `villages`（或两者都填）")
        return self


@dataclass(frozen=True)
class Registry:
    """The validated county: look-ups for slots, blackouts and market days."""

    county: str
    townships: dict[str, Township]
    villages: dict[str, Village]
    markets: dict[str, Market]
    slots: dict[SlotName, SlotSpec]  # the county's default times; a village may move its own
    blackouts: list[Blackout]

    def _village(self, village_id: str) -> Village:
        if village_id not in self.villages:
            raise RegistryError(f"未知的村编号 {village_id!r}；请使用 schedules/county.yaml 里的编号")
        return self.villages[village_id]

    def _market(self, market_id: str) -> Market:
        if market_id not in self.markets:
            raise RegistryError(f"未知的集市编号 {market_id!r}；请使用 schedules/markets.yaml 里的编号")
        return self.markets[market_id]

    def village_slots(self, village_id: str) -> list[SlotSpec]:
        """The village's slots with its overrides applied, sorted by start time."""
        return _village_slots(self.slots, self._village(village_id))

    def is_blackout(self, village_id: str, day: date, slot: SlotName) -> bool:
        """True if the village must stay silent in `slot` on `day`."""
        village = self._village(village_id)
        return any(
            day in b.dates
            and (village.id in b.village_ids or village.township_id in b.township_ids)
            and (not b.slots or slot in b.slots)
            for b in self.blackouts
        )

    def market_villages(self, market_id: str) -> set[str]:
        """Ids of the villages a market serves, its townships expanded."""
        market = self._market(market_id)
        return set(market.village_ids) | {
            v.id for v in self.villages.values() if v.township_id in market.township_ids
        }

    def market_dates(self, market_id: str, start: date, end: date) -> list[date]:
        """The market's days from `start` to `end`, both included."""
        return self._market(market_id).rule.dates(start, end)

    def market_villages_on(self, day: date) -> set[str]:
        """Ids of the villages served by any market held on `day`."""
        served: set[str] = set()
        for market in self.markets.values():
            if market.rule.matches(day):
                served |= self.market_villages(market.id)
        return served


def _village_slots(slots: dict[SlotName, SlotSpec], village: Village) -> list[SlotSpec]:
    specs = [
        spec.model_copy(update={"start": village.slot_overrides[name]}) if name in village.slot_overrides else spec
        for name, spec in slots.items()
    ]
    return sorted(specs, key=lambda s: (s.start, SLOT_NAMES.index(s.name)))


def _slot_problems(specs: list[SlotSpec]) -> list[tuple[SlotName | None, str]]:
    """Ordering and overlap problems of one day's slots (given sorted by start), keyed by slot name."""
    found: list[tuple[SlotName | None, str]] = []
    names = [s.name for s in specs]
    if names != sorted(names, key=SLOT_NAMES.index):
        times = "，".join(f"{s.name} {s.start:%H:%M}" for s in sorted(specs, key=lambda s: SLOT_NAMES.index(s.name)))
        found.append((None, f"早间时段（morning）必须在晚间时段（evening）之前开始（{times}）；请改正时间"))
    for a, b in zip(specs, specs[1:]):
        if a.end_minute > b.start.hour * 60 + b.start.minute:
            found.append((a.name, f"{a.start:%H:%M} 开始加 {a.max_minutes} 分钟，会压到 {b.start:%H:%M} 开始的"
                          f"{SLOT[b.name]}时段（{b.name}）；请提前开始时间，或在 slots.yaml 里调小 max_minutes"))
    if specs and specs[-1].end_minute > 24 * 60:
        last = specs[-1]
        found.append((last.name, f"{last.start:%H:%M} 开始加 {last.max_minutes} 分钟，会超过午夜；请提前开始时间"))
    return found


def _unique(entries: list[Entry], path: Path, problems: Problems) -> dict[str, Any]:
    seen: dict[str, Entry] = {}
    for e in entries:
        if e.item.id in seen:
            problems.add(path, e.line, e.label, f"编号与第 {seen[e.item.id].line} 行的重复；"
                         "每一项的编号都要不同")
        else:
            seen[e.item.id] = e
    return {k: e.item for k, e in seen.items()}


def _refs(ids: Iterable[str], known: list[str] | None, kind: str, path: Path, e: Entry, key: str,
          problems: Problems) -> None:
    """Report ids not in `known`; known is None when county.yaml could not be read."""
    for ref in ids if known is not None else []:
        if ref not in known:
            choices = list(dict.fromkeys(known))
            sample = "、".join(choices[:5]) + (" 等" if len(choices) > 5 else "")
            problems.add(path, e.line, f"{e.label}.{key}",
                         f"未知的{_KINDS[kind]}编号 {ref!r}；请使用其中一个：{sample}（见 county.yaml）")


def _load_slots(doc: YamlMap | None, path: Path, problems: Problems) -> dict[SlotName, SlotSpec]:
    if doc is None or not isinstance(doc.get("slots"), dict):
        if doc is not None and "slots" in doc:
            problems.add(path, doc.line, "slots", "须在 morning: 和 evening: 下分别写 start 和 max_minutes")
        return {}
    raw = doc["slots"]
    slots: dict[SlotName, SlotSpec] = {}
    for name in raw:
        if name not in SLOT_NAMES:
            problems.add(path, raw.line, f"slots.{name}", "未知的时段；只有 morning（早间）和 evening（晚间）")
    for name in SLOT_NAMES:
        if name not in raw:
            problems.add(path, raw.line, f"slots.{name}", "缺少此时段；请补上它的 start 和 max_minutes")
            continue
        entry = raw[name]
        spec = validate_entry(SlotSpec, entry, path, getattr(entry, "line", raw.line), f"slots.{name}", problems,
                         name=name)
        if spec is not None:
            slots[name] = spec
    if len(slots) == len(SLOT_NAMES):
        for name, what in _slot_problems(sorted(slots.values(), key=lambda s: s.start)):
            problems.add(path, getattr(raw.get(name), "line", raw.line), f"slots.{name}" if name else "slots", what)
    return slots


def _county_header(doc: Any, path: Path, problems: Problems) -> tuple[str, list[str] | None, list[str] | None]:
    """county.yaml's county name and the township and village ids it declares (None: unreadable file)."""
    if doc is None:
        return "", None, None
    check_keys(doc, path, ("county", "townships", "villages"), (), problems)
    county = doc.get("county") or ""
    if "county" in doc and (not isinstance(county, str) or not county.strip()):
        problems.add(path, doc.line, "county", "须为县名，如 槐川县")
    for key in ("townships", "villages"):
        if key in doc and not doc[key]:
            problems.add(path, doc.line, key, f"是空的；请至少写一个{_KINDS[key]}")
    return county, declared_ids(doc, "townships"), declared_ids(doc, "villages")


def load_registry(schedules_dir: Path, *, players: Collection[str] | None = None) -> Registry:
    """Load and validate county.yaml, markets.yaml and slots.yaml from `schedules_dir`.

    `players` are the player names outreach.toml defines ([players]); when given, a township's or
    village's `player:` naming another is a problem too (workspace.load and the village form pass them).
    Raises RegistryError listing every problem found, one per line, each naming
    the file (and line), the key or id, and how to fix it.
    """
    problems = Problems()
    county_path, markets_path, slots_path = (Path(schedules_dir) / name for name in FILES)
    county_doc = read_yaml(county_path, problems)
    markets_doc = read_yaml(markets_path, problems)
    slots_doc = read_yaml(slots_path, problems)

    county, known_townships, known_villages = _county_header(county_doc, county_path, problems)
    township_entries = validate_items(county_doc, "townships", Township, county_path, problems)
    townships = _unique(township_entries, county_path, problems)
    village_entries = validate_items(county_doc, "villages", Village, county_path, problems)
    villages = _unique(village_entries, county_path, problems)
    for e in [*township_entries, *village_entries] if players is not None else []:
        if e.item.player is not None and e.item.player not in players:
            problems.add(county_path, e.line, f"{e.label}.player", unknown_player(e.item.player, players))
    for e in village_entries:
        _refs([e.item.township_id], known_townships, "township", county_path, e, "township", problems)

    if slots_doc is not None:
        check_keys(slots_doc, slots_path, ("slots",), ("blackouts",), problems)
    slots = _load_slots(slots_doc, slots_path, problems)
    if len(slots) == len(SLOT_NAMES):
        county_wide = _slot_problems(sorted(slots.values(), key=lambda s: s.start))
        for e in village_entries:  # only what a village's own start times cause; slots.yaml reports the rest
            for name, what in _slot_problems(_village_slots(slots, e.item)):
                if (name, what) not in county_wide:
                    problems.add(county_path, e.line, f"{e.label}.slots" + (f".{name}" if name else ""), what)
    blackout_entries = validate_items(slots_doc, "blackouts", Blackout, slots_path, problems)
    for e in blackout_entries:
        _refs(e.item.township_ids, known_townships, "township", slots_path, e, "townships", problems)
        _refs(e.item.village_ids, known_villages, "village", slots_path, e, "villages", problems)

    if markets_doc is not None:
        check_keys(markets_doc, markets_path, ("markets",), (), problems)
    market_entries = validate_items(markets_doc, "markets", Market, markets_path, problems)
    markets = _unique(market_entries, markets_path, problems)
    for e in market_entries:
        _refs(e.item.township_ids, known_townships, "township", markets_path, e, "townships", problems)
        _refs(e.item.village_ids, known_villages, "village", markets_path, e, "villages", problems)

    if problems:
        head = f"县名录（{schedules_dir}）有 {len(problems)} 处问题："
        raise RegistryError("\n  ".join([head, *problems.lines()]))
    return Registry(county=county, townships=townships, villages=villages, markets=markets,
                    slots=slots, blackouts=[e.item for e in blackout_entries])


def village_voice(registry: Registry, village_id: str) -> str | None:
    """The voice a village's clips are spoken in: its own, else its township's, else None (the library's)."""
    # getattr: the planner also runs on registry-like test doubles without voices.
    village = registry.villages[village_id]
    if own := getattr(village, "voice", None):
        return own
    township = getattr(registry, "townships", {}).get(village.township_id)
    return getattr(township, "voice", None)


# --- names or ids, as a person types them -------------------------------------------


def _resolve(kind: str, entries: dict[str, Any], text: str, listing: str) -> str:
    """The id of the entry whose id or name is `text`; else RegistryError with the closest ones (difflib)."""
    return resolve(kind, {i: e.name for i, e in entries.items()}, text, f"运行 `{listing}` 查看全部编号和名称",
                   RegistryError)


def resolve_village(registry: Registry, text: str) -> str:
    """The village id for an id or a name such as 大庄村; unknown ones get "您是不是要找：…"."""
    return _resolve("村", registry.villages, text, "outreach registry")


def resolve_market(registry: Registry, text: str) -> str:
    """The market id for an id or a name such as 大庄集."""
    return _resolve("集市", registry.markets, text, "outreach registry --json")


def resolve_township(registry: Registry, text: str) -> str:
    """The township id for an id or a name such as 大庄镇."""
    return _resolve("乡镇", registry.townships, text, "outreach registry")
