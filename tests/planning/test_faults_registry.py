"""Fault injection: 16 real processes start at once on one database and all mirror the registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from outreach.config import load_config
from outreach.db import make_engine
from outreach.models import Campaign, Market, MarketVillage, Township, Village
from outreach.planning.workspace import load, open_database

pytestmark = pytest.mark.faults

PROCESSES = 16
# A launcher process imports outreach and loads the workspace once, then forks 16
# children. Each child is a separate process with its own connections, as 16
# commands started together would be; they meet at a barrier so that all of them
# reach the migration and the registry sync at the same moment.
LAUNCHER = """
import json, multiprocessing, sys, traceback
from outreach.config import load_config
from outreach.planning.workspace import load, open_database

loaded = load(load_config(sys.argv[1]))
n = int(sys.argv[2])
ctx = multiprocessing.get_context("fork")
barrier = ctx.Barrier(n)

def start_up():
    barrier.wait(120)
    try:
        open_database(loaded).dispose()
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        raise SystemExit(1)

children = [ctx.Process(target=start_up) for _ in range(n)]
for c in children:
    c.start()
for c in children:
    c.join(300)
print(json.dumps([c.exitcode for c in children]))
"""


def _mirror(url: str) -> dict[str, set]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                "townships": set(conn.execute(sa.select(Township.id, Township.name)).all()),
                "villages": set(conn.execute(sa.select(Village.id, Village.township_id, Village.population,
                                                       Village.speaker)).all()),
                "markets": set(conn.execute(sa.select(Market.id, Market.name)).all()),
                "links": set(conn.execute(sa.select(MarketVillage.market_id, MarketVillage.village_id)).all()),
                "campaigns": set(conn.execute(sa.select(Campaign.id, Campaign.start, Campaign.end)).all()),
            }
    finally:
        engine.dispose()


def _expected(workspace: Path) -> dict[str, set]:
    loaded = load(load_config(workspace))
    reg = loaded.registry
    return {
        "townships": {(t.id, t.name) for t in reg.townships.values()},
        "villages": {(v.id, v.township_id, int(v.population), str(v.speaker)) for v in reg.villages.values()},
        "markets": {(m.id, m.name) for m in reg.markets.values()},
        "links": {(m, v) for m in reg.markets for v in reg.market_villages(m)},
        "campaigns": {(c.id, c.start, c.end) for c in loaded.campaigns},
    }


@pytest.fixture(autouse=True)
def _default_settings(workspace: Path) -> None:
    # Settings do not bear on the mirror; defaults keep this test about the database alone.
    (workspace / "outreach.toml").write_text("# every key at its default\n", encoding="utf-8")


def _start_all(workspace: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([sys.executable, "-c", LAUNCHER, str(workspace), str(PROCESSES)], env=env,
                          capture_output=True, text=True, timeout=400)


def _assert_all_ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr[-3000:]
    codes = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(codes) == PROCESSES
    failed = [c for c in codes if c != 0]
    assert not failed, f"{len(failed)} of {PROCESSES} start-ups failed:\n{done.stderr[-3000:]}"


def test_sixteen_startups_at_once_on_a_fresh_database(workspace: Path, database_url: str) -> None:
    _assert_all_ok(_start_all(workspace, database_url))
    assert _mirror(database_url) == _expected(workspace)


def test_sixteen_startups_at_once_while_the_registry_changes(workspace: Path, database_url: str) -> None:
    # A mirror that is already there, then a market that serves one village more:
    # every start-up rewrites links, the case that used to hit pk_market_village.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", database_url)
        open_database(load(load_config(workspace))).dispose()
    before = _mirror(database_url)["links"]
    markets = workspace / "schedules" / "markets.yaml"
    text = markets.read_text("utf-8")
    old = "    townships: [lishu]\n"
    assert old in text
    markets.write_text(text.replace(old, old + "    villages: [dazhuang-03]\n", 1), "utf-8")
    _assert_all_ok(_start_all(workspace, database_url))
    after = _mirror(database_url)
    assert after == _expected(workspace)
    assert after["links"] - before == {("lishu-ji", "dazhuang-03")}
