"""The confirmation loop's records (issue 17): the lines 播放说明.txt asks for import as written, village names
and Chinese dates are taken as the CLI takes them, the air time is kept apart from the entry time, and a
confirmation credits only what the stick carried."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from outreach import db, records
from outreach.cli import cli
from outreach.config import load_config
from outreach.delivery.usb.packs import PackFile, PackItem, readme_text
from outreach.errors import RecordError
from outreach.models import Broadcast, BroadcastStatus, Evidence
from outreach.planning.workspace import load, open_database
from outreach.records.confirmations import last_reached

S = BroadcastStatus
TZ = ZoneInfo("Asia/Shanghai")
XIGANG = "dazhuang-07"  # 西岗村, fed by USB stick
LIJIAWA = "dazhuang-05"  # 李家洼村
DAY = date(2026, 12, 1)
STARTS = {"morning": time(6, 30), "evening": time(18, 30)}
EXPORTED_AT = datetime(2026, 11, 30, 20, 0, tzinfo=TZ)
ENTERED = datetime(2026, 12, 6, 18, 14, tzinfo=TZ)  # when the staff member typed it in


@pytest.fixture
def county(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The sample county in a fresh SQLite file, with 西岗村's and 李家洼村's 12-01 packs exported on 11-30."""
    url = f"sqlite:///{tmp_path / 'county.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    engine = open_database(load(load_config(workspace)))
    with db.session(engine) as s:
        for village in (XIGANG, LIJIAWA):
            for slot, start in STARTS.items():
                export(s, village, slot, ("traffic-helmet", "fraud-96110"))
    yield engine
    engine.dispose()


def export(s, village: str, slot: str, scripts: tuple[str, ...], day: date = DAY, campaign: str = "always-on",
           at: datetime = EXPORTED_AT) -> None:  # type: ignore[no-untyped-def]
    plan = records.BroadcastPlan(day, slot, village, "dazhuang", campaign, scripts,
                                 datetime.combine(day, STARTS[slot], TZ))
    records.record_exported(s, [plan], program_sha256="a" * 64, engine="offline", at=at)


def rows(engine, village: str = XIGANG) -> dict[tuple[date, str, str], Broadcast]:  # type: ignore[no-untyped-def]
    with db.session(engine) as s:
        return {(b.date, b.slot, b.campaign_id): b
                for b in s.scalars(sa.select(Broadcast).where(Broadcast.village_id == village))}


def readme_lines(village: str = XIGANG, name: str = "西岗村") -> list[str]:
    """The confirmation lines of the village's 播放说明.txt, exactly as export writes them."""
    item = PackItem(rel_path=f"dazhuang_大庄镇/{village}_{name}/x.mp3", audio=Path("x.mp3"), duration_s=300,
                    village_id=village, village_name=name, township_name="大庄镇", slot="morning", date=DAY,
                    start=time(6, 30), title="", artist="", album="", scripts=("戴好头盔",))
    files = [PackFile(f"dazhuang_大庄镇/{village}_{name}/2026-12-01_{hhmm}_{zh}.mp3", "0" * 64, 300.0, village, slot,
                      "2026-12-01", f"{hhmm[:2]}:{hhmm[2:]}", "", ("戴好头盔",), "")
             for slot, hhmm, zh in (("morning", "0630", "早间"), ("evening", "1830", "晚间"))]
    text = readme_text(item, files).removeprefix("\ufeff")
    return [line for line in text.split("\r\n") if line.startswith(f"{village},")]


def confirm(engine, source, now: datetime = ENTERED):  # type: ignore[no-untyped-def]
    with db.session(engine) as s:
        return records.import_confirmations(s, source, now=now, entered_by="李娜")


# --- the lines as the village sends them ---------------------------------------------------------


def test_the_lines_of_the_readme_import_as_written_without_a_header(county, tmp_path: Path) -> None:
    """Once `第 1 行：缺少列 village_id…` until an English header row was added."""
    lines = readme_lines()
    assert lines == [f"{XIGANG},2026-12-01,早间,姓名", f"{XIGANG},2026-12-01,晚间,姓名"]
    path = tmp_path / "回报.txt"
    path.write_text("\n".join(line.replace("姓名", "王支书") for line in lines) + "\n", encoding="utf-8")
    report = confirm(county, path)
    assert (report.rows_ok, report.rows_skipped, report.errors) == (2, 0, [])
    got = rows(county)
    for slot in STARTS:
        row = got[(DAY, slot, "always-on")]
        assert (row.status, row.confirmed_by, row.entered_by) == (S.CONFIRMED, "王支书", "李娜")


