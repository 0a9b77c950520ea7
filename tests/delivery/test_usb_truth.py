"""USB truth: no stick, no export; no past days by accident; a plan change after an export shows as a stale pack.

The export refuses a folder that is not there (a stick not inserted) unless `--mkdir`, warns when
the folder is on the workspace's or the root disk, and refuses past days unless `--past`. A plan
change after an export marks the exported programs stale with what changed, on the CLI, /packs and
今天; `export --stale` writes those villages again; a confirmation credits what the stick carried.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from web_site import NOW as SITE_NOW
from web_site import editor, seeded_db, site, write_pack  # noqa: F401  (fixtures)

from outreach import records
from outreach.cli import cli
from outreach.config import TZ, load_config
from outreach.db import session
from outreach.delivery.usb.export import check_not_past, check_out_dir, export_days, export_stale
from outreach.delivery.usb.stale import NOT_PLANNED, ExportedPart, refresh_stale, stale_packs, stale_reason
from outreach.errors import OutputError, PlanError
from outreach.models import Broadcast, BroadcastScript, BroadcastStatus
from outreach.planning.plan import Program, ProgramItem
from outreach.planning.workspace import load, open_database, plan_days

OFFLINE = "dazhuang-05"  # 李家洼村, fed by USB stick
OTHER = "dazhuang-07"  # 西岗村, also offline
NOW = datetime(2026, 12, 6, 20, 0, tzinfo=TZ)
DAY = date(2026, 12, 8)  # the morning: 李家洼村 12-08


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def county_today() -> date:
    return datetime.now(TZ).date()


def more_fraud_scripts(ws: Path) -> None:
    """A campaign change: 大庄镇/梨树乡's anti-fraud campaign plays two scripts a slot instead of one."""
    path = ws / "schedules" / "campaigns.yaml"
    text = path.read_text(encoding="utf-8")
    block = text.index("- id: fraud-dazhuang-lishu")
    at = text.index("plays_per_slot: 1", block)
    path.write_text(text[:at] + "plays_per_slot: 2" + text[at + len("plays_per_slot: 1"):], encoding="utf-8")


def move_morning(ws: Path, village: str, hhmm: str) -> None:
    """A registry change: `village`'s morning slot starts at `hhmm`."""
    path = ws / "schedules" / "county.yaml"
    text = path.read_text(encoding="utf-8")
    line = next(ln for ln in text.splitlines() if f"id: {village}," in ln)
    path.write_text(text.replace(line, line.replace("}", f', slots: {{morning: "{hhmm}"}}}}')), encoding="utf-8")


def exported_rows(engine: sa.Engine, village: str, day: date) -> list[Broadcast]:
    with session(engine) as s:
        return list(s.scalars(sa.select(Broadcast).where(Broadcast.village_id == village, Broadcast.date == day)
                              .order_by(Broadcast.slot, Broadcast.campaign_id)))


def stick_scripts(engine: sa.Engine, village: str, day: date) -> dict[str, set[str]]:
    """The scripts each slot's exported rows say the stick carries."""
    out: dict[str, set[str]] = {}
    for r in exported_rows(engine, village, day):
        if r.status == BroadcastStatus.EXPORTED:
            out.setdefault(r.slot, set()).update(r.script_ids.split(","))
    return out


# --- the stick and the dates -------------------------------------------------------------------


def test_an_export_to_a_missing_folder_is_refused_and_creates_nothing(workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "media" / "usb"
    tomorrow = (county_today() + timedelta(days=1)).isoformat()
    result = run("export", "--date", tomorrow, "--out", str(out), "-w", str(workspace))
    assert result.exit_code == 1
    assert f"错误：{out}：文件夹不存在" in result.stderr and "请插好U盘" in result.stderr and "--mkdir" in result.stderr
    assert not (tmp_path / "media").exists(), "no folder is made on the system disk"
    # A file where the folder should be is refused too, even with --mkdir.
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="不是文件夹"):
        check_out_dir(tmp_path / "file", workspace=workspace, mkdir=True)


