"""Every USB village pack carries a QR code (issue 17): 扫码确认.png and a printable 扫码确认.html per village
folder, 扫码确认单.html for the county clerk, each holding a link bound to that village's exported programs."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import segno
import sqlalchemy as sa
from click.testing import CliRunner
from PIL import Image

from outreach import db, records
from outreach.cli import cli
from outreach.config import load_config
from outreach.delivery.usb.confirm_sheets import NO_PUBLIC_URL, PACK_SHEET, QR_PNG, QR_SHEET, write_confirm_sheets
from outreach.delivery.usb.export import usb_villages
from outreach.delivery.usb.packs import ExportReport, PackFile, village_folder
from outreach.models import ConfirmToken
from outreach.planning.workspace import load, open_database
from outreach.records.confirm_links import token_sha256

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 12, 1)
NOW = datetime(2026, 11, 30, 20, 0, tzinfo=TZ)
PUBLIC = "https://gb.example.gov.cn"
VILLAGES = {"dazhuang-05": "李家洼村", "dazhuang-07": "西岗村", "dazhuang-01": "大庄村"}  # 01 is networked: a spare


def with_public_url(ws: Path, url: str | None = PUBLIC) -> None:
    """Set (or with None, remove) [web] public_url in the workspace's outreach.toml."""
    text = re.sub(r"(?m)^public_url = .*\n", "", (ws / "outreach.toml").read_text(encoding="utf-8"))
    line = f'public_url = "{url}"\n' if url else ""
    text = text.replace("\n[web]\n", f"\n[web]\n{line}", 1) if "\n[web]\n" in text else f"{text}\n[web]\n{line}"
    (ws / "outreach.toml").write_text(text, encoding="utf-8")


def qr_text_of(png: Path, url: str) -> bool:
    """Whether the PNG's modules are exactly the QR code of `url` (10 px modules, quiet zone of 4)."""
    image = Image.open(png).convert("L")
    matrix = segno.make(url, error="m", micro=False).matrix
    size = len(matrix)
    if image.size != ((size + 8) * 10,) * 2:
        return False
    return all((image.getpixel(((x + 4) * 10 + 5, (y + 4) * 10 + 5)) < 128) == bool(matrix[y][x])
               for y in range(size) for x in range(size))


@pytest.fixture
def pack(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The sample county, its 12-01 programs of three villages exported to `usb/` (files stand in for audio)."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'qr.db'}")
    with_public_url(workspace)
    loaded = load(load_config(workspace))
    engine = open_database(loaded)
    out = tmp_path / "usb"
    files = []
    with db.session(engine) as s:
        for vid, name in VILLAGES.items():
            v = loaded.registry.villages[vid]
            folder = village_folder(v.township_id, loaded.registry.townships[v.township_id].name, vid, name)
            (out / folder).mkdir(parents=True)
            for slot, start in (("morning", time(6, 30)), ("evening", time(18, 30))):
                rel = f"{folder}/2026-12-01_{start:%H%M}_{'早间' if slot == 'morning' else '晚间'}.mp3"
                (out / rel).write_bytes(b"ID3")
                files.append(PackFile(rel, "a" * 64, 300.0, vid, slot, DAY.isoformat(), f"{start:%H:%M}",
                                      f"{name} 12月1日", ("骑车戴好头盔", "96110来电一定要接"), "src"))
                plan = records.BroadcastPlan(DAY, slot, vid, v.township_id, "always-on", ("traffic-helmet",),
                                             datetime.combine(DAY, start, TZ))
                if vid in usb_villages(loaded):
                    records.record_exported(s, [plan], program_sha256="a" * 64, engine="offline", at=NOW)
    yield workspace, engine, out, files
    engine.dispose()


def write(workspace: Path, engine, out: Path, report: ExportReport,  # type: ignore[no-untyped-def]
          now: datetime = NOW) -> ExportReport:
    loaded = load(load_config(workspace))
    write_confirm_sheets(loaded, engine, out, report, village_ids=sorted(VILLAGES), usb=set(usb_villages(loaded)),
                         first_day=DAY, last_day=DAY, now=now)
    return report


def folder(out: Path, vid: str) -> Path:
    [found] = out.glob(f"*/{vid}_*")
    return found


def link_in(out: Path, vid: str) -> str:
    found = re.search(r'class="link" href="([^"]+)"', (folder(out, vid) / QR_SHEET).read_text(encoding="utf-8"))
    assert found
    return found[1]


def tokens(engine) -> list[ConfirmToken]:  # type: ignore[no-untyped-def]
    with db.session(engine) as s:
        return list(s.scalars(sa.select(ConfirmToken).order_by(ConfirmToken.village_id)))


