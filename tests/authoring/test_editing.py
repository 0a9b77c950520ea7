"""Campaigns and villages edited in the browser (outreach/authoring/editing.py and its pages) and the schedule calendar."""

from __future__ import annotations

import html as html_lib
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from web_site import CSRF, Site, editor, login, seeded_db, site, token, viewer  # noqa: F401  (fixtures)

from outreach.audio.render import clip_durations
from outreach.authoring import editing
from outreach.config import load_config
from outreach.planning.campaigns import load_campaigns
from outreach.planning.registry import load_registry
from outreach.planning.workspace import load

D = date


def _loaded(workspace: Path):  # type: ignore[no-untyped-def]
    return load(load_config(workspace))


def _text(workspace: Path, name: str) -> str:
    return (workspace / "schedules" / name).read_text(encoding="utf-8")


def _new(**over: object) -> editing.CampaignValues:
    values: dict[str, object] = dict(id="fraud-market-winter", name="赶集日反诈", scripts=["fraud-bank-card-check",
                                     "fraud-phone-card-check"], start="2026-12-05", end="2026-12-18", markets=["hexi-ji"],
                                     market_day_boost="1", urgent=True)
    values.update(over)
    return editing.CampaignValues(**values)  # type: ignore[arg-type]


# --- the domain: round-trip, validation, preview, save ------------------------------------------


def test_editing_a_campaign_keeps_every_comment_and_touches_only_its_lines(workspace: Path) -> None:
    loaded = _loaded(workspace)
    text = _text(workspace, "campaigns.yaml")
    v = editing.campaign_values(loaded.campaign("fraud-dazhuang-lishu"))
    v.priority, v.townships = "8", ["dazhuang", "hexi"]
    new = editing.apply_campaign(text, "fraud-dazhuang-lishu", v)
    old_lines, new_lines = text.splitlines(), new.splitlines()
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert changed == [
        ("      townships: [dazhuang, lishu]", "      townships: [dazhuang, hexi]"),
        ("    priority: 7                       # 高于冬季交通宣传", "    priority: 8                       # 高于冬季交通宣传"),
    ]
    # The CLI's loader reads the result.
    path = workspace / "schedules" / "campaigns.yaml"
    path.write_text(new, encoding="utf-8")
    c = next(c for c in load_campaigns(path, loaded.registry, loaded.scripts) if c.id == "fraud-dazhuang-lishu")
    assert (c.priority, c.targets.townships) == (8, ["dazhuang", "hexi"])


def test_a_removed_script_takes_its_comment_and_kept_ones_keep_theirs(workspace: Path) -> None:
    loaded = _loaded(workspace)
    text = _text(workspace, "campaigns.yaml")
    v = editing.campaign_values(loaded.campaign("winter-traffic"))
    assert "traffic-crossing-road" in v.scripts
    v.scripts = [s for s in v.scripts if s != "traffic-helmet"]
    new = editing.apply_campaign(text, "winter-traffic", v)
    assert "      - traffic-crossing-road         # 2026-12-01 起有效（见稿件文件）" in new
    assert "- traffic-helmet\n" not in new.split("- id: fraud-dazhuang-lishu")[0]
    assert new.count("#") == text.count("#")


def test_a_new_campaign_is_validated_and_previewed_with_the_pure_planner(workspace: Path) -> None:
    loaded = _loaded(workspace)
    new = editing.apply_campaign(_text(workspace, "campaigns.yaml"), None, _new())
    checked = editing.check_campaigns(new, "fraud-market-winter", loaded.registry, loaded.scripts)
    assert checked.ok, (checked.fields, checked.other)
    pv = editing.preview_plan(loaded.registry, checked.campaigns, "fraud-market-winter", loaded.scripts,
                              clip_durations(loaded.config, loaded.library), today=D(2026, 12, 1))
    reg = loaded.registry
    reach = sorted(reg.market_villages("hexi-ji"))
    assert pv.villages == len(reach) and pv.townships == ["hexi"]
    assert (pv.start, pv.end) == (D(2026, 12, 5), D(2026, 12, 18))
    # Urgent: it is in every slot of every village the market serves that is not blacked out.
    expected = sum(1 for i in range(14) for vid in reach for s in reg.village_slots(vid)
                   if not reg.is_blackout(vid, D(2026, 12, 5) + timedelta(days=i), s.name))
    assert pv.programs == expected > 0
    assert sum(sum(c.values()) for c in pv.by_day.values()) == pv.programs
    assert len(pv.by_day) == 14
    # Market days add the boost: more clips than programs.
    assert pv.clips > pv.programs


