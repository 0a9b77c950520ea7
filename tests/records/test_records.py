"""Tests for outreach.records and its CLI: as-run rows, transitions, confirmations and handouts."""

from __future__ import annotations

import re
import threading
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace as NS
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from outreach import db, records
from outreach.cli import cli
from outreach.errors import RecordError
from outreach.models import Broadcast, BroadcastScript, BroadcastStatus, Handout, ImportRecord
from outreach.records import BroadcastPlan

S = BroadcastStatus
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 5, 3, 1, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(hours=12)
DAY = date(2024, 5, 3)
REGISTRY = dict(
    townships=[NS(id="t1", name="城关镇")],
    villages=[NS(id=f"v{i}", name=f"村{i}", township_id="t1", population=500, speaker="offline") for i in (1, 2, 3)],
    markets=[NS(id="m1", name="城关集", villages={"v1"}), NS(id="m2", name="河口集", villages=set())],
    campaigns=[NS(id=c, name=c, start=DAY, end=DAY, priority=5) for c in ("fraud", "traffic")],
)


@pytest.fixture
def engine(database_url):
    eng = db.make_engine(database_url)
    db.upgrade(eng)
    with db.session(eng) as s:
        db.sync_registry(s, **REGISTRY)
    yield eng
    eng.dispose()


def plan(village="v1", slot="morning", campaign="fraud", scripts=("s1", "s2"), day=DAY):
    start = time(7, 0) if slot == "morning" else time(19, 0)
    return BroadcastPlan(day, slot, village, "t1", campaign, tuple(scripts), datetime.combine(day, start, TZ))


def rows(engine):
    with db.session(engine) as s:
        return {(b.village_id, b.slot, b.campaign_id): b for b in s.scalars(sa.select(Broadcast))}


def scripts_of(engine):
    with db.session(engine) as s:
        q = sa.select(Broadcast.campaign_id, Broadcast.village_id, BroadcastScript.position, BroadcastScript.script_id
                      ).join(BroadcastScript, BroadcastScript.broadcast_id == Broadcast.id)
        return sorted(tuple(r) for r in s.execute(q))


def mark(bind, status, village="v1", slot="morning", at=LATER, **kw):
    with db.session(bind) as s:
        return records.mark_program(s, day=DAY, slot=slot, village_id=village, status=status, at=at, **kw)


def planned(engine, plans, now=NOW):
    with db.session(engine) as s:
        return records.record_planned(s, plans, now=now)


# --- record_planned -------------------------------------------------------------


def test_record_planned_inserts_once_and_is_idempotent(engine):
    plans = [plan(), plan(campaign="traffic", scripts=("t1",)), plan(village="v2", slot="evening")]
    assert planned(engine, plans) == 3
    assert planned(engine, plans, now=LATER) == 0
    got = rows(engine)
    assert {k: (b.status, b.script_ids) for k, b in got.items()} == {
        ("v1", "morning", "fraud"): (S.PLANNED, "s1,s2"),
        ("v1", "morning", "traffic"): (S.PLANNED, "t1"),
        ("v2", "evening", "fraud"): (S.PLANNED, "s1,s2"),
    }
    assert got[("v1", "morning", "fraud")].updated_at == NOW
    assert scripts_of(engine) == [("fraud", "v1", 0, "s1"), ("fraud", "v1", 1, "s2"),
                                  ("fraud", "v2", 0, "s1"), ("fraud", "v2", 1, "s2"), ("traffic", "v1", 0, "t1")]


def test_record_planned_updates_planned_rows_but_never_downgrades(engine):
    planned(engine, [plan(), plan(village="v2")])
    assert mark(engine, S.PLAYED, village="v2") == 1
    changed = [plan(scripts=("s3",)), plan(village="v2", scripts=("s3",))]
    assert planned(engine, changed, now=LATER) == 1
    got = rows(engine)
    assert (got[("v1", "morning", "fraud")].script_ids, got[("v1", "morning", "fraud")].updated_at) == ("s3", LATER)
    assert (got[("v2", "morning", "fraud")].status, got[("v2", "morning", "fraud")].script_ids) == (S.PLAYED, "s1,s2")
    assert scripts_of(engine) == [("fraud", "v1", 0, "s3"), ("fraud", "v2", 0, "s1"), ("fraud", "v2", 1, "s2")]


def test_record_planned_handles_many_plans_in_batches(engine, monkeypatch):
    monkeypatch.setattr(records.broadcasts, "_BATCH", 100)
    days = [DAY + timedelta(days=i) for i in range(60)]
    plans = [plan(village=v, slot=sl, campaign=c, day=d, scripts=(f"{c}-a", f"{c}-b"))
             for d in days for v in ("v1", "v2", "v3") for sl in ("morning", "evening") for c in ("fraud", "traffic")]
    assert planned(engine, plans + plans[:10]) == len(plans)
    assert planned(engine, plans) == 0
    with db.session(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(BroadcastScript)) == 2 * len(plans)


