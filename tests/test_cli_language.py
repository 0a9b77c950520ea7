"""The CLI speaks one language: every --help and every CLI-layer message is Simplified Chinese.

Also: dates typed as 2026-12-01, 2026/12/01 or 12月1日; village and market names accepted
where ids are, with 您是不是要找 for a near miss; commands outside a workspace refuse in one
line and leave no file; `outreach init`'s hint runs as printed; approval needs a reviewer.
"""

from __future__ import annotations

import ast
import io
import logging
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import pytest
from click.testing import CliRunner

from outreach.cli import cli
from outreach.dates import nearest_date, read_date
from outreach.errors import PlanError, RegistryError
from outreach.planning.registry import load_registry, resolve_market, resolve_township, resolve_village

CLI_DIR = Path(__file__).resolve().parents[1] / "outreach" / "cli"
CJK = re.compile(r"[\u3400-\u9fff]")
# Things that stay as they are in Chinese text: option names, ids, metavars, file names,
# `commands`, URLs, placeholders, and a few technical words (formats, protocols, units).
KEEP = [
    r"`[^`]*`", r"https?://\S+", r"\{[^}]*\}", r"--?[a-z][a-z0-9-]*", r"\[[^\]\n]*\]",
    r"\b[\w.-]+\.(?:md|yaml|toml|json|csv|xlsx|txt|m3u|mp3|db|html)\b", r"\b[a-z_]+(?:[./][a-z_]+)+\b",
    r"\b[A-Z][A-Z0-9_]+\b", r"\b[a-z]+_[a-z_]+\b", r"\b\d+[a-z]*\b",
    r"\b(?:outreach|json|csv|xlsx|table|play|export|viewer|editor|reviewer|admin|neural|espeak|edge|offline|"
    r"morning|evening|traffic|anti_fraud|Excel|HTML|HTTP|HTTPS|HSTS|Cookie|Secure|UTF|BOM|MP3|TTS|TCP|LUFS|"
    r"argon2|dBTP|zh|CN|SIGTERM|Ctrl|Python|python|m|s|h|YYYY|MM|DD|audio_scripts|schedules|build|demo|"
    r"users|station|broker|url|https_only|render|offline_engine|deliver|mode|village_id|date|slot|"
    r"confirmed_by|note|market_id|leaflets|people|topics|staff|registry|init|user|add|scripts|list|approve|"
    r"check|markets|ffplay)\b",
]
ENGLISH_RUN = re.compile(r"[A-Za-z]{2,}(?:[ ,;:'()-]+[A-Za-z]{2,}){2,}")


def prose(text: str) -> str:
    """`text` without the parts that stay in their original form."""
    for pattern in KEEP:
        text = re.sub(pattern, " ", text)
    return text


def walk(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path in the click tree, groups' subcommands included."""
    found = []
    for name, command in sorted(group.commands.items()):
        found.append((*path, name))
        if isinstance(command, click.Group):
            found += walk(command, (*path, name))
    return found


COMMANDS = walk(cli)
NAMES = re.compile(r"\b(?:" + "|".join(sorted({n for p in COMMANDS for n in p}, key=len, reverse=True)) + r")\b")


def test_the_walk_finds_every_command() -> None:
    assert {("plan",), ("scripts", "approve"), ("user", "add"), ("alert", "send"), ("station", "run")} <= set(COMMANDS)
    assert len(COMMANDS) >= 30


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda p: " ".join(p) or "outreach")
def test_help_is_chinese(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="outreach")
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.startswith("用法：") and "显示本帮助并退出" in text
    rest = NAMES.sub(" ", prose(text))
    english = ENGLISH_RUN.findall(rest)
    assert not english, f"English prose in `outreach {' '.join(path)} --help`: {english}"
    letters = len(re.findall(r"[A-Za-z]", rest))
    hanzi = len(CJK.findall(rest))
    assert hanzi >= 10 and hanzi >= 0.8 * (hanzi + letters), (hanzi, letters, rest)
    command, ctx = _command(path)
    stray = [w for w in _spaced_pairs(text) if w not in _help_sources(command, ctx)]
    assert not stray, f"a space between two Chinese characters in `outreach {' '.join(path)} --help`: {stray}"
    metavars = [" ".join(command.collect_usage_pieces(ctx))]
    metavars += [record[0] for p in command.get_params(ctx) if (record := p.get_help_record(ctx))]
    english = [m for m in metavars if ENGLISH_METAVAR.search(m)] + ENGLISH_METAVAR_WORD.findall(text)
    assert not english, f"English metavars in `outreach {' '.join(path)} --help`: {english}"


