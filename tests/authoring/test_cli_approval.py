"""`scripts approve` knows who approves and what they heard (issue 18); `user add` without a terminal says what to do."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner, Result

from outreach.authoring import accounts, review
from outreach.cli import cli, passwords
from outreach.config import TZ, load_config
from outreach.content.scripts import read_script
from outreach.db import open_migrated
from outreach.web.auth import USERS_FILE, UserStore
from outreach.web.permissions import Action, Role, allows

PASSWORD = "qinghe-2026"
NOW = datetime(2026, 12, 10, 9, 30, tzinfo=TZ)
SCRIPT = "traffic-harvest-season"  # a draft in the sample library
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
def desk(workspace: Path) -> Path:
    store = UserStore(workspace / USERS_FILE, FAST)
    store.add("王秀兰", "reviewer", PASSWORD, now=NOW)
    store.add("李编辑", "editor", PASSWORD, now=NOW)
    return workspace


def approve(workspace: Path, *args: str, stdin: str = PASSWORD + "\n") -> Result:
    return CliRunner().invoke(cli, ["scripts", "approve", SCRIPT, "--by", "王秀兰", "--on", "2026-12-10", *args,
                                    "-w", str(workspace)], input=stdin)


def approval(workspace: Path) -> tuple[str, str, str]:
    """The one approval in the trail: who, the preview heard, and how the CLI says it was heard."""
    engine = open_migrated(load_config(workspace).resolved_database_url())
    try:
        [e] = [e for e in review.trail(engine, SCRIPT) if e.action == "approved"]
        return e.actor, e.audio_sha256, e.detail
    finally:
        engine.dispose()


def drafted(workspace: Path) -> bool:
    return "status: draft" in (workspace / "audio_scripts" / f"{SCRIPT}.md").read_text("utf-8")


def test_without_a_terminal_both_commands_say_to_use_password_stdin(desk: Path) -> None:
    added = CliRunner().invoke(cli, ["user", "add", "赵六", "--role", "viewer", "-w", str(desk)])
    assert added.exit_code == 1 and "Warning" not in added.output and "已取消" not in added.output
    assert added.stderr.startswith("错误：没有终端") and "--password-stdin" in added.stderr
    assert UserStore(desk / USERS_FILE).get("赵六") is None
    refused = approve(desk, "--heard")
    assert refused.exit_code == 1 and refused.stderr.startswith("错误：没有终端") and "--password-stdin" in refused.stderr
    assert drafted(desk)


def test_the_password_is_checked_at_a_hidden_prompt_or_from_stdin(desk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = approve(desk, "--password-stdin", "--heard", stdin="not-the-password\n")
    assert wrong.exit_code == 1 and "“王秀兰”的密码不对，没有批准" in wrong.stderr and drafted(desk)
    monkeypatch.setattr(passwords, "stdin_is_terminal", lambda: True)  # a person at a terminal
    typed = approve(desk, "--heard")
    assert typed.exit_code == 0, typed.output
    assert "王秀兰 的密码" in typed.stdout and PASSWORD not in typed.stdout  # prompted, not echoed
    assert typed.stdout.endswith(f"已批准：{SCRIPT}，批准人 王秀兰，日期 2026-12-10\n")
    actor, audio, detail = approval(desk)
    assert (actor, audio) == ("王秀兰", "") and "用 --heard 声明已听过" in detail  # the trail says how it was heard


def test_the_version_must_have_been_heard(desk: Path) -> None:
    unheard = approve(desk, "--password-stdin")
    assert unheard.exit_code == 1 and "还没有试听记录，没有批准" in unheard.stderr and "--heard" in unheard.stderr
    assert drafted(desk)
    # A 试听 of this very version, made and recorded as the browser does, is enough.
    config = load_config(desk)
    path = config.scripts_dir / f"{SCRIPT}.md"
    path.write_text(path.read_text("utf-8").replace("repeat:", "engine: espeak\nrepeat:", 1), "utf-8")  # fast
    script, _, _ = read_script(path)
    assert script is not None
    preview = review.render_preview(config, script)
    engine = open_migrated(config.resolved_database_url())
    review.record(engine, SCRIPT, "previewed", "李编辑", NOW, content_hash=preview.content_hash,
                  audio_sha256=preview.sha256)
    engine.dispose()
    heard = approve(desk, "--password-stdin")
    assert heard.exit_code == 0, heard.output
    actor, audio, detail = approval(desk)
    assert (actor, audio) == ("王秀兰", preview.sha256) and "试听过这个版本" in detail


def test_the_editor_role_and_the_author_are_refused_as_in_the_browser(desk: Path) -> None:
    editor = CliRunner().invoke(cli, ["scripts", "approve", SCRIPT, "--by", "李编辑", "--password-stdin", "--heard",
                                      "-w", str(desk)], input=PASSWORD + "\n")
    assert editor.exit_code == 1 and "角色是 editor，不能批准稿件" in editor.stderr
    engine = open_migrated(load_config(desk).resolved_database_url())
    review.record(engine, SCRIPT, "recorded", "王秀兰", NOW, detail="录音 a.wav，3 秒")  # she gave it its recording
    engine.dispose()
    own = approve(desk, "--password-stdin", "--heard")
    assert own.exit_code == 1 and "不能由您自己批准" in own.stderr and drafted(desk)


def test_the_cli_reads_the_web_accounts_and_role_rules() -> None:
    assert accounts.USERS_FILE == USERS_FILE
    assert set(accounts.APPROVER_ROLES) == {r.value for r in Role if allows(r, Action.REVIEW_SCRIPT)}


def test_accounts_read_what_user_add_wrote(tmp_path: Path) -> None:
    store = UserStore(tmp_path / USERS_FILE, FAST)
    store.add("王秀兰", "admin", PASSWORD, now=NOW)
    [account] = accounts.read_accounts(tmp_path / USERS_FILE)
    assert (account.name, account.role) == ("王秀兰", "admin")
    accounts.check_password(account, PASSWORD)
    with pytest.raises(review.ReviewError, match="密码不对"):
        accounts.check_password(account, PASSWORD + "x")
