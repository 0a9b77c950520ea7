"""The pure planner: campaigns -> one program per (village, slot, day). No I/O, no clock."""

from __future__ import annotations

import zlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from outreach.config import TZ
from outreach.errors import PlanError
from outreach.planning.registry import village_voice

if TYPE_CHECKING:
    from outreach.content.script_model import Script
    from outreach.planning.campaigns import Campaign
    from outreach.planning.registry import Registry, SlotSpec

__all__ = [
    "DRAFT_AFTER_EDIT", "PlanResult", "Program", "ProgramItem", "build_programs", "rotation", "village_offset",
]

# The `blocked` reason of a script edited after its approval: it keeps its place so delivery logs it.
DRAFT_AFTER_EDIT = "批准后又被修改，已退回草稿"


@dataclass(frozen=True)
class ProgramItem:
    """One clip in a program, and the campaign that put it there."""

    script_id: str
    campaign_id: str
    urgent: bool = False
    # Why this planned item must not air (e.g. DRAFT_AFTER_EDIT); None when it may air.
    blocked: str | None = None


@dataclass(frozen=True)
class Program:
    """What one village's loudspeaker plays in one slot on one day."""

    date: date
    slot: str
    village_id: str
    township_id: str
    start: datetime
    items: tuple[ProgramItem, ...]
    duration_s: float
    # The village's own voice (registry.village_voice), e.g. an edge dialect voice; None: the library's.
    voice: str | None = None

    @property
    def script_ids(self) -> tuple[str, ...]:
        return tuple(i.script_id for i in self.items)

    @property
    def campaign_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.campaign_id for i in self.items))

    @property
    def airable_items(self) -> tuple[ProgramItem, ...]:
        """The items that may go on air, in play order."""
        return tuple(i for i in self.items if i.blocked is None)

    @property
    def blocked_items(self) -> tuple[ProgramItem, ...]:
        """Planned items that must not air; delivery logs each one as failed with its reason."""
        return tuple(i for i in self.items if i.blocked is not None)

    @property
    def content_key(self) -> tuple[str, ...]:
        """Two programs with equal keys have identical audio (the voice is part of it when a village has one)."""
        return audio_key((i.script_id for i in self.airable_items), self.voice)


def audio_key(script_ids: Iterable[str], voice: str | None) -> tuple[str, ...]:
    """The key of a distinct program's audio: its clips in order, and the voice when a village has its own.

    Programs with equal keys share one joined MP3 (`Program.content_key`, and the resolver's joins).
    """
    ids = tuple(script_ids)
    return ids if voice is None else (*ids, f"@{voice}")


@dataclass(frozen=True)
class PlanResult:
    """The programs of a plan, in (date, start, village) order, and what was dropped or empty."""

    programs: list[Program]
    warnings: list[str] = field(default_factory=list)
    # Urgent campaigns whose scripts were edited after approval: shown loudly by plan, run and export.
    alerts: list[str] = field(default_factory=list)


def village_offset(campaign_id: str, village_id: str) -> int:
    """A stable per-(campaign, village) offset, so neighbouring villages hear different scripts."""
    return zlib.crc32(f"{campaign_id}/{village_id}".encode())


