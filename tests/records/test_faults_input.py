"""Fault injection, input side (issue 8): bad CSV files, absurd counts, control characters and bad dates,
each run through the real `outreach` CLI in a subprocess, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, time, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from outreach import db, records
from outreach.config import load_config
from outreach.models import Broadcast, BroadcastStatus, Handout
from outreach.planning.workspace import load, open_database

pytestmark = pytest.mark.faults

TZ = ZoneInfo("Asia/Shanghai")
PAST = date(2026, 11, 20)
FUTURE = date(2099, 6, 1)


def cli(ws: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "outreach", *args, "-w", str(ws)], env=env, text=True,
                          capture_output=True, timeout=120, check=False)


@pytest.fixture
def county(workspace: Path, database_url: str):
    """The sample county in a fresh database, with 李家洼村's packs of a past and a far future day exported."""
    engine = open_database(load(load_config(workspace)), database_url)
    with db.session(engine) as s:
        for day in (PAST, FUTURE):
            for slot, start in (("morning", time(6, 30)), ("evening", time(18, 30))):
                plan = records.BroadcastPlan(day, slot, "dazhuang-05", "dazhuang", "always-on", ("s1",),
                                             datetime.combine(day, start, TZ))
                records.record_exported(s, [plan], program_sha256="a" * 64, engine="offline",
                                        at=datetime(2026, 11, 19, tzinfo=timezone.utc))
    yield workspace, database_url, engine
    engine.dispose()


def statuses(engine) -> dict[tuple[date, str], str]:
    with db.session(engine) as s:
        return {(b.date, b.slot): b.status for b in s.scalars(sa.select(Broadcast))}


def test_an_unterminated_quote_is_an_error_at_its_line_and_the_rows_after_it_are_kept(county, tmp_path):
    """Once "1 confirmed, 0 bad", exit 0: the quote swallowed the rows after it."""
    ws, url, engine = county
    path = tmp_path / "confirm.csv"
    path.write_text("village_id,date,slot,confirmed_by,note\n"
                    f'dazhuang-05,{PAST},morning,王支书,"播放正常\n'
                    f"dazhuang-05,{PAST},evening,王支书,好\n", encoding="utf-8")
    result = cli(ws, url, "confirm", str(path), "--by", "李娜")
    assert result.returncode == 1, result.stderr
    assert result.stdout == f"{path}：已确认 1 行，已有记录 0 行，有错 1 行\n"
    assert result.stderr == f'{path} 第 2 行：这一行的引号（"）没有成对；请补上另一半引号，或删掉多余的引号\n'
    assert statuses(engine)[(PAST, "evening")] == BroadcastStatus.CONFIRMED
    # The fix, and the same file again: only the row not yet recorded is added.
    path.write_text(path.read_text(encoding="utf-8").replace('"播放正常', '"播放正常"'), encoding="utf-8")
    again = cli(ws, url, "confirm", str(path), "--by", "李娜")
    assert (again.returncode, again.stdout, again.stderr) == (
        0, f"{path}：已确认 1 行，已有记录 1 行，有错 0 行\n", "")
    with db.session(engine) as s:
        got = s.scalars(sa.select(Broadcast).where(Broadcast.date == PAST, Broadcast.slot == "morning")).one()
    assert (got.status, got.confirmed_by, got.entered_by, got.note) == ("confirmed", "王支书", "李娜", "播放正常")


def test_a_confirmation_for_a_slot_not_started_is_refused_by_the_cli(county, tmp_path):
    ws, url, engine = county
    path = tmp_path / "confirm.csv"
    path.write_text(f"village_id,date,slot,confirmed_by\ndazhuang-05,{FUTURE},morning,王支书\n", encoding="utf-8")
    result = cli(ws, url, "confirm", str(path), "--by", "李娜")
    assert result.returncode == 1
    assert result.stderr == (f"{path} 第 2 行：村 'dazhuang-05' {FUTURE} 的早间节目 {FUTURE} 06:30（北京时间）才开始，"
                             "还没有播出；请在播出之后再录入确认记录\n")
    assert statuses(engine)[(FUTURE, "morning")] == BroadcastStatus.EXPORTED


