"""Tests for outreach.records and its CLI: as-run rows, transitions, confirmations and handouts."""

from __future__ import annotations

import threading
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace as NS
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from outreach import db, records
from outreach.cli import cli
from outreach.errors import RecordError
from outreach.models import Broadcast, BroadcastScript, BroadcastStatus, Handout, ImportRecord
from outreach.records import BroadcastPlan

S = BroadcastStatus
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 5, 3, 1, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(hours=12)
DAY = date(2024, 5, 3)
REGISTRY = dict(
    townships=[NS(id="t1", name="城关镇")],
    villages=[NS(id=f"v{i}", name=f"村{i}", township_id="t1", population=500, speaker="offline") for i in (1, 2, 3)],
    markets=[NS(id="m1", name="城关集", villages={"v1"}), NS(id="m2", name="河口集", villages=set())],
    campaigns=[NS(id=c, name=c, start=DAY, end=DAY, priority=5) for c in ("fraud", "traffic")],
)


@pytest.fixture
def engine(database_url):
    eng = db.make_engine(database_url)
    db.upgrade(eng)
    with db.session(eng) as s:
        db.sync_registry(s, **REGISTRY)
    yield eng
    eng.dispose()


def plan(village="v1", slot="morning", campaign="fraud", scripts=("s1", "s2"), day=DAY):
    start = time(7, 0) if slot == "morning" else time(19, 0)
    return BroadcastPlan(day, slot, village, "t1", campaign, tuple(scripts), datetime.combine(day, start, TZ))


def rows(engine):
    with db.session(engine) as s:
        return {(b.village_id, b.slot, b.campaign_id): b for b in s.scalars(sa.select(Broadcast))}


def scripts_of(engine):
    with db.session(engine) as s:
        q = sa.select(Broadcast.campaign_id, Broadcast.village_id, BroadcastScript.position, BroadcastScript.script_id
                      ).join(BroadcastScript, BroadcastScript.broadcast_id == Broadcast.id)
        return sorted(tuple(r) for r in s.execute(q))


def mark(engine, status, village="v1", slot="morning", at=LATER, **kw):
    with db.session(engine) as s:
        return records.mark_program(s, day=DAY, slot=slot, village_id=village, status=status, at=at, **kw)


def planned(engine, plans, now=NOW):
    with db.session(engine) as s:
        return records.record_planned(s, plans, now=now)


# --- record_planned -------------------------------------------------------------


def test_record_planned_inserts_once_and_is_idempotent(engine):
    plans = [plan(), plan(campaign="traffic", scripts=("t1",)), plan(village="v2", slot="evening")]
    assert planned(engine, plans) == 3
    assert planned(engine, plans, now=LATER) == 0
    got = rows(engine)
    assert {k: (b.status, b.script_ids) for k, b in got.items()} == {
        ("v1", "morning", "fraud"): (S.PLANNED, "s1,s2"),
        ("v1", "morning", "traffic"): (S.PLANNED, "t1"),
        ("v2", "evening", "fraud"): (S.PLANNED, "s1,s2"),
    }
    assert got[("v1", "morning", "fraud")].updated_at == NOW
    assert scripts_of(engine) == [("fraud", "v1", 0, "s1"), ("fraud", "v1", 1, "s2"),
                                  ("fraud", "v2", 0, "s1"), ("fraud", "v2", 1, "s2"), ("traffic", "v1", 0, "t1")]


def test_record_planned_updates_planned_rows_but_never_downgrades(engine):
    planned(engine, [plan(), plan(village="v2")])
    assert mark(engine, S.PLAYED, village="v2") == 1
    changed = [plan(scripts=("s3",)), plan(village="v2", scripts=("s3",))]
    assert planned(engine, changed, now=LATER) == 1
    got = rows(engine)
    assert (got[("v1", "morning", "fraud")].script_ids, got[("v1", "morning", "fraud")].updated_at) == ("s3", LATER)
    assert (got[("v2", "morning", "fraud")].status, got[("v2", "morning", "fraud")].script_ids) == (S.PLAYED, "s1,s2")
    assert scripts_of(engine) == [("fraud", "v1", 0, "s3"), ("fraud", "v2", 0, "s1"), ("fraud", "v2", 1, "s2")]


