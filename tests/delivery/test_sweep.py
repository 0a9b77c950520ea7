"""The missed sweep: slots past start plus grace with no outcome are logged `missed` on every channel, from the
plan, the as-run log and the claims (never the job store); exported USB packs wait; a station's late play wins."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from outreach.config import TZ, load_config
from outreach.db import session
from outreach.delivery.live import claims
from outreach.delivery.stations.accounts import add_station
from outreach.delivery.stations.asrun import ingest_batch
from outreach.delivery.sweep import first_day, sweep_missed
from outreach.models import Broadcast, BroadcastStatus, Station
from outreach.planning.workspace import Loaded, load, open_database, plan_days
from outreach.records import broadcast_plans, mark_program, record_planned

S = BroadcastStatus
NOW = datetime(2026, 12, 10, 9, 30, tzinfo=TZ)  # the morning slots (06:00-07:00) are past grace, the evening not
STATION_VILLAGE = "dazhuang-02"


def _station_village(ws: Path) -> None:
    county = ws / "schedules" / "county.yaml"
    text = county.read_text(encoding="utf-8")
    line = next(ln for ln in text.splitlines() if f"id: {STATION_VILLAGE}," in ln)
    county.write_text(text.replace(line, line.replace("speaker: networked", "speaker: station")), encoding="utf-8")


@pytest.fixture
def county(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Loaded, sa.Engine]:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'sweep.db'}")
    _station_village(workspace)
    loaded = load(load_config(workspace))
    engine = open_database(loaded)
    yield loaded, engine
    engine.dispose()


def _plan(loaded: Loaded, day: date, village: str | None = None, slot: str | None = None) -> list:  # type: ignore[type-arg]
    return [p for p in plan_days(loaded, day, day, village_ids=[village] if village else None).programs
            if slot is None or p.slot == slot]


def _rows(engine: sa.Engine, day: date) -> dict[tuple[str, str], set[str]]:
    """(village, slot) -> the statuses of its campaign rows on `day`."""
    out: dict[tuple[str, str], set[str]] = {}
    with session(engine) as s:
        for v, sl, st in s.execute(sa.select(Broadcast.village_id, Broadcast.slot, Broadcast.status)
                                   .where(Broadcast.date == day)):
            out.setdefault((v, sl), set()).add(str(st))
    return out


def _errors(engine: sa.Engine, village: str, day: date, slot: str) -> set[str | None]:
    with session(engine) as s:
        return set(s.scalars(sa.select(Broadcast.error).where(
            Broadcast.village_id == village, Broadcast.date == day, Broadcast.slot == slot)))


def test_the_sweep_logs_every_silent_slot_on_every_channel(county: tuple[Loaded, sa.Engine]) -> None:
    loaded, engine = county
    d7, d9, d10 = date(2026, 12, 7), date(2026, 12, 9), date(2026, 12, 10)
    at = datetime(2026, 12, 7, 0, 0, tzinfo=TZ)
    with session(engine) as s:
        record_planned(s, broadcast_plans(_plan(loaded, d7, "dazhuang-01")), now=at)  # the first record: Dec 7
        record_planned(s, broadcast_plans(_plan(loaded, d9, "dazhuang-05", "morning")), now=at)
        mark_program(s, day=d9, slot="morning", village_id="dazhuang-05", status=S.EXPORTED, at=at)  # on the stick
        record_planned(s, broadcast_plans(_plan(loaded, d9, "dazhuang-03", "morning")), now=at)
    # dazhuang-03's morning is on air under a live scheduler's claim; dazhuang-06's evening was settled silent.
    claims.claim(engine, "county-b:77:beef", [("dazhuang-03", "morning", d9), ("dazhuang-06", "evening", d9)], at)
    claims.set_state(engine, "county-b:77:beef", [("dazhuang-06", "evening", d9)], claims.FINISHED)
    assert first_day(engine, NOW) == d7

    result = sweep_missed(loaded, engine, now=NOW)

    for day in (d7, date(2026, 12, 8), d9):
        rows = _rows(engine, day)
        expected = {(p.village_id, p.slot) for p in _plan(loaded, day)} - ({("dazhuang-06", "evening")} if day == d9
                                                                           else set())
        assert set(rows) == expected, day
        for key, statuses in rows.items():
            want = {"exported"} if key == ("dazhuang-05", "morning") and day == d9 else \
                {"planned"} if key == ("dazhuang-03", "morning") and day == d9 else {"missed"}
            assert statuses == want, (day, key)
    today = _rows(engine, d10)
    assert {sl for _, sl in today} == {"morning"} and all(st == {"missed"} for st in today.values())
    assert _rows(engine, date(2026, 12, 6)) == {}  # before the first record: the county was not using outreach
    missed = sum(st == {"missed"} for d in (d7, date(2026, 12, 8), d9, d10) for st in _rows(engine, d).values())
    assert result.first == d7 and result.programs == missed
    # The reason says what should have carried it.
    assert all("调度器" in e for e in _errors(engine, "dazhuang-01", d10, "morning"))
    assert all("村广播站" in e for e in _errors(engine, STATION_VILLAGE, d10, "morning"))
    assert all("U 盘" in e for e in _errors(engine, "dazhuang-05", date(2026, 12, 8), "evening"))
    assert sweep_missed(loaded, engine, now=NOW).programs == 0  # nothing twice
    # The periodic sweep, from a day on: the evening once it is past grace.
    later = sweep_missed(loaded, engine, now=datetime(2026, 12, 10, 20, 0, tzinfo=TZ), since=d10)
    assert later.programs == len(_plan(loaded, d10, slot="evening")) and later.first == d10
    assert all(st == {"missed"} for st in _rows(engine, d10).values())


def test_a_fresh_database_sweeps_only_today(county: tuple[Loaded, sa.Engine]) -> None:
    loaded, engine = county
    result = sweep_missed(loaded, engine, now=NOW)
    assert result.first == NOW.date() and _rows(engine, date(2026, 12, 9)) == {}
    assert result.programs == len(_plan(loaded, NOW.date(), slot="morning"))


def test_a_station_report_arriving_after_the_sweep_still_counts(county: tuple[Loaded, sa.Engine]) -> None:
    loaded, engine = county
    sweep_missed(loaded, engine, now=NOW)
    day = NOW.date()
    assert _rows(engine, day)[(STATION_VILLAGE, "morning")] == {"missed"}
    reg = add_station(engine, loaded, STATION_VILLAGE, now=NOW, server_url="http://127.0.0.1", broker=None)
    with session(engine) as s:
        station = s.get(Station, reg["station_id"])
        s.expunge(station)
    program = _plan(loaded, day, STATION_VILLAGE, "morning")[0]
    parts = {}
    for item in program.items:
        parts.setdefault(item.campaign_id, []).append(item.script_id)
    event = {"event_id": uuid.uuid4().hex, "kind": "played", "at": (program.start + timedelta(minutes=1)).isoformat(),
             "entry_id": "", "date": day.isoformat(), "slot": "morning", "scheduled_at": program.start.isoformat(),
             "sha256": "", "engine": "neural", "alert_id": "", "detail": "",
             "campaigns": [{"campaign_id": c, "script_ids": ids} for c, ids in parts.items()]}
    # The box was offline all morning; it uploads its buffered as-run log after the sweep.
    results = ingest_batch(engine, loaded, station, [event], now=NOW + timedelta(minutes=1))
    assert [r.status for r in results] == [200], results
    assert _rows(engine, day)[(STATION_VILLAGE, "morning")] == {"played"}
    assert _errors(engine, STATION_VILLAGE, day, "morning") == {None}  # the sweep's 漏播 reason is gone
    # Only a station's own report may: a central `played` never follows a logged `missed` (no double play).
    with session(engine) as s:
        assert mark_program(s, day=day, slot="morning", village_id="dazhuang-01", status=S.PLAYED, at=NOW) == 0


def test_scheduler_start_writes_missed_for_slots_it_never_held_a_job_for(workspace: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A county whose scheduler was down for days (its job store wiped, or never held these slots): taking the
    lead logs every channel's silent slots `missed`, from the plan, not from APScheduler."""
    from outreach.delivery.scheduler import prepare, stop_scheduler

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'start.db'}")
    config = load_config(workspace)
    loaded = load(config)
    engine = open_database(loaded)
    today = datetime.now(TZ).date()
    d3, d1 = today - timedelta(days=3), today - timedelta(days=1)
    with session(engine) as s:
        at = datetime.combine(d3, datetime.min.time(), tzinfo=TZ)
        record_planned(s, broadcast_plans(_plan(loaded, d3, "hexi-01")), now=at)  # in use since three days ago
        record_planned(s, broadcast_plans(_plan(loaded, d1, "dazhuang-05", "morning")), now=at)
        mark_program(s, day=d1, slot="morning", village_id="dazhuang-05", status=S.EXPORTED, at=at)
    scheduler, counts = prepare(config, "export", blocking=False)
    try:
        assert [j.id for j in scheduler.get_jobs()] == ["export-next-day"]  # no job ever held a slot
    finally:
        stop_scheduler(scheduler)
    missed = 0
    for day in (d3, today - timedelta(days=2), d1):
        rows = _rows(engine, day)
        assert set(rows) == {(p.village_id, p.slot) for p in _plan(loaded, day)}, day
        for key, statuses in rows.items():
            assert statuses == ({"exported"} if (day, key) == (d1, ("dazhuang-05", "morning")) else {"missed"}), key
        missed += sum(1 for st in rows.values() if st == {"missed"})
    assert counts["missed"] >= missed > 0
    engine.dispose()
