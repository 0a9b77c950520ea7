"""Tests for outreach.scripts (the script library) and `outreach scripts` commands."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from pydantic import ValidationError

from outreach.cli import cli
from outreach.config import load_config
from outreach.content.script_model import Script
from outreach.content.script_writer import approve_script
from outreach.content.scripts import Problem, check_library, load_library, script_path
from outreach.errors import ScriptError
from outreach.tts.voices import engine_of_voice

REPO_ROOT = Path(__file__).resolve().parents[2]
LIBRARY = REPO_ROOT / "audio_scripts"
MAX_CHARS = 100
COUNTY = "槐川县公安局"

GOOD_FIELDS = {
    "id": "traffic-test",
    "topic": "traffic",
    "title": "测试标题",
    "repeat": "2",
    "priority": "5",
    "status": "approved",
    "approved_by": "王秀兰",
    "approved_on": "2026-11-20",
}
GOOD_TEXT = "乡亲们请注意：骑车戴头盔。槐川县公安局交警大队提醒您。"


def make_script(text: str = GOOD_TEXT, **fields: str | None) -> str:
    """A script file's content: GOOD_FIELDS with overrides (None drops a field)."""
    merged = {**GOOD_FIELDS, **fields}
    lines = [f"{k}: {v}" for k, v in merged.items() if v is not None]
    return "---\n" + "\n".join(lines) + "\n---\n" + text + "\n"