def test_record_planned_refuses_naive_times(engine):
    with pytest.raises(ValueError, match="timezone-aware"), db.session(engine) as s:
        records.record_planned(s, [plan()], now=datetime(2024, 5, 3, 8, 0))


# --- mark_program ----------------------------------------------------------------

PATHS = {  # how to bring a fresh program to each status
    S.PLANNED: [], S.PLAYED: [S.PLAYED], S.EXPORTED: [S.EXPORTED], S.MISSED: [S.MISSED], S.FAILED: [S.FAILED],
    S.CONFIRMED: [S.EXPORTED, S.CONFIRMED], S.INTERRUPTED: [S.INTERRUPTED],
}
ALLOWED = {(S.PLANNED, S.PLAYED), (S.PLANNED, S.EXPORTED), (S.PLANNED, S.MISSED), (S.PLANNED, S.FAILED),
           (S.PLANNED, S.INTERRUPTED), (S.INTERRUPTED, S.PLAYED), (S.INTERRUPTED, S.MISSED),
           (S.INTERRUPTED, S.FAILED),
           (S.FAILED, S.PLAYED), (S.FAILED, S.MISSED), (S.EXPORTED, S.CONFIRMED), (S.PLAYED, S.CONFIRMED)}


@pytest.mark.parametrize("source", list(PATHS), ids=str)
@pytest.mark.parametrize("target", [s for s in S if s is not S.PLANNED], ids=str)
def test_mark_program_follows_the_transition_table(engine, source, target):
    planned(engine, [plan(), plan(campaign="traffic")])
    for step in PATHS[source]:
        assert mark(engine, step, at=NOW) == 2
    expected = 2 if (source, target) in ALLOWED else 0
    assert mark(engine, target) == expected
    with db.session(engine) as s:
        assert records.program_status(s, day=DAY, slot="morning", village_id="v1") == (
            target if expected else source)


def test_played_is_never_marked_played_again(engine):
    planned(engine, [plan(), plan(campaign="traffic"), plan(village="v2")])
    assert mark(engine, S.PLAYED, at=NOW, program_sha256="ab" * 32, engine="offline") == 2
    assert mark(engine, S.PLAYED, at=LATER) == 0
    got = rows(engine)[("v1", "morning", "fraud")]
    assert (got.played_at, got.program_sha256, got.engine) == (NOW, "ab" * 32, "offline")
    assert rows(engine)[("v2", "morning", "fraud")].status is S.PLANNED


def test_failed_then_played_keeps_the_error_and_stamps_the_time(engine):
    planned(engine, [plan()])
    assert mark(engine, S.FAILED, at=NOW, error="player exited 1") == 1
    assert mark(engine, S.PLAYED, at=LATER) == 1
    got = rows(engine)[("v1", "morning", "fraud")]
    assert (got.status, got.played_at, got.error) == (S.PLAYED, LATER, "player exited 1")


def test_two_processes_marking_played_at_once_play_once(engine, database_url):
    programs = [(v, sl) for v in ("v1", "v2", "v3") for sl in ("morning", "evening")]
    planned(engine, [plan(village=v, slot=sl) for v, sl in programs])
    results: list[int] = []
    barrier = threading.Barrier(2)

    def player():
        eng = db.make_engine(database_url)
        barrier.wait()
        for v, sl in programs:
            with db.session(eng) as s:
                results.append(records.mark_program(s, day=DAY, slot=sl, village_id=v, status=S.PLAYED, at=NOW))
        eng.dispose()

    threads = [threading.Thread(target=player) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0] * len(programs) + [1] * len(programs)


def test_program_status_of_unknown_program_is_none_and_mixed_reports_furthest(engine):
    planned(engine, [plan()])
    with db.session(engine) as s:
        assert records.program_status(s, day=DAY, slot="evening", village_id="v1") is None
    mark(engine, S.PLAYED)
    planned(engine, [plan(campaign="traffic")])  # a campaign added after the program aired
    with db.session(engine) as s:
        assert records.program_status(s, day=DAY, slot="morning", village_id="v1") is S.PLAYED


def test_planned_is_not_a_target(engine):
    with pytest.raises(ValueError, match="节目不能改成 planned 状态"):
        mark(engine, S.PLANNED)


# --- confirmations ---------------------------------------------------------------


