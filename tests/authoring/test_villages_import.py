"""Excel in (issue 18): the village list from 村庄.xlsx into county.yaml, by CLI and browser, with a preview."""

from __future__ import annotations

import io
import json
import re
from datetime import time
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from web_site import Site, client_as, editor, seeded_db, site, token  # noqa: F401  (fixtures)

from outreach.authoring.villages_import import VillageImportError, read_sheet, sample_sheet
from outreach.cli import cli
from outreach.planning.registry import Speaker, load_registry


def _sheet(rows: list[list], header: tuple[str, ...] = ("乡镇", "村名", "人口", "喇叭类型", "早播出时间", "晚播出时间")) -> bytes:
    book = openpyxl.Workbook()
    book.active.append(list(header))
    for row in rows:
        book.active.append(row)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def _county(ws: Path) -> Path:
    return ws / "schedules" / "county.yaml"


def _edited_template(ws: Path, tmp_path: Path) -> Path:
    """`villages template` of the sample county, with 大庄村's population changed and 石桥镇 石桥村 added."""
    path = tmp_path / "村庄.xlsx"
    result = CliRunner().invoke(cli, ["villages", "template", str(path), "-w", str(ws)])
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(path)
    sheet = book.active
    assert [c.value for c in sheet[1]] == ["乡镇", "村名", "人口", "喇叭类型", "早播出时间", "晚播出时间"]
    assert [c.value for c in sheet[2]][:4] == ["大庄镇", "大庄村", 2860, "联网"]
    sheet["C2"] = 3000
    sheet["D3"], sheet["E3"] = "U盘", "06:10"  # 前营村: networked, county times
    sheet.append(["石桥镇", "石桥村", 800, "站点", None, time(19, 0)])
    sheet.append(["大庄镇", "新庄村", "1,200人", "U盘", "6点", None])
    book.save(path)
    return path


def test_cli_import_previews_asks_and_writes_only_what_changed(workspace: Path, tmp_path: Path) -> None:
    sheet = _edited_template(workspace, tmp_path)
    before = _county(workspace).read_text(encoding="utf-8")
    args = ["villages", "import", str(sheet), "-w", str(workspace)]
    declined = CliRunner().invoke(cli, args, input="n\n")
    assert declined.exit_code == 0, declined.output
    assert "新增 2 个村，修改 2 个，不变 28 个" in declined.stdout
    assert "新乡镇：石桥镇（编号 shiqiao）" in declined.stdout
    assert "修改：第2行 大庄镇 大庄村：人口 2860 → 3000" in declined.stdout
    assert "修改：第3行 大庄镇 前营村：喇叭类型 联网播放 → U盘离线；早播出时间 全县统一时间 → 06:10" in declined.stdout
    assert "新增：第33行 大庄镇 新庄村（编号 dazhuang-11）" in declined.stdout
    assert "+  - {id: shiqiao-01, name: 石桥村, township: shiqiao, population: 800, speaker: station, " \
           'slots: {evening: "19:00"}}' in declined.stdout
    assert "没有写入" in declined.stdout and _county(workspace).read_text(encoding="utf-8") == before

    written = CliRunner().invoke(cli, args, input="y\n")
    assert written.exit_code == 0, written.output
    after = _county(workspace).read_text(encoding="utf-8")
    changed = [line for line in after.splitlines() if line not in before.splitlines()]
    assert len(changed) == 5  # 大庄村's and 前营村's lines, 石桥镇, 石桥村, 新庄村: nothing else moved
    assert "# 菜农六点半前就下地" in after and "# 梨树乡" in after  # comments kept
    assert after.index("dazhuang-11") < after.index("# 梨树乡")  # a new village joins its township's group
    registry = load_registry(workspace / "schedules")
    assert registry.villages["dazhuang-01"].population == 3000
    assert (registry.villages["dazhuang-02"].speaker, registry.villages["dazhuang-02"].slot_overrides) == (
        Speaker.OFFLINE, {"morning": time(6, 10)})
    new = registry.villages["dazhuang-11"]
    assert (new.name, new.population, new.speaker, new.slot_overrides["morning"]) == (
        "新庄村", 1200, Speaker.OFFLINE, time(6, 0))
    assert registry.townships["shiqiao"].name == "石桥镇"
    again = CliRunner().invoke(cli, [*args, "--yes"])
    assert again.exit_code == 0 and "已经和表里一致" in again.stdout  # a second import is a no-op


def test_cli_import_names_every_bad_row_and_writes_nothing(workspace: Path, tmp_path: Path) -> None:
    path = tmp_path / "村庄.xlsx"
    path.write_bytes(_sheet([["大庄镇", "", 500, "联网"], ["大庄镇", "新村", "五百", "喇叭", "25:00"],
                             ["河西镇", "新村", 300, "U盘"], ["河西镇", "新村", 300, "U盘"]]))
    before = _county(workspace).read_bytes()
    result = CliRunner().invoke(cli, ["villages", "import", str(path), "--yes", "-w", str(workspace)])
    assert result.exit_code == 1
    err = result.stderr
    assert err.startswith("错误：村庄.xlsx：有 5 处问题，什么都没有导入：")
    assert "第2行：村名没有填写；请填村名" in err
    assert "第3行：人口「五百」不对；请填 1 到 100000 之间的整数" in err
    assert "第3行：喇叭类型「喇叭」不认识；请填 联网、站点（村广播站）或 U盘 之一" in err
    assert "第3行：早播出时间「25:00」不是时刻；请写成 时:分" in err
    assert "第5行：河西镇 新村 与第4行重复" in err
    assert _county(workspace).read_bytes() == before
    bad_name = tmp_path / "名称.xlsx"
    bad_name.write_bytes(_sheet([["大庄镇", "新/村", 500, "联网"]]))
    result = CliRunner().invoke(cli, ["villages", "import", str(bad_name), "--yes", "-w", str(workspace)])
    assert result.exit_code == 1 and "第2行：村名：'新/村' 里有 / 或 \\" in result.stderr
    assert _county(workspace).read_bytes() == before