# Help text: a line break between two Chinese characters must not become a space (`工作区 的播出记录`),
# and placeholders are Chinese (文件夹, 姓名), not click's DIRECTORY, NAME, TEXT, [OPTIONS].
HAN_OR_MARK = r"[\u3400-\u9fff\u3000-\u303f\uff00-\uffef\u2018\u2019\u201c\u201d]"
SPACED_PAIR = re.compile(rf"(?=({HAN_OR_MARK}) ({HAN_OR_MARK}))")
ENGLISH_METAVAR = re.compile(r"\b[A-Z][A-Z_]*[A-Z]\b")
ENGLISH_METAVAR_WORD = re.compile(r"\b(?:OPTIONS|COMMAND|ARGS|DIRECTORY|NAME|TEXT|PATH|INTEGER|FLOAT|FILE|FILENAME|ID|"
                                  r"BOOLEAN|CHOICE|[A-Z]+_(?:ID|FILE|DIR|NAME))\b")


def _command(path: tuple[str, ...]) -> tuple[click.Command, click.Context]:
    command: click.Command = cli
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return command, click.Context(command, info_name=path[-1] if path else "outreach")


def _spaced_pairs(text: str) -> list[str]:
    """Every `字 字`: two Chinese characters (or marks) with exactly one space between them."""
    return [f"{m[1]} {m[2]}" for m in SPACED_PAIR.finditer(text)]


def _help_sources(command: click.Command, ctx: click.Context) -> str:
    """The texts a command's help is made of, as written: a space that is in them is meant."""
    parts = [command.help, command.short_help, command.epilog, " ".join(command.collect_usage_pieces(ctx))]
    parts += [getattr(p, "help", None) for p in command.params] + [p.make_metavar(ctx) for p in command.params]
    parts += [c.get_short_help_str(200) for c in getattr(command, "commands", {}).values()]
    return "\n".join(p for p in parts if p)


def test_the_help_checks_would_catch_a_stray_space_and_an_english_metavar() -> None:
    @click.command(cls=click.Command)
    @click.argument("directory")
    def raw(directory: str) -> None:
        """从不写入工作区
        的播出记录。"""

    text = CliRunner().invoke(raw, ["--help"], terminal_width=200).output
    context = click.Context(raw, info_name="raw")
    assert [w for w in _spaced_pairs(text) if w not in _help_sources(raw, context)] == ["区 的"]
    assert ENGLISH_METAVAR_WORD.findall(text) == ["OPTIONS", "DIRECTORY"]