def write(tmp_path: Path, text: str, name="in.csv", encoding="utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


CONFIRMATIONS = """village_id,date,slot,confirmed_by,note
v1,2024-05-03,morning,王主任,播放正常
v9,2024-05-03,morning,李四,
v2,2024-5-3,evening,张三,

v2,03/05/2024,morning,张三,
v2,2024-05-03,noon,张三,
v3,2024-05-03,morning,赵六,
v2,2024/05/03,早上,张三,
v1,2024-05-04,morning,王主任,
v2,2024-05-03,evening,,
"""


@pytest.fixture
def exported(engine):
    planned(engine, [plan(), plan(campaign="traffic"), plan(village="v2"), plan(village="v2", slot="evening"),
                     plan(village="v3")])
    mark(engine, S.EXPORTED, at=NOW)
    mark(engine, S.PLAYED, village="v2", at=NOW)
    mark(engine, S.EXPORTED, village="v2", slot="evening", at=NOW)
    return engine


def confirm(engine, path, now=LATER):
    with db.session(engine) as s:
        return records.import_confirmations(s, path, now=now)


def test_confirmations_keep_good_rows_and_report_bad_ones_by_line(exported, tmp_path):
    report = confirm(exported, write(tmp_path, CONFIRMATIONS, encoding="utf-8-sig"))
    assert (report.rows_ok, report.rows_skipped) == (3, 0)
    assert report.errors == [
        (3, "未知的村“v9”；您是不是要找：村3（v3）、村2（v2）、村1（v1）？"
            "运行 `outreach registry` 查看全部编号和名称"),
        (6, "无法识别日期 '03/05/2024'；请写成 2024-05-03（或 2024/5/3、5月3日）"),
        (7, "未知的时段 'noon'；请写 morning 或 evening（也可写 早上、晚上）"),
        (8, "村 'v3' 2024-05-03 的早间节目状态为“待播”，既没有导出也没有播出，不能确认"),
        (10, "村 'v1' 在 2024-05-04 早间时段没有安排播出；请检查日期和时段"),
        (11, "confirmed_by 是空的；请写上村委会里确认播出的人"),
    ]
    got = rows(exported)
    for key in [("v1", "morning", "fraud"), ("v1", "morning", "traffic"), ("v2", "evening", "fraud"),
                ("v2", "morning", "fraud")]:
        assert (got[key].status, got[key].confirmed_at) == (S.CONFIRMED, LATER), key
    assert (got[("v1", "morning", "fraud")].confirmed_by, got[("v1", "morning", "fraud")].note) == ("王主任", "播放正常")
    assert got[("v3", "morning", "fraud")].status is S.PLANNED


def test_the_same_confirmation_file_twice_adds_nothing(exported, tmp_path):
    path = write(tmp_path, CONFIRMATIONS)
    confirm(exported, path)
    before = {k: (b.status, b.confirmed_at) for k, b in rows(exported).items()}
    again = confirm(exported, path, now=LATER + timedelta(days=1))
    assert (again.rows_ok, again.rows_skipped, len(again.errors)) == (0, 3, 6)
    assert {k: (b.status, b.confirmed_at) for k, b in rows(exported).items()} == before
    with db.session(exported) as s:
        assert [(r.kind, r.rows_ok, r.rows_bad, r.imported_at) for r in s.scalars(sa.select(ImportRecord))] == [
            ("confirmations", 0, 6, LATER + timedelta(days=1))]


def test_a_file_with_bad_rows_can_be_imported_again_after_the_fix(exported, tmp_path):
    """Once a whole-file "already imported" check meant a fixed row could never come in."""
    path = write(tmp_path, "village_id,date,slot,confirmed_by\nv1,2024-05-03,morning,王\nv3,2024-05-03,morning,赵\n")
    first = confirm(exported, path)
    assert (first.rows_ok, [line for line, _ in first.errors]) == (1, [3])
    mark(exported, S.EXPORTED, village="v3", at=NOW)  # the fix: v3's pack is exported after all
    again = confirm(exported, path, now=LATER + timedelta(hours=1))
    assert (again.rows_ok, again.rows_skipped, again.errors) == (1, 1, [])
    got = rows(exported)
    assert (got[("v3", "morning", "fraud")].status, got[("v1", "morning", "fraud")].confirmed_at) == (
        S.CONFIRMED, LATER)


def test_a_row_already_confirmed_in_another_file_is_skipped(exported, tmp_path):
    confirm(exported, write(tmp_path, "village_id,date,slot,confirmed_by\nv1,2024-05-03,morning,王\n", "a.csv"))
    report = confirm(exported, write(tmp_path, "\ufeffVillage_ID,Date,Slot,Confirmed_By\r\nv1,2024-05-03,morning,李\r\n",
                                     "b.csv"))
    assert (report.rows_ok, report.rows_skipped, report.errors) == (0, 1, [])
    assert rows(exported)[("v1", "morning", "fraud")].confirmed_by == "王"


@pytest.mark.parametrize("text, encoding, message", [
    pytest.param("village_id,date,slot,confirmed_by\nv1,2024-05-03,morning,王主任\n", "gbk",
                 "第 2 行：不是 UTF-8 文本.*CSV UTF-8", id="gbk-from-excel"),
    pytest.param("village_id,date,confirmed_by\nv1,2024-05-03,王\n", "utf-8", "第 1 行：缺少列 slot；第一行必须写出列名 village_id,date,slot,confirmed_by", id="no-slot"),
    pytest.param("\n\n", "utf-8", "文件是空的；第一行必须写出列名", id="empty"),
])
def test_unreadable_confirmation_files_are_record_errors_naming_the_file(exported, tmp_path, text, encoding, message):
    path = write(tmp_path, text, encoding=encoding)
    with pytest.raises(RecordError, match=message) as err:
        confirm(exported, path)
    assert str(path) in str(err.value)


# --- handouts -------------------------------------------------------------------


def handout(engine, **kw):
    args = dict(market_id="m1", day=DAY, leaflets=200, people=150, topics=["traffic", "anti_fraud"], staff="刘警官",
                now=NOW)
    args.update(kw)
    with db.session(engine) as s:
        return records.record_handout(s, **args)


def test_record_handout_stores_a_record(engine):
    h = handout(engine, topics=["反诈", "traffic"], note="雨天")
    assert h.id is not None
    with db.session(engine) as s:
        got = s.get(Handout, h.id)
    assert (got.market_id, got.date, got.leaflets, got.people, got.topics, got.staff, got.note) == (
        "m1", DAY, 200, 150, "traffic,anti_fraud", "刘警官", "雨天")
    assert got.created_at == NOW and got.created_at.tzinfo is not None


@pytest.mark.parametrize("changes, message", [
    pytest.param({"market_id": "m9"}, "未知的集市 'm9'；请使用其中之一：m1、m2", id="unknown-market"),
    pytest.param({"leaflets": -1}, "leaflets 不能小于 0（填的是 -1）", id="negative-leaflets"),
    pytest.param({"people": -5}, "people 不能小于 0（填的是 -5）", id="negative-people"),
    pytest.param({"topics": ["drugs"]}, "未知的主题 'drugs'；请写 traffic 或 anti_fraud", id="unknown-topic"),
    pytest.param({"topics": []}, "没有填写主题；请写 traffic、anti_fraud 中的一个或多个", id="no-topic"),
])
def test_record_handout_errors_say_the_fix(engine, changes, message):
    with pytest.raises(RecordError, match=message):
        handout(engine, **changes)


def test_record_handout_twice_is_refused(engine):
    first = handout(engine)
    with pytest.raises(RecordError, match=f"这条发放记录已经登记过（#{first.id}）"):
        handout(engine, topics=["anti_fraud", "traffic"])


def test_handouts_need_the_registry_loaded(database_url):
    eng = db.make_engine(database_url)
    db.upgrade(eng)
    with pytest.raises(RecordError, match="数据库里还没有集市；请在工作区文件夹里运行命令"):
        handout(eng)
    eng.dispose()


HANDOUTS = """market_id,date,leaflets,people,topics,staff,note
m1,2024-05-03,200,150,traffic;anti_fraud,刘警官,
m2,2024-05-03,80,60,交通、反诈,陈警官,下雨
m9,2024-05-03,10,10,traffic,陈警官,
m1,2024-05-03,-3,10,traffic,陈警官,
m1,2024-05-03,ten,10,traffic,陈警官,
m1,2024-05-03,10,10,drugs,陈警官,
m1,2024-05-03,200,150,anti_fraud;traffic,刘警官,
"""


def test_import_handouts_keeps_good_rows_reports_bad_and_is_idempotent(engine, tmp_path):
    with db.session(engine) as s:
        report = records.import_handouts(s, write(tmp_path, HANDOUTS, encoding="utf-8-sig"), now=NOW)
    assert (report.rows_ok, report.rows_skipped) == (2, 1)
    assert report.errors == [
        (4, "未知的集市 'm9'；请使用其中之一：m1、m2"),
        (5, "leaflets 不能小于 0（填的是 -3）"),
        (6, "leaflets 'ten' 不是整数"),
        (7, "未知的主题 'drugs'；请写 traffic 或 anti_fraud（也可写 交通、反诈）"),
    ]
    # The same rows in another file (here with one more row) are not counted twice.
    with db.session(engine) as s:
        again = records.import_handouts(
            s, write(tmp_path, HANDOUTS.splitlines()[0] + "\n" + "\n".join(HANDOUTS.splitlines()[1:3])
                     + "\nm2,2024-05-02,5,5,traffic,陈警官,\n", "week.csv"), now=LATER)
        assert (again.rows_ok, again.rows_skipped, again.errors) == (1, 2, [])
        assert s.scalar(sa.select(sa.func.sum(Handout.leaflets))) == 285
        assert sorted(s.scalars(sa.select(Handout.topics))) == ["traffic", "traffic,anti_fraud", "traffic,anti_fraud"]


# --- CLI -------------------------------------------------------------------------


@pytest.fixture
def run(engine, database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "outreach.toml").write_text("", encoding="utf-8")  # a workspace without schedules/

    def invoke(*args):
        return CliRunner().invoke(cli, [*args, "-w", str(ws)], catch_exceptions=False)
    return invoke


def test_cli_confirm_prints_counts_and_bad_rows_then_exits_1(exported, run, tmp_path):
    path = write(tmp_path, "village_id,date,slot,confirmed_by\nv1,2024-05-03,morning,王\nv9,2024-05-03,morning,李\n")
    result = run("confirm", str(path), "--by", "李娜")
    assert result.exit_code == 1
    assert result.stdout == f"{path}：已确认 1 行，已有记录 0 行，有错 1 行\n"
    assert result.stderr == (f"{path} 第 3 行：未知的村“v9”；您是不是要找：村3（v3）、村2（v2）、村1（v1）？"
                             "运行 `outreach registry` 查看全部编号和名称\n")
    assert rows(exported)[("v1", "morning", "fraud")].entered_by == "李娜"
    path.write_text("village_id,date,slot,confirmed_by\nv1,2024-05-03,morning,王\nv2,2024-05-03,evening,李\n")
    again = run("confirm", str(path), "--by", "李娜")
    assert (again.exit_code, again.stdout) == (0, f"{path}：已确认 1 行，已有记录 1 行，有错 0 行\n")


def test_cli_confirm_needs_the_staff_member(exported, run, tmp_path):
    path = write(tmp_path, "village_id,date,slot,confirmed_by\nv1,2024-05-03,morning,王\n")
    result = run("confirm", str(path))
    assert result.exit_code == 2 and "--by" in result.stderr
    result = run("confirm", str(path), "--by", "李\n娜")
    assert (result.exit_code, result.stderr) == (
        1, "错误：--by 含有控制字符（U+000A，例如换行）；请写在一行里\n")


def test_cli_confirm_a_gbk_file_is_an_error(exported, run, tmp_path):
    path = write(tmp_path, "village_id,date,slot,confirmed_by\nv1,2024-05-03,morning,王主任\n", encoding="gbk")
    result = run("confirm", str(path), "--by", "李娜")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"错误：{path} 第 2 行：不是 UTF-8 文本")
    assert "另存为" in result.stderr and "CSV UTF-8" in result.stderr


