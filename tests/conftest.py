"""Shared fixtures: a sample workspace copy and database URLs (SQLite and PostgreSQL)."""

from __future__ import annotations

import fcntl
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
    return copy_workspace(tmp_path / "ws")


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


def copy_workspace(dest: Path) -> Path:
    """Copy the bundled sample workspace (scripts, schedules, config) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("audio_scripts", "schedules"):
        shutil.copytree(REPO_ROOT / name, dest / name)
    shutil.copy2(REPO_ROOT / "outreach.toml", dest / "outreach.toml")
    return dest


def _render_sample_library(dest: Path, engine: str | None = None) -> Path:
    """Render the sample workspace's approved library in `dest` through the real render path; its build folder.

    `engine` replaces the sample outreach.toml's engine and offline_engine; every clip must be its own.
    """
    from outreach.audio.render import render_library
    from outreach.config import load_config
    from outreach.content.scripts import load_library

    ws = copy_workspace(dest)
    if engine is not None:
        toml = ws / "outreach.toml"
        toml.write_text(toml.read_text(encoding="utf-8").replace('engine = "neural"', f'engine = "{engine}"'),
                        encoding="utf-8")
    config = load_config(ws)
    report = render_library(config, load_library(config.scripts_dir, max_chars=config.render.max_chars))
    assert not report.failures, report.failures
    if engine is not None:
        assert config.render.offline_engine == engine and {r.engine for r in report.results} == {engine}
    return config.build_path


def _rendered_once(tmp_path_factory: pytest.TempPathFactory, name: str, engine: str | None = None) -> Path:
    """The sample library's build folder, rendered once per test run and shared by every xdist worker.

    The first worker to ask renders it under a lock in the run's shared temporary folder (tools/test
    names one folder for both of its pytest runs in OUTREACH_TEST_SHARED_DIR); the others wait and
    read the same clips (tests only read them, or copy them into their own workspace).
    """
    base = tmp_path_factory.getbasetemp()
    shared = os.environ.get("OUTREACH_TEST_SHARED_DIR")
    root = Path(shared) if shared else base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a render an earlier worker left half done
            build = _render_sample_library(folder / "ws", engine)
            done.write_text(str(build), encoding="utf-8")
    return Path(done.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def rendered_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample library rendered once per test run (the default neural engine + ffmpeg, on every core)."""
    return _rendered_once(tmp_path_factory, "rendered")


@pytest.fixture(scope="session")
def rendered_build_kokoro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample library rendered once per test run with the kokoro engine (about 4 minutes on 2 cores)."""
    return _rendered_once(tmp_path_factory, "rendered-kokoro", engine="kokoro")


@pytest.fixture
def rendered_workspace(workspace: Path, rendered_build: Path) -> Path:
    """A private workspace copy whose clips are already rendered."""
    shutil.copytree(rendered_build, workspace / "build")
    return workspace