def test_the_preview_starts_today_for_a_running_campaign(workspace: Path) -> None:
    loaded = _loaded(workspace)
    pv = editing.preview_plan(loaded.registry, loaded.campaigns, "winter-traffic", loaded.scripts,
                              clip_durations(loaded.config, loaded.library), today=D(2027, 1, 10), days=3)
    assert (pv.start, pv.end) == (D(2027, 1, 10), D(2027, 1, 12))


@pytest.mark.parametrize(("over", "field", "words"), [
    ({"priority": "12"}, "priority", "不能大于 9"),
    ({"start": "2026-12-35"}, "start", "不是真实存在的日期"),
    ({"end": "2026-12-01"}, "end", "早于 'from'"),
    ({"markets": [], "townships": ["nowhere"]}, "townships", "未知的乡镇 'nowhere'"),
    ({"scripts": ["no-such-script"]}, "scripts", "未知的广播稿 'no-such-script'"),
    ({"id": "Bad Id"}, "id", "编号只能用小写字母、数字和 '-'"),
    ({"markets": []}, "targets", "没有播放对象"),
], ids=["priority", "date", "backwards", "township", "script", "id", "no-targets"])
def test_campaign_errors_are_the_clis_and_sit_beside_their_field(workspace: Path, over: dict, field: str,
                                                                 words: str) -> None:
    loaded = _loaded(workspace)
    v = _new(**over)
    new = editing.apply_campaign(_text(workspace, "campaigns.yaml"), None, v)
    checked = editing.check_campaigns(new, v.id, loaded.registry, loaded.scripts)
    assert not checked.ok
    assert any(words in e for e in checked.fields.get(field, [])), (checked.fields, checked.other)


def test_a_duplicate_id_is_refused(workspace: Path) -> None:
    loaded = _loaded(workspace)
    new = editing.apply_campaign(_text(workspace, "campaigns.yaml"), None, _new(id="winter-traffic"))
    checked = editing.check_campaigns(new, "winter-traffic", loaded.registry, loaded.scripts)
    assert any("编号重复" in e for e in checked.fields["id"])


def test_save_is_atomic_and_refuses_a_stale_form(workspace: Path) -> None:
    path = workspace / "schedules" / "campaigns.yaml"
    text = path.read_text(encoding="utf-8")
    base = editing.stamp(text)
    path.write_text(text + "# someone else's edit\n", encoding="utf-8")
    with pytest.raises(editing.StaleFile, match="campaigns.yaml 在您打开表单之后被别人改过了"):
        editing.save(path, "campaigns: []\n", base)
    assert path.read_text(encoding="utf-8").endswith("# someone else's edit\n")
    editing.save(path, "campaigns: []\n", editing.stamp(path.read_text(encoding="utf-8")))
    assert path.read_text(encoding="utf-8") == "campaigns: []\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["campaigns.yaml", "county.yaml", "markets.yaml",
                                                            "slots.yaml"]