def write(folder: Path, name: str, content: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# --- the bundled library -------------------------------------------------------------

def bundled() -> list[Script]:
    return load_library(LIBRARY, max_chars=load_config(REPO_ROOT).render.max_chars)


def test_bundled_library_has_no_problems() -> None:
    scripts, problems = check_library(LIBRARY, max_chars=load_config(REPO_ROOT).render.max_chars)
    assert [str(p) for p in problems] == []
    assert len(scripts) == len(list(LIBRARY.glob("*.md"))) >= 18


@pytest.mark.parametrize("topic", ["traffic", "anti_fraud"])
def test_bundled_library_has_enough_approved_per_topic(topic: str) -> None:
    approved = [s for s in bundled() if s.topic == topic and s.approved]
    assert len(approved) >= 8


def test_bundled_library_has_two_drafts_and_edge_voices_without_engine() -> None:
    scripts = bundled()
    assert sum(not s.approved for s in scripts) >= 2
    voiced = [s for s in scripts if s.voice]
    assert len(voiced) >= 2
    assert all(s.engine is None for s in voiced)


@pytest.mark.parametrize("script", bundled(), ids=lambda s: s.id)
def test_bundled_script_is_short_plain_and_signed(script: Script) -> None:
    hanzi = len(re.findall(r"[\u4e00-\u9fff]", script.text))
    assert 90 <= hanzi <= 220, f"{script.id}: {hanzi} Chinese characters"
    assert script.text.startswith(("乡亲们", "村民朋友们"))
    signoff = "交警大队提醒您" if script.topic == "traffic" else "反诈中心提醒您"
    assert f"{COUNTY}{signoff}" in script.text
    assert script.id.startswith("traffic-" if script.topic == "traffic" else "fraud-")
    assert 1 <= script.repeat <= 2


@pytest.mark.parametrize(("script_id", "facts"), [
    ("fraud-three-no-one-more", ["未知链接不点击", "陌生来电不轻信", "个人信息不透露", "转账汇款多核实"]),
    ("fraud-96110", ["96110", "本人或者您的家人"]),
    ("fraud-12381-sms", ["12381"]),
    ("fraud-overseas-calls", ["境外来电提醒", "拦截境外来电"]),
    ("fraud-antifraud-app", ["国家反诈中心App", "4.2亿次", "一键举报"]),
    ("fraud-phone-card-check", ["一证通查", "10699000", "48小时"]),
    ("fraud-account-check", ["一证通查", "后6位"]),
    ("fraud-bank-card-check", ["云闪付", "一键查卡"]),
    ("fraud-police-caller-id", ["反诈名片", "96110"]),
    ("traffic-mixed-load", ["人货混装"]),
    ("traffic-crossing-road", ["横穿马路"]),
    ("traffic-market-day", ["赶集"]),
])
def test_bundled_scripts_carry_the_seed_facts(script_id: str, facts: list[str]) -> None:
    script = next(s for s in bundled() if s.id == script_id)
    for fact in facts:
        assert fact in script.text
    assert script.approved


def test_high_priority_goes_to_96110_and_three_no_one_more() -> None:
    by_id = {s.id: s for s in bundled()}
    assert by_id["fraud-96110"].priority == by_id["fraud-three-no-one-more"].priority == 9


# --- one bad file at a time ----------------------------------------------------------

BAD_CASES = [
    # (id, file name, content, field, words the message must contain)
    ("missing-field", "traffic-test.md", make_script(topic=None), "topic", "缺少此字段；请在文件头里加上 'topic: ...'"),
    ("unknown-field", "traffic-test.md", make_script(colour="red"), "colour", "未知字段"),
    ("empty-text", "traffic-test.md", make_script(text="  \n"), "text", "正文是空的"),
    ("text-too-long", "traffic-test.md", make_script(text="慢" * (MAX_CHARS + 1)), "text", "超过 max_chars 100"),
    ("markdown-in-text", "traffic-test.md", make_script(text="# 标题\n乡亲们"), "text", "'#'"),
    ("unknown-voice", "traffic-test.md", make_script(voice="zh-CN-Nobody"), "voice", "未知音色 'zh-CN-Nobody'"),
    ("voice-engine-mismatch", "traffic-test.md", make_script(voice="zh-CN-YunxiNeural", engine="offline"),
     "voice", "请改成 engine: edge"),
    ("unknown-engine", "traffic-test.md", make_script(engine="festival"), "engine", "未知的 engine 值 'festival'；请用 "),
    ("unparseable-date", "traffic-test.md", make_script(valid_from="2026-13-01"), "valid_from", "YYYY-MM-DD"),
    ("date-not-iso", "traffic-test.md", make_script(valid_until="2026/12/01"), "valid_until", "YYYY-MM-DD"),
    ("from-after-until", "traffic-test.md", make_script(valid_from="2027-02-01", valid_until="2027-01-01"),
     "valid_until", "早于 valid_from 2027-02-01"),
    ("approved-without-date", "traffic-test.md", make_script(approved_on=None), "approved_on", "批准日期"),
    ("approved-without-name", "traffic-test.md", make_script(approved_by=None), "approved_by", "审核员姓名"),
    ("draft-with-approver", "traffic-test.md", make_script(status="draft", approved_on=None), "approved_by", "草稿不应有此字段"),
    ("unknown-topic", "traffic-test.md", make_script(topic="trafic"), "topic", "请用 traffic 或 anti_fraud"),
    ("unknown-status", "traffic-test.md", make_script(status="ok"), "status", "请用 draft 或 approved"),
    ("invalid-yaml", "traffic-test.md", "---\nid: traffic-test\ntitle: [unclosed\ntopic: traffic\n---\n乡亲们\n",
     "front_matter", "第 4 行（在从第 3 行开始的值里）"),
    ("repeated-key", "traffic-test.md", make_script().replace("topic: traffic", "topic: traffic\ntopic: traffic"),
     "front_matter", "键 'topic' 出现了两次"),
    ("no-front-matter", "traffic-test.md", "乡亲们请注意\n", "front_matter", "必须以一行 '---' 开头"),
    ("unclosed-front-matter", "traffic-test.md", "---\nid: traffic-test\n乡亲们\n", "front_matter", "文件头没有结束"),
    ("front-matter-not-mapping", "traffic-test.md", "---\n- id\n---\n乡亲们\n", "front_matter", "必须是 '字段名: 值' 的格式"),
    ("not-utf8", "traffic-test.md", make_script().encode("utf-8").replace("测试".encode(), b"\xff\xfe"),
     "encoding", "第 4 行（字节偏移 43，字节 0xff）"),
    ("gbk-bytes", "traffic-test.md", make_script().encode("gbk"), "encoding", "请把文件另存为 UTF-8"),
    ("id-not-file-name", "traffic-other.md", make_script(), "id", "请把文件改名为 traffic-test.md"),
    ("id-bad-characters", "Traffic_Test.md", make_script(id="Traffic_Test"), "id", "小写字母"),
    ("repeat-too-high", "traffic-test.md", make_script(repeat="6"), "repeat", "请用 1 到 5 的整数"),
    ("repeat-zero", "traffic-test.md", make_script(repeat="0"), "repeat", "请用 1 到 5 的整数"),
    ("repeat-not-number", "traffic-test.md", make_script(repeat="'2'"), "repeat", "不是整数"),
    ("priority-too-high", "traffic-test.md", make_script(priority="10"), "priority", "请用 1 到 9 的整数"),
    ("priority-bool", "traffic-test.md", make_script(priority="true"), "priority", "不是整数"),
]


@pytest.mark.parametrize(("name", "content", "field", "words"), [c[1:] for c in BAD_CASES],
                         ids=[c[0] for c in BAD_CASES])
def test_bad_file_yields_a_problem_naming_file_and_field(
        tmp_path: Path, name: str, content: str | bytes, field: str, words: str) -> None:
    path = write(tmp_path / "audio_scripts", name, content)
    scripts, problems = check_library(path.parent, max_chars=MAX_CHARS)
    assert scripts == []
    matching = [p for p in problems if p.field == field and p.path == path]
    assert matching, [str(p) for p in problems]
    assert any(words in p.message for p in matching), [str(p) for p in matching]
    assert all(path.name in str(p) for p in problems)


def test_good_file_is_loaded_with_typed_fields(tmp_path: Path) -> None:
    engine = engine_of_voice("cmn")  # the engine that speaks the espeak-ng Mandarin voice
    path = write(tmp_path, "traffic-test.md", make_script(voice="cmn", engine=engine, valid_from="2026-12-01"))
    [script] = load_library(tmp_path, max_chars=MAX_CHARS)
    assert script == Script(
        id="traffic-test", topic="traffic", title="测试标题", text=GOOD_TEXT, voice="cmn", engine=engine,
        repeat=2, priority=5, valid_from=date(2026, 12, 1), valid_until=None, status="approved",
        approved_by="王秀兰", approved_on=date(2026, 11, 20), path=path,
    )
    assert script.approved


def test_utf8_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    write(tmp_path, "traffic-test.md", b"\xef\xbb\xbf" + make_script().replace("\n", "\r\n").encode())
    [script] = load_library(tmp_path, max_chars=MAX_CHARS)
    assert script.text == GOOD_TEXT


def test_problem_str_matches_the_documented_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "audio_scripts", "x.md", make_script(id="x", topic="trafic"))
    _, [problem] = check_library(Path("audio_scripts"), max_chars=MAX_CHARS)
    assert str(problem) == "audio_scripts/x.md: 字段 'topic'：未知的 topic 值 'trafic'；请用 traffic 或 anti_fraud"


