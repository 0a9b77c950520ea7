"""The HTML coverage report: content, self-containment, charts and the `report` command."""

from __future__ import annotations

import base64
import datetime as dt
import re
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import outreach.cli.coverage_cmds  # noqa: F401  (registers the commands)
from outreach.cli.base import cli
from outreach.coverage import report
from outreach.db import make_engine, session, sync_registry, upgrade
from outreach.errors import CoverageError
from outreach.models import Evidence
from outreach.records import BroadcastPlan, mark_program, record_handout, record_planned

D = dt.date
NOW = dt.datetime(2026, 5, 20, 4, 0, tzinfo=dt.timezone.utc)
START, END, TODAY = D(2026, 5, 1), D(2026, 5, 31), D(2026, 5, 20)
HEADINGS = ("宣传覆盖报告", "村庄覆盖热力图", "乡镇汇总", "未覆盖村庄", "未播出的稿件", "未确认的U盘导出", "集市发放", "各村明细")
PNG = re.compile(r'<img class="chart (?:wide|narrow)" alt="[^"]+" src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
IMG = re.compile(r'<img class="chart (wide|narrow)" alt="[^"]+" src="data:image/png;base64,([A-Za-z0-9+/=]+)" '
                 r'width="(\d+)" height="(\d+)" data-text-px="([\d.]+)">')
CHARTS = 6  # heatmap, township bars and handout timeline, each for a desktop or A4 page and for a phone


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(database_url)
    upgrade(eng)
    with session(eng) as s:
        sync_registry(
            s,
            townships=[NS(id="dz", name="大庄镇"), NS(id="ls", name="梨树乡")],
            villages=[NS(id="dz-01", name="大庄村", township_id="dz", population=2000, speaker="networked"),
                      NS(id="dz-02", name="李家洼村", township_id="dz", population=600, speaker="offline"),
                      NS(id="ls-01", name="梨树村", township_id="ls", population=1500, speaker="networked")],
            markets=[NS(id="dz-ji", name="大庄集", villages=["dz-01", "dz-02"]),
                     NS(id="ls-ji", name="梨树集", villages=["ls-01"])],
            campaigns=[NS(id="fraud", name="反诈<宣传>", start=START, end=END, priority=5)],
        )
        plans = [
            BroadcastPlan(day=START + dt.timedelta(days=i), slot=slot, village_id=vid, township_id=tid,
                          campaign_id="fraud", script_ids=("fraud-96110",), scheduled_at=NOW)
            for i in range(10) for slot in ("morning", "evening")
            for vid, tid in (("dz-01", "dz"), ("dz-02", "dz"))
        ]
        record_planned(s, plans, now=NOW)
        for i in range(10):
            day = START + dt.timedelta(days=i)
            mark_program(s, day=day, slot="morning", village_id="dz-01", status="played", at=NOW,
                         evidence=Evidence.PLAYER, aired_at=NOW)
            mark_program(s, day=day, slot="evening", village_id="dz-01", status="missed", at=NOW)
            mark_program(s, day=day, slot="morning", village_id="dz-02", status="exported", at=NOW)
        mark_program(s, day=START, slot="morning", village_id="dz-02", status="confirmed", at=NOW)
        record_handout(s, market_id="dz-ji", day=D(2026, 5, 3), leaflets=300, people=210, topics=["anti_fraud"],
                       staff="张警官", now=NOW)
        record_handout(s, market_id="ls-ji", day=D(2026, 5, 11), leaflets=150, people=90, topics=["traffic"],
                       staff="李警官", now=NOW)
    yield eng
    eng.dispose()


def make_page(engine: sa.Engine, font: str | None) -> str:
    with session(engine) as s:
        data = report.collect(s, campaign_id="fraud", start=START, end=END, today=TODAY, gap_days=7,
                              target_village_ids=["dz-01", "dz-02", "ls-01"],
                              script_ids=["fraud-96110", "fraud-seven-tools"], county_name="槐川县",
                              script_titles={"fraud-96110": "96110来电，一定要接"})
    return report.render_html(data, generated_at="2026-05-20 12:00", font=font)


def test_collect_figures(engine: sa.Engine) -> None:
    with session(engine) as s:
        data = report.collect(s, campaign_id="fraud", start=START, end=END, today=TODAY,
                              target_village_ids=["dz-01", "dz-02", "ls-01"], script_ids=["fraud-96110"])
    assert [(t.township_id, t.villages_targeted, t.villages_reached, t.played, t.confirmed, t.missed, t.exported)
            for t in data.townships] == [("dz", 2, 2, 10, 1, 10, 9), ("ls", 1, 0, 0, 0, 0, 0)]
    # As of 05-20 with a 7-day window: dz-01 last played 05-10, dz-02 confirmed 05-01, ls-01 never.
    assert [(g.village_id, g.days_silent) for g in data.village_gaps] == [("dz-01", 10), ("dz-02", 19), ("ls-01", None)]
    assert [(g.township_id, g.script_id) for g in data.script_gaps] == [("ls", "fraud-96110")]
    assert [(u.village_id, u.slots) for u in data.unconfirmed] == [("dz-02", 9)]
    assert [(m.market_id, m.days, m.leaflets, m.people) for m in data.markets] == [
        ("dz-ji", 1, 300, 210), ("ls-ji", 1, 150, 90)]


def test_page_is_self_contained_chinese_with_charts(engine: sa.Engine) -> None:
    font = report.cjk_font()
    with warnings.catch_warnings():
        # matplotlib warns "Glyph ... missing from font" when it would draw tofu boxes.
        warnings.simplefilter("error", UserWarning)
        page = make_page(engine, font)
    assert page.startswith("<!DOCTYPE html>") and '<html lang="zh-CN">' in page
    for heading in HEADINGS:
        assert heading in page
    images = IMG.findall(page)
    assert sorted(layout for layout, *_ in images) == ["narrow"] * 3 + ["wide"] * 3
    for layout, data, width, height, text_px in images:
        png = base64.b64decode(data)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        natural = struct.unpack(">II", png[16:24])  # the IHDR's width and height
        assert natural == (2 * int(width), 2 * int(height))  # two image pixels per CSS pixel: sharp on a phone
        assert float(text_px) * int(width) / natural[0] >= 11  # shown at its width, no text under 11 CSS px
        assert int(width) <= {"narrow": 358, "wide": 718}[layout]  # a 390 px phone or an A4 page less margins
    # A phone shows each row as a card: every data cell carries its column's label.
    assert page.count("<td ") == page.count('<td data-label="') + page.count('<td class="title"') + page.count(
        'class="empty"')
    assert '<td data-label="未播出的稿件" class="w">「96110来电，一定要接」、「fraud-seven-tools」</td>' in page
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "<script" not in page and "@import" not in page
    assert "反诈&lt;宣传&gt;" in page and "反诈<宣传>" not in page  # names are escaped
    assert "李家洼村" in page and "大庄集" in page and "从未" in page


def test_page_without_cjk_font_uses_ids(engine: sa.Engine) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no Chinese may reach a chart drawn without a CJK font
        page = make_page(engine, None)
    assert len(PNG.findall(page)) == CHARTS
    assert "本机未安装中文字体" in page


def test_cjk_font_found() -> None:
    if report.cjk_font() is None:
        pytest.skip("no Chinese font installed (apt-get install fonts-wqy-zenhei)")
    assert report.cjk_font() in report.CJK_FAMILIES


def test_unknown_campaign(engine: sa.Engine) -> None:
    with session(engine) as s, pytest.raises(CoverageError, match="未知的宣传活动编号 'nope'；已有：fraud"):
        report.collect(s, campaign_id="nope", start=START, end=END, today=TODAY)


def test_report_command(engine: sa.Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()  # --out's folder must exist: a mistyped path creates no folders
    (tmp_path / "outreach.toml").write_text("", encoding="utf-8")
    args = ["report", "-w", str(tmp_path), "--today", "2026-05-20", "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--campaign", "nope"])
    assert result.exit_code == 1 and "错误：未知的宣传活动编号 'nope'" in result.stderr
    assert not out.exists()
    result = CliRunner().invoke(cli, [*args, "--campaign", "fraud", "--from", "2026-05-01", "--to", "2026-05-31"])
    assert result.exit_code == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    assert "统计期间：2026-05-01 至 2026-05-31" in page and len(PNG.findall(page)) == CHARTS
    assert not list(out.parent.glob("*.part"))