def _literal(node: ast.AST) -> list[str]:
    """The literal pieces of a message expression (not the names or keys inside its {...} fields)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [p for v in node.values for p in _literal(v)]
    if isinstance(node, ast.FormattedValue):
        return _literal(node.value) if isinstance(node.value, (ast.IfExp, ast.JoinedStr)) else []
    if isinstance(node, ast.BinOp):
        return _literal(node.left) + _literal(node.right)
    if isinstance(node, ast.IfExp):
        return _literal(node.body) + _literal(node.orelse)
    return []


def _templates() -> list[tuple[str, int, str]]:
    """The literal text of every message the CLI layer prints or raises: (file, line, text)."""
    found = []
    for path in sorted(CLI_DIR.glob("*.py")):
        if path.name == "zh.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in {"echo", "warn", "UsageError"} and not name.endswith("Error"):
                continue
            text = " ".join(_literal(node.args[0]))
            if re.search(r"[A-Za-z]{2,}", prose(text)) or CJK.search(text):
                found.append((path.name, node.lineno, text))
    return found


def test_every_cli_message_template_is_chinese() -> None:
    templates = _templates()
    assert len(templates) >= 40
    bad = [(f, line, t) for f, line, t in templates
           if ENGLISH_RUN.search(prose(t)) or (re.search(r"[A-Za-z]{3,}", prose(t)) and not CJK.search(t))]
    assert not bad, bad


def test_error_and_warning_prefixes_are_chinese(workspace: Path) -> None:
    result = CliRunner().invoke(cli, ["plan", "--from", "2026-12-03", "--to", "2026-12-01", "-w", str(workspace)])
    assert result.exit_code == 1
    assert result.stderr.startswith("错误：--from/--to：")


def test_click_usage_errors_are_chinese(workspace: Path) -> None:
    result = CliRunner().invoke(cli, ["plan", "--from", "2026-12-01", "-w", str(workspace)])
    assert result.exit_code == 2
    assert "错误：缺少选项 '--to'" in result.stderr and "查看帮助" in result.stderr
    typo = CliRunner().invoke(cli, ["plna"])
    assert typo.exit_code == 2 and "没有命令 'plna'" in typo.stderr and "您是不是要找：'plan'" in typo.stderr


# --- dates ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "today", "expected"), [
    ("2026-12-01", date(2026, 11, 20), date(2026, 12, 1)),
    ("2026/12/01", date(2026, 11, 20), date(2026, 12, 1)),
    ("2026/12/1", date(2026, 11, 20), date(2026, 12, 1)),
    ("2026年12月1日", date(2026, 11, 20), date(2026, 12, 1)),
    ("12月1日", date(2026, 11, 20), date(2026, 12, 1)),
    ("12月1日", date(2027, 1, 10), date(2026, 12, 1)),  # nearest: last month, not eleven months ahead
    ("1月3日", date(2026, 12, 28), date(2027, 1, 3)),    # across the new year
    ("3月1日", date(2026, 3, 10), date(2026, 3, 1)),
])
def test_read_date_forms(text: str, today: date, expected: date) -> None:
    found, note = read_date(text, "--from", today=today)
    assert found == expected
    assert note == (None if text == expected.isoformat() else f"日期 {text} → {expected.isoformat()}")


def test_nearest_date_tie_goes_forward_and_leap_day() -> None:
    assert nearest_date(2, 29, date(2027, 3, 1)) == date(2028, 2, 29)
    with pytest.raises(ValueError):
        nearest_date(2, 30, date(2026, 1, 1))


@pytest.mark.parametrize(("text", "words"), [
    ("2026-13-01", "不是真实存在的日期"), ("2月30日", "不是真实存在的日期"),
    ("tomorrow", "不是日期；请写成 2026-12-01、2026/12/01 或 12月1日"), ("20261201", "不是日期"),
])
def test_read_date_refuses_in_chinese(text: str, words: str) -> None:
    with pytest.raises(PlanError, match=words) as info:
        read_date(text, "--to", today=date(2026, 11, 20))
    assert str(info.value).startswith("--to：")


def test_plan_takes_every_date_form_and_says_which_date(workspace: Path) -> None:
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    day = nearest_date(12, 1, today)
    args = ["plan", "--from", "12月1日", "--to", f"{day.year}/{day.month}/{day.day}", "--json", "-w", str(workspace)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"日期 12月1日 → {day.isoformat()}" in result.stderr
    assert f"日期 {day.year}/{day.month}/{day.day} → {day.isoformat()}" in result.stderr
    iso = CliRunner().invoke(cli, ["plan", "--from", day.isoformat(), "--to", day.isoformat(), "--json",
                                   "-w", str(workspace)])
    assert iso.stdout == result.stdout and "日期" not in iso.stderr


def test_markets_and_coverage_take_chinese_dates(workspace: Path) -> None:
    rule = CliRunner().invoke(cli, ["markets", "--rule", "逢三", "--from", "2026/1/1", "--to", "2026-01-10"])
    assert rule.exit_code == 0, rule.output
    assert "日期 2026/1/1 → 2026-01-01" in rule.stderr
    iso = CliRunner().invoke(cli, ["markets", "--rule", "逢三", "--from", "2026-01-01", "--to", "2026-01-10"])
    assert rule.stdout == iso.stdout and rule.stdout.startswith("2026-01-")
    cov = CliRunner().invoke(cli, ["coverage", "--today", "2026-03-10", "--from", "3月1日", "--format", "json",
                                   "-w", str(workspace)])
    assert cov.exit_code == 0, cov.output
    assert "日期 3月1日 → 2026-03-01" in cov.stderr


# --- names ----------------------------------------------------------------------------


def test_resolver_takes_ids_and_names_and_suggests(workspace: Path) -> None:
    registry = load_registry(workspace / "schedules")
    village = next(iter(registry.villages.values()))
    assert resolve_village(registry, village.id) == village.id
    assert resolve_village(registry, village.name) == village.id
    market = next(iter(registry.markets.values()))
    assert resolve_market(registry, market.name) == market.id
    township = next(iter(registry.townships.values()))
    assert resolve_township(registry, township.name) == township.id
    typo = village.name[:-1] + "屯"
    with pytest.raises(RegistryError, match="您是不是要找：") as info:
        resolve_village(registry, typo)
    assert f"{village.name}（{village.id}）" in str(info.value) and f"未知的村“{typo}”" in str(info.value)
    with pytest.raises(RegistryError, match="未知的集市"):
        resolve_market(registry, "zzzz")


def test_plan_accepts_a_village_name(workspace: Path) -> None:
    registry = load_registry(workspace / "schedules")
    village = next(iter(registry.villages.values()))
    base = ["plan", "--from", "2026-12-01", "--to", "2026-12-01", "--json", "-w", str(workspace)]
    by_name = CliRunner().invoke(cli, [*base, "--village", village.name])
    by_id = CliRunner().invoke(cli, [*base, "--village", village.id])
    assert by_name.exit_code == 0, by_name.output
    assert by_name.stdout == by_id.stdout and village.id in by_name.stdout
    wrong = CliRunner().invoke(cli, [*base, "--village", village.name + "x"])
    assert wrong.exit_code == 1
    assert wrong.stderr.startswith("错误：未知的村") and "您是不是要找：" in wrong.stderr and village.id in wrong.stderr


def test_unknown_script_id_suggests(workspace: Path) -> None:
    result = CliRunner().invoke(cli, ["scripts", "approve", "traffic-helmt", "--by", "x", "-w", str(workspace)])
    assert result.exit_code == 1
    # no users.json: the fix is named before anything else happens
    assert "outreach user add 姓名 --role reviewer" in result.stderr


# --- outside a workspace -----------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["coverage"], ["serve", "--port", "8999"], ["user", "add", "王秀兰", "--role", "admin", "--password-stdin"],
    ["plan", "--from", "2026-12-01", "--to", "2026-12-01"], ["registry"], ["scripts", "check"], ["jobs"],
    ["stations"], ["markets", "--from", "2026-12-01", "--to", "2026-12-02"],
], ids=lambda a: a[0] if a[0] != "user" else "user-add")
def test_outside_a_workspace_one_line_and_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  args: list[str]) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    empty = tmp_path / "not-a-workspace"
    empty.mkdir()
    monkeypatch.chdir(empty)
    result = CliRunner().invoke(cli, args, input="secret-password-1\n")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("错误：")
    assert "不是工作区（没有 outreach.toml）" in result.stderr and "outreach init" in result.stderr
    assert list(empty.iterdir()) == []
    other = CliRunner().invoke(cli, [*args, "-w", str(empty)], input="secret-password-1\n")
    assert other.exit_code == 1 and list(empty.iterdir()) == []


def test_init_hint_works_as_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["init", "county"])
    assert result.exit_code == 0, result.output
    hint = re.search(r"下一步：(outreach registry -w \S+)（", result.stdout)
    assert hint, result.stdout
    argv = shlex.split(hint.group(1))
    run = CliRunner().invoke(cli, argv[1:])
    assert run.exit_code == 0, run.output
    assert "个乡镇" in run.stdout
    assert re.search(r"再运行 outreach demo -w county（", result.stdout)


# --- users and approval --------------------------------------------------------------


def _add(workspace: Path, name: str, role: str) -> None:
    result = CliRunner().invoke(cli, ["user", "add", name, "--role", role, "--password-stdin", "-w", str(workspace)],
                                input="long-enough-password\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"已添加：{name}（{role}）\n"


def test_user_add_accepts_every_role(workspace: Path) -> None:
    from outreach.cli.web_cmds import ROLE_NAMES
    from outreach.web.auth import Role

    assert ROLE_NAMES == tuple(r.value for r in Role)
    for i, role in enumerate(ROLE_NAMES):
        _add(workspace, f"用户{i}", role)


def test_approve_needs_a_known_reviewer(workspace: Path) -> None:
    script = "traffic-harvest-season"
    args = ["scripts", "approve", script, "--on", "2026/11/28", "-w", str(workspace)]
    nobody = CliRunner().invoke(cli, [*args, "--by", "王秀兰"])
    assert nobody.exit_code == 1 and "还没有审核人账号" in nobody.stderr
    _add(workspace, "李编辑", "editor")
    _add(workspace, "王秀兰", "reviewer")
    editor = CliRunner().invoke(cli, [*args, "--by", "李编辑"])
    assert editor.exit_code == 1 and "角色是 editor，不能批准稿件" in editor.stderr and "王秀兰" in editor.stderr
    stranger = CliRunner().invoke(cli, [*args, "--by", "王秀"])
    assert stranger.exit_code == 1 and "不是已登记的用户" in stranger.stderr and "您是不是要找：王秀兰" in stranger.stderr
    unknown = CliRunner().invoke(cli, ["scripts", "approve", "traffic-harvest-seasn", "--by", "王秀兰",
                                       "-w", str(workspace)])
    assert unknown.exit_code == 1 and f"您是不是要找：{script}" in unknown.stderr
    # The reviewer's password and a declared hearing (issue 18); _add gave every user this password.
    ok = CliRunner().invoke(cli, [*args, "--by", "王秀兰", "--password-stdin", "--heard"], input="long-enough-password\n")
    assert ok.exit_code == 0, ok.output
    assert ok.stdout == f"已批准：{script}，批准人 王秀兰，日期 2026-11-28\n"
    assert "日期 2026/11/28 → 2026-11-28" in ok.stderr


# --- domain messages reach the user in Chinese ------------------------------------------------

ID_LIKE = re.compile(r"\b[a-z0-9]+(?:[-_][a-z0-9]+)+\b|\b[\w.-]+/[\w./-]+")
TWO_WORDS = re.compile(r"[A-Za-z]{2,}(?:[ ,;:'()-]+[A-Za-z]{2,})+")


def _english_left(text: str) -> list[str]:
    """English prose left in CLI output once ids, paths, keys and kept technical words are removed."""
    return TWO_WORDS.findall(prose(ID_LIKE.sub(" ", text)))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


BROKEN = {
    # name: (file to break, old text, new text, command)
    "registry-unknown-township": ("schedules/county.yaml", "township: dazhuang, population: 2860",
                                  "township: dazhuangg, population: 2860", ["registry"]),
    "registry-not-a-number": ("schedules/county.yaml", "population: 2860", "population: many", ["registry"]),
    "registry-yaml-syntax": ("schedules/county.yaml", "townships:\n", "townships: [\n", ["registry"]),
    "registry-unknown-key": ("schedules/county.yaml", "speaker: networked}", "speaker: networked, speker: x}",
                             ["registry"]),
    "market-rule": ("schedules/markets.yaml", "rule: 逢农历三、八", "rule: 逢农历四十", ["registry"]),
    "campaign-unknown-script": ("schedules/campaigns.yaml", "- traffic-helmet\n", "- traffic-helmt\n",
                                ["plan", "--from", "2026-12-01", "--to", "2026-12-01"]),
    "campaign-dates-swapped": ("schedules/campaigns.yaml", "to: 2027-02-28", "to: 2026-11-01",
                               ["plan", "--from", "2026-12-01", "--to", "2026-12-01"]),
    "script-front-matter": ("audio_scripts/traffic-helmet.md", "repeat: 2", "repeat: two", ["scripts", "check"]),
    "script-too-short": ("audio_scripts/traffic-helmet.md", "乡亲们请注意：骑电动车", "OK\n<!--", ["scripts", "check"]),
    "config-bad-value": ("outreach.toml", "player_timeout_s = 1800", "player_timeout_s = -5",
                         ["plan", "--from", "2026-12-01", "--to", "2026-12-01"]),
    "config-unknown-key": ("outreach.toml", "grace_s = 900", "grace_s = 900\ngrace_seconds = 1",
                           ["plan", "--from", "2026-12-01", "--to", "2026-12-01"]),
    "lexicon": ("audio_scripts/lexicon.tsv", "", "no-tab-here\n", ["tn", "骑车戴头盔"]),
    "lexicon-in-check": ("audio_scripts/lexicon.tsv", "", "no-tab-here\n", ["scripts", "check"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_domain_errors_are_chinese(workspace: Path, case: str) -> None:
    name, old, new, args = BROKEN[case]
    path = workspace / name
    if old:
        _edit(path, old, new)
    else:
        path.write_text(path.read_text(encoding="utf-8") + new, encoding="utf-8")
    result = CliRunner().invoke(cli, [*args, "-w", str(workspace)])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("错误："), result.stderr
    assert not _english_left(result.output), (result.output, _english_left(result.output))


def test_record_and_csv_errors_are_chinese(workspace: Path, tmp_path: Path) -> None:
    csv = tmp_path / "confirmations.csv"
    csv.write_text("village_id,date,slot,confirmed_by\n"
                   "dazhuang-05,2026-11-28,noon,王支书\n"
                   "nowhere-99,2026-11-28,morning,王支书\n"
                   "dazhuang-05,2026-02-30,morning,王支书\n"
                   "dazhuang-05,2099-11-28,morning,王支书\n"
                   "dazhuang-05,2026-11-28\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["confirm", str(csv), "--by", "张干事", "-w", str(workspace)])
    assert result.exit_code == 1
    assert result.stderr.count("第") >= 5 or result.stderr.count(":") >= 5, result.stderr
    assert not _english_left(result.output), _english_left(result.output)
    handout = CliRunner().invoke(cli, ["handout", "--market", "dazhuang-jii", "--leaflets", "-3", "--people", "5",
                                       "--topics", "traffic", "--staff", "张", "-w", str(workspace)])
    assert handout.exit_code != 0
    assert not _english_left(handout.output), _english_left(handout.output)


def test_scripts_list_and_check_speak_chinese(workspace: Path) -> None:
    _edit(workspace / "audio_scripts/traffic-helmet.md", "大人戴，坐车的孩子也要戴。", "大人戴，孩子也要戴。")
    listing = CliRunner().invoke(cli, ["scripts", "list", "-w", str(workspace)])
    assert listing.exit_code == 0, listing.output
    assert "草稿" in listing.stdout and "已批准" in listing.stdout
    assert not _english_left(listing.output), _english_left(listing.output)
    check = CliRunner().invoke(cli, ["scripts", "check", "-w", str(workspace)])
    assert "traffic-helmet" in check.output and "王秀兰" in check.output
    assert not _english_left(check.output), _english_left(check.output)


PACKAGE = CLI_DIR.parent
SQL = re.compile(r"^\s*(?:SELECT|INSERT|UPDATE|DELETE|CREATE|PRAGMA|WITH|ALTER|DROP|LOCK|BEGIN)\b|\b(?:FROM|INTO)\s+\w+|"
                 r"\b(?:WHERE|VALUES)\b")
# Literals that are not messages: header names and values, font families, matplotlib legend places, HTML.
TECHNICAL = re.compile(r"^(?:Content-Security-Policy|Strict-Transport-Security|X-Content-Type-Options|default-src |"
                       r"<!DOCTYPE html>|(?:Noto Sans CJK SC|Source Han Sans SC|WenQuanYi (?:Zen|Micro) Hei|"
                       r"Droid Sans Fallback)$|outside (?:right|upper|left|lower) \w+$)")


def _is_cjk(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(CJK.search(node.value))


def _not_messages(tree: ast.AST) -> set[int]:
    """Literals that a user never reads as a message: docstrings (of modules, classes, functions and
    attributes), and the source side of a translation table, a library's English words mapped to Chinese
    ({"usage: ": "用法："} or ((r"pattern", "中文"), ...))."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            skip.add(id(node.value))
        elif isinstance(node, ast.Dict):
            skip |= {id(k) for k, v in zip(node.keys, node.values, strict=True) if k is not None and _is_cjk(v)}
        elif isinstance(node, ast.Tuple) and len(node.elts) == 2 and _is_cjk(node.elts[1]):
            skip.add(id(node.elts[0]))
        elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In):
            skip.add(id(node.left))  # "words" in a library's message: matched, never shown
    return skip


