"""Playing a village slot: the as-run log, no double play, failures, missed slots and urgent carry-over."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
from sqlmodel import select

from outreach.audio.render import verified_clip
from outreach.config import TZ, load_config
from outreach.db import session
from outreach.delivery.live.play import mark_missed, null_player, play_program
from outreach.delivery.prepare import program_for, slot_day, urgent_carry
from outreach.models import Broadcast, BroadcastStatus
from outreach.planning.workspace import load, open_database

DAY = date(2026, 12, 1)
NOW = datetime(2026, 12, 1, 6, 30, 5, tzinfo=TZ)
VILLAGE = "dazhuang-02"


@pytest.fixture
def setup(rendered_workspace: Path, database_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    loaded = load(load_config(rendered_workspace))
    return loaded, open_database(loaded)


def rows(engine, village: str, slot: str, day: date = DAY) -> list[Broadcast]:
    with session(engine) as s:
        return list(s.exec(select(Broadcast).where(Broadcast.village_id == village, Broadcast.slot == slot,
                                                   Broadcast.date == day)).all())


@pytest.mark.slow
def test_play_logs_every_campaign_row_once_and_never_twice(setup) -> None:
    loaded, engine = setup
    first = play_program(loaded, engine, VILLAGE, "morning", DAY, now=NOW,
                         player=null_player(), timeout_s=60, min_fraction=0)
    assert first.status == "played", first
    logged = rows(engine, VILLAGE, "morning")
    program = program_for(loaded, VILLAGE, "morning", DAY)
    assert {r.campaign_id for r in logged} == set(program.campaign_ids)
    assert all(r.status == BroadcastStatus.PLAYED and r.program_sha256 and r.engine not in (None, "unknown") for r in logged)
    played_at = {r.id: r.played_at for r in logged}
    again = play_program(loaded, engine, VILLAGE, "morning", DAY, now=NOW.replace(minute=40),
                         player=null_player(), timeout_s=60, min_fraction=0)
    assert again.status == "skipped"
    assert {r.id: r.played_at for r in rows(engine, VILLAGE, "morning")} == played_at


@pytest.mark.slow
@pytest.mark.parametrize("player, words", [
    ([sys.executable, "-c", "import sys; sys.exit(3)"], "退出码 3"),
    ([sys.executable, "-c", "import time; time.sleep(30)"], "仍未结束"),
    (["/nonexistent/ip-broadcast-client", "{file}"], "找不到"),
], ids=["player-fails", "player-hangs", "player-missing"])
def test_player_failure_is_logged_not_raised(setup, player: list[str], words: str) -> None:
    loaded, engine = setup
    outcome = play_program(loaded, engine, VILLAGE, "evening", DAY, now=NOW, player=player, timeout_s=1.0)
    assert outcome.status == "failed" and words in outcome.detail
    assert all(r.status == BroadcastStatus.FAILED and words in (r.error or "") for r in rows(engine, VILLAGE, "evening"))
    # A failed slot can still be played afterwards (the null player is faster than real time: no length check).
    retry = play_program(loaded, engine, VILLAGE, "evening", DAY, now=NOW,
                         player=null_player(), timeout_s=60, min_fraction=0)
    assert retry.status == "played"


@pytest.mark.slow
def test_missing_clip_is_left_out_and_noted(setup) -> None:
    loaded, engine = setup
    program = program_for(loaded, VILLAGE, "morning", DAY)
    victim = program.script_ids[0]
    verified_clip(loaded.config, loaded.scripts[victim]).unlink()
    outcome = play_program(loaded, engine, VILLAGE, "morning", DAY, now=NOW,
                           player=null_player(), timeout_s=60, min_fraction=0)
    assert victim in outcome.detail and "还没有生成" in outcome.detail
    if len(program.script_ids) > 1:
        assert outcome.status == "played"
    else:
        assert outcome.status == "failed"


@pytest.mark.slow
def test_missed_slot_moves_its_urgent_items_to_the_next_slot(setup) -> None:
    loaded, engine = setup
    morning = program_for(loaded, VILLAGE, "morning", DAY)
    urgent = [i.script_id for i in morning.items if i.urgent]
    assert urgent, "the sample's urgent alert runs on 2026-12-01"
    assert mark_missed(loaded, engine, VILLAGE, "morning", DAY, now=NOW) >= 1
    assert {r.status for r in rows(engine, VILLAGE, "morning")} == {BroadcastStatus.MISSED}
    carry = [i.script_id for i in urgent_carry(loaded, engine, VILLAGE, "evening", DAY)]
    assert carry == urgent
    evening = play_program(loaded, engine, VILLAGE, "evening", DAY, now=NOW.replace(hour=18),
                           player=null_player(), timeout_s=60, min_fraction=0)
    assert evening.status == "played"
    aired = [r for r in rows(engine, VILLAGE, "evening") if r.campaign_id == "alert-fake-refund"]
    assert set(urgent) <= set(aired[0].script_ids.split(","))


def test_blackout_slot_stays_silent(setup) -> None:
    loaded, engine = setup
    outcome = play_program(loaded, engine, "dazhuang-01", "morning", date(2026, 12, 26), now=NOW,
                           player=null_player(), timeout_s=60, min_fraction=0)
    assert outcome.status == "silent"


@pytest.mark.parametrize("now, expected", [
    (datetime(2026, 12, 1, 6, 31, tzinfo=TZ), date(2026, 12, 1)),
    (datetime(2026, 12, 1, 6, 29, tzinfo=TZ), date(2026, 11, 30)),
    (datetime(2026, 11, 30, 22, 45, tzinfo=UTC), date(2026, 12, 1)),
], ids=["after-slot", "before-slot-is-yesterday", "utc-evening-is-shanghai-morning"])
def test_slot_day_uses_shanghai_time(now: datetime, expected: date) -> None:
    assert slot_day(time(6, 30), now) == expected
