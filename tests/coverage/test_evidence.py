"""Every reach says how we know: coverage by evidence, the air time (not the entry time), and read-time 漏播."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from coverage_db import cli_ws, engine  # noqa: F401  (fixtures)
from openpyxl import load_workbook
from sqlmodel import Session

import outreach.cli.coverage_cmds  # noqa: F401  (registers the commands)
from outreach import coverage as cov
from outreach.cli.base import cli
from outreach.config import TZ, load_config
from outreach.coverage import report
from outreach.db import make_engine, session, sync_registry
from outreach.models import Evidence
from outreach.planning.workspace import load, plan_days
from outreach.records import BroadcastPlan, mark_program, record_planned
from outreach.records.broadcasts import broadcast_plans

D = dt.date
GRACE_S = 900


def at(day: D, hh: int, mm: int, ss: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=TZ)


NOW = at(D(2026, 12, 6), 12, 0)  # read at noon on 12-06, Beijing time
START, END = D(2026, 11, 25), D(2026, 12, 7)
ENTERED = at(D(2026, 12, 6), 18, 14)  # when the confirmation of 李家洼村 was typed in


def plan(day: D, slot: str, vid: str, tid: str = "dz") -> BroadcastPlan:
    start = at(day, 6, 30) if slot == "morning" else at(day, 19, 0)
    return BroadcastPlan(day=day, slot=slot, village_id=vid, township_id=tid, campaign_id="fraud",
                         script_ids=("fraud-96110",), scheduled_at=start)


def populate(s: Session) -> None:
    sync_registry(
        s,
        townships=[NS(id="dz", name="大庄镇"), NS(id="ls", name="梨树乡")],
        villages=[NS(id="dz-01", name="大庄村", township_id="dz", population=2000, speaker="networked"),
                  NS(id="dz-02", name="李家洼村", township_id="dz", population=600, speaker="offline"),
                  NS(id="ls-01", name="梨树村", township_id="ls", population=1500, speaker="networked")],
        markets=[], campaigns=[NS(id="fraud", name="反诈宣传", start=START, end=END, priority=5)],
    )
    d1, d2, d3, d7 = D(2026, 12, 1), D(2026, 12, 2), D(2026, 12, 3), D(2026, 12, 7)
    record_planned(s, [plan(d1, "morning", "dz-01"), plan(d1, "evening", "dz-01"), plan(d2, "morning", "dz-01"),
                       plan(d3, "morning", "dz-01"), plan(d7, "morning", "dz-01"),
                       plan(D(2026, 11, 28), "morning", "dz-02"), plan(D(2026, 11, 29), "morning", "dz-02"),
                       plan(d1, "morning", "ls-01", "ls")], now=at(d1, 0, 0))
    # The player ran its length; a microphone heard the evening; a legacy play carries no evidence.
    mark_program(s, day=d1, slot="morning", village_id="dz-01", status="played", at=at(d1, 6, 35, 12),
                 evidence=Evidence.PLAYER, aired_at=at(d1, 6, 30, 5))
    mark_program(s, day=d1, slot="evening", village_id="dz-01", status="played", at=at(d1, 19, 5),
                 evidence=Evidence.HEARD, aired_at=at(d1, 19, 0, 2))
    mark_program(s, day=d2, slot="morning", village_id="dz-01", status="played", at=at(d2, 6, 36))
    # 12-03 morning stays planned: nobody played it (the scheduler was stopped). 12-07 lies ahead.
    # 李家洼村: the 11-28 pack aired at its slot start and was confirmed on 12-06 at 18:14; 11-29 only exported.
    for day in (D(2026, 11, 28), D(2026, 11, 29)):
        mark_program(s, day=day, slot="morning", village_id="dz-02", status="exported", at=at(D(2026, 11, 27), 20, 0),
                     evidence=Evidence.EXPORTED)
    mark_program(s, day=D(2026, 11, 28), slot="morning", village_id="dz-02", status="confirmed", at=ENTERED,
                 confirmed_by="王书记", entered_by="张警官", evidence=Evidence.CONFIRMED,
                 aired_at=at(D(2026, 11, 28), 6, 30))
    mark_program(s, day=d1, slot="morning", village_id="ls-01", status="failed", at=at(d1, 6, 31),
                 error="播放程序 0.4 秒就退出")


def rows(engine: sa.Engine, **kw: object) -> dict[str, cov.VillageCoverage]:
    with session(engine) as s:
        found = cov.village_coverage(s, start=START, end=END, campaign_id="fraud", **kw)  # type: ignore[arg-type]
    return {r.village_id: r for r in found}


# --- the library ------------------------------------------------------------------------


def test_reach_counts_only_rows_with_evidence(engine: sa.Engine) -> None:
    got = rows(engine, read=cov.ReadTime(now=NOW, grace_s=GRACE_S))
    dz1, dz2, ls1 = got["dz-01"], got["dz-02"], got["ls-01"]
    # Three rows say played; one of them has no evidence, so two reached.
    assert (dz1.played, dz1.reached_confirmed, dz1.reached_heard, dz1.reached_player, dz1.unproven, dz1.reached) == (
        3, 0, 1, 1, 1, 2)
    assert dz1.listeners == round(2000 * (1 - 0.7 ** 2))
    # Exported is not reached: it waits for the village's word.
    assert (dz2.confirmed, dz2.reached_confirmed, dz2.exported, dz2.reached) == (1, 1, 1, 1)
    assert (ls1.failed, ls1.reached) == (1, 0)
    town = {t.township_id: t for t in cov.township_rollup(got.values())}["dz"]
    assert (town.reached_confirmed, town.reached_heard, town.reached_player, town.unproven, town.reached) == (
        1, 1, 1, 1, 3)
    assert town.villages_reached == 2


def test_last_aired_is_when_the_sound_went_out_not_the_entry_time(engine: sa.Engine) -> None:
    got = rows(engine)
    dz2 = got["dz-02"]
    assert dz2.last_aired["confirmed"] == at(D(2026, 11, 28), 6, 30)  # not 12-06 18:14, when it was typed in
    assert dz2.last_aired_at == at(D(2026, 11, 28), 6, 30)
    dz1 = got["dz-01"]
    assert (dz1.last_aired["heard"], dz1.last_aired["player"], dz1.last_aired["confirmed"]) == (
        at(D(2026, 12, 1), 19, 0, 2), at(D(2026, 12, 1), 6, 30, 5), None)
    assert dz1.last_reached == D(2026, 12, 1)  # the 12-02 play without evidence is not a reach
    d = dz2.as_dict()
    assert d["last_aired_confirmed"] == "2026-11-28T06:30:00+08:00" and d["last_aired_heard"] is None


def test_last_aired_falls_back_to_played_at(engine: sa.Engine) -> None:
    with session(engine) as s:  # a play logged before aired_at existed
        s.execute(sa.text("UPDATE broadcast SET aired_at = NULL WHERE village_id = 'dz-01' AND slot = 'morning'"))
    assert rows(engine)["dz-01"].last_aired["player"] == at(D(2026, 12, 1), 6, 35, 12)


def test_planned_row_past_grace_reads_as_missed(engine: sa.Engine) -> None:
    stored = rows(engine)["dz-01"]
    assert (stored.planned, stored.missed) == (2, 0)  # what the table holds: silence looks pending
    read = rows(engine, read=cov.ReadTime(now=NOW, grace_s=GRACE_S))["dz-01"]
    assert (read.planned, read.missed) == (1, 1)  # 12-03 is 漏播; 12-07 is still to come
    # Within grace it is not missed yet.
    early = rows(engine, read=cov.ReadTime(now=at(D(2026, 12, 3), 6, 40), grace_s=GRACE_S))["dz-01"]
    assert early.missed == 0


def test_gaps_count_read_time_missed_and_only_evidenced_reach(engine: sa.Engine) -> None:
    with session(engine) as s:
        gaps = cov.village_gaps(s, campaign_id="fraud", today=NOW.date(), days=4,
                                read=cov.ReadTime(now=NOW, grace_s=GRACE_S))
    by_id = {g.village_id: g for g in gaps}
    # 大庄村 was last reached (with evidence) on 12-01; 12-03 went silent in the window.
    assert (by_id["dz-01"].last_reached, by_id["dz-01"].days_silent, by_id["dz-01"].missed) == (D(2026, 12, 1), 5, 1)


def test_heatmap_paints_a_silent_planned_day_as_missed(engine: sa.Engine) -> None:
    with session(engine) as s:
        hm = cov.village_day_matrix(s, campaign_id="fraud", start=START, end=END,
                                    read=cov.ReadTime(now=NOW, grace_s=GRACE_S))
    grid = report.heatmap_grid(hm)
    row = [r.village_id for r in hm.rows].index("dz-01")
    col = {d: j for j, d in enumerate(hm.dates)}
    assert grid[row][col[D(2026, 12, 3)]] == report.MISSED_CELL
    assert grid[row][col[D(2026, 12, 7)]] == report.PENDING_CELL
    assert grid[row][col[D(2026, 12, 2)]] == report.PENDING_CELL  # played without evidence: not proven
    assert grid[row][col[D(2026, 12, 4)]] == report.NOTHING_CELL  # nothing planned that day


# --- report -------------------------------------------------------------------------------


def test_report_shows_reach_by_evidence(engine: sa.Engine) -> None:
    with session(engine) as s:
        data = report.collect(s, campaign_id="fraud", start=START, end=END, today=NOW.date(),
                              target_village_ids=["dz-01", "dz-02", "ls-01"], script_ids=["fraud-96110"],
                              read=cov.ReadTime(now=NOW, grace_s=GRACE_S))
    page = report.render_html(data, generated_at="2026-12-06 12:00", font=None)
    for label in ("已确认", "已监听", "仅有播放记录", "已导出待确认", "上次成功播出", "无证据"):
        assert label in page
    assert "11-28 06:30（已确认）" in page  # 李家洼村: its air time, not 12-06 18:14
    assert "12-06 18:14" not in page
    assert "12-01 19:00（已监听）" in page


# --- the commands ---------------------------------------------------------------------------


def run(ws: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "-w", str(ws), "--today", "2026-12-06",
                                      "--from", "2026-11-25", "--to", "2026-12-07"])
    return result.exit_code, result.stdout, result.stderr


def test_cli_json_shows_evidence_and_keeps_old_keys(cli_ws: Path) -> None:
    code, out, err = run(cli_ws, "coverage", "--campaign", "fraud", "--format", "json")
    assert code == 0, err
    data = {d["village_id"]: d for d in json.loads(out)}
    dz1, dz2 = data["dz-01"], data["dz-02"]
    old = {"village_id", "village_name", "township_id", "township_name", "campaign_id", "campaign_name", "planned",
           "played", "confirmed", "exported", "missed", "failed", "interrupted", "reached", "last_reached",
           "population", "listeners"}
    assert old <= set(dz1)
    assert (dz1["reached_confirmed"], dz1["reached_heard"], dz1["reached_player"], dz1["unproven"]) == (0, 1, 1, 1)
    assert (dz1["reached"], dz1["missed"], dz1["planned"]) == (2, 1, 1)  # 12-03 is 漏播; 12-07 is still to come
    assert dz2["last_aired_confirmed"] == "2026-11-28T06:30:00+08:00"
    assert dz2["last_aired_at"] == "2026-11-28T06:30:00+08:00"
    assert (dz2["exported"], dz2["reached"]) == (1, 1)


def test_cli_xlsx_and_table_show_evidence(cli_ws: Path, tmp_path: Path) -> None:
    book = tmp_path / "cov.xlsx"
    code, _, err = run(cli_ws, "coverage", "--campaign", "fraud", "--format", "xlsx", "--out", str(book))
    assert code == 0, err
    sheet = load_workbook(book).active
    header = [c.value for c in sheet[1]]
    for name in ("已确认", "已监听", "仅有播放记录", "无证据", "上次成功播出（已确认）", "上次成功播出（已监听）",
                 "上次成功播出（仅有播放记录）"):
        assert name in header
    records = {r[0]: dict(zip(header, r, strict=True)) for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert (records["dz-01"]["已监听"], records["dz-01"]["仅有播放记录"], records["dz-01"]["无证据"]) == (1, 1, 1)
    assert records["dz-02"]["上次成功播出（已确认）"] == dt.datetime(2026, 11, 28, 6, 30)  # a real date, Beijing time
    code, out, err = run(cli_ws, "coverage", "--campaign", "fraud")
    assert code == 0, err
    assert "已监听" in out and "仅有播放记录" in out and "11-28 06:30 已确认" in out
    assert "没有证据" in err  # the play without evidence is named, not silently dropped


# --- a real workspace: programs that left no record at all -------------------------------------


def test_silent_planned_days_without_any_record_show_missed(workspace: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler ran on 11-30, then stopped: 12-01..12-03 left no rows at all. They still read 漏播."""
    url = f"sqlite:///{tmp_path / 'silent.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    loaded = load(load_config(workspace))
    campaign = "fraud-dazhuang-lishu"
    first, last = D(2026, 12, 1), D(2026, 12, 3)
    expected = [p for p in broadcast_plans(plan_days(loaded, first, last).programs) if p.campaign_id == campaign]
    per_village: dict[str, int] = {}
    for p in expected:
        per_village[p.village_id] = per_village.get(p.village_id, 0) + 1
    args = ["-w", str(workspace), "--today", "2026-12-03", "--from", "2026-12-01", "--to", "2026-12-03"]

    def coverage_json() -> dict[str, dict[str, object]]:
        result = CliRunner().invoke(cli, ["coverage", "--campaign", campaign, "--format", "json", *args])
        assert result.exit_code == 0, result.stderr
        return {d["village_id"]: d for d in json.loads(result.stdout)}

    # A database nobody has used yet: the county was not using outreach, nothing was missed.
    assert not any(d["missed"] for d in coverage_json().values())
    with session(make_engine(url)) as s:  # the scheduler's last day at work
        eve = D(2026, 11, 30)
        record_planned(s, [plan(eve, "morning", "dz-01")], now=at(eve, 6, 0))
        mark_program(s, day=eve, slot="morning", village_id="dz-01", status="played", at=at(eve, 6, 36),
                     evidence=Evidence.PLAYER, aired_at=at(eve, 6, 30))
    data = coverage_json()
    assert {v: d["missed"] for v, d in data.items() if d["missed"]} == per_village
    assert all(d["unrecorded"] == d["missed"] and d["reached"] == 0 for d in data.values())

    with session(make_engine(f"sqlite:///{tmp_path / 'silent.db'}")) as s:
        hm = cov.village_day_matrix(s, campaign_id=campaign, start=first, end=last,
                                    read=cov.ReadTime(now=at(D(2026, 12, 4), 0, 0), grace_s=GRACE_S,
                                                      expected=tuple(expected)))
    grid = report.heatmap_grid(hm)
    cells = {cell for r in grid for cell in r}
    assert cells == {report.MISSED_CELL}  # every planned day is 漏播, none grey 无安排

    page_path = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", "--campaign", campaign, "--out", str(page_path), *args])
    assert result.exit_code == 0, result.stderr
    page = page_path.read_text(encoding="utf-8")
    assert f"漏播<b>{len(expected)}</b>" in page