def _package_literals() -> list[tuple[str, int, str]]:
    """Every string literal in outreach/ that may reach a user as text: (file, line, text)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "migrations" or rel == Path("cli/zh.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _not_messages(tree)
        found += [(str(rel), node.lineno, node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip]
    return found


def test_no_english_prose_in_any_message_of_the_package() -> None:
    """Errors, warnings, log lines and stored reasons are Chinese everywhere, not just in the CLI layer.

    A literal with three English words in a row, or a Chinese literal with two, is prose that
    a user would read; SQL and a few named technical literals are not messages.
    """
    literals = _package_literals()
    assert len(literals) > 2000
    bad = []
    for rel, line, text in literals:
        if TECHNICAL.search(text) or SQL.search(text):
            continue
        rest = prose(ID_LIKE.sub(" ", text))
        if ENGLISH_RUN.search(rest) or (CJK.search(text) and TWO_WORDS.search(rest)):
            bad.append(f"{rel}:{line}: {text[:80]!r}")
    assert not bad, "\n".join(bad)


def test_the_package_check_would_catch_english() -> None:
    """The check above is not vacuous: an English message, or English words inside Chinese, is caught."""
    tree = ast.parse('raise ConfigError(f"{path}: unknown key; remove it")\n'
                     'log.info("已播：%s, but the player exited early", v)\n'
                     'x = {"usage: ": "用法："}\n"""An attribute docstring in English, as code keeps it."""\n'
                     'if "end of document" in str(exc): pass\n')
    skip = _not_messages(tree)
    texts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
             and id(n) not in skip]
    flagged = [s for s in texts if ENGLISH_RUN.search(prose(ID_LIKE.sub(" ", s)))
               or (CJK.search(s) and TWO_WORDS.search(prose(ID_LIKE.sub(" ", s))))]
    assert sorted(flagged) == [": unknown key; remove it", "已播：%s, but the player exited early"], flagged


# --- log lines: `outreach run` and the station box ------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
BEIJING_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00 (?:调试|信息|警告|错误|严重) [\w.]+：")


def _english_log_lines(text: str) -> list[str]:
    """Lines with three English words in a row once ids, paths and kept technical words are removed."""
    return [line for line in text.splitlines() if ENGLISH_RUN.search(prose(ID_LIKE.sub(" ", line)))]


def _run_until(argv: list[str], log: Path, env: dict[str, str], ready: str, *, more_s: float,
               timeout_s: float = 90.0) -> str:
    """Run `argv` with its output in `log` until `ready` is logged (then `more_s` longer), then stop it with SIGTERM."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env)
        try:
            deadline = time.monotonic() + timeout_s
            while ready not in log.read_text("utf-8", "replace"):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text("utf-8", "replace")[-3000:]
                time.sleep(0.1)
            time.sleep(more_s)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return log.read_text("utf-8")