def test_village_edit_keeps_comments_and_validates_like_the_cli(workspace: Path) -> None:
    sched = workspace / "schedules"
    text = _text(workspace, "county.yaml")
    reg = load_registry(sched)
    v = editing.village_values(reg, "dazhuang-04")
    assert v.slots == {"morning": "06:00", "evening": ""}
    v.slots = {"morning": "06:10", "evening": ""}
    v.speaker, v.player = "offline", "card2"
    new = editing.apply_village(text, "dazhuang-04", v)
    assert '    slots: {morning: "06:10"}    # 菜农六点半前就下地' in new
    checked = editing.check_county(sched, new, "dazhuang-04", players=load_config(workspace).players)
    assert checked.ok, (checked.fields, checked.other)
    village = checked.registry.villages["dazhuang-04"]
    assert (village.speaker, village.player, village.slot_overrides["morning"].strftime("%H:%M")) == \
        ("offline", "card2", "06:10")
    # A flow-style village gains a key and stays on one line.
    v2 = editing.village_values(reg, "dazhuang-02")
    v2.slots = {"morning": "", "evening": "25:00"}
    bad = editing.apply_village(text, "dazhuang-02", v2)
    assert len(bad.splitlines()) == len(text.splitlines())
    checked = editing.check_county(sched, bad, "dazhuang-02")
    assert any("'25:00' 不是时刻" in e for e in checked.fields["slot_evening"])
    v2.slots = {"morning": "18:25", "evening": ""}  # runs into the evening slot
    checked = editing.check_county(sched, editing.apply_village(text, "dazhuang-02", v2), "dazhuang-02")
    assert not checked.ok
    v2.slots, v2.speaker = {}, "loudspeaker"
    checked = editing.check_county(sched, editing.apply_village(text, "dazhuang-02", v2), "dazhuang-02")
    assert "speaker" in checked.fields


# --- the pages ------------------------------------------------------------------------------------


def _form(v: editing.CampaignValues, csrf: str, base: str, action: str, original: str = "") -> dict:
    data: dict[str, object] = {
        "csrf_token": csrf, "base": base, "original": original, "action": action, "id": v.id, "name": v.name,
        "from": v.start, "to": v.end, "plays_per_slot": v.plays_per_slot, "priority": v.priority,
        "market_day_boost": v.market_day_boost, "scripts": v.scripts, "townships": v.townships,
        "villages": v.villages, "markets": v.markets}
    if v.urgent:
        data["urgent"] = "1"
    return data


def _base(html: str) -> str:
    found = re.search(r'name="base" value="([0-9a-f]+)"', html)
    assert found
    return found.group(1)


def test_an_editor_previews_then_saves_a_new_campaign(site: Site, editor) -> None:  # noqa: F811
    path = site.workspace / "schedules" / "campaigns.yaml"
    before = path.read_text(encoding="utf-8")
    page = editor.get("/campaigns/new")
    assert page.status_code == 200 and "新建宣传活动" in page.text
    csrf, base = CSRF.search(page.text).group(1), _base(page.text)
    r = editor.post("/campaigns/save", data=_form(_new(), csrf, base, "preview"))
    assert r.status_code == 200, r.text
    assert 'id="plan-preview"' in r.text and "场节目带这个活动" in r.text
    assert path.read_text(encoding="utf-8") == before  # a preview writes nothing
    r = editor.post("/campaigns/save", data=_form(_new(), csrf, base, "save"))
    assert r.status_code == 303 and r.headers["location"] == "/campaigns/fraud-market-winter"
    after = path.read_text(encoding="utf-8")
    assert after.startswith(before.rstrip("\n")) and "id: fraud-market-winter" in after
    assert editor.get("/campaigns/fraud-market-winter").status_code == 200  # mirrored into the database
    # The same (now stale) form cannot save again.
    r = editor.post("/campaigns/save", data=_form(_new(name="改过"), csrf, base, "save",
                                                  original="fraud-market-winter"))
    assert r.status_code == 409 and "被别人改过" in r.text
    assert path.read_text(encoding="utf-8") == after


def test_bad_campaign_shows_errors_beside_fields_and_writes_nothing(site: Site, editor) -> None:  # noqa: F811
    path = site.workspace / "schedules" / "campaigns.yaml"
    before = path.read_text(encoding="utf-8")
    page = editor.get("/campaigns/winter-traffic/edit")
    assert page.status_code == 200 and 'value="traffic-helmet" checked' in page.text
    v = _new(priority="0")
    r = editor.post("/campaigns/save", data=_form(v, CSRF.search(page.text).group(1), _base(page.text), "save",
                                                  original="winter-traffic"))
    assert r.status_code == 400
    assert re.search(r'class="field-error" data-field="priority">[^<]*不能小于 1（现在是 0）', r.text)
    assert path.read_text(encoding="utf-8") == before