def test_absurd_counts_are_row_errors_and_the_good_rows_are_kept(county, tmp_path):
    """10^23 leaflets once crashed the import with OverflowError and lost the good rows too."""
    ws, url, engine = county
    path = tmp_path / "handouts.csv"
    path.write_text("market_id,date,leaflets,people,topics,staff\n"
                    "dazhuang-ji,2026-11-26,100000000000000000000000,10,traffic,刘警官\n"
                    "dazhuang-ji,2026-11-26,300,120,traffic;anti_fraud,刘警官\n"
                    "dazhuang-ji,2026-11-27,2000000000,10,traffic,刘警官\n"
                    "dazhuang-ji,2099-01-01,10,10,traffic,刘警官\n"
                    "dazhuang-ji,2026-11-27,40,10,traffic,陈警官\n", encoding="utf-8")
    result = cli(ws, url, "handout", "--csv", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == f"{path}：已记录 2 行，已有记录 0 行，有错 3 行\n"
    assert result.stderr.splitlines() == [
        f"{path} 第 2 行：leaflets 100000000000000000000000 超过了单条记录的上限 100,000；请检查数字，"
        "或按集日分成多条记录",
        f"{path} 第 4 行：leaflets 2000000000 超过了单条记录的上限 100,000；请检查数字，或按集日分成多条记录",
        f"{path} 第 5 行：发放日期 2099-01-01 还没到（今天是 {datetime.now(TZ).date()}，北京时间）；"
        "请到那一天或之后再登记",
        f"{path} 第 6 行：警告：按 schedules/markets.yaml 里的规则，2026-11-27 不是集市 'dazhuang-ji' 的集日；"
        "已按所填日期保存",
    ]
    with db.session(engine) as s:
        assert sorted(s.scalars(sa.select(Handout.leaflets))) == [40, 300]


@pytest.mark.parametrize("args, message", [
    pytest.param(["--leaflets", "2000000000"], "错误：leaflets 2000000000 超过了单条记录的上限 100,000", id="2e9"),
    pytest.param(["--leaflets", str(10**23)], "错误：leaflets 100000000000000000000000 超过了单条记录的上限",
                 id="1e23"),
    pytest.param(["--date", "2099-01-01"], "错误：发放日期 2099-01-01 还没到", id="2099"),
    pytest.param(["--staff", "刘\n警官"], "错误：staff 含有控制字符（U+000A", id="newline"),
])
def test_the_cli_refuses_what_the_csv_and_web_refuse(county, args, message):
    ws, url, _ = county
    base = {"--market": "dazhuang-ji", "--date": "2026-11-26", "--leaflets": "1", "--people": "1",
            "--topics": "traffic", "--staff": "刘警官"}
    base.update(dict(zip(args[::2], args[1::2])))
    result = cli(ws, url, "handout", *[x for kv in base.items() for x in kv])
    assert result.returncode == 1 and result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr


def test_by_refuses_a_newline(county, tmp_path):
    ws, url, _ = county
    path = tmp_path / "c.csv"
    path.write_text(f"village_id,date,slot,confirmed_by\ndazhuang-05,{PAST},morning,王\n", encoding="utf-8")
    result = cli(ws, url, "confirm", str(path), "--by", "李娜\nadmin")
    assert (result.returncode, result.stderr) == (
        1, "错误：--by 含有控制字符（U+000A，例如换行）；请写在一行里\n")


@pytest.mark.parametrize("value, message", [
    pytest.param("1764547200", "字段 'from'：数字 1764547200 不是日期；请写成 YYYY-MM-DD",
                 id="unix-seconds"),
    pytest.param("2026-02-30", "字段 'from'：'2026-02-30' 不是真实存在的日期；请检查月和日",
                 id="no-such-day"),
])
def test_campaign_dates_must_be_real_dates_and_errors_name_file_line_and_campaign(workspace, value, message):
    path = workspace / "schedules" / "campaigns.yaml"
    text = path.read_text(encoding="utf-8")
    assert "    from: 2026-12-01" in text
    path.write_text(text.replace("    from: 2026-12-01", f"    from: {value}", 1), encoding="utf-8")
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "- id: winter-traffic" in s)
    result = cli(workspace, f"sqlite:///{workspace / 'x.db'}", "plan", "--from", "2026-12-01", "--to", "2026-12-01")
    assert result.returncode == 1
    assert f"{path}:{line}: 宣传活动 'winter-traffic'，{message}" in result.stderr, result.stderr


def test_a_market_rule_with_a_day_that_does_not_exist_is_refused(workspace):
    result = cli(workspace, f"sqlite:///{workspace / 'x.db'}", "markets", "--rule", "逢农历三十一",
                 "--from", "2026-01-01", "--to", "2026-01-31")
    assert result.returncode == 1
    assert result.stderr.startswith("错误：集日规则 '逢农历三十一'：'三十一'（31）不是真实存在的日子")
