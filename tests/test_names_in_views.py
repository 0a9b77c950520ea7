"""Names, not ids: the CLI's plan and gaps, the web's gaps and village pages show titles and names, and
--campaign takes a name and answers a typo with 您是不是要找 (issue 18, item 2)."""

from __future__ import annotations

import re

from click.testing import CliRunner
from web_site import Site, seeded_db, site, viewer  # noqa: F401  (fixtures)

from outreach.cli import cli

ID = re.compile(r"\b(?:fraud|traffic|dazhuang|lishu|hexi)(?:-[a-z0-9]+)*\b")  # a raw id of the sample


def _run(site: Site, *args: str):  # type: ignore[no-untyped-def]  # noqa: F811
    return CliRunner().invoke(cli, [*args, "-w", str(site.workspace)])


def test_cli_gaps_and_plan_show_names(site: Site) -> None:  # noqa: F811
    # --campaign takes the name people use; the tables show townships, villages and scripts by name.
    r = _run(site, "gaps", "--campaign", "大庄镇、梨树乡反诈宣传进村", "--today", "2026-12-12")
    assert r.exit_code == 0, r.output
    unconfirmed = r.stdout.split("未确认的U盘导出")[1]
    assert re.search(r"李家洼村\s+大庄镇\s+4", unconfirmed)  # was `dazhuang`
    assert "96110来电，一定要接" in r.stdout.split("未播出的稿件")[1]
    assert not ID.search(r.stdout), ID.findall(r.stdout)
    csv_rows = _run(site, "gaps", "--campaign", "fraud-dazhuang-lishu", "--today", "2026-12-12", "--format", "csv")
    assert "未播稿件,梨树乡,,,fraud-96110,96110来电，一定要接," in csv_rows.stdout  # id and title columns
    assert "未确认导出,大庄镇,dazhuang-05,李家洼村," in csv_rows.stdout

    plan = _run(site, "plan", "--from", "2026-12-07", "--to", "2026-12-07", "--village", "李家洼村")
    assert plan.exit_code == 0, plan.output
    assert "大庄镇李家洼村" in plan.stdout and "三不一多，记心上；境外来电要当心" in plan.stdout
    assert not ID.search(plan.stdout), ID.findall(plan.stdout)


def test_campaign_typos_get_did_you_mean(site: Site) -> None:  # noqa: F811
    for command in ("gaps", "report", "coverage"):
        extra = ["--out", str(site.workspace / "r.html")] if command == "report" else []
        r = _run(site, command, "--campaign", "fraud-dazhung-lishu", *extra)
        assert r.exit_code == 1
        assert "您是不是要找：大庄镇、梨树乡反诈宣传进村（fraud-dazhuang-lishu）？" in r.stderr, (command, r.stderr)


def test_web_gaps_and_village_pages_show_titles(site: Site, viewer) -> None:  # noqa: F811
    page = viewer.get("/gaps?campaign=fraud-dazhuang-lishu&days=7")
    assert page.status_code == 200
    scripts = page.text.split('id="script-gaps"')[1].split("</table>")[0]
    assert "96110来电，一定要接" in scripts and "梨树乡" in scripts
    assert not ID.search(re.sub(r"<[^>]+>", " ", scripts))
    village = viewer.get("/villages/dazhuang-01?from=2026-12-01&to=2026-12-09")
    history = re.sub(r"<[^>]+>", " ", village.text.split("<tbody>")[1].split("</tbody>")[0])
    assert "三不一多，记心上" in history or "96110来电，一定要接" in history
    assert not ID.search(history), ID.findall(history)