def test_mkdir_makes_the_folder_and_a_folder_off_the_stick_is_warned_about(workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "packs" / "usb"
    warnings = check_out_dir(out, workspace=workspace, mkdir=True)
    assert out.is_dir()
    assert len(warnings) == 1 and "工作区所在的磁盘" in warnings[0] and "不像是U盘" in warnings[0]
    assert check_out_dir(out, workspace=workspace, mkdir=False) == warnings  # it exists now: no --mkdir needed
    shm = Path("/dev/shm")
    if shm.is_dir() and os.stat(shm).st_dev not in (os.stat(workspace).st_dev, os.stat("/").st_dev):
        # Another file system, as a stick is: no warning.
        stick = shm / f"outreach-test-{os.getpid()}"
        try:
            assert check_out_dir(stick, workspace=workspace, mkdir=True) == []
        finally:
            stick.rmdir()


def test_past_days_are_refused_unless_past(workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "usb"
    gone = (county_today() - timedelta(days=2)).isoformat()
    result = run("export", "--date", gone, "--out", str(out), "--mkdir", "-w", str(workspace))
    assert result.exit_code == 1
    assert f"--date {gone}：这一天已经过去了" in result.stderr and "请加 --past" in result.stderr
    assert not out.exists(), "a refused export makes no folder"
    check_not_past(date(2026, 12, 1), today=date(2026, 12, 6), past=True)
    check_not_past(date(2026, 12, 6), today=date(2026, 12, 6), past=False)  # today still has slots ahead
    with pytest.raises(PlanError, match="--past"):
        check_not_past(date(2026, 12, 5), today=date(2026, 12, 6), past=False)


@pytest.mark.slow
def test_export_with_mkdir_writes_the_pack_and_warns_it_is_not_a_stick(rendered_workspace: Path,
                                                                        tmp_path: Path) -> None:
    out = tmp_path / "usb"
    result = run("export", "--date", "2026-12-01", "--past", "--village", OFFLINE, "--out", str(out), "--mkdir",
                 "-w", str(rendered_workspace))
    assert result.exit_code == 0, result.output
    assert "警告：" in result.stderr and "不像是U盘" in result.stderr
    assert list(out.glob(f"*/{OFFLINE}_*/2026-12-01_*.mp3"))


# --- what changed: literal data ------------------------------------------------------------------


def _program(*scripts: str, start: str = "06:30", campaign: str = "c1") -> Program:
    hh, mm = map(int, start.split(":"))
    return Program(DAY, "morning", OFFLINE, "dazhuang", datetime(2026, 12, 8, hh, mm, tzinfo=TZ),
                   tuple(ProgramItem(s, campaign) for s in scripts), 60.0)


def _part(*scripts: str, campaign: str = "c1", start: str = "06:30") -> ExportedPart:
    hh, mm = map(int, start.split(":"))
    return ExportedPart(1, campaign, scripts, datetime(2026, 12, 8, hh, mm, tzinfo=TZ), NOW, None)


TITLES = {"a": "头盔", "b": "酒驾", "c": "96110"}


@pytest.mark.parametrize("parts, program, expected", [
    ([_part("a", "b")], _program("a", "b"), None),
    ([_part("a", "b")], _program("a", "c"), "稿件变了：加了「96110」，去掉了「酒驾」"),
    ([_part("a")], _program("a", "c"), "稿件变了：加了「96110」"),
    ([_part("a", "b")], _program("b", "a"), "节目顺序变了"),
    ([_part("a")], _program("a", start="07:00"), "播出时间变了：06:30 → 07:00"),
    ([_part("a")], None, NOT_PLANNED),
    ([_part("a", campaign="c1"), _part("c", campaign="c2")],
     Program(DAY, "morning", OFFLINE, "dazhuang", datetime(2026, 12, 8, 6, 30, tzinfo=TZ),
             (ProgramItem("a", "c1"), ProgramItem("c", "c2")), 60.0), None),
], ids=["same", "swapped-script", "added", "order", "time", "not-planned", "two-campaigns"])
def test_stale_reason_says_what_changed(parts, program, expected) -> None:
    assert stale_reason(parts, program, titles=TITLES, reapproved={}) == expected


def test_a_script_approved_again_after_the_export_makes_the_pack_stale() -> None:
    later, earlier = NOW + timedelta(hours=1), NOW - timedelta(days=3)
    assert stale_reason([_part("a")], _program("a"), titles=TITLES, reapproved={"a": earlier}) is None
    assert stale_reason([_part("a")], _program("a"), titles=TITLES, reapproved={"a": later}) == (
        "「头盔」导出后改过并重新批准，U盘上还是改之前的录音")


# --- a plan change after a real export ------------------------------------------------------------


@pytest.fixture
def exported(rendered_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """李家洼村's 12-08 exported on 12-06 to a stick (a folder here), into a fresh database."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'truth.db'}")
    loaded = load(load_config(rendered_workspace))
    engine = open_database(loaded)
    out = tmp_path / "usb"
    out.mkdir()
    report = export_days(loaded, engine, DAY, DAY, out, now=NOW, village_ids=[OFFLINE])
    assert not report.failures and len(report.written) == 2
    yield rendered_workspace, engine, out
    engine.dispose()


def _manifest_scripts(out: Path) -> dict[str, tuple[str, ...]]:
    files = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["files"]
    return {f["slot"]: tuple(f["scripts"]) for f in files}


@pytest.mark.slow
def test_a_plan_change_after_an_export_marks_the_pack_stale_until_exported_again(exported) -> None:
    ws, engine, out = exported
    assert refresh_stale(load(load_config(ws)), engine, now=NOW) == []
    on_stick = stick_scripts(engine, OFFLINE, DAY)
    stick_titles = _manifest_scripts(out)

    more_fraud_scripts(ws)
    loaded = load(load_config(ws))
    packs = refresh_stale(loaded, engine, now=NOW)
    assert [(p.village_id, p.day, p.slot) for p in packs] == [(OFFLINE, DAY, "morning"), (OFFLINE, DAY, "evening")]
    titles = {s.id: s.title for s in loaded.library}
    planned = {p.slot: p for p in plan_days(loaded, DAY, DAY, village_ids=[OFFLINE]).programs}
    for p in packs:
        added = [i.script_id for i in planned[p.slot].airable_items if i.script_id not in on_stick[p.slot]]
        assert added and p.reason.startswith("稿件变了：加了") and f"「{titles[added[0]]}」" in p.reason
    rows = exported_rows(engine, OFFLINE, DAY)
    assert all(r.status == BroadcastStatus.EXPORTED and r.stale_reason for r in rows)
    assert stick_scripts(engine, OFFLINE, DAY) == on_stick, "the rows still say what the stick carries"
    assert stale_packs(engine, today=NOW.date()) == packs

    done = export_stale(loaded, engine, out, now=NOW)
    assert done.ranges == {(DAY, DAY): [OFFLINE]} and len(done.report.written) == 2 and not done.report.failures
    assert refresh_stale(loaded, engine, now=NOW) == [] and stale_packs(engine, today=NOW.date()) == []
    rows = exported_rows(engine, OFFLINE, DAY)
    assert all(r.stale_reason is None and r.status == BroadcastStatus.EXPORTED for r in rows)
    assert stick_scripts(engine, OFFLINE, DAY) == {
        slot: {i.script_id for i in p.airable_items} for slot, p in planned.items()}
    assert all(len(_manifest_scripts(out)[slot]) > len(stick_titles[slot]) for slot in ("morning", "evening"))


@pytest.mark.slow
def test_a_confirmation_of_a_stale_pack_credits_what_the_stick_carried(exported) -> None:
    ws, engine, out = exported
    on_stick = stick_scripts(engine, OFFLINE, DAY)
    more_fraud_scripts(ws)
    loaded = load(load_config(ws))
    assert refresh_stale(loaded, engine, now=NOW)
    # The planned row of a later export never happened: the morning is confirmed as it was on the stick.
    with session(engine) as s:
        records.record_planned(s, records.broadcast_plans(plan_days(loaded, DAY, DAY, village_ids=[OFFLINE])
                                                           .programs), now=NOW)
        assert records.confirm_program(s, village_id=OFFLINE, day=DAY, slot="morning", confirmed_by="李娜",
                                       entered_by="王秀兰", now=datetime(2026, 12, 8, 9, 0, tzinfo=TZ))
    with session(engine) as s:
        confirmed = s.execute(sa.select(Broadcast.script_ids, BroadcastScript.script_id).join(
            BroadcastScript, BroadcastScript.broadcast_id == Broadcast.id).where(
            Broadcast.status == BroadcastStatus.CONFIRMED)).all()
    assert confirmed and {sid for joined, _ in confirmed for sid in joined.split(",")} == on_stick["morning"]
    assert {sid for _, sid in confirmed} == on_stick["morning"]
    added = {i.script_id for p in plan_days(loaded, DAY, DAY, village_ids=[OFFLINE]).programs if p.slot == "morning"
             for i in p.airable_items} - on_stick["morning"]
    assert added and not added & {sid for _, sid in confirmed}, "a script planned after the export is not credited"


@pytest.mark.slow
def test_plan_warns_and_export_stale_writes_only_the_stale_village(rendered_workspace: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    ws, out = rendered_workspace, tmp_path / "usb"
    day = (county_today() + timedelta(days=1)).isoformat()
    first = run("export", "--date", day, "--village", OFFLINE, "--village", OTHER, "--out", str(out), "--mkdir",
                "-w", str(ws))
    assert first.exit_code == 0, first.output
    assert "节目包已过期" not in first.stderr
    other_files = {p: p.stat().st_mtime_ns for p in out.glob(f"*/{OTHER}_*/*.mp3")}
    assert run("export", "--stale", "--out", str(out), "-w", str(ws)).stdout.startswith("没有过期的节目包")

    move_morning(ws, OFFLINE, "07:10")
    plan = run("plan", "--from", day, "--to", day, "--village", OFFLINE, "-w", str(ws))
    assert plan.exit_code == 0, plan.output
    assert "警告：节目包已过期：李家洼村" in plan.stderr and "播出时间变了：06:30 → 07:10" in plan.stderr
    assert "outreach export --stale" in plan.stderr and "西岗村" not in plan.stderr

    refused = run("export", "--stale", "--date", day, "--out", str(out), "-w", str(ws))
    assert refused.exit_code == 1 and "--stale" in refused.stderr
    again = run("export", "--stale", "--out", str(out), "-w", str(ws))
    assert again.exit_code == 0, again.output
    assert f"重新导出 李家洼村：{day} 至 {day}" in again.stderr and "西岗村" not in again.stderr
    assert "节目包已过期" not in again.stderr
    assert [p.name for p in out.glob(f"*/{OFFLINE}_*/{day}_*.mp3") if "早间" in p.name] == [f"{day}_0710_早间.mp3"]
    assert {p: p.stat().st_mtime_ns for p in out.glob(f"*/{OTHER}_*/*.mp3")} == other_files


# --- the pages ------------------------------------------------------------------------------------


def test_packs_and_today_pages_say_which_village_pack_is_stale_and_why(site, editor) -> None:  # noqa: F811
    loaded = load(load_config(site.workspace))
    day = SITE_NOW.date() + timedelta(days=1)
    programs = plan_days(loaded, day, day, village_ids=[OTHER, OFFLINE]).programs
    with session(site.engine) as s:
        records.record_exported_many(s, [(records.broadcast_plans([p], airable_only=True), "a" * 64, "neural")
                                         for p in programs], at=SITE_NOW)
    write_pack(site.workspace)  # 李家洼村's 12-11 morning file in the workspace's pack folder
    for page in ("/packs", "/today"):
        assert "节目包已过期" not in editor.get(page).text

    more_fraud_scripts(site.workspace)
    for page in ("/packs", "/today"):
        html = editor.get(page).text
        card = html[html.index('id="stale-packs"'):]
        card = card[:card.index("</section>")]
        assert "节目包已过期" in html and "西岗村" in card and "outreach export --stale" in card
        assert re.search(r"12月11日 早间 \d\d:\d\d（稿件变了：加了「[^」]+」", card), card
    listing = editor.get("/packs").text
    village = listing[listing.index("<h3>李家洼村"):]
    assert re.search(r"2026-12-11 [^<]*<span class=\"badge failed\">节目包已过期</span> <span class=\"small warn\">稿件变了",
                     village[:village.index("</table>")]), village
