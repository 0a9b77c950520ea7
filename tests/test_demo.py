"""`outreach demo` is a sandbox: its own database and packs under build/demo/, the same summary twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import func, select

from outreach.cli import cli
from outreach.config import load_config
from outreach.db import session
from outreach.models import Broadcast
from outreach.planning.workspace import load, open_database


@pytest.mark.slow
def test_demo_twice_same_summary_and_workspace_records_untouched(rendered_workspace: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # The workspace's real records: a database that the scheduler uses (here through DATABASE_URL).
    real = tmp_path / "county.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{real}")
    engine = open_database(load(load_config(rendered_workspace)))
    engine.dispose()
    before = real.read_bytes()

    runs = [CliRunner().invoke(cli, ["demo", "--date", "2026-12-01", "--days", "2", "-w", str(rendered_workspace)],
                               catch_exceptions=False) for _ in range(2)]
    for result in runs:
        assert result.exit_code == 0, result.output
    assert runs[0].stdout == runs[1].stdout
    sandbox = rendered_workspace / "build" / "demo"
    assert f"演示沙盒：{sandbox}" in runs[0].stdout and "不写入工作区的播出记录" in runs[0].stdout
    assert "播出 40" in runs[0].stdout and "失败 0" in runs[0].stdout
    assert "无证据：空播放器没有出声，不算覆盖" in runs[0].stdout  # a silent player proves no reach

    assert real.read_bytes() == before, "the demo never writes the workspace's records"
    assert not (rendered_workspace / "outreach.db").exists() and not (rendered_workspace / "packs").exists()
    demo_db = open_database(load(load_config(rendered_workspace)), f"sqlite:///{sandbox / 'demo.db'}")
    with session(demo_db) as s:
        assert s.exec(select(func.count()).select_from(Broadcast)).one() > 0
    demo_db.dispose()
    assert list((sandbox / "packs").rglob("2026-12-02_*.mp3"))