def test_record_planned_handles_many_plans_in_batches(engine):
    days = [DAY + timedelta(days=i) for i in range(60)]
    plans = [plan(village=v, slot=sl, campaign=c, day=d, scripts=(f"{c}-a", f"{c}-b"))
             for d in days for v in ("v1", "v2", "v3") for sl in ("morning", "evening") for c in ("fraud", "traffic")]
    assert len(plans) > records._BATCH  # noqa: SLF001  (crosses a batch boundary)
    assert planned(engine, plans + plans[:10]) == len(plans)
    assert planned(engine, plans) == 0
    with db.session(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(BroadcastScript)) == 2 * len(plans)


def test_record_planned_refuses_naive_times(engine):
    with pytest.raises(ValueError, match="timezone-aware"), db.session(engine) as s:
        records.record_planned(s, [plan()], now=datetime(2024, 5, 3, 8, 0))


# --- mark_program ----------------------------------------------------------------

PATHS = {  # how to bring a fresh program to each status
    S.PLANNED: [], S.PLAYED: [S.PLAYED], S.EXPORTED: [S.EXPORTED], S.MISSED: [S.MISSED], S.FAILED: [S.FAILED],
    S.CONFIRMED: [S.EXPORTED, S.CONFIRMED],
}
ALLOWED = {(S.PLANNED, S.PLAYED), (S.PLANNED, S.EXPORTED), (S.PLANNED, S.MISSED), (S.PLANNED, S.FAILED),
           (S.FAILED, S.PLAYED), (S.FAILED, S.MISSED), (S.EXPORTED, S.CONFIRMED), (S.PLAYED, S.CONFIRMED)}


@pytest.mark.parametrize("source", list(PATHS), ids=str)
@pytest.mark.parametrize("target", [s for s in S if s is not S.PLANNED], ids=str)
def test_mark_program_follows_the_transition_table(engine, source, target):
    planned(engine, [plan(), plan(campaign="traffic")])
    for step in PATHS[source]:
        assert mark(engine, step, at=NOW) == 2
    expected = 2 if (source, target) in ALLOWED else 0
    assert mark(engine, target) == expected
    with db.session(engine) as s:
        assert records.program_status(s, day=DAY, slot="morning", village_id="v1") == (
            target if expected else source)


def test_played_is_never_marked_played_again(engine):
    planned(engine, [plan(), plan(campaign="traffic"), plan(village="v2")])
    assert mark(engine, S.PLAYED, at=NOW, program_sha256="ab" * 32, engine="offline") == 2
    assert mark(engine, S.PLAYED, at=LATER) == 0
    got = rows(engine)[("v1", "morning", "fraud")]
    assert (got.played_at, got.program_sha256, got.engine) == (NOW, "ab" * 32, "offline")
    assert rows(engine)[("v2", "morning", "fraud")].status is S.PLANNED


def test_failed_then_played_keeps_the_error_and_stamps_the_time(engine):
    planned(engine, [plan()])
    assert mark(engine, S.FAILED, at=NOW, error="player exited 1") == 1
    assert mark(engine, S.PLAYED, at=LATER) == 1
    got = rows(engine)[("v1", "morning", "fraud")]
    assert (got.status, got.played_at, got.error) == (S.PLAYED, LATER, "player exited 1")


def test_two_processes_marking_played_at_once_play_once(engine, database_url):
    programs = [(v, sl) for v in ("v1", "v2", "v3") for sl in ("morning", "evening")]
    planned(engine, [plan(village=v, slot=sl) for v, sl in programs])
    results: list[int] = []
    barrier = threading.Barrier(2)

    def player():
        eng = db.make_engine(database_url)
        barrier.wait()
        for v, sl in programs:
            with db.session(eng) as s:
                results.append(records.mark_program(s, day=DAY, slot=sl, village_id=v, status=S.PLAYED, at=NOW))
        eng.dispose()

    threads = [threading.Thread(target=player) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0] * len(programs) + [1] * len(programs)


def test_program_status_of_unknown_program_is_none_and_mixed_reports_furthest(engine):
    planned(engine, [plan()])
    with db.session(engine) as s:
        assert records.program_status(s, day=DAY, slot="evening", village_id="v1") is None
    mark(engine, S.PLAYED)
    planned(engine, [plan(campaign="traffic")])  # a campaign added after the program aired
    with db.session(engine) as s:
        assert records.program_status(s, day=DAY, slot="morning", village_id="v1") is S.PLAYED


def test_planned_is_not_a_target(engine):
    with pytest.raises(ValueError, match="cannot be marked planned"):
        mark(engine, S.PLANNED)