def test_pasted_lines_take_names_chinese_dates_chinese_commas_and_tabs(county) -> None:
    pasted = records.Pasted("\u200b西岗村，12月1日，早间，王支书\u200b\r\n\r\n西岗\t2026年12月1日\t晚上\t王支书\n"
                            "李家洼村,2026/12/1,早间,张会计,声音清楚, 大家都听到了\n")
    report = confirm(county, pasted)
    assert (report.rows_ok, report.errors) == (3, [])
    assert report.warnings == [(1, "日期 12月1日 → 2026-12-01")]  # the year was guessed: say which
    assert report.path.name == "粘贴的内容"
    assert {k[1]: r.status for k, r in rows(county).items()} == {"morning": S.CONFIRMED, "evening": S.CONFIRMED}
    note = rows(county, LIJIAWA)[(DAY, "morning", "always-on")].note
    assert note == "声音清楚, 大家都听到了"  # ASCII commas in a note without quotes: kept whole


def test_a_csv_with_a_header_takes_village_names_and_chinese_dates_as_the_cli_does(county, tmp_path: Path) -> None:
    """Once the CSV refused 西岗村 and 12月1日, which the CLI options accept."""
    path = tmp_path / "confirm.csv"
    path.write_text("village_id,date,slot,confirmed_by,note\n西岗村,12月1日,早间,王支书,\n"
                    f"{XIGANG},2026年12月1日,晚间,王支书,\n", encoding="utf-8-sig")
    report = confirm(county, path)
    assert (report.rows_ok, report.errors) == (2, [])
    chinese = tmp_path / "中文表头.csv"
    chinese.write_text("村,日期,时段,姓名\n李家洼村,2026-12-01,早间,张会计\n", encoding="utf-8")
    assert (confirm(county, chinese).rows_ok, rows(county, LIJIAWA)[(DAY, "morning", "always-on")].confirmed_by) == (
        1, "张会计")


def test_bad_lines_are_named_by_line_with_the_fix_and_the_good_ones_kept(county) -> None:
    report = confirm(county, records.Pasted(
        f"{XIGANG},2026-12-01,早间,姓名\n西冈村,2026-12-01,早间,王支书\n{XIGANG},12月32日,早间,王支书\n"
        f"{XIGANG},2026-12-01,中午,王支书\n{XIGANG},2026-12-01,晚间,王支书\n"))
    assert report.rows_ok == 1
    assert report.errors == [
        (1, "confirmed_by 还是“姓名”两个字；请换成村里确认播出的人的名字"),
        (2, "未知的村“西冈村”；您是不是要找：西岗村（dazhuang-07）、河西村（hexi-01）？"
            "运行 `outreach registry` 查看全部编号和名称"),
        (3, "无法识别日期 '12月32日'；请写成 2024-05-03（或 2024/5/3、5月3日）"),
        (4, "未知的时段 '中午'；请写 morning 或 evening（也可写 早上、晚上）"),
    ]