def test_read_sheet_takes_the_forms_people_write() -> None:
    raw = _sheet([["大庄镇", "一村", 100.0, "u盘", "06:00/18:00"], ["大庄镇", "二村", 200, " 联网播放 ", ""],
                  ["大庄镇", "三村", 300, "广播站", "6:30、19:00"]],
                 header=("乡镇 ", "村庄名称", "常住人口", "喇叭", "早/晚播出时间"))
    rows = read_sheet(raw, where="x.xlsx", defaults={"morning": "06:30", "evening": "18:30"})
    assert [(r.name, r.population, r.speaker, r.slots) for r in rows] == [
        ("一村", 100, Speaker.OFFLINE, {"morning": "06:00", "evening": "18:00"}),
        ("二村", 200, Speaker.NETWORKED, {}),
        ("三村", 300, Speaker.STATION, {"evening": "19:00"}),  # 06:30 is the county's time: no override
    ]
    with pytest.raises(VillageImportError, match="缺少「人口」「喇叭类型」列"):
        read_sheet(_sheet([["a", "b"]], header=("乡镇", "村名")), where="x.xlsx")
    with pytest.raises(VillageImportError, match="不是 Excel 的 .xlsx 文件"):
        read_sheet(b"village,list\n", where="x.xlsx")


def test_samples_hold_the_template_of_the_sample_county(repo_root: Path) -> None:
    rows = read_sheet((repo_root / "samples" / "村庄.xlsx").read_bytes(), where="村庄.xlsx",
                      defaults={"morning": "06:30", "evening": "18:30"})
    registry = load_registry(repo_root / "schedules")
    assert {(r.township, r.name) for r in rows} == {
        (registry.townships[v.township_id].name, v.name) for v in registry.villages.values()}
    assert sample_sheet()[:2] == b"PK"


# --- the browser ---------------------------------------------------------------------------------


def _upload(client, raw: bytes, page: str = "/import/villages"):  # type: ignore[no-untyped-def]
    csrf = token(client, page)
    return client.post("/import/villages", data={"csrf_token": csrf},
                       files={"file": ("村庄.xlsx", raw, "application/octet-stream")})


def test_web_import_previews_then_writes_on_confirm(site: Site, tmp_path: Path) -> None:
    admin = client_as(site, "boss", "admin")
    assert 'href="/import/villages"' in admin.get("/villages").text
    template = admin.get("/import/villages/template.xlsx")
    assert template.status_code == 200 and template.content[:2] == b"PK"
    book = openpyxl.load_workbook(io.BytesIO(template.content))
    book.active.append(["石桥镇", "石桥村", 800, "站点", None, "19:00"])
    buf = io.BytesIO()
    book.save(buf)
    before = _county(site.workspace).read_text(encoding="utf-8")
    page = _upload(admin, buf.getvalue())
    assert page.status_code == 200, page.text[-500:]
    assert re.search(r'id="n-added">1<', page.text) and re.search(r'id="n-unchanged">30<', page.text)
    assert "+  - {id: shiqiao-01, name: 石桥村" in page.text.replace("&#34;", '"')
    assert _county(site.workspace).read_text(encoding="utf-8") == before  # a preview writes nothing
    carried = re.search(r'<textarea name="carried" hidden>(.*?)</textarea>', page.text, re.S)[1]
    import html
    form = {"csrf_token": token(admin, "/import/villages"), "carried": html.unescape(carried)}
    done = admin.post("/import/villages/confirm", data=form)
    assert done.status_code == 303 and done.headers["location"] == "/villages"
    assert "shiqiao-01" in _county(site.workspace).read_text(encoding="utf-8")
    listing = admin.get("/villages").text
    assert "已导入村庄名单：新增 1 个村" in listing and "石桥村" in listing  # mirrored into the database at once
    stale = admin.post("/import/villages/confirm", data=form)  # the file changed since that preview
    assert stale.status_code == 400 and "被别人改过了" in stale.text


def test_web_import_refuses_bad_rows_inline_and_non_admins(site: Site, editor) -> None:  # type: ignore[no-untyped-def]
    admin = client_as(site, "boss", "admin")
    before = _county(site.workspace).read_bytes()
    page = _upload(admin, _sheet([["大庄镇", "新村", "很多", "联网"]]))
    assert page.status_code == 400 and "第2行：人口「很多」不对" in page.text and 'id="upload-villages"' in page.text
    assert _upload(admin, b"").status_code == 400
    refused = _upload(editor, _sheet([["大庄镇", "新村", 100, "联网"]]), "/villages")
    assert refused.status_code == 403 and "不能导入村庄名单" not in editor.get("/villages").text
    assert 'href="/import/villages"' not in editor.get("/villages").text
    assert editor.get("/import/villages").status_code == 403
    assert _county(site.workspace).read_bytes() == before
    tampered = admin.post("/import/villages/confirm", data={"csrf_token": token(admin, "/import/villages"),
                                                           "carried": json.dumps({"rows": [{"line": "x"}]})})
    assert tampered.status_code == 400 and "重新上传" in tampered.text
