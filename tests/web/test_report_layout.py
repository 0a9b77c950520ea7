"""The coverage report in a real headless Chromium: a 390 px phone, a 1280 px desktop, and A4 paper."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_web_browser import CHROMIUM_ARGS, chromium_path  # noqa: F401  (fixture)

import outreach.cli.coverage_cmds  # noqa: F401  (registers the commands)
from outreach.cli.base import cli

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
MIN_TEXT_PX = 11.0
A4_PAGES = (2, 8)
"""The seeded report (20 villages, two townships) fills about four A4 pages; far off means a broken print layout."""

# Per visible element: the smallest text, chart text (image px scaled to CSS px), headers taller than two lines.
MEASURE = """() => {
  const shown = e => e.getClientRects().length > 0 && e.getBoundingClientRect().width > 1;
  const texts = [...document.body.querySelectorAll('*')].filter(e => shown(e) &&
      [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()));
  const charts = [...document.querySelectorAll('img.chart')].filter(shown);
  const headers = [...document.querySelectorAll('th')].filter(h => shown(h.closest('thead')));
  return {
    width: document.documentElement.scrollWidth,
    minText: Math.min(...texts.map(e => parseFloat(getComputedStyle(e).fontSize))),
    charts: charts.map(i => [i.className, +i.dataset.textPx * i.getBoundingClientRect().width / i.naturalWidth]),
    wrappedHeaders: headers.filter(h => h.getBoundingClientRect().height >
        2 * parseFloat(getComputedStyle(h).lineHeight)).map(h => h.textContent),
    cards: [...document.querySelectorAll('table.grid tbody tr')].filter(shown)
        .map(r => getComputedStyle(r).display),
    label: getComputedStyle(document.querySelector('td.n'), '::before').content,
    nav: getComputedStyle(document.querySelector('nav.toc')).display,
  };
}"""


@pytest.fixture
def report_page(seeded_db: Path, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`outreach report` for the seeded site's 反诈 campaign of two townships, December 2026."""
    db = tmp_path / "report.db"
    shutil.copy2(seeded_db, db)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", "-w", str(workspace), "--campaign", "fraud-dazhuang-lishu",
                                      "--today", "2026-12-10", "--from", "2026-12-01", "--to", "2026-12-31",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _check_screen(page, width: int) -> dict:  # type: ignore[no-untyped-def]
    found = page.evaluate(MEASURE)
    assert found["width"] <= width, f"the report is {found['width']} px wide at a {width} px viewport"
    assert found["minText"] >= MIN_TEXT_PX, found["minText"]
    assert len(found["charts"]) == 3, found["charts"]  # one drawing of each chart, the one for this width
    small = [(cls, round(px, 1)) for cls, px in found["charts"] if px < MIN_TEXT_PX]
    assert not small, f"chart text under {MIN_TEXT_PX} px at {width} px: {small}"
    assert not found["wrappedHeaders"], found["wrappedHeaders"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"report-{width}.png"), full_page=True)
    return found


def test_report_reads_on_a_phone_and_a_desktop_and_prints_on_a4(chromium_path: str, report_page: Path) -> None:  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
            page.goto(report_page.as_uri())
            phone = _check_screen(page, 390)
            assert set(phone["cards"]) == {"grid"} and phone["label"] == '"目标村"'  # rows are cards of label: value
            assert all(cls == "chart narrow" for cls, _ in phone["charts"])
            # 96110 aired in 大庄镇 under the urgent campaign: only 梨树乡 still lacks it.
            unaired = page.locator("#scripts tbody tr")
            assert [t.split("\n")[0] for t in unaired.all_inner_texts()] == ["梨树乡"]
            assert "「96110来电，一定要接」" in unaired.first.inner_text()

            page.set_viewport_size({"width": 1280, "height": 900})
            desk = _check_screen(page, 1280)
            assert set(desk["cards"]) == {"table-row"} and all(cls == "chart wide" for cls, _ in desk["charts"])

            page.emulate_media(media="print")
            printed = page.evaluate(MEASURE)
            assert printed["nav"] == "none" and all(cls == "chart wide" for cls, _ in printed["charts"])
            assert page.evaluate("getComputedStyle(document.body).color") == "rgb(0, 0, 0)"
            pdf = page.pdf(format="A4", prefer_css_page_size=True)
        finally:
            browser.close()
    (SHOTS / "report-a4.pdf").write_bytes(pdf)
    pages = re.findall(rb"/Type\s*/Page\b(?!s)", pdf)
    assert A4_PAGES[0] <= len(pages) <= A4_PAGES[1], f"{len(pages)} A4 pages"
    sizes = {(float(w), float(h)) for w, h in re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\]", pdf)}
    assert sizes and all(w == pytest.approx(595.3, abs=1.5) and h == pytest.approx(841.9, abs=1.5)
                         for w, h in sizes), sizes  # A4 in points