def test_encoding_problem_gives_the_byte_offset(tmp_path: Path) -> None:
    write(tmp_path, "a.md", b"\xff\xfe---\n")
    _, [problem] = check_library(tmp_path, max_chars=MAX_CHARS)
    assert problem == Problem(tmp_path / "a.md", "encoding", problem.message)
    assert "字节偏移 0" in problem.message and "0xff" in problem.message


def test_every_problem_in_one_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "traffic-test.md", make_script(topic="trafic", repeat="9", voice="nobody", approved_on=None))
    _, problems = check_library(tmp_path, max_chars=MAX_CHARS)
    assert sorted(p.field for p in problems) == ["approved_on", "repeat", "topic", "voice"]


def test_every_file_is_checked_and_good_ones_still_load(tmp_path: Path) -> None:
    write(tmp_path, "traffic-test.md", make_script())
    write(tmp_path, "a.md", make_script(id="a", topic="x"))
    write(tmp_path, "b.md", b"\xff")
    write(tmp_path, "c.md", "no front matter")
    write(tmp_path, "lexicon.tsv", "96110\t九六一一零\n")  # not a script: ignored
    scripts, problems = check_library(tmp_path, max_chars=MAX_CHARS)
    assert [s.id for s in scripts] == ["traffic-test"]
    assert [p.path.name for p in problems] == ["a.md", "b.md", "c.md"]