def rotation(day_index: int, slot_index: int, n_slots: int, n_scripts: int, per_slot: int, offset: int) -> list[int]:
    """Script indices in the order a slot tries them; the first `per_slot` (unless taken) play.

    start = (day_index * per_slot + slot_index * max(per_slot, n_scripts // n_slots) + offset) mod n.
    Each slot position alone steps `per_slot` scripts a day, so every script reaches every slot
    within ceil(n / per_slot) days even when a village's other slot is always blacked out; the
    slots of one day are spread across the list. It depends only on the day's index in the
    campaign, never on the range asked for.
    """
    if n_scripts <= 0:
        return []
    shift = max(per_slot, n_scripts // max(n_slots, 1))
    start = (day_index * per_slot + slot_index * shift + offset) % n_scripts
    return [(start + j) % n_scripts for j in range(n_scripts)]


def _candidates(
    campaign: Campaign, eligible: Sequence[str], village_id: str, day: date, slot_index: int,
    n_slots: int, count: int, taken: set[str],
) -> list[str]:
    picked: list[str] = []
    order = rotation((day - campaign.start).days, slot_index, n_slots, len(eligible),
                     campaign.plays_per_slot, village_offset(campaign.id, village_id))
    for i in order:
        if len(picked) >= count:
            break
        sid = eligible[i]
        if sid not in taken:
            picked.append(sid)
            taken.add(sid)
    return picked


def _place(
    group: Sequence[Campaign], reach: Mapping[str, set[str]], eligible: Mapping[str, Sequence[str]],
    village_id: str, day: date, slot_index: int, n_slots: int, boosted: bool,
    durations: Mapping[str, float], blocked: Mapping[str, str],
) -> list[ProgramItem]:
    """The items the campaigns of `group` want in one slot, in group order, no script twice.

    A script in `blocked` keeps its rotation place as a blocked item (it will not air).
    """
    taken: set[str] = set()
    items: list[ProgramItem] = []
    for c in group:
        if village_id not in reach[c.id]:
            continue
        count = c.plays_per_slot + (c.market_day_boost if boosted else 0)
        for sid in _candidates(c, eligible[c.id], village_id, day, slot_index, n_slots, count, taken):
            if sid in blocked:
                items.append(ProgramItem(sid, c.id, c.urgent, blocked=blocked[sid]))
                continue
            if sid not in durations:
                raise PlanError(f"广播稿 '{sid}' 没有录音时长；请先生成录音（`outreach render`），或检查 audio_scripts/")
            items.append(ProgramItem(sid, c.id, c.urgent))
    return items


def _eligible(campaign: Campaign, scripts: Mapping[str, Script], day: date) -> list[str]:
    """Approved scripts, and scripts edited after approval (placed but blocked), valid on `day`."""
    return [s for s in campaign.scripts
            if (scripts[s].approved or _edited(scripts[s])) and scripts[s].valid_on(day)]


def _edited(script: Script) -> bool:
    return bool(getattr(script, "edited_after_approval", False))


def _alerts(programs: Sequence[Program], scripts: Mapping[str, Script]) -> list[str]:
    """One loud line per (urgent campaign, script) that was edited after approval and will not air."""
    hits: dict[tuple[str, str], list[Program]] = {}
    for p in programs:
        for item in p.blocked_items:
            if item.urgent:
                hits.setdefault((item.campaign_id, item.script_id), []).append(p)
    out = []
    for (cid, sid), progs in sorted(hits.items()):
        s = scripts[sid]
        first, last = min(p.date for p in progs), max(p.date for p in progs)
        out.append(f"紧急宣传活动 '{cid}'：广播稿 '{sid}' 在 {s.approved_on} 经 {s.approved_by} 批准后又被修改，"
                   f"已退回草稿；{first.isoformat()}..{last.isoformat()} 的 {len(progs)} 个节目里它都【不会播出】。"
                   f"请审核文字，然后运行 `outreach scripts approve {sid} --by 姓名` 和 `outreach render`")
    return out


def _fit(
    items: Iterable[ProgramItem], durations: Mapping[str, float], limit_s: float, gap_s: float,
    where: str, max_minutes: int, warnings: list[str],
) -> tuple[list[ProgramItem], float]:
    """Keep items in order while they fit; drop (and warn about) the ones that do not."""
    kept: list[ProgramItem] = []
    total = 0.0
    for item in items:
        if item.blocked is not None:  # never airs: it takes no time, delivery only logs it
            kept.append(item)
            continue
        dur = durations[item.script_id]
        if item.urgent and dur > limit_s:
            raise PlanError(
                f"紧急广播稿 '{item.script_id}'（{item.campaign_id}）长 {dur:.1f} 秒，超过了 {max_minutes} 分钟的"
                f"时段（{where}）；请缩短广播稿，或延长时段"
            )
        added = dur + (gap_s if any(k.blocked is None for k in kept) else 0.0)
        if total + added <= limit_s:
            kept.append(item)
            total += added
        else:
            warnings.append(
                f"{where}：已舍去 '{item.script_id}'（{item.campaign_id}，{dur:.1f} 秒）；"
                f"{max_minutes} 分钟的时段已排满"
            )
    return kept, total


def _chosen_villages(registry: Registry, campaigns: Sequence[Campaign], scripts: Mapping[str, Script],
                     start: date, end: date, village_ids: Collection[str] | None) -> list[str]:
    """The villages to plan, sorted, after checking the range, the village ids and the campaigns' scripts."""
    if end < start:
        raise PlanError(f"安排的日期范围 {start.isoformat()}..{end.isoformat()} 前后颠倒了；"
                        "结束日期不能早于开始日期")
    known = registry.villages
    if village_ids is None:
        chosen = sorted(known)
    else:
        unknown = sorted(set(village_ids) - set(known))
        if unknown:
            raise PlanError(f"未知的村 {'、'.join(unknown)}；请使用 schedules/ 县名录里的编号")
        chosen = sorted(set(village_ids))
    for c in campaigns:
        for sid in c.scripts:
            if sid not in scripts:
                raise PlanError(f"宣传活动 '{c.id}' 用到的广播稿 '{sid}' 不在 audio_scripts/ 里；"
                                "请补上这篇广播稿，或从宣传活动里删掉它")
    return chosen


def _plan_slot(registry: Registry, vid: str, day: date, slot_index: int, slots: Sequence[SlotSpec],
               groups: tuple[list[Campaign], list[Campaign]], reach: Mapping[str, set[str]],
               eligible: Mapping[str, list[str]], boosted: bool, clip_durations: Mapping[str, float],
               blocked: Mapping[str, str], gap_s: float, warnings: list[str]) -> Program | None:
    """The program of one village slot on `day`, or None (with a warning) when nothing can go in it."""
    slot = slots[slot_index]
    where = f"{vid} {day.isoformat()} {slot.name}"
    limit_s = slot.max_minutes * 60.0
    kept: list[ProgramItem] = []
    total = 0.0
    # The default campaign is tried only when nothing else placed (and fitted) an airable item;
    # blocked items stay in front so delivery logs them.
    for group in groups:
        items = _place(group, reach, eligible, vid, day, slot_index, len(slots), boosted,
                       clip_durations, blocked)
        fitted, total = _fit(items, clip_durations, limit_s, gap_s, where, slot.max_minutes, warnings)
        kept += fitted
        if any(i.blocked is None for i in kept):
            break
    if not any(i.blocked is None for i in kept) and kept:
        warnings.append(f"{where}：排进来的只有批准后又被修改的广播稿；重新批准之前，"
                        "这个时段不播")
    if not kept:
        warnings.append(f"{where}：没有可播的内容（默认宣传活动里没有有效的广播稿）；这个时段不播")
        return None
    return Program(
        date=day, slot=slot.name, village_id=vid, township_id=registry.villages[vid].township_id,
        start=datetime.combine(day, slot.start.replace(tzinfo=None), tzinfo=TZ),
        items=tuple(kept), duration_s=round(total, 3), voice=village_voice(registry, vid),
    )


def build_programs(
    registry: Registry,
    campaigns: Sequence[Campaign],
    scripts: Mapping[str, Script],
    clip_durations: Mapping[str, float],
    start: date,
    end: date,
    *,
    village_ids: Collection[str] | None = None,
    gap_s: float = 1.0,
) -> PlanResult:
    """Plan every (village, slot, day) from `start` to `end` inclusive.

    Urgent campaigns' clips come first, then by priority (high first), then campaign id; the default
    campaign fills only slots nothing else claimed. Raises PlanError for a backwards range, an
    unknown village, a campaign script missing from the library, a script with no duration, or an
    urgent clip longer than its slot.
    """
    chosen = _chosen_villages(registry, campaigns, scripts, start, end, village_ids)
    ordered = sorted((c for c in campaigns if not c.default), key=lambda c: (not c.urgent, -c.priority, c.id))
    defaults = sorted((c for c in campaigns if c.default), key=lambda c: c.id)
    reach = {c.id: c.target_villages(registry) for c in campaigns}
    blocked = {sid: DRAFT_AFTER_EDIT for sid, s in scripts.items() if _edited(s)}

    programs: list[Program] = []
    warnings: list[str] = []
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        market_villages = registry.market_villages_on(day)
        active = [c for c in ordered if c.active_on(day)]
        active_defaults = [c for c in defaults if c.active_on(day)]
        eligible = {c.id: _eligible(c, scripts, day) for c in active}
        # The default campaign exists to fill silence, so it only offers scripts that can air.
        eligible |= {c.id: [s for s in _eligible(c, scripts, day) if s not in blocked] for c in active_defaults}
        for vid in chosen:
            slots = registry.village_slots(vid)
            for slot_index, slot in enumerate(slots):
                if registry.is_blackout(vid, day, slot.name):
                    continue
                program = _plan_slot(registry, vid, day, slot_index, slots, (active, active_defaults), reach,
                                     eligible, vid in market_villages, clip_durations, blocked, gap_s, warnings)
                if program is not None:
                    programs.append(program)
    programs.sort(key=lambda p: (p.date, p.start, p.village_id, p.slot))
    return PlanResult(programs, warnings, _alerts(programs, scripts))