def test_run_logs_in_chinese(workspace: Path, tmp_path: Path) -> None:
    """A real `outreach run`: database upgrades, APScheduler's jobs, the built-in player's check, the preflight, its stop.

    The campaigns are moved to 2098: the preflight then has nothing to render, and the run stops at once.
    """
    campaigns = workspace / "schedules" / "campaigns.yaml"
    text = re.sub(r"(?m)^(\s+)from: \d{4}", r"\1from: 2098", campaigns.read_text(encoding="utf-8"))
    campaigns.write_text(re.sub(r"(?m)^(\s+)to: \d{4}", r"\1to: 2099", text), encoding="utf-8")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}", "PYTHONPATH": str(REPO)}
    text = _run_until([sys.executable, "-m", "outreach", "run", "-w", str(workspace)], tmp_path / "run.log",
                      env, "预检：", more_s=0.3)
    assert "数据库升级：（新库） → 0001" in text and "已加入任务 play@06:30（任务库 default）" in text, text
    assert "调度器开始执行任务" in text and "调度器已停止" in text and "调度已正常停止" in text, text
    assert not _english_log_lines(text), _english_log_lines(text)
    logged = [line for line in text.splitlines() if line[:1].isdigit()]
    assert logged and all(BEIJING_LINE.match(line) for line in logged), logged