def test_duplicate_ids_are_reported(tmp_path: Path) -> None:
    write(tmp_path, "fraud-a.md", make_script(id="fraud-b"))
    write(tmp_path, "fraud-b.md", make_script(id="fraud-b"))
    scripts, problems = check_library(tmp_path, max_chars=MAX_CHARS)
    dup = [p for p in problems if "已被" in p.message and "使用" in p.message]
    assert [(p.path.name, p.field) for p in dup] == [("fraud-b.md", "id")]
    assert "fraud-a.md" in dup[0].message
    assert scripts == []


@pytest.mark.parametrize("setup", ["missing", "empty", "only-lexicon", "a-file"])
def test_missing_or_empty_library_folder(tmp_path: Path, setup: str) -> None:
    folder = tmp_path / "audio_scripts"
    if setup == "a-file":
        folder.write_text("x")
    elif setup != "missing":
        folder.mkdir()
        if setup == "only-lexicon":
            (folder / "lexicon.tsv").write_text("")
    scripts, [problem] = check_library(folder, max_chars=MAX_CHARS)
    assert scripts == [] and problem.path == folder
    assert ("文件夹不存在" if setup in ("missing", "a-file") else "没有广播稿（*.md 文件）") in problem.message


def test_load_library_raises_with_one_line_per_problem(tmp_path: Path) -> None:
    write(tmp_path, "a.md", make_script(id="a", repeat="0"))
    write(tmp_path, "b.md", make_script(id="b", priority="0"))
    with pytest.raises(ScriptError) as info:
        load_library(tmp_path, max_chars=MAX_CHARS)
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert "广播稿库里有 2 个问题" in lines[0]
    assert "a.md: 字段 'repeat'：" in lines[1] and "b.md: 字段 'priority'：" in lines[2]


# --- the model ------------------------------------------------------------------------

def test_script_is_frozen_and_valid_on_respects_dates(tmp_path: Path) -> None:
    write(tmp_path, "traffic-test.md", make_script(valid_from="2026-12-01", valid_until="2026-12-31"))
    [script] = load_library(tmp_path, max_chars=MAX_CHARS)
    with pytest.raises(ValidationError):
        script.priority = 1  # type: ignore[misc]
    assert not script.valid_on(date(2026, 11, 30))
    assert script.valid_on(date(2026, 12, 1)) and script.valid_on(date(2026, 12, 31))
    assert not script.valid_on(date(2027, 1, 1))
    assert script.model_copy(update={"valid_from": None, "valid_until": None}).valid_on(date(1999, 1, 1))