def test_cli_handout_records_one(run):
    result = run("handout", "--market", "m1", "--date", "2024-05-03", "--leaflets", "200", "--people", "150",
                 "--topics", "traffic,anti_fraud", "--staff", "刘警官")
    assert result.exit_code == 0, result.output
    assert result.stdout == "已记录发放 #1：m1 2024-05-03，传单 200 份，交谈 150 人，主题 交通安全、反诈骗\n"


@pytest.mark.parametrize("args, message", [
    pytest.param(["--market", "m9"], "错误：未知的集市 'm9'；请使用其中之一：m1、m2", id="unknown-market"),
    pytest.param(["--leaflets", "-2"], "错误：leaflets 不能小于 0（填的是 -2）", id="negative"),
    pytest.param(["--topics", "drugs"], "错误：未知的主题 'drugs'；请写 traffic 或 anti_fraud（也可写 交通、反诈）",
                 id="topic"),
])
def test_cli_handout_errors(run, args, message):
    base = {"--market": "m1", "--date": "2024-05-03", "--leaflets": "1", "--people": "1", "--topics": "traffic"}
    base.update(dict(zip(args[::2], args[1::2])))
    result = run("handout", *[x for kv in base.items() for x in kv])
    assert (result.exit_code, result.stderr) == (1, message + "\n")


