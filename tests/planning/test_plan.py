"""The pure planner, against literal registries, campaigns and durations; one smoke run of the real CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from outreach.errors import PlanError
from outreach.planning.campaigns import Campaign, Targets
from outreach.planning.plan import DRAFT_AFTER_EDIT, Program, ProgramItem, build_programs, rotation


@dataclass(frozen=True)
class FakeSlot:
    name: str
    start: time
    max_minutes: int


@dataclass(frozen=True)
class FakeVillage:
    id: str
    name: str
    township_id: str


@dataclass(frozen=True)
class FakeScript:
    id: str
    status: str = "approved"
    valid_from: date | None = None
    valid_until: date | None = None
    edited_after_approval: bool = False
    approved_by: str | None = "王秀兰"
    approved_on: date | None = date(2026, 11, 20)

    @property
    def approved(self) -> bool:
        return self.status == "approved" and not self.edited_after_approval

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or day >= self.valid_from) and (
            self.valid_until is None or day <= self.valid_until)


MORNING = FakeSlot("morning", time(6, 30), 10)
EVENING = FakeSlot("evening", time(18, 30), 10)


@dataclass
class FakeRegistry:
    """The Registry shape the planner uses: villages, slots, blackouts, markets."""

    villages: dict[str, FakeVillage]
    slots: list[FakeSlot] = field(default_factory=lambda: [MORNING, EVENING])
    overrides: dict[str, list[FakeSlot]] = field(default_factory=dict)
    blackouts: set[tuple[str, date, str]] = field(default_factory=set)
    market_serves: dict[str, set[str]] = field(default_factory=dict)
    market_days: dict[str, set[date]] = field(default_factory=dict)

    @property
    def townships(self) -> dict[str, str]:
        return {v.township_id: v.township_id for v in self.villages.values()}

    @property
    def markets(self) -> dict[str, str]:
        return {m: m for m in self.market_serves}

    def village_slots(self, village_id: str) -> list[FakeSlot]:
        return self.overrides.get(village_id, self.slots)

    def is_blackout(self, village_id: str, day: date, slot: str) -> bool:
        return (village_id, day, slot) in self.blackouts

    def market_villages(self, market_id: str) -> set[str]:
        return self.market_serves[market_id]

    def market_villages_on(self, day: date) -> set[str]:
        out: set[str] = set()
        for m, days in self.market_days.items():
            if day in days:
                out |= self.market_serves[m]
        return out


def villages(township: str, n: int) -> dict[str, FakeVillage]:
    return {f"{township}-{i:02d}": FakeVillage(f"{township}-{i:02d}", f"{township}{i}村", township)
            for i in range(1, n + 1)}


def camp(cid: str, scripts: list[str], start: date, end: date, **kw) -> Campaign:
    targets = kw.pop("targets", Targets(county=True))
    return Campaign(id=cid, name=cid, scripts=scripts, start=start, end=end, targets=targets, **kw)


D0 = date(2026, 12, 1)
ALL_DAYS = date(2026, 1, 1), date(2027, 12, 31)
DEFAULT = camp("always", ["d-1", "d-2"], *ALL_DAYS, default=True, priority=1)
IDS = ["t-1", "t-2", "t-3", "t-4", "t-5", "f-1", "f-2", "f-3", "u-1", "d-1", "d-2", "long"]
SCRIPTS = {s: FakeScript(s) for s in IDS}
DUR = {s: 30.0 for s in IDS} | {"long": 700.0}
REG = FakeRegistry(villages("a", 6) | villages("b", 4))


def plan(campaigns, start=D0, end=D0 + timedelta(days=9), *, registry=REG, scripts=SCRIPTS, durations=DUR, **kw):
    return build_programs(registry, campaigns, scripts, durations, start, end, **kw)


def heard(result, campaign_id: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for p in result.programs:
        for item in p.items:
            if item.campaign_id == campaign_id:
                out.setdefault(p.village_id, set()).add(item.script_id)
    return out


@pytest.mark.parametrize(("n", "per_slot", "days", "evening_blackout"), [
    pytest.param(5, 1, 3, False, id="5-scripts-1-play-3-days"),
    pytest.param(2, 1, 2, True, id="2-scripts-evenings-always-blacked-out"),
    pytest.param(4, 1, 4, True, id="4-scripts-evenings-always-blacked-out"),
    pytest.param(5, 2, 3, True, id="5-scripts-2-plays-mornings-only"),
])
def test_fair_rotation_every_village_hears_every_script(n, per_slot, days, evening_blackout):
    ids = [f"t-{i}" for i in range(1, n + 1)]
    end = D0 + timedelta(days=days - 1)
    blackouts = {(v, D0 + timedelta(days=i), "evening") for v in REG.villages for i in range(days)} \
        if evening_blackout else set()
    reg = FakeRegistry(REG.villages, blackouts=blackouts)
    c = camp("winter", ids, D0, end, plays_per_slot=per_slot)
    got = heard(plan([c, DEFAULT], D0, end, registry=reg), "winter")
    assert got == {v: set(ids) for v in REG.villages}


def test_rotation_does_not_repeat_within_a_slot_and_villages_differ():
    c = camp("winter", ["t-1", "t-2", "t-3", "t-4", "t-5"], D0, D0 + timedelta(days=30), plays_per_slot=3)
    result = plan([c, DEFAULT])
    for p in result.programs:
        assert len(set(p.script_ids)) == len(p.script_ids) == 3
    first = {p.script_ids for p in result.programs if p.date == D0 and p.slot == "morning"}
    assert len(first) > 1  # neighbouring villages do not all hear the same clip at once


def test_rotation_formula():
    assert rotation(0, 0, 2, 4, 1, 0) == [0, 1, 2, 3]
    assert rotation(0, 1, 2, 4, 1, 0)[0] == 2
    assert rotation(1, 0, 2, 4, 1, 0)[0] == 1
    assert rotation(3, 1, 2, 4, 1, 5)[0] == (3 + 2 + 5) % 4


def test_sub_range_equals_slice_of_full_range():
    campaigns = [
        camp("winter", ["t-1", "t-2", "t-3", "t-4", "t-5"], D0, D0 + timedelta(days=40), plays_per_slot=2),
        camp("fraud", ["f-1", "f-2", "f-3"], D0 + timedelta(days=3), D0 + timedelta(days=20),
             targets=Targets(townships=["b"]), market_day_boost=1),
        DEFAULT,
    ]
    reg = FakeRegistry(REG.villages, market_serves={"m": {"a-01", "b-02"}},
                       market_days={"m": {D0 + timedelta(days=i) for i in range(0, 40, 5)}})
    full = plan(campaigns, D0, D0 + timedelta(days=29), registry=reg)
    sub_start, sub_end = D0 + timedelta(days=11), D0 + timedelta(days=17)
    sub = plan(campaigns, sub_start, sub_end, registry=reg)
    assert sub.programs == [p for p in full.programs if sub_start <= p.date <= sub_end]
    one = plan(campaigns, sub_start, sub_end, registry=reg, village_ids=["b-02"])
    assert one.programs == [p for p in sub.programs if p.village_id == "b-02"]


def test_blackout_skips_only_that_slot():
    reg = FakeRegistry(REG.villages, blackouts={("a-02", D0, "evening")})
    result = plan([DEFAULT], D0, D0, registry=reg)
    keys = {(p.village_id, p.slot) for p in result.programs}
    assert ("a-02", "evening") not in keys
    assert ("a-02", "morning") in keys
    assert len(result.programs) == 2 * len(REG.villages) - 1


def test_one_program_per_village_slot_day_with_aware_start_and_overrides():
    late = FakeSlot("evening", time(19, 45), 5)
    reg = FakeRegistry(REG.villages, overrides={"b-01": [MORNING, late]})
    result = plan([DEFAULT], D0, D0 + timedelta(days=1), registry=reg)
    assert len(result.programs) == 2 * 2 * len(REG.villages)
    p = next(p for p in result.programs if p.village_id == "b-01" and p.slot == "evening")
    assert p.start == datetime(2026, 12, 1, 19, 45, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert p.start.utcoffset() == timedelta(hours=8)
    assert p.township_id == "b"


def test_priority_then_id_order_and_urgent_first():
    campaigns = [
        camp("low", ["t-1"], D0, D0, priority=3),
        camp("high-b", ["t-2"], D0, D0, priority=7),
        camp("high-a", ["t-3"], D0, D0, priority=7),
        camp("alert", ["u-1"], D0, D0, priority=1, urgent=True),
        DEFAULT,
    ]
    p = plan(campaigns, D0, D0).programs[0]
    assert p.campaign_ids == ("alert", "high-a", "high-b", "low")
    assert p.items[0] == ProgramItem("u-1", "alert", urgent=True)
    assert p.duration_s == pytest.approx(4 * 30 + 3 * 1.0)


def test_market_day_boost_only_on_market_days_in_served_villages():
    market_day = D0 + timedelta(days=2)
    reg = FakeRegistry(REG.villages, market_serves={"m": {"a-01", "a-02"}, "n": {"b-01"}},
                       market_days={"m": {market_day}, "n": {D0 + timedelta(days=5)}})
    c = camp("market", ["t-1", "t-2", "t-3", "t-4"], D0, D0 + timedelta(days=9),
             targets=Targets(markets=["m", "n"]), market_day_boost=2)
    result = plan([c, DEFAULT], registry=reg)
    for p in result.programs:
        n_items = sum(1 for i in p.items if i.campaign_id == "market")
        boosted = (p.date == market_day and p.village_id in {"a-01", "a-02"}) or (
            p.date == D0 + timedelta(days=5) and p.village_id == "b-01")
        if p.village_id in {"a-01", "a-02", "b-01"}:
            assert n_items == (3 if boosted else 1), (p.village_id, p.date)
        else:
            assert n_items == 0


def test_default_fills_only_slots_nothing_else_claimed():
    c = camp("fraud", ["f-1", "f-2"], D0, D0 + timedelta(days=2), targets=Targets(villages=["a-01"]))
    result = plan([c, DEFAULT], D0, D0 + timedelta(days=4))
    for p in result.programs:
        claimed = p.village_id == "a-01" and p.date <= D0 + timedelta(days=2)
        assert p.campaign_ids == (("fraud",) if claimed else ("always",))


def test_default_fills_a_slot_whose_only_script_has_expired():
    scripts = SCRIPTS | {"f-1": FakeScript("f-1", valid_until=D0)}
    c = camp("fraud", ["f-1"], D0, D0 + timedelta(days=2))
    result = plan([c, DEFAULT], D0, D0 + timedelta(days=1), scripts=scripts)
    assert {p.date: p.campaign_ids for p in result.programs} == {D0: ("fraud",), D0 + timedelta(days=1): ("always",)}


def test_slot_left_empty_warns_and_emits_no_program():
    scripts = SCRIPTS | {"d-1": FakeScript("d-1", status="draft"), "d-2": FakeScript("d-2", valid_until=D0)}
    result = plan([DEFAULT], D0, D0 + timedelta(days=1), scripts=scripts, village_ids=["a-03"])
    assert {(p.date, p.slot) for p in result.programs} == {(D0, "morning"), (D0, "evening")}
    assert all(p.script_ids == ("d-2",) for p in result.programs)
    assert len(result.warnings) == 2
    assert all(w.startswith("a-03 2026-12-02 ") and "：没有可播的内容" in w and "这个时段不播" in w
               for w in result.warnings)


def test_fit_drops_lowest_priority_with_warning():
    reg = FakeRegistry(REG.villages, slots=[FakeSlot("morning", time(6, 30), 1)])  # 60 s
    durations = DUR | {"t-1": 40.0, "t-2": 25.0, "t-3": 15.0}
    campaigns = [camp("high", ["t-1"], D0, D0, priority=8), camp("mid", ["t-2"], D0, D0, priority=5),
                 camp("low", ["t-3"], D0, D0, priority=2), DEFAULT]
    result = plan(campaigns, D0, D0, registry=reg, durations=durations, village_ids=["a-01"])
    (p,) = result.programs
    assert p.script_ids == ("t-1", "t-3")  # 40 + 1 + 15 = 56 s; t-2 (25 s) no longer fits
    assert p.duration_s == pytest.approx(56.0)
    assert result.warnings == [
        "a-01 2026-12-01 morning：已舍去 't-2'（mid，25.0 秒）；1 分钟的时段已排满"]


def test_oversize_urgent_clip_is_an_error():
    c = camp("alert", ["long"], D0, D0, urgent=True)
    with pytest.raises(PlanError, match=r"紧急广播稿 'long'.*700\.0 秒，超过了 10 分钟的时段.*；请缩短广播稿，或延长时段"):
        plan([c, DEFAULT], D0, D0)


def test_missing_duration_names_the_script():
    durations = {k: v for k, v in DUR.items() if k != "t-2"}
    with pytest.raises(PlanError, match="广播稿 't-2' 没有录音时长；请先生成录音"):
        plan([camp("w", ["t-1", "t-2"], D0, D0 + timedelta(days=3)), DEFAULT], durations=durations)


def test_unknown_village_and_backwards_range_are_errors():
    with pytest.raises(PlanError, match="未知的村 zz-01；请使用 schedules/ 县名录里的编号"):
        plan([DEFAULT], village_ids=["zz-01"])
    with pytest.raises(PlanError, match="前后颠倒了；结束日期不能早于开始日期"):
        plan([DEFAULT], D0, D0 - timedelta(days=1))


def test_shared_script_is_not_repeated_in_one_program():
    campaigns = [camp("a", ["t-1"], D0, D0, priority=9), camp("b", ["t-1", "t-2"], D0, D0, priority=5), DEFAULT]
    for p in plan(campaigns, D0, D0).programs:
        assert p.script_ids == ("t-1", "t-2")


def test_program_properties():
    items = (ProgramItem("t-1", "x"), ProgramItem("t-2", "y"), ProgramItem("t-3", "x"))
    p = Program(D0, "morning", "a-01", "a", datetime(2026, 12, 1, 6, 30, tzinfo=ZoneInfo("Asia/Shanghai")),
                items, 92.0)
    assert p.script_ids == p.content_key == ("t-1", "t-2", "t-3")
    assert p.campaign_ids == ("x", "y")


def test_cli_plan_json_and_table_on_sample_workspace(workspace):
    from click.testing import CliRunner

    from outreach.cli import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["plan", "--from", "2026-12-01", "--to", "2026-12-03", "--json", "-w", str(workspace)])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert rows and set(rows[0]) == {"date", "slot", "village_id", "script_ids", "duration_s", "campaign_ids",
                                     "blocked"}
    assert all(r["script_ids"] for r in rows)
    res = runner.invoke(cli, ["plan", "--from", "2026-12-01", "--to", "2026-12-01", "--village", "lishu-03",
                              "-w", str(workspace)])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0].split() == ["日期", "时段", "村", "节目"]
    assert "梨树乡桃园村" in res.stdout and "lishu-03" not in res.stdout and "大庄镇" not in res.stdout
    res = runner.invoke(cli, ["plan", "--from", "2026-12-01", "--to", "2026-12-01", "--village", "nowhere-09",
                              "-w", str(workspace)])
    assert res.exit_code == 1 and "nowhere-09" in res.stderr
    res = runner.invoke(cli, ["plan", "--from", "2026-01-01", "--to", "2026-12-31", "-w", str(workspace)])
    assert res.exit_code == 1 and "92" in res.stderr


# --- scripts edited after approval ----------------------------------------------------------

EDITED = SCRIPTS | {"f-2": FakeScript("f-2", edited_after_approval=True)}


def test_edited_script_keeps_its_rotation_place_but_is_blocked():
    urgent = camp("alert", ["f-1", "f-2", "f-3"], D0, D0 + timedelta(days=5), urgent=True)
    before = plan([urgent, DEFAULT], D0, D0 + timedelta(days=5))
    after = plan([urgent, DEFAULT], D0, D0 + timedelta(days=5), scripts=EDITED)
    def alert_items(result):
        return [tuple(i.script_id for i in p.items if i.campaign_id == "alert") for p in result.programs]
    assert alert_items(before) == alert_items(after)
    hits = [p for p in after.programs if "f-2" in p.script_ids]
    assert hits
    for p in hits:
        [item] = p.blocked_items
        assert item == ProgramItem("f-2", "alert", urgent=True, blocked=DRAFT_AFTER_EDIT)
        assert "f-2" not in p.content_key and all(i.blocked is None for i in p.airable_items)
        # The blocked clip takes no time: what airs fits the slot.
        assert p.duration_s == pytest.approx(sum(30.0 for _ in p.airable_items) + max(len(p.airable_items) - 1, 0))
    # A slot whose only item is blocked is filled by the default campaign, and still lists the blocked item.
    only = [p for p in hits if p.campaign_ids[0] == "alert" and len(p.items) > 1]
    assert all(p.airable_items for p in hits) and only
    [alert] = after.alerts
    assert alert.startswith("紧急宣传活动 'alert'：广播稿 'f-2'") and f"的 {len(hits)} 个节目里它都【不会播出】" in alert
    assert "在 2026-11-20 经 王秀兰 批准后又被修改" in alert and before.alerts == []
    assert "`outreach scripts approve f-2 --by 姓名` 和 `outreach render`" in alert


def test_plain_draft_stays_out_and_non_urgent_edits_raise_no_alert():
    drafts = SCRIPTS | {"f-2": FakeScript("f-2", status="draft")}
    c = camp("fraud", ["f-1", "f-2", "f-3"], D0, D0 + timedelta(days=5))
    result = plan([c, DEFAULT], D0, D0 + timedelta(days=5), scripts=drafts)
    assert all("f-2" not in p.script_ids for p in result.programs)
    edited = plan([c, DEFAULT], D0, D0 + timedelta(days=5), scripts=EDITED)
    assert any(p.blocked_items for p in edited.programs) and edited.alerts == []


def test_cli_plan_shows_blocked_items_and_an_alert(workspace):
    from click.testing import CliRunner

    from outreach.cli import cli

    path = workspace / "audio_scripts" / "fraud-96110.md"
    path.write_text(path.read_text(encoding="utf-8").replace("一定要接听，", "一定要接听！"), encoding="utf-8")
    res = CliRunner().invoke(cli, ["plan", "--from", "2026-12-01", "--to", "2026-12-07", "--json", "-w", str(workspace)])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    blocked = [r for r in rows if r["blocked"]]
    assert blocked and all(b["script_id"] == "fraud-96110" and b["reason"] == DRAFT_AFTER_EDIT
                           for r in blocked for b in r["blocked"])
    assert all("fraud-96110" not in r["script_ids"] for r in rows)
    assert "警报：紧急宣传活动 'alert-fake-refund'：广播稿 'fraud-96110' 在 " in res.stderr
    assert "批准后又被修改，已退回草稿" in res.stderr
    # `run` asks the same question through the workspace.
    from outreach.config import load_config
    from outreach.planning.workspace import load, urgent_draft_alerts

    loaded = load(load_config(workspace))
    [alert] = urgent_draft_alerts(loaded, date(2026, 12, 1), date(2026, 12, 7))
    assert alert in res.stderr