def test_script_model_rejects_approved_without_reviewer(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        Script(id="a", topic="traffic", title="t", text="x", repeat=1, priority=1, status="approved",
               path=tmp_path / "a.md")


# --- approve ---------------------------------------------------------------------------

DRAFT = (
    "---\n"
    "id: traffic-new  # keep this comment\n"
    "topic: traffic\n"
    "title: 新稿\n"
    "repeat: 1\n"
    "priority: 3\n"
    "status: draft\n"
    "---\n"
    "乡亲们请注意：\n\n这是第二段。\n"
)


def test_approve_round_trip_keeps_text_and_other_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "traffic-new.md", DRAFT)
    script = approve_script(path, by="王秀兰", on=date(2026, 11, 25))
    assert (script.status, script.approved_by, script.approved_on) == ("approved", "王秀兰", date(2026, 11, 25))
    [reloaded] = load_library(tmp_path, max_chars=MAX_CHARS)
    assert reloaded == script
    content = path.read_text(encoding="utf-8")
    assert "id: traffic-new  # keep this comment\n" in content
    assert content.endswith("---\n乡亲们请注意：\n\n这是第二段。\n")
    assert "status: draft" not in content
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    with pytest.raises(ScriptError, match="已由 王秀兰 于 2026-11-25 批准，无需再批准"):
        approve_script(path, by="赵建国", on=date(2026, 11, 26))


def test_approve_quotes_a_name_yaml_would_misread_and_keeps_crlf(tmp_path: Path) -> None:
    path = write(tmp_path, "traffic-new.md", DRAFT.replace("\n", "\r\n"))
    script = approve_script(path, by="Li: #1", on=date(2026, 11, 25))
    assert script.approved_by == "Li: #1"
    raw = path.read_bytes()
    assert b'approved_by: "Li: #1"\r\n' in raw and b"\n" not in raw.replace(b"\r\n", b"")


@pytest.mark.parametrize(("content", "by", "words"), [
    (DRAFT.replace("topic: traffic", "topic: trafic"), "王秀兰", "未知的 topic 值 'trafic'"),
    (DRAFT, "  ", "批准人姓名是空的；请用 --by 姓名"),
])
def test_approve_refuses_invalid_input_and_leaves_the_file(tmp_path: Path, content: str, by: str, words: str) -> None:
    path = write(tmp_path, "traffic-new.md", content)
    with pytest.raises(ScriptError, match=words):
        approve_script(path, by=by, on=date(2026, 11, 25))
    assert path.read_text(encoding="utf-8") == content


def test_script_path_rejects_bad_and_unknown_ids(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="不是广播稿编号"):
        script_path(tmp_path, "../outreach")
    with pytest.raises(ScriptError, match="没有这篇广播稿；运行 `outreach scripts list`"):
        script_path(tmp_path, "traffic-nothing")


# --- the CLI ---------------------------------------------------------------------------

def run(*args: str) -> Result:
    # `scripts approve` reads the reviewer's password (issue 18): every reviewer here has this one.
    return CliRunner().invoke(cli, list(args), input="long-enough-password\n", catch_exceptions=False)


# `scripts approve` checks the reviewer's password and that the version was heard (issue 18).
APPROVE_CLI = ("--password-stdin", "--heard")


def add_reviewers(workspace: Path, *names: str) -> None:
    """`scripts approve --by` names a reviewer of users.json (issue 11)."""
    from outreach.web.auth import USERS_FILE, UserStore

    store = UserStore(workspace / USERS_FILE)
    for name in names:
        store.add(name, "reviewer", "long-enough-password", now=datetime.now(ZoneInfo("Asia/Shanghai")))


def test_cli_check_ok_on_bundled_workspace(workspace: Path) -> None:
    result = run("scripts", "check", "-w", str(workspace))
    scripts = bundled()
    approved = sum(s.approved for s in scripts)
    assert result.exit_code == 0
    assert result.output == f"通过：共 {len(scripts)} 个稿件（已批准 {approved} 个，草稿 {len(scripts) - approved} 个）\n"