def test_station_logs_in_chinese(tmp_path: Path) -> None:
    """A real station box whose county server cannot be reached: its sync, its scheduler, its stop."""
    from station_harness import free_port

    (tmp_path / "token").write_text("a-token-for-the-log-test")
    argv = [sys.executable, "-m", "outreach.station", "run", "--server", f"http://127.0.0.1:{free_port()}",
            "--station-id", "dazhuang-01-abc123", "--token-file", str(tmp_path / "token"), "--data",
            str(tmp_path / "data"), "--output", f"file:{tmp_path / 'out'}@20", "--sync-s", "1", "--upload-s", "1",
            "--heartbeat-s", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    text = _run_until(argv, tmp_path / "station.log", env, "已运行", more_s=1.2)
    assert "连不上县服务器" in text and "连接被拒绝" in text and "调度器已启动" in text and "调度器已停止" in text, text
    assert not _english_log_lines(text), _english_log_lines(text)
    assert all(BEIJING_LINE.match(line) for line in text.splitlines() if line.strip()), text


def test_scheduler_job_lines_are_chinese() -> None:
    """APScheduler's own lines for a job added, run, finished, missed and removed, through the log filter."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from outreach.station.logs import ChineseFormatter, ChineseLibraryLines

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ChineseFormatter("%(level_zh)s %(name)s：%(message)s"))
    handler.addFilter(ChineseLibraryLines())
    logger = logging.getLogger("apscheduler")
    before = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    ran = threading.Event()
    tz = ZoneInfo("Asia/Shanghai")
    scheduler = BackgroundScheduler(timezone=tz)
    try:
        scheduler.start()
        now = datetime.now(tz)
        scheduler.add_job(ran.set, "date", run_date=now, id="play@06:30", name="play@06:30")
        scheduler.add_job(ran.is_set, "date", run_date=now.replace(year=now.year - 1), id="export-next-day",
                          name="export-next-day", misfire_grace_time=1)
        assert ran.wait(10)
        time.sleep(0.3)
    finally:
        scheduler.shutdown()
        logger.removeHandler(handler)
        logger.setLevel(before[0])
        logger.propagate = before[1]
    text = stream.getvalue()
    for words in ("调度器已启动", "已加入任务 play@06:30（任务库 default）", "开始执行任务 play@06:30（预定 ",
                  "任务 play@06:30 执行完毕", "任务 export-next-day 错过了预定时间，晚了 ", "已删除任务 play@06:30",
                  "调度器已停止"):
        assert words in text, (words, text)
    assert not _english_log_lines(text), _english_log_lines(text)


# --- village stations on the CLI ------------------------------------------------------------------------


def test_station_add_needs_a_server_url_a_box_can_reach_and_stations_has_a_header(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from station_harness import mark_station_villages

    for name in [k for k in os.environ if k.startswith("OUTREACH_BROKER_")]:
        monkeypatch.delenv(name)  # no broker: registration works over HTTP only
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'stations.db'}")
    mark_station_villages(workspace, ("dazhuang-01",))
    ws = ["-w", str(workspace)]
    empty = CliRunner().invoke(cli, ["stations", *ws])
    assert empty.exit_code == 0 and empty.stdout == "" and "还没有登记广播站" in empty.stderr
    refused = CliRunner().invoke(cli, ["station", "add", "大庄村", *ws])
    assert refused.exit_code == 1 and "请加 --server-url 网址" in refused.stderr and "public_url" in refused.stderr
    local = CliRunner().invoke(cli, ["station", "add", "大庄村", "--server-url", "http://127.0.0.1:8000", *ws])
    assert local.exit_code == 0 and "只有县服务器本机能打开" in local.stderr
    text = (workspace / "outreach.toml").read_text(encoding="utf-8")
    (workspace / "outreach.toml").write_text(text.replace("\n[web]\n", '\n[web]\npublic_url = "https://gb.example.gov.cn"\n', 1),
                                             encoding="utf-8")
    derived = CliRunner().invoke(cli, ["station", "add", "大庄村", *ws])
    assert derived.exit_code == 0 and "--server https://gb.example.gov.cn --station-id" in derived.stdout
    table = CliRunner().invoke(cli, ["stations", *ws]).stdout.splitlines()
    assert table[0].split("\t") == ["站点编号", "村", "状态", "最后联系", "缓存到", "警告"] and len(table) == 3

