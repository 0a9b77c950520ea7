"""Fixtures of the coverage tests: a migrated database filled by the test module's own `populate(session)`,
and an empty workspace whose database it is (for the CLI). Modules import them by name, as tests/web_site.py's
are imported: a conftest.py here would shadow tests/conftest.py for the modules that import from it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from outreach.db import make_engine, session, upgrade


@pytest.fixture
def engine(database_url: str, request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    eng = make_engine(database_url)
    upgrade(eng)
    with session(eng) as s:
        request.module.populate(s)
    yield eng
    eng.dispose()


@pytest.fixture
def cli_ws(tmp_path: Path, engine: sa.Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace folder whose database is the populated test database."""
    ws = tmp_path / "cli-ws"
    ws.mkdir()
    (ws / "outreach.toml").write_text("", encoding="utf-8")  # defaults: a workspace, but no YAML
    monkeypatch.setenv("DATABASE_URL", database_url)
    return ws