def test_cli_check_lists_every_problem_and_exits_1(workspace: Path) -> None:
    folder = workspace / "audio_scripts"
    write(folder, "traffic-helmet.md", (folder / "traffic-helmet.md").read_text().replace("topic: traffic", "topic: x"))
    write(folder, "fraud-bad.md", b"\xff")
    write(folder, "traffic-long.md", make_script(id="traffic-long", text="慢" * 401))
    problems = check_library(folder, max_chars=400)[1]
    result = run("scripts", "check", "-w", str(workspace))
    assert result.exit_code == 1
    assert len(problems) == 3
    for problem in problems:
        assert str(problem) in result.output
    assert "错误：3 个文件里有 3 个问题" in result.output


def test_cli_list_plain_and_json(workspace: Path) -> None:
    ids = sorted(p.stem for p in (workspace / "audio_scripts").glob("*.md"))
    plain = run("scripts", "list", "-w", str(workspace))
    assert plain.exit_code == 0
    assert [line.split()[0] for line in plain.output.splitlines()] == ids
    assert "traffic-helmet" in plain.output and "骑车戴头盔，平安回家" in plain.output
    statuses = {line.split()[0]: line.split()[2] for line in plain.output.splitlines()}
    assert statuses["traffic-helmet"] == "已批准" and statuses["traffic-harvest-season"] == "草稿"
    as_json = run("scripts", "list", "--json", "-w", str(workspace))
    rows = json.loads(as_json.output)
    assert [r["id"] for r in rows] == ids
    assert set(rows[0]) == {"id", "topic", "status", "title"}


def test_cli_approve_with_and_without_date(workspace: Path) -> None:
    add_reviewers(workspace, "王秀兰", "赵建国")
    result = run("scripts", "approve", "traffic-harvest-season", "--by", "王秀兰", "--on", "2026-11-28", *APPROVE_CLI,
                 "-w", str(workspace))
    assert result.exit_code == 0, result.output
    assert result.output == "已批准：traffic-harvest-season，批准人 王秀兰，日期 2026-11-28\n"
    before = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    result = run("scripts", "approve", "fraud-seven-tools", "--by", "赵建国", *APPROVE_CLI, "-w", str(workspace))
    after = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    assert result.exit_code == 0, result.output
    assert any(f"日期 {d.isoformat()}" in result.output for d in {before, after})
    scripts = bundled()
    left = sum(not s.approved for s in scripts) - 2
    check = run("scripts", "check", "-w", str(workspace))
    assert check.output.endswith(f"（已批准 {len(scripts) - left} 个，草稿 {left} 个）\n")


@pytest.mark.parametrize(("args", "words"), [
    (["traffic-helmet", "--by", "王秀兰"], "已由 王秀兰 于 2026-11-18 批准，无需再批准"),
    (["traffic-nothing", "--by", "王秀兰"], "没有编号为“traffic-nothing”的稿件"),
    (["../x", "--by", "王秀兰"], "没有编号为“../x”的稿件"),
])
def test_cli_approve_errors_exit_1(workspace: Path, args: list[str], words: str) -> None:
    add_reviewers(workspace, "王秀兰")
    result = run("scripts", "approve", *args, *APPROVE_CLI, "-w", str(workspace))
    assert result.exit_code == 1
    assert result.output.startswith("错误：") and words in result.output