def test_cli_handout_csv_import(run, tmp_path):
    path = write(tmp_path, HANDOUTS)
    result = run("handout", "--csv", str(path))
    assert result.exit_code == 1
    assert result.stdout == f"{path}：已记录 2 行，已有记录 1 行，有错 4 行\n"
    assert result.stderr.splitlines()[0] == f"{path} 第 4 行：未知的集市 'm9'；请使用其中之一：m1、m2"
    assert run("handout", "--csv", str(path), "--market", "m1").exit_code == 2


def test_cli_handout_without_registry_says_to_load_it(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    (tmp_path / "outreach.toml").write_text("", encoding="utf-8")
    result = CliRunner().invoke(cli, ["handout", "--market", "m1", "--leaflets", "1", "--people", "1",
                                      "--topics", "traffic", "-w", str(tmp_path)])
    assert result.exit_code == 1
    assert "数据库里还没有集市；请在工作区文件夹里运行命令（或用 -w DIR 指定工作区）" in result.stderr


def test_record_commands_have_help():
    for name in ("confirm", "handout"):
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and len(result.stdout.splitlines()) > 5


# --- records only accept what can be true (issue 7) --------------------------------


def test_a_confirmation_before_the_slot_starts_is_refused_row_by_row(engine, tmp_path):
    """A confirmation for 12-03 was once accepted on 11-30, three days before it could air."""
    planned(engine, [plan(), plan(slot="evening"), plan(village="v2", slot="evening")])
    mark(engine, S.EXPORTED, at=NOW)
    mark(engine, S.EXPORTED, slot="evening", at=NOW)
    mark(engine, S.EXPORTED, village="v2", slot="evening", at=NOW)
    path = write(tmp_path, "village_id,date,slot,confirmed_by\n"
                           "v1,2024-05-03,morning,王\nv1,2024-05-03,evening,王\nv2,2024-05-03,evening,张\n")
    at_noon = datetime(2024, 5, 3, 12, 0, tzinfo=TZ)  # after 07:00, before 19:00 (Beijing)
    report = confirm(engine, path, now=at_noon)
    assert (report.rows_ok, report.rows_skipped) == (1, 0)
    assert report.errors == [
        (3, "村 'v1' 2024-05-03 的晚间节目 2024-05-03 19:00（北京时间）才开始，还没有播出；"
            "请在播出之后再录入确认记录"),
        (4, "村 'v2' 2024-05-03 的晚间节目 2024-05-03 19:00（北京时间）才开始，还没有播出；"
            "请在播出之后再录入确认记录"),
    ]
    assert rows(engine)[("v1", "evening", "fraud")].status is S.EXPORTED
    # The same file after the evening slot: the refused rows come in, the confirmed one is skipped.
    later = confirm(engine, path, now=datetime(2024, 5, 3, 19, 0, tzinfo=TZ))
    assert (later.rows_ok, later.rows_skipped, later.errors) == (2, 1, [])


def test_the_confirmer_is_kept_apart_from_the_staff_member_who_entered_it(exported, tmp_path):
    path = write(tmp_path, "village_id,date,slot,confirmed_by,note\nv1,2024-05-03,morning,王主任,正常\n")
    with db.session(exported) as s:
        records.import_confirmations(s, path, now=LATER, entered_by="李娜")
    got = rows(exported)[("v1", "morning", "fraud")]
    assert (got.confirmed_by, got.entered_by, got.note) == ("王主任", "李娜", "正常")
    with db.session(exported) as s:
        assert records.confirm_program(s, village_id="v2", day=DAY, slot="evening", confirmed_by="张村医",
                                       entered_by="刘警官", now=LATER) is True
    assert (rows(exported)[("v2", "evening", "fraud")].confirmed_by,
            rows(exported)[("v2", "evening", "fraud")].entered_by) == ("张村医", "刘警官")


@pytest.mark.parametrize("day, message", [
    pytest.param(date(2024, 5, 4), "发放日期 2024-05-04 还没到（今天是 2024-05-03，北京时间）；请到那一天或之后再登记",
                 id="tomorrow"),
    pytest.param(date(2099, 1, 1), "发放日期 2099-01-01 还没到", id="2099"),
    pytest.param(date(1999, 12, 31), "发放日期 1999-12-31 早于 2000-01-01；请检查年份", id="1999"),
])
def test_a_handout_dated_in_the_future_is_refused(engine, day, message):
    with pytest.raises(RecordError, match=re.escape(message)):
        handout(engine, day=day)


def test_today_in_beijing_is_not_the_future_even_when_utc_is_still_yesterday(engine):
    # 2024-05-03 23:30 UTC is already 05-04 07:30 in the county.
    h = handout(engine, day=date(2024, 5, 4), now=datetime(2024, 5, 3, 23, 30, tzinfo=timezone.utc))
    assert h.date == date(2024, 5, 4)


@pytest.mark.parametrize("changes, message", [
    pytest.param({"leaflets": 10**23}, "leaflets 100000000000000000000000 超过了单条记录的上限 100,000",
                 id="10^23"),
    pytest.param({"people": 2 * 10**9}, "people 2000000000 超过了单条记录的上限 100,000", id="2e9"),
    pytest.param({"staff": "刘\n警官"}, r"staff 含有控制字符（U\+000A，例如换行）；请写在一行里", id="newline"),
    pytest.param({"staff": "刘\x00"}, r"staff 含有控制字符（U\+0000", id="nul"),
    pytest.param({"note": "x" * 501}, "note 有 501 个字符；最多 500 个", id="long-note"),
    pytest.param({"leaflets": True}, "leaflets 'True' 不是整数", id="bool"),
])
def test_counts_and_names_have_the_same_caps_everywhere(engine, changes, message):
    with pytest.raises(RecordError, match=message):
        handout(engine, **changes)
    assert records.MAX_LEAFLETS == records.MAX_PEOPLE == 100_000
    assert records.check_count(100_000, "leaflets") == 100_000


def test_a_handout_on_a_day_that_is_not_a_market_day_is_kept_with_a_warning(engine, tmp_path):
    path = write(tmp_path, "market_id,date,leaflets,people,topics,staff\n"
                           "m1,2024-05-02,10,10,traffic,刘\nm1,2024-05-03,20,10,traffic,刘\n")
    with db.session(engine) as s:
        report = records.import_handouts(s, path, now=NOW, is_market_day=lambda m, d: d.day % 2 == 1)
    assert (report.rows_ok, report.errors) == (2, [])
    assert report.warnings == [(2, "按 schedules/markets.yaml 里的规则，2024-05-02 不是集市 'm1' 的集日；"
                                   "已按所填日期保存")]
    assert records.market_day_warning(None, "m1", date(2024, 5, 2)) is None
    assert records.market_day_warning(lambda m, d: None, "m9", date(2024, 5, 2)) is None


def test_a_csv_date_without_its_year_takes_the_nearest_day_and_says_so(engine, tmp_path):
    """Staff write 5月2日 as on paper; NOW is 2024-05-03 in Beijing, so it means 2024-05-02."""
    path = write(tmp_path, "market_id,date,leaflets,people,topics,staff\n"
                           "m1,5月2日,10,10,traffic,刘\nm1,2024/5/1,20,10,traffic,刘\nm1,13月2日,5,5,traffic,刘\n")
    with db.session(engine) as s:
        report = records.import_handouts(s, path, now=NOW)
        days = sorted(s.scalars(sa.select(Handout.date)).all())
    assert report.rows_ok == 2 and [line for line, _ in report.errors] == [4]
    assert (2, "日期 5月2日 → 2024-05-02") in report.warnings
    assert days == [date(2024, 5, 1), date(2024, 5, 2)]


# --- strict CSV ------------------------------------------------------------------------


def test_an_unterminated_quote_is_an_error_at_its_line_and_later_rows_are_kept(exported, tmp_path):
    """Once "1 confirmed, 0 bad": the quote swallowed every row after it."""
    path = write(tmp_path, 'village_id,date,slot,confirmed_by,note\n'
                           'v1,2024-05-03,morning,王,"正常\n'
                           'v2,2024-05-03,evening,张,"说""好的"""\n'
                           'v2,2024-05-03,morning,张,ab"c\n'
                           'v2,2024-05-03,morning,张,"a"b\n'
                           'v2,2024-05-03,morning,张,好\x00\n')
    report = confirm(exported, path)
    assert report.rows_ok == 1
    assert report.errors == [
        (2, '这一行的引号（"）没有成对；请补上另一半引号，或删掉多余的引号'),
        (4, '这一行的引号（"）没有成对；请补上另一半引号，或删掉多余的引号'),
        (5, '引号用法不对（右引号后面应紧跟逗号）；带引号的字段请写成 "文字"，后面紧跟逗号'),
        (6, "这一行含有控制字符（U+0000）；请删掉它"),
    ]
    assert rows(exported)[("v2", "evening", "fraud")].note == '说"好的"'


def test_an_absurd_count_in_a_csv_is_a_row_error_and_good_rows_are_kept(engine, tmp_path):
    """10^23 leaflets once crashed the import with OverflowError and lost the good rows too."""
    path = write(tmp_path, "market_id,date,leaflets,people,topics,staff\n"
                           "m1,2024-05-03,100000000000000000000000,10,traffic,刘\n"
                           "m1,2024-05-03,2000000000,10,traffic,刘\n"
                           "m1,2024-05-03,1e5,10,traffic,刘\n"
                           "m1,2024-05-03,３００,10,traffic,刘\n")
    with db.session(engine) as s:
        report = records.import_handouts(s, path, now=NOW)
    assert report.rows_ok == 1
    assert report.errors == [
        (2, "leaflets 100000000000000000000000 超过了单条记录的上限 100,000；请检查数字，或按集日分成多条记录"),
        (3, "leaflets 2000000000 超过了单条记录的上限 100,000；请检查数字，或按集日分成多条记录"),
        (4, "leaflets '1e5' 不是整数"),
    ]
    with db.session(engine) as s:
        assert s.scalar(sa.select(Handout.leaflets)) == 300


def test_a_handout_file_can_be_imported_again_after_its_bad_rows_are_fixed(engine, tmp_path):
    path = write(tmp_path, "market_id,date,leaflets,people,topics,staff\n"
                           "m1,2024-05-03,10,10,traffic,刘\nm1,2024-05-03,ten,10,traffic,陈\n")
    with db.session(engine) as s:
        first = records.import_handouts(s, path, now=NOW)
    assert (first.rows_ok, len(first.errors)) == (1, 1)
    path.write_text(path.read_text().replace("ten", "12"))
    with db.session(engine) as s:
        fixed = records.import_handouts(s, path, now=LATER)
        assert (fixed.rows_ok, fixed.rows_skipped, fixed.errors) == (1, 1, [])
        assert sorted(s.scalars(sa.select(Handout.leaflets))) == [10, 12]


# --- re-export after a plan change (issue 8 point 6) -------------------------------------


def exported_rows(engine, plans, sha, at=NOW):
    with db.session(engine) as s:
        return records.record_exported(s, plans, program_sha256=sha, engine="offline", at=at)


def test_a_re_export_after_a_plan_change_rewrites_the_exported_rows(engine):
    first = [plan(), plan(campaign="traffic", scripts=("t1",))]
    assert exported_rows(engine, first, "a" * 64) == 2
    assert exported_rows(engine, first, "a" * 64, at=LATER) == 0  # unchanged: nothing rewritten
    # The plan changes: fraud gets another script, traffic drops out of the program.
    second = [plan(scripts=("s3",))]
    assert exported_rows(engine, second, "b" * 64, at=LATER) == 1
    got = rows(engine)
    assert set(got) == {("v1", "morning", "fraud")}
    row = got[("v1", "morning", "fraud")]
    assert (row.status, row.script_ids, row.program_sha256, row.exported_at) == (S.EXPORTED, "s3", "b" * 64, LATER)
    assert scripts_of(engine) == [("fraud", "v1", 0, "s3")]
    # A confirmation credits what was exported last, and nothing else.
    mark(engine, S.CONFIRMED, at=LATER + timedelta(hours=1), confirmed_by="王")
    with db.session(engine) as s:
        heard = s.execute(sa.select(BroadcastScript.script_id).join(Broadcast).where(
            Broadcast.status == S.CONFIRMED)).scalars().all()
    assert heard == ["s3"]
    # A confirmed program is history: a later export does not rewrite it.
    assert exported_rows(engine, [plan(scripts=("s4",))], "c" * 64, at=LATER + timedelta(hours=2)) == 0
    assert rows(engine)[("v1", "morning", "fraud")].script_ids == "s3"


def test_record_exported_takes_one_program(engine):
    with pytest.raises(ValueError, match="一次只记一个节目"), db.session(engine) as s:
        records.record_exported(s, [plan(), plan(village="v2")], program_sha256="a" * 64, engine=None, at=NOW)


def test_record_exported_many_does_what_record_exported_does_for_each_program(engine):
    """The export logs its programs in one batch; the rows are those of one record_exported per program."""
    def many(programs, at):
        with db.session(engine) as s:
            return records.record_exported_many(s, [(plans, sha, "offline") for plans, sha in programs], at=at)

    first = [([plan(), plan(campaign="traffic", scripts=("t1",))], "a" * 64), ([plan(village="v2")], "a" * 64)]
    assert many(first, NOW) == 3
    assert many(first, LATER) == 0  # unchanged: nothing rewritten
    mark(engine, S.CONFIRMED, at=LATER, confirmed_by="王")  # v1 is history now
    assert many([([plan(scripts=("s3",))], "b" * 64), ([plan(village="v2", scripts=("s3",))], "b" * 64)], LATER) == 1
    got = rows(engine)
    assert got[("v1", "morning", "fraud")].status == S.CONFIRMED and ("v1", "morning", "traffic") in got
    row = got[("v2", "morning", "fraud")]
    assert (row.status, row.script_ids, row.program_sha256, row.exported_at) == (S.EXPORTED, "s3", "b" * 64, LATER)
    assert ("fraud", "v2", 0, "s3") in scripts_of(engine)
    with pytest.raises(ValueError, match="一次只记一个节目"):
        many([([plan(), plan(village="v2")], "a" * 64)], NOW)


# --- the README tour's sample -------------------------------------------------------------


def test_the_tour_sample_confirmations_import_cleanly_and_a_slot_still_to_come_waits(workspace, tmp_path):
    """samples/confirmations.csv, as the README tour runs it after exporting 11-28 and 12-01 (on 11-30):
    it imports with no error; a row for 12-01 evening added to it is refused until that slot starts."""
    from outreach.config import load_config
    from outreach.planning.workspace import load, open_database

    sample = Path(__file__).resolve().parents[2] / "samples" / "confirmations.csv"
    engine = open_database(load(load_config(workspace)), f"sqlite:///{tmp_path / 'tour.db'}")
    try:
        with db.session(engine) as s:
            for day in (date(2026, 11, 28), date(2026, 12, 1)):
                for slot, start in (("morning", time(6, 30)), ("evening", time(18, 30))):
                    p = BroadcastPlan(day, slot, "dazhuang-05", "dazhuang", "always-on", ("traffic-helmet",),
                                      datetime.combine(day, start, TZ))
                    records.record_exported(s, [p], program_sha256="a" * 64, engine="offline",
                                            at=datetime(2026, 11, 27, tzinfo=timezone.utc))
        tour_day = datetime(2026, 11, 30, 10, 0, tzinfo=TZ)
        with db.session(engine) as s:
            report = records.import_confirmations(s, sample, now=tour_day, entered_by="李娜")
        assert (report.rows_ok, report.rows_skipped, report.errors) == (2, 0, [])
        later = write(tmp_path, sample.read_text(encoding="utf-8") + "dazhuang-05,2026-12-01,evening,王支书,\n")
        with db.session(engine) as s:
            early = records.import_confirmations(s, later, now=tour_day, entered_by="李娜")
        assert (early.rows_ok, early.rows_skipped) == (0, 2)
        assert early.errors == [(4, "村 'dazhuang-05' 2026-12-01 的晚间节目 2026-12-01 18:30（北京时间）才开始，"
                                    "还没有播出；请在播出之后再录入确认记录")]
        with db.session(engine) as s:
            after = records.import_confirmations(s, later, now=datetime(2026, 12, 1, 21, 0, tzinfo=TZ),
                                                 entered_by="李娜")
        assert (after.rows_ok, after.rows_skipped, after.errors) == (1, 2, [])
    finally:
        engine.dispose()
