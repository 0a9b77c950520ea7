"""Exactly-once play in the database: atomic slot claims and scheduler leadership.

A village slot is claimed by one INSERT that the unique (date, slot, village)
key lets only one process win, on SQLite and PostgreSQL alike. The claim then
carries the player's process group and a heartbeat, so a restarted scheduler
can tell a play whose scheduler is gone and settle it. Leadership is a
PostgreSQL advisory lock held on its own connection, or on SQLite a lock row
taken by compare-and-set. Every function takes `now`.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from outreach.delivery.live.procs import pid_alive
from outreach.delivery.prepare import Key
from outreach.models import SchedulerLeader, SlotClaim

"""(village_id, slot, day): one village's slot on one day."""

# A claim's states; FINISHED ("done" in the table): its play ended one way or another, nobody takes it again.
CLAIMED, PLAYING, FINISHED = "claimed", "playing", "done"
LEADER_NAME = "scheduler"
_PG_LEADER_LOCK = 0x6F757473  # any constant shared by every outreach process
_T = SlotClaim.__table__
_L = SchedulerLeader.__table__


def new_owner() -> str:
    """An id for this scheduler process: host:pid:token."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_alive(owner: str, heartbeat_at: datetime, now: datetime, stale_s: float) -> bool:
    """Whether the scheduler `owner` still runs: a fresh heartbeat and, on this host, a live pid."""
    if (now - heartbeat_at).total_seconds() > stale_s:
        return False
    host, _, rest = owner.partition(":")
    if host == socket.gethostname():
        try:
            return pid_alive(int(rest.split(":")[0]))
        except ValueError:
            return True
    return True


def _insert(engine: Engine) -> Any:
    return (postgresql if engine.dialect.name == "postgresql" else sqlite).insert


# --- slot claims --------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A claim row as read back."""

    id: int
    key: Key
    owner: str
    state: str
    attempts: int
    player_pgid: int | None
    player_started: int | None
    heartbeat_at: datetime


def claim(engine: Engine, owner: str, keys: Sequence[Key], now: datetime) -> set[Key]:
    """Claim every key not claimed yet, in one transaction; return the keys this call won."""
    if not keys:
        return set()
    rows = [{"date": d, "slot": s, "village_id": v, "owner": owner, "state": CLAIMED, "attempts": 1,
             "claimed_at": now, "heartbeat_at": now} for v, s, d in dict.fromkeys(keys)]
    stmt = _insert(engine)(_T).on_conflict_do_nothing(index_elements=["date", "slot", "village_id"])
    won: set[Key] = set()
    with engine.begin() as conn:
        for i in range(0, len(rows), 2000):
            result = conn.execute(stmt.returning(_T.c.village_id, _T.c.slot, _T.c.date), rows[i:i + 2000])
            won.update((v, s, d) for v, s, d in result.all())
    return won


def read_claims(engine: Engine, keys: Iterable[Key] | None = None, *, open_only: bool = False) -> list[Claim]:
    """Claims of `keys` (all claims when None; only unfinished ones with `open_only`)."""
    stmt = sa.select(_T)
    if open_only:
        stmt = stmt.where(_T.c.state != FINISHED)
    wanted = None if keys is None else set(keys)
    if wanted is not None:
        if not wanted:
            return []
        stmt = stmt.where(_T.c.date.in_({d for _, _, d in wanted}), _T.c.village_id.in_({v for v, _, _ in wanted}))
    with engine.connect() as conn:
        found = [Claim(r.id, (r.village_id, r.slot, r.date), r.owner, r.state, r.attempts, r.player_pgid,
                       r.player_started, r.heartbeat_at) for r in conn.execute(stmt)]
    return [c for c in found if wanted is None or c.key in wanted]


def take_over(engine: Engine, old: Claim, owner: str, now: datetime) -> bool:
    """Move an orphaned claim to `owner` (compare-and-set on its old owner); True if this call won."""
    stmt = sa.update(_T).where(_T.c.id == old.id, _T.c.owner == old.owner, _T.c.state == old.state).values(
        owner=owner, state=CLAIMED, attempts=_T.c.attempts + 1, player_pid=None, player_pgid=None,
        player_started=None, claimed_at=now, heartbeat_at=now)
    with engine.begin() as conn:
        return conn.execute(stmt).rowcount == 1