def test_a_viewer_cannot_edit_and_csrf_is_checked(site: Site, viewer, editor) -> None:  # noqa: F811
    assert viewer.get("/campaigns/new").status_code == 403
    assert viewer.get("/villages/dazhuang-04/edit").status_code == 403
    form = _form(_new(), CSRF.search(viewer.get("/today").text).group(1), "x", "save")
    assert viewer.post("/campaigns/save", data=form).status_code == 403
    form["csrf_token"] = "forged"
    assert editor.post("/campaigns/save", data=form).status_code == 403


def test_an_editor_changes_a_villages_slot_and_player(site: Site, editor) -> None:  # noqa: F811
    path = site.workspace / "schedules" / "county.yaml"
    page = editor.get("/villages/lishu-07/edit")
    assert page.status_code == 200 and 'value="19:00"' in page.text
    data = {"csrf_token": CSRF.search(page.text).group(1), "base": _base(page.text), "slot_morning": "",
            "slot_evening": "19:6", "speaker": "networked", "player": ""}
    r = editor.post("/villages/lishu-07/edit", data=data)
    assert r.status_code == 400 and 'data-field="slot_evening"' in r.text
    data["slot_evening"] = "19:15"
    r = editor.post("/villages/lishu-07/edit", data=data)
    assert r.status_code == 303, r.text
    text = path.read_text(encoding="utf-8")
    assert 'slots: {evening: "19:15"}    # 村民从果园回来得晚' in text
    assert load_registry(path.parent).village_slots("lishu-07")[1].start.strftime("%H:%M") == "19:15"


def _opened(html: str) -> str:
    found = re.search(r'<textarea name="opened" hidden>(.*?)</textarea>', html, re.S)
    assert found
    return html_lib.unescape(found.group(1))


def _changed(html: str) -> list[str]:
    """The changed lines of the stale-form diff on a page (context and file-name lines left out)."""
    found = re.search(r'<pre class="diff" id="stale-diff">(.*?)</pre>', html, re.S)
    assert found, html
    lines = html_lib.unescape(found.group(1)).splitlines()
    assert lines[:2] == ["--- 您打开时", "+++ 现在的文件"]
    return [line for line in lines[2:] if line[:1] in "+-"]


def test_a_stale_campaign_form_shows_the_other_edit_and_keeps_the_typed_values(site: Site, editor) -> None:  # noqa: F811
    path = site.workspace / "schedules" / "campaigns.yaml"
    page = editor.get("/campaigns/winter-traffic/edit")
    csrf, base, opened = CSRF.search(page.text).group(1), _base(page.text), _opened(page.text)
    assert "id: winter-traffic\n" in opened and "priority: 6\n" in opened
    # Someone else (or the CLI) changes the priority of the same campaign while the form is open.
    text = path.read_text(encoding="utf-8")
    theirs = re.sub(r"(?m)^(    priority:) 6\b", r"\1 3", text, count=1)
    assert theirs != text
    path.write_text(theirs, encoding="utf-8")
    loaded = _loaded(site.workspace)
    v = editing.campaign_values(loaded.campaign("winter-traffic"))
    v.name, v.priority = "冬季交通安全（网页改）", "6"
    data = {**_form(v, csrf, base, "save", original="winter-traffic"), "county": "1",
            "opened": opened.replace("\n", "\r\n")}  # as a browser sends a textarea
    r = editor.post("/campaigns/save", data=data)
    assert r.status_code == 409
    assert path.read_text(encoding="utf-8") == theirs  # the refused save wrote nothing
    assert _changed(r.text) == ["-priority: 6", "+priority: 3"]
    assert "campaigns.yaml 在您打开这个表单之后被别人改过" in r.text and "再点「保存」" in r.text
    assert 'value="冬季交通安全（网页改）"' in r.text and 'name="priority" value="6"' in r.text  # typed values kept
    # The page now carries the file as it is: saving again (after review) is deliberate and goes through.
    assert _base(r.text) == editing.stamp(theirs) and "priority: 3\n" in _opened(r.text)
    v.priority = "3"
    again = editor.post("/campaigns/save", data={**data, "base": _base(r.text), "opened": _opened(r.text),
                                                 "priority": "3"})
    assert again.status_code == 303, again.text
    saved = next(c for c in _loaded(site.workspace).campaigns if c.id == "winter-traffic")
    assert (saved.name, saved.priority) == ("冬季交通安全（网页改）", 3)


