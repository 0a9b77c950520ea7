"""Coverage queries and the coverage/gaps commands, on a small literal dataset (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from coverage_db import cli_ws, engine  # noqa: F401  (fixtures)
from sqlmodel import Session

import outreach.cli.coverage_cmds  # noqa: F401  (registers the commands)
from outreach import coverage as cov
from outreach.cli.base import cli
from outreach.db import session
from outreach.errors import CoverageError
from outreach.models import Broadcast, BroadcastScript, Campaign, Evidence, Handout, Market, Township, Village
from outreach.records import BroadcastPlan, mark_program, record_planned

D = dt.date
UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
MARCH = (D(2026, 3, 1), D(2026, 3, 31))
INJECTION = "x' OR 1=1 --"

# (date, slot, village, township, campaign, status, scripts)
BROADCASTS = [
    (D(2026, 3, 1), "morning", "v1", "t1", "fraud", "played", "s1,s2"),
    (D(2026, 3, 1), "evening", "v1", "t1", "fraud", "played", "s1"),
    (D(2026, 3, 2), "morning", "v1", "t1", "fraud", "missed", "s1"),
    (D(2026, 3, 3), "morning", "v1", "t1", "fraud", "confirmed", "s2"),
    (D(2026, 3, 5), "morning", "v1", "t1", "fraud", "planned", "s1"),
    (D(2026, 3, 1), "morning", "v2", "t1", "fraud", "confirmed", "s1"),
    (D(2026, 3, 2), "morning", "v2", "t1", "fraud", "exported", "s2"),
    (D(2026, 3, 3), "morning", "v2", "t1", "fraud", "exported", "s1"),
    (D(2026, 3, 1), "morning", "v3", "t2", "fraud", "failed", "s1"),
    (D(2026, 2, 20), "morning", "v3", "t2", "fraud", "played", "s1"),
    (D(2026, 3, 1), "morning", "v1", "t1", "traffic", "played", "r1"),
]
# (market, date, leaflets, people, topics)
HANDOUTS = [
    ("m1", D(2026, 3, 3), 200, 150, "anti_fraud"),
    ("m1", D(2026, 3, 3), 50, 40, "traffic"),
    ("m1", D(2026, 3, 8), 100, 80, "anti_fraud,traffic"),
    ("m2", D(2026, 3, 6), 120, 90, "anti_fraud"),
    ("m2", D(2026, 2, 26), 999, 999, "anti_fraud"),
]
TARGETS = ["v1", "v2", "v3", "v4"]
# What each status rests on, as migration 0007 backfilled it: a play means the player ran its length.
EVIDENCE = {"played": "player", "confirmed": "confirmed", "exported": "exported"}


def populate(s: Session) -> None:
    s.execute(sa.insert(Township.__table__), [{"id": "t1", "name": "东乡"}, {"id": "t2", "name": "西乡"}])
    s.execute(sa.insert(Village.__table__), [
        {"id": "v1", "name": "一村", "township_id": "t1", "population": 1000, "speaker": "networked"},
        {"id": "v2", "name": "二村", "township_id": "t1", "population": 500, "speaker": "offline"},
        {"id": "v3", "name": "三村", "township_id": "t2", "population": 2000, "speaker": "networked"},
        {"id": "v4", "name": "四村", "township_id": "t2", "population": 800, "speaker": "networked"},
    ])
    s.execute(sa.insert(Market.__table__), [
        {"id": "m1", "name": "大庄集"}, {"id": "m2", "name": "梨树集"}, {"id": "m3", "name": "河西集"},
    ])
    s.execute(sa.insert(Campaign.__table__), [
        {"id": "fraud", "name": "反诈宣传", "start": D(2026, 1, 1), "end": D(2026, 12, 31), "priority": 5},
        {"id": "traffic", "name": "交通安全", "start": D(2026, 1, 1), "end": D(2026, 12, 31), "priority": 5},
    ])
    table = Broadcast.__table__
    for day, slot, vid, tid, cid, status, scripts in BROADCASTS:
        bid = s.execute(sa.insert(table).values(
            date=day, slot=slot, village_id=vid, township_id=tid, campaign_id=cid, script_ids=scripts,
            status=status, scheduled_at=NOW, updated_at=NOW, evidence=EVIDENCE.get(status, "none"),
        ).returning(table.c.id)).scalar_one()
        s.execute(sa.insert(BroadcastScript.__table__), [
            {"broadcast_id": bid, "position": p, "script_id": sid} for p, sid in enumerate(scripts.split(","))
        ])
    for i, (mid, day, leaflets, people, topics) in enumerate(HANDOUTS, start=1):
        s.execute(sa.insert(Handout.__table__).values(
            market_id=mid, date=day, leaflets=leaflets, people=people, topics=topics,
            staff="", note="", natural_key=f"k{i}", created_at=NOW,
        ))


@pytest.fixture
def s(engine: sa.Engine) -> Iterator[Session]:
    with session(engine) as sess:
        yield sess


def by_village(rows: list[cov.VillageCoverage]) -> dict[tuple[str, str], cov.VillageCoverage]:
    return {(r.village_id, r.campaign_id): r for r in rows}


# --- library ---------------------------------------------------------------------


def test_village_coverage_exact_counts(s: Session) -> None:
    rows = cov.village_coverage(s, start=MARCH[0], end=MARCH[1], campaign_id="fraud", target_village_ids=TARGETS)
    assert [r.village_id for r in rows] == ["v1", "v2", "v3", "v4"]
    got = {r.village_id: (r.planned, r.played, r.confirmed, r.exported, r.missed, r.failed, r.last_reached,
                          r.population, r.listeners) for r in rows}
    assert got == {
        "v1": (1, 2, 1, 0, 1, 0, D(2026, 3, 3), 1000, 657),  # 1000 * (1 - 0.7**3)
        "v2": (0, 0, 1, 2, 0, 0, D(2026, 3, 1), 500, 150),
        "v3": (0, 0, 0, 0, 0, 1, None, 2000, 0),  # its Feb play lies outside the range
        "v4": (0, 0, 0, 0, 0, 0, None, 800, 0),  # targeted, nothing planned
    }
    v1 = rows[0]
    assert (v1.village_name, v1.township_name, v1.campaign_name) == ("一村", "东乡", "反诈宣传")


def test_village_coverage_all_campaigns_and_range(s: Session) -> None:
    rows = by_village(cov.village_coverage(s, start=D(2026, 3, 1), end=D(2026, 3, 1)))
    assert set(rows) == {("v1", "fraud"), ("v2", "fraud"), ("v3", "fraud"), ("v1", "traffic")}
    assert rows[("v1", "fraud")].played == 2 and rows[("v1", "fraud")].missed == 0
    assert rows[("v1", "traffic")].played == 1


def test_township_rollup(s: Session) -> None:
    rows = cov.village_coverage(s, start=MARCH[0], end=MARCH[1], campaign_id="fraud", target_village_ids=TARGETS)
    t1, t2 = cov.township_rollup(rows)
    assert (t1.township_id, t1.villages_targeted, t1.villages_reached, t1.played, t1.confirmed, t1.missed,
            t1.exported, t1.population, t1.listeners, t1.last_reached) == (
        "t1", 2, 2, 2, 2, 1, 2, 1500, 807, D(2026, 3, 3))
    assert (t2.township_id, t2.villages_targeted, t2.villages_reached, t2.failed, t2.population, t2.listeners) == (
        "t2", 2, 0, 1, 2800, 0)


def test_township_filter(s: Session) -> None:
    rows = cov.village_coverage(s, start=MARCH[0], end=MARCH[1], campaign_id="fraud",
                                township_id="t2", target_village_ids=TARGETS)
    assert [r.village_id for r in rows] == ["v3", "v4"]


@pytest.mark.parametrize(("population", "slots", "expected"), [
    (1000, 0, 0), (1000, 1, 300), (1000, 2, 510), (1000, 5, 832), (1000, 200, 1000), (0, 3, 0),
], ids=["none", "one", "two", "five", "capped", "empty-village"])
def test_estimate_listeners(population: int, slots: int, expected: int) -> None:
    assert cov.estimate_listeners(population, slots) == expected


def test_scripts_aired(s: Session) -> None:
    rows = cov.scripts_aired(s, start=MARCH[0], end=MARCH[1], campaign_id="fraud")
    assert [(r.township_id, r.script_id, r.airings, r.villages, r.last_aired) for r in rows] == [
        ("t1", "s1", 3, 2, D(2026, 3, 1)),
        ("t1", "s2", 2, 1, D(2026, 3, 3)),
    ]


def test_market_coverage(s: Session) -> None:
    rows = cov.market_coverage(s, start=MARCH[0], end=MARCH[1])
    assert [(r.market_id, r.market_name, r.days, r.leaflets, r.people, r.last_date) for r in rows] == [
        ("m1", "大庄集", 2, 350, 270, D(2026, 3, 8)),
        ("m2", "梨树集", 1, 120, 90, D(2026, 3, 6)),
        ("m3", "河西集", 0, 0, 0, None),
    ]
    traffic = {r.market_id: (r.days, r.leaflets, r.people) for r in cov.market_coverage(
        s, start=MARCH[0], end=MARCH[1], topic="traffic")}
    assert traffic == {"m1": (2, 150, 120), "m2": (0, 0, 0), "m3": (0, 0, 0)}


def test_handout_timeline(s: Session) -> None:
    rows = cov.handout_timeline(s, start=MARCH[0], end=MARCH[1])
    assert [(r.date, r.market_id, r.leaflets, r.people) for r in rows] == [
        (D(2026, 3, 3), "m1", 250, 190), (D(2026, 3, 6), "m2", 120, 90), (D(2026, 3, 8), "m1", 100, 80),
    ]


def test_village_gaps(s: Session) -> None:
    gaps = cov.village_gaps(s, campaign_id="fraud", today=D(2026, 3, 10), days=8, target_village_ids=TARGETS)
    assert [(g.village_id, g.last_reached, g.days_silent) for g in gaps] == [
        ("v2", D(2026, 3, 1), 9), ("v3", D(2026, 2, 20), 18), ("v4", None, None),
    ]
    # Without targets, v4 (never planned) is not a candidate.
    gaps = cov.village_gaps(s, campaign_id="fraud", today=D(2026, 3, 10), days=8)
    assert [g.village_id for g in gaps] == ["v2", "v3"]
    # A window that ends before the last reach: v1 counts as silent since 03-01.
    gaps = cov.village_gaps(s, campaign_id="fraud", today=D(2026, 3, 2), days=1, township_id="t1")
    assert [(g.village_id, g.days_silent) for g in gaps] == [("v1", 1), ("v2", 1)]


def test_script_gaps(s: Session) -> None:
    gaps = cov.script_gaps(s, campaign_id="fraud", script_ids=["s1", "s2", "s3"], target_village_ids=TARGETS)
    assert [(g.township_id, g.script_id) for g in gaps] == [("t1", "s3"), ("t2", "s2"), ("t2", "s3")]
    gaps = cov.script_gaps(s, campaign_id="fraud", script_ids=["s1"], start=MARCH[0], end=MARCH[1])
    assert [(g.township_id, g.script_id) for g in gaps] == [("t2", "s1")]


def test_script_gaps_count_an_airing_under_any_campaign(s: Session) -> None:
    """A script aired under another campaign was heard (fraud-96110 was 未播出 in 大庄镇, aired by the urgent one)."""
    gaps = cov.script_gaps(s, campaign_id="fraud", script_ids=["s1", "r1"], target_village_ids=TARGETS)
    assert [(g.township_id, g.script_id) for g in gaps] == [("t2", "r1")]  # r1 played in v1 (t1) under traffic
    gaps = cov.script_gaps(s, campaign_id="fraud", script_ids=["r1"], start=D(2026, 3, 2), end=MARCH[1])
    assert [(g.township_id, g.script_id) for g in gaps] == [("t1", "r1"), ("t2", "r1")]  # 03-01 is outside


def test_unconfirmed_exports(s: Session) -> None:
    rows = cov.unconfirmed_exports(s, today=D(2026, 3, 5))
    assert [(r.village_id, r.slots, r.first_date, r.last_date) for r in rows] == [
        ("v2", 1, D(2026, 3, 2), D(2026, 3, 2)),
    ]
    assert cov.unconfirmed_exports(s, today=D(2026, 3, 4)) == []
    assert cov.unconfirmed_exports(s, today=D(2026, 3, 9), campaign_id="traffic") == []
    assert cov.unconfirmed_exports(s, today=D(2026, 3, 9), township_id="t2") == []
    assert cov.unconfirmed_exports(s, today=D(2026, 3, 9))[0].slots == 2


def test_village_day_matrix(s: Session) -> None:
    hm = cov.village_day_matrix(s, campaign_id="fraud", start=D(2026, 3, 1), end=D(2026, 3, 3),
                                target_village_ids=TARGETS)
    assert hm.dates == [D(2026, 3, 1), D(2026, 3, 2), D(2026, 3, 3)]
    assert [(r.village_id, r.reached, r.pending, r.scheduled) for r in hm.rows] == [
        ("v1", [2, 0, 1], [0, 0, 0], [2, 1, 1]),
        ("v2", [1, 0, 0], [0, 1, 1], [1, 1, 1]),
        ("v3", [0, 0, 0], [0, 0, 0], [1, 0, 0]),
        ("v4", [0, 0, 0], [0, 0, 0], [0, 0, 0]),
    ]


def test_records_api_feeds_coverage(engine: sa.Engine) -> None:
    """Rows written by records.record_planned/mark_program are counted, scripts included."""
    day = D(2026, 4, 1)
    plans = [BroadcastPlan(day=day, slot=slot, village_id="v4", township_id="t2", campaign_id="fraud",
                           script_ids=("s3", "s1"), scheduled_at=NOW) for slot in ("morning", "evening")]
    with session(engine) as s:
        record_planned(s, plans, now=NOW)
        mark_program(s, day=day, slot="morning", village_id="v4", status="played", at=NOW, evidence=Evidence.PLAYER)
        mark_program(s, day=day, slot="evening", village_id="v4", status="missed", at=NOW)
    with session(engine) as s:
        (row,) = cov.village_coverage(s, start=day, end=day, campaign_id="fraud")
        assert (row.village_id, row.played, row.missed, row.last_reached, row.listeners) == ("v4", 1, 1, day, 240)
        aired = cov.scripts_aired(s, start=day, end=day, campaign_id="fraud")
        assert [(a.township_id, a.script_id, a.airings) for a in aired] == [("t2", "s1", 1), ("t2", "s3", 1)]


# --- validation ------------------------------------------------------------------


def test_unknown_campaign(s: Session) -> None:
    with pytest.raises(CoverageError, match=r"未知的宣传活动编号 'nope'；已有：fraud、traffic（宣传活动编号来自 schedules/campaigns.yaml）"):
        cov.village_coverage(s, start=MARCH[0], end=MARCH[1], campaign_id="nope")
    for call in (
        lambda: cov.village_gaps(s, campaign_id="nope", today=D(2026, 3, 10), days=7),
        lambda: cov.script_gaps(s, campaign_id="nope", script_ids=["s1"]),
        lambda: cov.village_day_matrix(s, campaign_id="nope", start=MARCH[0], end=MARCH[1]),
    ):
        with pytest.raises(CoverageError, match="未知的宣传活动编号"):
            call()


@pytest.mark.parametrize(("start", "end", "message"), [
    (D(2026, 3, 31), D(2026, 3, 1), "前后颠倒了"),
    (D(2025, 1, 1), D(2026, 3, 1), "最多 366 天"),
], ids=["backwards", "huge"])
def test_bad_ranges(s: Session, start: D, end: D, message: str) -> None:
    with pytest.raises(CoverageError, match=message):
        cov.village_coverage(s, start=start, end=end)
    with pytest.raises(CoverageError, match=message):
        cov.market_coverage(s, start=start, end=end)


def test_parse_period() -> None:
    today = D(2026, 3, 10)
    assert cov.parse_period(None, None, today=today) == (D(2026, 3, 1), today)
    assert cov.parse_period("2026-02-01", "2026-02-28", today=today) == (D(2026, 2, 1), D(2026, 2, 28))
    with pytest.raises(CoverageError, match=r"--from：'2026/03/01' 不是日期；请写成 YYYY-MM-DD"):
        cov.parse_period("2026/03/01", None, today=today)
    with pytest.raises(CoverageError, match="前后颠倒了"):
        cov.parse_period("2026-03-20", None, today=today)


def test_bad_days_and_township(s: Session) -> None:
    with pytest.raises(CoverageError, match="--days：0 超出范围；请给 1 到 366 之间的天数"):
        cov.village_gaps(s, campaign_id="fraud", today=D(2026, 3, 10), days=0)
    with pytest.raises(CoverageError, match=r"未知的乡镇编号 'nowhere'；已有：t1、t2（乡镇编号来自 schedules/county.yaml）"):
        cov.village_coverage(s, start=MARCH[0], end=MARCH[1], township_id="nowhere")
    with pytest.raises(CoverageError, match="未知的主题 '%'；已有：traffic、anti_fraud"):
        cov.market_coverage(s, start=MARCH[0], end=MARCH[1], topic="%")


def test_sql_looking_filters_are_plain_values(engine: sa.Engine) -> None:
    with session(engine) as s:
        with pytest.raises(CoverageError, match="未知的宣传活动编号"):
            cov.village_coverage(s, start=MARCH[0], end=MARCH[1], campaign_id=INJECTION)
        with pytest.raises(CoverageError, match="未知的乡镇编号"):
            cov.village_coverage(s, start=MARCH[0], end=MARCH[1], township_id=INJECTION)
        # A township whose id really is that string: the filter must match it and nothing else.
        s.execute(sa.insert(Township.__table__).values(id=INJECTION, name="怪乡"))
        s.execute(sa.insert(Village.__table__).values(id="odd", name="怪村", township_id=INJECTION, population=10))
        s.execute(sa.insert(Broadcast.__table__).values(
            date=D(2026, 3, 4), slot="morning", village_id="odd", township_id=INJECTION,
            campaign_id="fraud", script_ids="s1", status="played", scheduled_at=NOW, updated_at=NOW,
            evidence="player",
        ))
    with session(engine) as s:
        rows = cov.village_coverage(s, start=MARCH[0], end=MARCH[1], township_id=INJECTION)
        assert [(r.village_id, r.township_name, r.played) for r in rows] == [("odd", "怪乡", 1)]
        gaps = cov.village_gaps(s, campaign_id="fraud", today=D(2026, 3, 10), days=7, target_village_ids=[INJECTION])
        assert [g.village_id for g in gaps] == ["v1", "v2", "v3"]  # no village has that id
        gaps = cov.village_gaps(s, campaign_id="fraud", today=D(2026, 3, 10), days=7, township_id=INJECTION)
        assert gaps == []  # "odd" was reached on 03-04
        assert s.execute(sa.select(sa.func.count()).select_from(Broadcast.__table__)).scalar() == len(BROADCASTS) + 1


# --- commands --------------------------------------------------------------------


def run(ws: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "-w", str(ws), "--today", "2026-03-10"])
    return result.exit_code, result.stdout, result.stderr


def test_cli_coverage_json(cli_ws: Path) -> None:
    code, out, err = run(cli_ws, "coverage", "--campaign", "fraud", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert [d["village_id"] for d in data] == ["v1", "v2", "v3"]
    for d in data:
        assert {"village_id", "campaign_id", "played", "confirmed", "missed", "last_reached"} <= set(d)
    # 漏播 2: the stored 03-02 miss, and the 03-05 slot still 'planned' long past its start plus grace.
    assert (data[0]["played"], data[0]["confirmed"], data[0]["missed"], data[0]["planned"], data[0]["last_reached"]) == (
        2, 1, 2, 0, "2026-03-03")
    assert data[2]["last_reached"] is None


def test_cli_coverage_table_and_csv(cli_ws: Path, tmp_path: Path) -> None:
    code, out, _ = run(cli_ws, "coverage", "--township", "t1")
    assert code == 0
    header = out.splitlines()[0].split()
    assert header[:10] == ["村", "乡镇", "活动", "已确认", "已监听", "仅有播放记录", "已导出待确认", "漏播", "失败",
                           "上次成功播出"]
    assert "三村" not in out and "一村" in out
    target = tmp_path / "cov.csv"
    code, _, _ = run(cli_ws, "coverage", "--campaign", "fraud", "--format", "csv", "--out", str(target))
    assert code == 0
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:3] == ["村编号", "村", "乡镇"] and len(rows) == 4


def test_cli_coverage_xlsx(cli_ws: Path, tmp_path: Path) -> None:
    import openpyxl

    code, _, err = run(cli_ws, "coverage", "--format", "xlsx")
    assert code == 1 and "--out" in err
    target = tmp_path / "cov.xlsx"
    code, _, err = run(cli_ws, "coverage", "--format", "xlsx", "--out", str(target))
    assert code == 0, err
    sheet = openpyxl.load_workbook(target).active
    assert sheet.cell(1, 2).value == "村" and sheet.max_row == 5


@pytest.mark.parametrize(("args", "message"), [
    (("coverage", "--campaign", "nope"), "错误：未知的宣传活动编号 'nope'；已有：fraud、traffic"),
    (("coverage", "--campaign", INJECTION), "错误：未知的宣传活动编号"),
    (("coverage", "--from", "2026-3-32"), "错误：--from：“2026-3-32”不是真实存在的日期；请检查月和日"),
    (("coverage", "--from", "2026-03-09", "--to", "2026-03-01"), "前后颠倒了"),
    (("coverage", "--from", "2024-01-01", "--to", "2026-01-01"), "最多 366 天"),
    (("gaps", "--campaign", "nope", "--days", "7"), "错误：未知的宣传活动编号 'nope'"),
], ids=["unknown", "injection", "malformed", "backwards", "huge", "gaps-unknown"])
def test_cli_errors(cli_ws: Path, args: tuple[str, ...], message: str) -> None:
    code, out, err = run(cli_ws, *args)
    assert code == 1
    assert message in err
    assert out == ""


def test_cli_gaps_json(cli_ws: Path) -> None:
    code, out, err = run(cli_ws, "gaps", "--campaign", "fraud", "--days", "8", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert [(g["village_id"], g["last_reached"], g["days_silent"]) for g in data["villages"]] == [
        ("v2", "2026-03-01", 9), ("v3", "2026-02-20", 18),
    ]
    assert [(x["village_id"], x["slots"]) for x in data["unconfirmed_exports"]] == [("v2", 2)]
    assert data["scripts"] == []  # no campaigns.yaml here, so no script list to compare


def test_cli_gaps_table(cli_ws: Path) -> None:
    code, out, _ = run(cli_ws, "gaps", "--campaign", "fraud", "--days", "8")
    assert code == 0
    assert "未覆盖" in out and "二村" in out and "三村" in out and "一村" not in out


def test_every_command_has_help() -> None:
    for name in ("coverage", "gaps", "report"):
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0
        assert cli.commands[name].help


def test_village_removed_from_registry_still_counted(engine: sa.Engine) -> None:
    """The log has no foreign keys: history of a village no longer in the registry still shows."""
    with session(engine) as s:
        s.execute(sa.insert(Broadcast.__table__).values(
            date=D(2026, 3, 2), slot="morning", village_id="gone", township_id="t9", campaign_id="fraud",
            script_ids="s1", status="played", scheduled_at=NOW, updated_at=NOW, evidence="player",
        ))
    with session(engine) as s:
        rows = by_village(cov.village_coverage(s, start=MARCH[0], end=MARCH[1], campaign_id="fraud"))
        gone = rows[("gone", "fraud")]
        assert (gone.village_name, gone.township_id, gone.played, gone.population, gone.listeners) == (
            "gone", "", 1, 0, 0)


# --- failures and interrupted plays in every format (issue 7) ----------------------------


def _add(engine: sa.Engine, rows: list[tuple[dt.date, str, str]]) -> None:
    """Extra fraud rows for v3 (township t2): (date, slot, status)."""
    with session(engine) as s:
        s.execute(sa.insert(Broadcast.__table__), [
            dict(date=day, slot=slot, village_id="v3", township_id="t2", campaign_id="fraud", script_ids="s1",
                 status=status, scheduled_at=NOW, updated_at=NOW) for day, slot, status in rows])


def test_failed_and_interrupted_show_in_every_format(cli_ws: Path, engine: sa.Engine, tmp_path: Path) -> None:
    """A village with failures once showed 播出 8 / 漏播 0 and no 失败 column at all."""
    import openpyxl

    from outreach.coverage import report

    _add(engine, [(D(2026, 3, 4), "morning", "interrupted"), (D(2026, 3, 6), "evening", "interrupted"),
                  (D(2026, 3, 7), "morning", "failed")])
    # v3: 1 failed on 03-01 + 1 failed + 2 interrupted added = 失败 4, of which 2 interrupted.
    code, out, err = run(cli_ws, "coverage", "--campaign", "fraud", "--from", "2026-03-01", "--to", "2026-03-31")
    assert code == 0, err
    lines = [line.split() for line in out.splitlines()]
    fail_col = lines[0].index("失败")
    assert lines[0][fail_col - 1] == "漏播"
    assert next(r for r in lines if r[0] == "三村")[fail_col] == "4"
    assert "失败含播放中断" in err

    code, out, _ = run(cli_ws, "coverage", "--campaign", "fraud", "--format", "json", "--from", "2026-03-01")
    v3 = next(d for d in json.loads(out) if d["village_id"] == "v3")
    assert (v3["failed"], v3["interrupted"], v3["missed"], v3["reached"]) == (4, 2, 0, 0)

    target = tmp_path / "cov.csv"
    run(cli_ws, "coverage", "--campaign", "fraud", "--format", "csv", "--out", str(target), "--from", "2026-03-01")
    table = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    col = table[0].index("失败")
    assert table[0][col - 1] == "漏播" and next(r for r in table if r[0] == "v3")[col] == "4"

    book = tmp_path / "cov.xlsx"
    run(cli_ws, "coverage", "--campaign", "fraud", "--format", "xlsx", "--out", str(book), "--from", "2026-03-01")
    sheet = [[c.value for c in r] for r in openpyxl.load_workbook(book).active.iter_rows()]
    col = sheet[0].index("失败")
    assert sheet[0][col - 1] == "漏播" and next(r for r in sheet if r[0] == "v3")[col] == 4

    with session(engine) as s:
        data = report.collect(s, campaign_id="fraud", start=D(2026, 3, 1), end=D(2026, 3, 31), today=D(2026, 3, 10),
                              target_village_ids=TARGETS)
    html = report.render_html(data, generated_at="2026-03-10 12:00")
    assert '<div class="card">失败<b>4</b>含中断 2</div>' in html
    assert "<th>漏播</th><th>失败</th>" in html
    town = next(t for t in data.townships if t.township_id == "t2")
    assert (town.failed, town.interrupted) == (4, 2)


def test_script_gaps_count_a_script_only_while_it_may_air(engine: sa.Engine) -> None:
    """A script was listed as 未播出 before its valid_from; nor is it a gap after its valid_until."""
    with session(engine) as s:
        def gaps(valid: dict[str, cov.ValidWindow], end: dt.date) -> list[tuple[str, str]]:
            return [(g.township_id, g.script_id) for g in cov.script_gaps(
                s, campaign_id="fraud", script_ids=["s1", "s2", "s9"], target_village_ids=TARGETS, end=end,
                valid=valid)]

        always = gaps({}, D(2026, 3, 10))
        assert ("t1", "s9") in always and ("t2", "s9") in always
        assert gaps({"s9": (D(2026, 3, 11), None)}, D(2026, 3, 10)) == [
            g for g in always if g[1] != "s9"]  # not valid yet
        assert gaps({"s9": (None, D(2026, 3, 9))}, D(2026, 3, 10)) == [
            g for g in always if g[1] != "s9"]  # expired
        assert gaps({"s9": (D(2026, 3, 10), D(2026, 3, 10))}, D(2026, 3, 10)) == always  # both ends inclusive
        assert cov.valid_on({"x": (D(2026, 1, 1), None)}, "x", D(2025, 12, 31)) is False
