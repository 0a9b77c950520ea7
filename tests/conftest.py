"""Shared fixtures: a sample workspace copy and database URLs (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A private copy of the bundled sample workspace (scripts, schedules, config)."""
    ws = tmp_path / "ws"
    ws.mkdir()
    for name in ("audio_scripts", "schedules"):
        shutil.copytree(REPO_ROOT / name, ws / name)
    shutil.copy2(REPO_ROOT / "outreach.toml", ws / "outreach.toml")
    return ws


def _postgres_url() -> str:
    url = os.environ.get("OUTREACH_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("OUTREACH_TEST_PG_URL is not set; tools/test starts PostgreSQL and sets it")
        pytest.skip("OUTREACH_TEST_PG_URL not set (run tools/test to start PostgreSQL)")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path):
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = make_url(_postgres_url())
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