def test_cli_approve_refuses_the_drafter_and_last_editor_like_the_browser(workspace: Path) -> None:
    """Who drafted or last edited a script in the web editor cannot approve it from the CLI either."""
    from outreach.authoring import review
    from outreach.db import make_engine, upgrade

    add_reviewers(workspace, "赵建国", "王秀兰", "李娜")
    config = load_config(workspace)
    engine = make_engine(config.resolved_database_url())
    upgrade(engine)
    now = datetime(2026, 11, 27, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    fields = {"id": "traffic-night-lights", "topic": "traffic", "title": "夜间行车开灯", "repeat": "2", "priority": "5"}
    first = review.compose(fields, "乡亲们请注意：晚上骑车、开三轮车一定要开灯。槐川县公安局提醒您。")
    review.save_draft(engine, config, first, "traffic-night-lights", base=None, actor="赵建国", now=now)
    second = review.compose(fields, "乡亲们请注意：天黑以后骑车、开三轮车一定要开灯。槐川县公安局提醒您。", first)
    review.save_draft(engine, config, second, "traffic-night-lights", base=first, actor="王秀兰", now=now)
    engine.dispose()
    path = workspace / "audio_scripts" / "traffic-night-lights.md"

    for name, role in (("赵建国", "撰写"), ("王秀兰", "最后修改")):
        refused = run("scripts", "approve", "traffic-night-lights", "--by", name, *APPROVE_CLI, "-w", str(workspace))
        assert refused.exit_code == 1
        assert refused.output == (f"错误：广播稿「traffic-night-lights」是您（{name}）{role}的，不能由您自己批准；"
                                  "须由另一位审核员批准。\n")
        assert "status: draft" in path.read_text(encoding="utf-8")

    approved = run("scripts", "approve", "traffic-night-lights", "--by", "李娜", "--on", "2026-11-28", *APPROVE_CLI,
                   "-w", str(workspace))
    assert approved.exit_code == 0, approved.output
    assert approved.output == "已批准：traffic-night-lights，批准人 李娜，日期 2026-11-28\n"
    engine = make_engine(config.resolved_database_url())
    steps = [(e.action, e.actor) for e in review.trail(engine, "traffic-night-lights")]
    engine.dispose()
    assert steps == [("drafted", "赵建国"), ("edited", "王秀兰"), ("approved", "李娜")]


def test_every_scripts_command_has_help_text() -> None:
    group = cli.commands["scripts"]
    assert group.help
    for command in group.commands.values():  # type: ignore[attr-defined]
        assert command.help, command.name


# --- approval follows the text ------------------------------------------------------------

def test_bundled_approved_scripts_carry_a_matching_approval_hash() -> None:
    approved = [s for s in bundled() if s.status == "approved"]
    assert approved and all(s.approval_hash == s.content_hash for s in approved)


def test_approval_records_a_hash_and_any_edit_makes_a_draft_again(tmp_path: Path) -> None:
    path = write(tmp_path, "traffic-new.md", DRAFT)
    script = approve_script(path, by="王秀兰", on=date(2026, 11, 25))
    assert f"approval_hash: {script.content_hash}\n" in path.read_text(encoding="utf-8")
    assert script.approved and not script.edited_after_approval and script.review_note is None
    # One character of the text changed, not re-approved: a draft again, still loaded (no problem).
    path.write_text(path.read_text(encoding="utf-8").replace("第二段", "第三段"), encoding="utf-8")
    [edited], problems = check_library(tmp_path, max_chars=MAX_CHARS)
    assert problems == []
    assert edited.status == "approved" and edited.edited_after_approval and not edited.approved
    assert edited.review_note.startswith("王秀兰 于 2026-11-25 批准后又被修改过，已退回草稿")
    assert "outreach scripts approve traffic-new --by 姓名" in edited.review_note
    # It can be approved again, which seals the new text.
    again = approve_script(path, by="赵建国", on=date(2026, 11, 27))
    assert again.approved and again.approval_hash == again.content_hash != script.approval_hash


@pytest.mark.parametrize(("old", "new", "voids"), [
    ("title: 新稿", "title: 新稿件", True),
    ("priority: 3", "priority: 4", False),
    ("# keep this comment", "# another comment", False),
])
def test_only_text_title_voice_engine_and_rate_void_an_approval(tmp_path: Path, old: str, new: str, voids: bool) -> None:
    path = write(tmp_path, "traffic-new.md", DRAFT)
    approve_script(path, by="王秀兰", on=date(2026, 11, 25))
    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    [script] = load_library(tmp_path, max_chars=MAX_CHARS)
    assert script.edited_after_approval is voids and script.approved is not voids


def test_engine_and_voice_are_sealed_too(tmp_path: Path) -> None:
    path = write(tmp_path, "traffic-new.md", DRAFT)
    script = approve_script(path, by="王秀兰", on=date(2026, 11, 25))
    other = script.model_copy(update={"engine": "edge" if script.engine != "edge" else None})
    assert other.content_hash != script.content_hash and other.edited_after_approval


def test_a_bad_or_draft_approval_hash_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path, "traffic-a.md", make_script(id="traffic-a", approval_hash="xyz"))
    write(tmp_path, "traffic-b.md", make_script(id="traffic-b", status="draft", approved_by=None, approved_on=None,
                                                approval_hash="0123456789abcdef"))
    problems = check_library(tmp_path, max_chars=MAX_CHARS)[1]
    assert {(p.path.stem, p.field) for p in problems} == {("traffic-a", "approval_hash"), ("traffic-b", "approval_hash")}


