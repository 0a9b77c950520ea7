"""The campaign and script forms ask for no id, keep the editor's rotation order, reorder it without
JavaScript (↑/↓ submit buttons), and save only what changed (outreach/web/editing_pages.py)."""

from __future__ import annotations

import difflib
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

from web_site import CSRF, Site, editor, seeded_db, site  # noqa: F401  (fixtures)

from outreach.authoring import editing
from outreach.config import load_config
from outreach.planning.workspace import load, plan_days

CAMPAIGN = "fraud-dazhuang-lishu"
ROTATION = ["fraud-96110", "fraud-three-no-one-more", "fraud-antifraud-app", "fraud-12381-sms",
            "fraud-police-caller-id", "fraud-overseas-calls"]


class BrowserForm(HTMLParser):
    """What a browser posts for one form: its fields in page order (ticked boxes only), no buttons."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id, self.inside, self.fields = form_id, False, []
        self.first_button: dict[str, str] | None = None
        self._text: str | None = None
        self._option: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        if tag == "input" and a.get("type", "text") not in ("submit", "button"):
            if a.get("type") not in ("checkbox", "radio") or "checked" in a:
                self.fields.append((a["name"], a.get("value", "")))
        elif tag == "button" and self.first_button is None:
            self.first_button = a
        elif tag == "textarea":
            self._text = a["name"]
            self.fields.append((a["name"], ""))
        elif tag == "select":
            self._option = a["name"]
        elif tag == "option" and "selected" in a and self._option:
            self.fields.append((self._option, a.get("value", "")))

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            name, value = self.fields[-1]
            self.fields[-1] = (name, value + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea":
            self._text = None

    def post(self, **press: str) -> dict[str, list[str]]:
        """The form data as a dict of lists (order kept within each name), plus the pressed button."""
        out: dict[str, list[str]] = {}
        for name, value in self.fields:
            out.setdefault(name, []).append(value)
        for name, value in press.items():
            out[name] = [value]
        return out


def _form(html: str, form_id: str = "campaign-form") -> BrowserForm:
    parser = BrowserForm(form_id)
    parser.feed(html)
    return parser


def _changes(before: str, after: str) -> list[str]:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def _rotation(workspace: Path) -> list[str]:
    return list(next(c for c in load(load_config(workspace)).campaigns if c.id == CAMPAIGN).scripts)


def _morning(workspace: Path) -> tuple[str, ...]:
    """李家洼村's (dazhuang-05) program on the morning of 12-07, as the planner makes it."""
    programs = plan_days(load(load_config(workspace)), date(2026, 12, 7), date(2026, 12, 7),
                         village_ids=["dazhuang-05"]).programs
    return next(p.script_ids for p in programs if p.slot == "morning")


def test_saving_the_form_keeps_the_order_and_changes_only_what_changed(site: Site, editor) -> None:  # noqa: F811
    path = site.workspace / "schedules" / "campaigns.yaml"
    before, morning = path.read_text("utf-8"), _morning(site.workspace)
    page = editor.get(f"/campaigns/{CAMPAIGN}/edit")
    assert 'name="id"' not in page.text  # the form never asks for an id
    form = _form(page.text)
    assert form.first_button is not None and form.first_button.get("value") == "preview"  # Enter previews
    assert form.post()["scripts"] == ROTATION  # the rotation comes first, in the campaign's order
    # Saved untouched: not a byte changes (the old form posted the scripts alphabetically).
    r = editor.post("/campaigns/save", data=form.post(action="save"))
    assert r.status_code == 303, r.text[-2000:]
    assert path.read_text("utf-8") == before and _morning(site.workspace) == morning

    # Ticking one more script adds one line, at the end of the rotation.
    page = editor.get(f"/campaigns/{CAMPAIGN}/edit")
    data = _form(page.text).post(action="save")
    data["scripts"] += ["fraud-phone-card-check"]
    assert editor.post("/campaigns/save", data=data).status_code == 303
    after = path.read_text("utf-8")
    assert _changes(before, after) == ["+      - fraud-phone-card-check"]
    assert _rotation(site.workspace) == [*ROTATION, "fraud-phone-card-check"]

    # ↓ on the first script shows the form again in the new order and saves nothing yet ...
    page = editor.get(f"/campaigns/{CAMPAIGN}/edit")
    moved = editor.post("/campaigns/save", data=_form(page.text).post(move_down="fraud-96110"))
    assert moved.status_code == 200 and "已下移到第 2 位" in moved.text
    assert path.read_text("utf-8") == after
    order = _form(moved.text).post()["scripts"]
    assert order[:3] == ["fraud-three-no-one-more", "fraud-96110", "fraud-antifraud-app"]
    # ... and ↑ on the last moves it up; 保存 then writes exactly the moved lines.
    moved = editor.post("/campaigns/save", data=_form(moved.text).post(move_up="fraud-phone-card-check"))
    order = _form(moved.text).post()["scripts"]
    assert order[-2:] == ["fraud-phone-card-check", "fraud-overseas-calls"]
    assert re.search(r'name="move_up" value="fraud-three-no-one-more"[^>]*disabled', moved.text)  # first: no ↑
    assert editor.post("/campaigns/save", data=_form(moved.text).post(action="save")).status_code == 303
    changes = _changes(after, path.read_text("utf-8"))  # two swaps: each one item line out and back in
    assert len(changes) == 4 and all(re.fullmatch(r"[+-]      - fraud-[a-z0-9-]+", c) for c in changes), changes
    assert _rotation(site.workspace) == order