def test_a_stale_form_says_when_only_other_entries_changed(site: Site, editor) -> None:  # noqa: F811
    path = site.workspace / "schedules" / "campaigns.yaml"
    page = editor.get("/campaigns/winter-traffic/edit")
    data = {**_form(editing.campaign_values(_loaded(site.workspace).campaign("winter-traffic")),
                    CSRF.search(page.text).group(1), _base(page.text), "save", original="winter-traffic"),
            "county": "1", "opened": _opened(page.text)}
    theirs = path.read_text(encoding="utf-8") + "# 别人加的一行注释\n"
    path.write_text(theirs, encoding="utf-8")
    r = editor.post("/campaigns/save", data=data)
    assert r.status_code == 409 and path.read_text(encoding="utf-8") == theirs
    assert "宣传活动「冬季道路交通安全宣传」本身没有变化" in r.text and '<pre class="diff"' not in r.text


def test_a_stale_village_form_shows_the_other_edit_and_keeps_the_typed_values(site: Site, editor) -> None:  # noqa: F811
    path = site.workspace / "schedules" / "county.yaml"
    page = editor.get("/villages/lishu-07/edit")
    opened = _opened(page.text)
    assert "speaker: networked\n" in opened and 'evening: "19:00"' in opened
    data = {"csrf_token": CSRF.search(page.text).group(1), "base": _base(page.text), "opened": opened,
            "slot_morning": "", "slot_evening": "19:20", "speaker": "networked", "player": ""}
    text = path.read_text(encoding="utf-8")
    theirs = text.replace("  - id: lishu-07\n    name: 马家店村\n    township: lishu\n    population: 1610\n"
                          "    speaker: networked\n", "  - id: lishu-07\n    name: 马家店村\n    township: lishu\n"
                          "    population: 1610\n    speaker: offline\n")
    assert theirs != text
    path.write_text(theirs, encoding="utf-8")
    r = editor.post("/villages/lishu-07/edit", data=data)
    assert r.status_code == 409
    assert path.read_text(encoding="utf-8") == theirs
    assert _changed(r.text) == ["-speaker: networked", "+speaker: offline"]
    assert "county.yaml 在您打开这个表单之后被别人改过" in r.text and "再点「保存」" in r.text
    assert 'name="slot_evening" value="19:20"' in r.text  # the typed time is kept
    assert _base(r.text) == editing.stamp(theirs)

def test_the_calendar_shows_market_days_blackouts_and_links_days(site: Site, viewer) -> None:  # noqa: F811
    r = viewer.get("/calendar?view=month&date=2026-12-10&township=dazhuang")
    assert r.status_code == 200, r.text
    cells = dict(re.findall(r'data-date="(\d{4}-\d\d-\d\d)"[^>]*>(.*?)</a>', r.text, re.S))
    assert len(cells) == 35  # Mon 2026-11-30 .. Sun 2027-01-03
    # 2026-12-11 is 冬月初三: 大庄集 (逢农历三、八) is held; 12-12 (初四) it is not.
    assert "集 大庄集" in cells["2026-12-11"] and "冬月初三" in cells["2026-12-11"]
    assert "大庄集" not in cells["2026-12-12"]
    assert "静音：全国硕士研究生招生考试" in cells["2026-12-26"]
    assert re.search(r"\d+ 场节目", cells["2026-12-10"])
    assert 'href="/plan?from=2026-12-11&amp;days=1&amp;township=dazhuang"' in r.text
    # One village, one week: the programs are listed; 河西集 is not this village's market.
    r = viewer.get("/calendar?view=week&date=2026-12-10&village=dazhuang-04")
    cells = dict(re.findall(r'data-date="(\d{4}-\d\d-\d\d)"[^>]*>(.*?)</a>', r.text, re.S))
    assert sorted(cells) == [f"2026-12-{d:02d}" for d in range(7, 14)]
    assert re.search(r"早间 06:00(（[^）]*）)?：", cells["2026-12-10"])  # the slot's state may follow its time
    assert "河西集" not in r.text.split('id="calendar"')[1]
    assert viewer.get("/calendar?view=year").status_code == 400
    assert viewer.get("/calendar?village=nowhere").status_code == 404