def test_cli_check_says_edited_after_approval_by_whom_and_when(workspace: Path) -> None:
    path = workspace / "audio_scripts" / "fraud-96110.md"
    path.write_text(path.read_text(encoding="utf-8").replace("一定要接听，", "一定要接听！"), encoding="utf-8")
    result = run("scripts", "check", "-w", str(workspace))
    assert result.exit_code == 0
    assert ("audio_scripts/fraud-96110.md: 赵建国 于 2026-11-17 批准后又被修改过，已退回草稿，重新批准前不会播出"
            in result.output)
    assert "其中 1 个批准后被修改" in result.output
    rows = json.loads(run("scripts", "list", "--json", "-w", str(workspace)).output)
    assert next(r for r in rows if r["id"] == "fraud-96110")["status"] == "edited"
    plain = run("scripts", "list", "-w", str(workspace)).output
    assert next(line for line in plain.splitlines() if line.startswith("fraud-96110 ")).split()[2] == "批准后被修改"
    add_reviewers(workspace, "李娜")
    approved = run("scripts", "approve", "fraud-96110", "--by", "李娜", "--on", "2026-11-30", *APPROVE_CLI,
                   "-w", str(workspace))
    assert approved.exit_code == 0, approved.output
    assert "批准后又被修改过" not in run("scripts", "check", "-w", str(workspace)).output


# --- bodies that are not speech ------------------------------------------------------------

@pytest.mark.parametrize(("body", "char"), [
    ("乡亲们请注意：骑车戴头盔。\n平安\x00回家，槐川县公安局提醒您。", "U+0000"),
    ("乡亲们请注意：\x1b骑车戴头盔，平安回家。", "U+001B"),
    ("\n\n乡亲们请注意：骑车戴头盔。\n\n平安回家。\x7f", "U+007F"),
])
def test_control_characters_are_refused_naming_the_line(tmp_path: Path, body: str, char: str) -> None:
    path = write(tmp_path, "traffic-test.md", make_script(text=body))
    [problem] = check_library(tmp_path, max_chars=MAX_CHARS)[1]
    lines = path.read_text(encoding="utf-8").split("\n")
    line = next(n for n, text in enumerate(lines, 1) if chr(int(char[2:], 16)) in text)
    assert problem.field == "text" and problem.message.startswith(f"第 {line} 行有控制字符 {char}")


@pytest.mark.parametrize("body", ["🚨🚨🚨🚨🚨🚨🚨🚨", "96110 12381 110", "注意安全 ok ok"])
def test_a_body_needs_five_hanzi(tmp_path: Path, body: str) -> None:
    write(tmp_path, "traffic-test.md", make_script(text=body))
    [problem] = check_library(tmp_path, max_chars=MAX_CHARS)[1]
    assert problem.field == "text" and "至少要 5 个汉字" in problem.message


def test_tabs_and_five_hanzi_are_fine(tmp_path: Path) -> None:
    write(tmp_path, "traffic-test.md", make_script(text="请注意\t安全出行"))
    assert check_library(tmp_path, max_chars=MAX_CHARS)[1] == []