def test_a_header_missing_a_column_and_empty_input_still_say_how(county, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("village_id,date,confirmed_by\nv1,2026-12-01,王\n", encoding="utf-8")
    with pytest.raises(RecordError, match="第 1 行：缺少列 slot；第一行必须写出列名 .*；也可以不写列名行，每行按 "
                                          "village_id,date,slot,confirmed_by,note 的顺序写一条"):
        confirm(county, path)
    with pytest.raises(RecordError, match="粘贴的内容：文件是空的"):
        confirm(county, records.Pasted(" \n,,\n"))


def test_the_cli_imports_the_lines_from_a_file_and_from_stdin(county, workspace: Path, tmp_path: Path) -> None:
    path = tmp_path / "回报.txt"
    path.write_text(f"{XIGANG},2026-12-01,早间,王支书\n{XIGANG},2026-12-01,晚间,姓名\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["confirm", str(path), "--by", "李娜", "-w", str(workspace)])
    assert result.exit_code == 1
    assert "已确认 1 行，已有记录 0 行，有错 1 行" in result.stdout
    assert f"{path} 第 2 行：confirmed_by 还是“姓名”两个字；请换成村里确认播出的人的名字" in result.stderr
    piped = CliRunner().invoke(cli, ["confirm", "-", "--by", "李娜", "-w", str(workspace)],
                               input=f"{XIGANG},2026-12-01,晚间,王支书\n")
    assert piped.exit_code == 0, piped.output
    assert "标准输入：已确认 1 行" in piped.stdout
    assert rows(county)[(DAY, "evening", "always-on")].entered_by == "李娜"


# --- the air time and the entry time -------------------------------------------------------------


def test_a_confirmation_records_the_slot_start_as_air_time_and_the_typing_time_apart(county) -> None:
    """Once 上次成功播出 for 李家洼村 read 12-06 18:14, when the confirmation was typed in; the pack aired 12-01."""
    report = confirm(county, records.Pasted(f"{LIJIAWA},2026-12-01,早间,王支书\n"))
    assert report.rows_ok == 1
    row = rows(county, LIJIAWA)[(DAY, "morning", "always-on")]
    assert row.aired_at == datetime(2026, 12, 1, 6, 30, tzinfo=TZ)
    assert row.confirmed_at == ENTERED
    assert (row.evidence, row.confirmed_by, row.entered_by) == (Evidence.CONFIRMED, "王支书", "李娜")
    with db.session(county) as s:
        assert last_reached(s, until=date(2026, 12, 6))[LIJIAWA] == (datetime(2026, 12, 1, 6, 30, tzinfo=TZ), ENTERED)


def test_a_played_program_keeps_its_play_start_when_confirmed(county) -> None:
    day = DAY + timedelta(days=1)
    started = datetime(2026, 12, 2, 18, 30, 4, tzinfo=TZ)
    with db.session(county) as s:
        plan = records.BroadcastPlan(day, "evening", "dazhuang-01", "dazhuang", "always-on", ("s1",),
                                     datetime.combine(day, STARTS["evening"], TZ))
        records.record_planned(s, [plan], now=EXPORTED_AT)
        records.mark_program(s, day=day, slot="evening", village_id="dazhuang-01", status=S.PLAYED,
                             at=started + timedelta(minutes=5), evidence=Evidence.PLAYER, aired_at=started)
        assert records.confirm_program(s, village_id="dazhuang-01", day=day, slot="evening", confirmed_by="村医",
                                       entered_by="李娜", now=ENTERED)
        assert last_reached(s, until=day)["dazhuang-01"] == (started, ENTERED)
    row = rows(county, "dazhuang-01")[(day, "evening", "always-on")]
    assert (row.aired_at, row.confirmed_at, row.evidence) == (started, ENTERED, Evidence.CONFIRMED)


def test_the_last_reach_of_a_played_program_has_no_entry_time(county) -> None:
    with db.session(county) as s:
        plan = records.BroadcastPlan(DAY, "morning", "dazhuang-01", "dazhuang", "always-on", ("s1",),
                                     datetime.combine(DAY, STARTS["morning"], TZ))
        records.record_planned(s, [plan], now=EXPORTED_AT)
        records.mark_program(s, day=DAY, slot="morning", village_id="dazhuang-01", status=S.PLAYED,
                             at=datetime(2026, 12, 1, 6, 36, tzinfo=TZ))  # a row from before aired_at was kept
        assert last_reached(s, until=DAY)["dazhuang-01"] == (datetime(2026, 12, 1, 6, 36, tzinfo=TZ), None)
        assert XIGANG not in last_reached(s, until=DAY)  # exported is not reached


# --- only what the stick carried -----------------------------------------------------------------


def test_a_campaign_planned_after_the_export_is_not_credited_and_the_import_says_so(county) -> None:
    with db.session(county) as s:
        plan = records.BroadcastPlan(DAY, "morning", XIGANG, "dazhuang", "winter-traffic", ("traffic-ice",),
                                     datetime.combine(DAY, STARTS["morning"], TZ))
        records.record_planned(s, [plan], now=EXPORTED_AT + timedelta(hours=1))
    report = confirm(county, records.Pasted(f"{XIGANG},2026-12-01,早间,王支书\n"))
    assert (report.rows_ok, report.errors) == (1, [])
    assert report.warnings == [(1, "活动 winter-traffic 是导出之后才排进这个节目的，U盘上没有，不算已播")]
    got = rows(county)
    assert got[(DAY, "morning", "always-on")].status is S.CONFIRMED
    assert got[(DAY, "morning", "winter-traffic")].status is S.PLANNED
    assert got[(DAY, "morning", "winter-traffic")].evidence is Evidence.NONE


def test_a_program_never_exported_is_refused(county) -> None:
    with db.session(county) as s:
        plan = records.BroadcastPlan(DAY, "morning", "dazhuang-09", "dazhuang", "always-on", ("s1",),
                                     datetime.combine(DAY, STARTS["morning"], TZ))
        records.record_planned(s, [plan], now=EXPORTED_AT)
    report = confirm(county, records.Pasted("枣园村,2026-12-01,早间,王支书\n"))
    assert report.rows_ok == 0
    assert report.errors == [(1, "村 'dazhuang-09' 2026-12-01 的早间节目状态为“待播”，既没有导出也没有播出，不能确认")]


def test_parse_day_takes_what_read_date_takes() -> None:
    today = date(2026, 11, 30)
    for text, expected in (("2026-12-01", DAY), ("2026/12/1", DAY), ("2026.12.1", DAY), ("2026年12月1日", DAY),
                           ("12月1日", DAY), ("12月1号", DAY), ("1月2日", date(2027, 1, 2))):
        assert records.parse_day(text, today=today) == expected, text
    with pytest.raises(RecordError, match=re.escape("无法识别日期 '12月1日'")):
        records.parse_day("12月1日")  # no county date given: the year cannot be guessed
    with pytest.raises(RecordError, match="无法识别日期 '1999-12-31'"):
        records.parse_day("1999-12-31")