def test_each_usb_village_folder_gets_a_qr_code_of_its_own_link_and_a_printable_page(pack) -> None:
    workspace, engine, out, files = pack
    report = write(workspace, engine, out, ExportReport(written=list(files)))
    assert report.failures == [] and report.alerts == []
    for vid in ("dazhuang-05", "dazhuang-07"):
        url = link_in(out, vid)
        assert url.startswith(f"{PUBLIC}/c/")
        assert qr_text_of(folder(out, vid) / QR_PNG, url)  # the PNG holds exactly the link the page prints
        page = (folder(out, vid) / QR_SHEET).read_text(encoding="utf-8")
        assert VILLAGES[vid] in page and "2026年12月1日" in page and "早间 06:30" in page and "骑车戴好头盔" in page
        assert "<svg" in page and "有效期到 2026年12月31日" in page and "已播放" in page
    # The spare pack of a networked village gets no QR code: nothing there to confirm.
    assert not (folder(out, "dazhuang-01") / QR_PNG).exists() and not (folder(out, "dazhuang-01") / QR_SHEET).exists()
    found = tokens(engine)
    assert [(t.village_id, t.first_day, t.last_day) for t in found] == [("dazhuang-05", DAY, DAY),
                                                                        ("dazhuang-07", DAY, DAY)]
    stored = {t.token_sha256 for t in found}
    assert {token_sha256(link_in(out, v).rsplit("/", 1)[1]) for v in ("dazhuang-05", "dazhuang-07")} == stored
    sheet = (out / PACK_SHEET).read_text(encoding="utf-8")  # what the clerk prints: one page per village
    assert sheet.count('<section class="sheet">') == 2 and "李家洼村" in sheet and "西岗村" in sheet
    assert "大庄村" not in sheet and "page-break-after:always" in sheet


def test_an_unchanged_reexport_keeps_the_link_a_changed_folder_gets_a_new_one(pack) -> None:
    workspace, engine, out, files = pack
    write(workspace, engine, out, ExportReport(written=list(files)))
    before = {v: link_in(out, v) for v in ("dazhuang-05", "dazhuang-07")}
    png = (folder(out, "dazhuang-05") / QR_PNG).read_bytes()
    later = datetime(2026, 11, 30, 21, 0, tzinfo=TZ)
    changed = [f for f in files if f.village_id == "dazhuang-07"]
    write(workspace, engine, out, ExportReport(written=changed, unchanged=[f for f in files if f not in changed]),
          now=later)
    assert link_in(out, "dazhuang-05") == before["dazhuang-05"]  # the printed page stays valid
    assert (folder(out, "dazhuang-05") / QR_PNG).read_bytes() == png
    assert link_in(out, "dazhuang-07") != before["dazhuang-07"]
    kept = next(t for t in tokens(engine) if t.token_sha256 == token_sha256(before["dazhuang-05"].rsplit("/")[-1]))
    assert kept.created_at == later  # bound again to the programs as logged now
    assert len(tokens(engine)) == 3
    # A village whose folder holds no program any more loses its QR code.
    write(workspace, engine, out, ExportReport(unchanged=[f for f in files if f.village_id != "dazhuang-07"]))
    assert not (folder(out, "dazhuang-07") / QR_PNG).exists() and not (folder(out, "dazhuang-07") / QR_SHEET).exists()
    assert (out / PACK_SHEET).read_text(encoding="utf-8").count('<section class="sheet">') == 1


def test_without_a_public_url_the_page_says_how_to_set_it_and_no_link_is_made(pack) -> None:
    workspace, engine, out, files = pack
    with_public_url(workspace, None)
    report = write(workspace, engine, out, ExportReport(written=list(files)))
    assert report.alerts == [NO_PUBLIC_URL] and "[web] public_url" in NO_PUBLIC_URL
    assert not (folder(out, "dazhuang-05") / QR_PNG).exists()
    page = (folder(out, "dazhuang-05") / QR_SHEET).read_text(encoding="utf-8")
    assert "没有设置 [web] public_url" in page and "播放说明.txt 第三部分" in page and "<svg" not in page
    assert tokens(engine) == []


@pytest.mark.slow
def test_a_real_export_puts_the_qr_code_in_the_pack(rendered_workspace: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'export.db'}")
    with_public_url(rendered_workspace)
    out = tmp_path / "usb"
    args = ["export", "--date", "2026-12-01", "--out", str(out), "--village", "西岗村", "--mkdir", "--past",
            "-w", str(rendered_workspace)]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    url = link_in(out, "dazhuang-07")
    assert qr_text_of(folder(out, "dazhuang-07") / QR_PNG, url) and (out / PACK_SHEET).is_file()
    readme = (folder(out, "dazhuang-07") / "播放说明.txt").read_text(encoding="utf-8-sig")
    assert "扫码确认.png" in readme and "dazhuang-07,2026-12-01,早间,姓名" in readme
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and "写入 0 个文件" in again.stdout
    assert link_in(out, "dazhuang-07") == url