def set_playing(engine: Engine, owner: str, players: Sequence[tuple[Key, int, int | None]], now: datetime) -> None:
    """Record the player (pid = process group id, /proc start time) of each claimed key."""
    if not players:
        return
    stmt = sa.update(_T).where(_T.c.date == sa.bindparam("k_date"), _T.c.slot == sa.bindparam("k_slot"),
                               _T.c.village_id == sa.bindparam("k_village"), _T.c.owner == owner).values(
        state=PLAYING, player_pid=sa.bindparam("pid"), player_pgid=sa.bindparam("pid"),
        player_started=sa.bindparam("started"), heartbeat_at=now)
    with engine.begin() as conn:
        conn.execute(stmt, [{"k_date": d, "k_slot": s, "k_village": v, "pid": pid, "started": started}
                            for (v, s, d), pid, started in players])


def set_state(engine: Engine, owner: str, keys: Iterable[Key], state: str) -> None:
    """Set the state of this owner's claims of `keys` (e.g. done, or claimed for a replay after restart)."""
    params = [{"k_date": d, "k_slot": s, "k_village": v} for v, s, d in keys]
    if not params:
        return
    stmt = sa.update(_T).where(_T.c.date == sa.bindparam("k_date"), _T.c.slot == sa.bindparam("k_slot"),
                               _T.c.village_id == sa.bindparam("k_village"), _T.c.owner == owner).values(state=state)
    with engine.begin() as conn:
        conn.execute(stmt, params)


def beat(engine: Engine, owner: str, now: datetime) -> None:
    """Heartbeat of every unfinished claim of this owner."""
    with engine.begin() as conn:
        conn.execute(sa.update(_T).where(_T.c.owner == owner, _T.c.state != FINISHED).values(heartbeat_at=now))


# --- leadership ---------------------------------------------------------------------


class Leadership:
    """One leading scheduler per database; the others wait as hot standbys."""

    def __init__(self, engine: Engine, owner: str, stale_s: float) -> None:
        self.engine, self.owner, self.stale_s = engine, owner, stale_s
        self._conn: sa.Connection | None = None  # PostgreSQL: the session holding the advisory lock

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def leader(self) -> SchedulerLeader | None:
        """The recorded leader row, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_L).where(_L.c.name == LEADER_NAME)).first()
        return SchedulerLeader(**row._mapping) if row else None

    def try_acquire(self, now: datetime) -> bool:
        """Become the leader if nobody (alive) leads; True when this process leads."""
        if self.postgres:
            if self._conn is None:
                conn = self.engine.connect()
                got = conn.execute(sa.select(sa.func.pg_try_advisory_lock(_PG_LEADER_LOCK))).scalar()
                conn.commit()
                if not got:
                    conn.close()
                    return False
                self._conn = conn
            self._write_row(now, force=True)
            return True
        current = self.leader()
        if current is not None and current.owner != self.owner and owner_alive(
                current.owner, current.heartbeat_at, now, self.stale_s):
            return False
        return self._write_row(now, force=False, old=current)

    def _write_row(self, now: datetime, *, force: bool, old: SchedulerLeader | None = None) -> bool:
        values = {"owner": self.owner, "started_at": now, "heartbeat_at": now}
        with self.engine.begin() as conn:
            if force:
                stmt = _insert(self.engine)(_L).values(name=LEADER_NAME, **values)
                conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_=values))
                return True
            if old is None:
                stmt = _insert(self.engine)(_L).values(name=LEADER_NAME, **values).on_conflict_do_nothing()
                return conn.execute(stmt).rowcount == 1
            cas = sa.update(_L).where(_L.c.name == LEADER_NAME, _L.c.owner == old.owner,
                                      _L.c.heartbeat_at == old.heartbeat_at).values(**values)
            return conn.execute(cas).rowcount == 1

    def beat(self, now: datetime) -> bool:
        """Refresh the leader's heartbeat; False if leadership was lost (then stop playing)."""
        with self.engine.begin() as conn:
            if self.postgres:
                if self._conn is None:
                    return False
                self._conn.execute(sa.text("SELECT 1"))
                self._conn.commit()
            changed = conn.execute(sa.update(_L).where(_L.c.name == LEADER_NAME, _L.c.owner == self.owner)
                                   .values(heartbeat_at=now)).rowcount
        return changed == 1 or self.postgres

    def release(self) -> None:
        """Step down: a standby may take over at once."""
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(_L).where(_L.c.name == LEADER_NAME, _L.c.owner == self.owner))
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