def test_new_scripts_and_campaigns_are_named_by_their_title(site: Site, editor) -> None:  # noqa: F811
    page = editor.get("/scripts/new")
    assert page.status_code == 200 and 'name="id"' not in page.text and "编号" not in page.text
    csrf = CSRF.search(page.text).group(1)
    draft = {"csrf_token": csrf, "title": "快递退款", "topic": "anti_fraud", "engine": "espeak", "repeat": "1",
             "priority": "5", "action": "save", "text": "接到自称快递客服说要退款的电话，先挂断，再拨打96110核实。"}
    first = editor.post("/scripts/save", data=draft)
    assert first.status_code == 303 and first.headers["location"] == "/scripts/kuaidi-tuikuan"
    assert "id: kuaidi-tuikuan\n" in (site.workspace / "audio_scripts" / "kuaidi-tuikuan.md").read_text("utf-8")
    second = editor.post("/scripts/save", data=draft)  # the same title again: a new script beside it
    assert second.headers["location"] == "/scripts/kuaidi-tuikuan-2"
    assert "快递退款" in editor.get("/scripts").text and "kuaidi-tuikuan" not in _text(editor.get("/scripts").text)

    page = editor.get("/campaigns/new")
    assert page.status_code == 200 and 'name="id"' not in page.text
    form = _form(page.text)
    data = form.post(action="save", name="快递退款提醒", **{"from": "2026-12-12", "to": "2026-12-20"})
    data |= {"scripts": ["fraud-overseas-calls", "fraud-96110"], "townships": ["hexi"]}
    r = editor.post("/campaigns/save", data=data)
    assert r.status_code == 303, r.text[-2000:]
    assert r.headers["location"] == "/campaigns/kuaidi-tuikuan-tixing"
    saved = next(c for c in load(load_config(site.workspace)).campaigns if c.id == "kuaidi-tuikuan-tixing")
    assert (saved.name, saved.scripts) == ("快递退款提醒", ["fraud-overseas-calls", "fraud-96110"])
    # A second campaign of the same name gets the next free id.
    data = _form(editor.get("/campaigns/new").text).post(action="save", name="快递退款提醒",
                                                         **{"from": "2026-12-12", "to": "2026-12-20"})
    r = editor.post("/campaigns/save", data=data | {"scripts": ["fraud-96110"], "townships": ["lishu"]})
    assert r.headers["location"] == "/campaigns/kuaidi-tuikuan-tixing-2"
    text = (site.workspace / "schedules" / "campaigns.yaml").read_text("utf-8")
    assert {"kuaidi-tuikuan-tixing", "kuaidi-tuikuan-tixing-2", CAMPAIGN} <= editing.campaign_ids(text)


def _text(html: str) -> str:
    """The page's visible text (tags, attributes and URLs left out)."""
    return re.sub(r"<[^>]+>", " ", html)


def test_targets_keep_the_files_order_and_the_rotation_moves_within_bounds(workspace: Path) -> None:
    text = (workspace / "schedules" / "campaigns.yaml").read_text("utf-8")
    v = editing.campaign_values(next(c for c in load(load_config(workspace)).campaigns if c.id == CAMPAIGN))
    v.townships = ["lishu", "dazhuang"]  # the form lists townships in the registry's order, not the file's
    assert editing.apply_campaign(text, CAMPAIGN, v) == text
    v.townships = ["hexi", "lishu", "dazhuang"]
    assert _changes(text, editing.apply_campaign(text, CAMPAIGN, v)) == [
        "-      townships: [dazhuang, lishu]", "+      townships: [dazhuang, lishu, hexi]"]
    assert editing.move(["a", "b", "c"], "a", -1) == ["a", "b", "c"]
    assert editing.move(["a", "b", "c"], "c", 1) == ["a", "b", "c"]
    assert editing.move(["a", "b", "c"], "b", 1) == ["a", "c", "b"]
    assert editing.move(["a", "b"], "gone", 1) == ["a", "b"]
