"""The station's own SQLite store: plays begun and finished, as-run events awaiting upload, alerts seen.

A play is written `started` (and committed, synchronous=FULL) before the first
sample goes out, so after a kill -9 or a power cut the station knows the play
began and never starts it again; `recover` turns such plays into truthful
`interrupted` events. Every event has a unique id made on the station.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime
from pathlib import Path

from outreach.station.protocol import AsRunEvent, EventKind, ManifestEntry, new_event_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS plays (
    entry_id TEXT PRIMARY KEY, event_id TEXT NOT NULL, state TEXT NOT NULL,
    started_at TEXT NOT NULL, position_s REAL NOT NULL DEFAULT 0, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, payload TEXT NOT NULL, uploaded INTEGER NOT NULL DEFAULT 0, seq INTEGER,
    refused TEXT);  -- uploaded: 0 waiting, 1 held by the server, 2 refused by it (reason in refused)
CREATE INDEX IF NOT EXISTS events_pending ON events (uploaded, seq);
CREATE TABLE IF NOT EXISTS alerts (alert_id TEXT PRIMARY KEY, state TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Store:
    """One SQLite file in the station's data folder; safe to use from several threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(events)")}
        if "refused" not in columns:  # a store from before refusals were kept
            self._db.execute("ALTER TABLE events ADD COLUMN refused TEXT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self, statements: list[tuple[str, tuple]]) -> list[int]:  # type: ignore[type-arg]
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                counts = [cur.execute(sql, args).rowcount for sql, args in statements]
                cur.execute("COMMIT")
                return counts
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def _one(self, sql: str, args: tuple = ()) -> tuple | None:  # type: ignore[type-arg]
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    # --- meta -----------------------------------------------------------------------------

    def meta(self, key: str, default: str = "") -> str:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row[0]) if row else default

    def set_meta(self, key: str, value: str, *, only_if_missing: bool = False) -> None:
        verb = "INSERT OR IGNORE" if only_if_missing else "INSERT OR REPLACE"
        self._tx([(f"{verb} INTO meta (key, value) VALUES (?, ?)", (key, value))])

    # --- plays ----------------------------------------------------------------------------

    def begin_play(self, entry: ManifestEntry, at: datetime, *, key: str | None = None) -> str | None:
        """Record that the play of `entry` (or `key`) starts now; its event id, or None if it was begun before."""
        event_id = new_event_id()
        n = self._tx([("INSERT OR IGNORE INTO plays (entry_id, event_id, state, started_at, payload) "
                       "VALUES (?, ?, 'started', ?, ?)",
                       (key or entry.entry_id, event_id, at.isoformat(), json.dumps(_entry_dict(entry))))])
        return event_id if n[0] == 1 else None

    def progress(self, key: str, position_s: float) -> None:
        self._tx([("UPDATE plays SET position_s = ? WHERE entry_id = ? AND state = 'started'", (position_s, key))])

    def finish_play(self, key: str, event: AsRunEvent) -> None:
        """The play ended: its event is stored in the same transaction."""
        self._tx([("UPDATE plays SET state = 'done' WHERE entry_id = ?", (key,)),
                  ("INSERT OR IGNORE INTO events (event_id, payload, seq) VALUES (?, ?, "
                   "(SELECT COALESCE(MAX(seq), 0) + 1 FROM events))", (event.event_id, json.dumps(event.to_dict())))])

    def settled(self, key: str) -> bool:
        return self._one("SELECT 1 FROM plays WHERE entry_id = ?", (key,)) is not None

    def record(self, key: str, event: AsRunEvent) -> bool:
        """Store an event for `key` that involves no play (missed, failed before start); False if `key` was seen."""
        n = self._tx([("INSERT OR IGNORE INTO plays (entry_id, event_id, state, started_at, payload) "
                       "VALUES (?, ?, 'done', ?, '{}')", (key, event.event_id, event.at)),
                      ("INSERT OR IGNORE INTO events (event_id, payload, seq) SELECT ?, ?, "
                       "(SELECT COALESCE(MAX(seq), 0) + 1 FROM events) WHERE changes() = 1",
                       (event.event_id, json.dumps(event.to_dict())))])
        return n[0] == 1

    def recover(self) -> list[AsRunEvent]:
        """Plays begun but never finished (the station died mid-play) become `interrupted` events."""
        with self._lock:
            rows = self._db.execute("SELECT entry_id, event_id, started_at, position_s, payload FROM plays "
                                    "WHERE state = 'started'").fetchall()
        out = []
        for key, event_id, started_at, position_s, payload in rows:
            d = json.loads(payload)
            entry = _entry_from(d)
            detail = (f"播放中途广播站停止了（{started_at[11:19]} 开始，{entry.duration_s:.0f} 秒的节目约播了 "
                      f"{position_s:.0f} 秒）；不再重播，以免重复播出")
            event = AsRunEvent(event_id, EventKind.INTERRUPTED, started_at, entry.entry_id, entry.date, entry.slot,
                               d.get("scheduled_at", entry.start), entry.sha256, entry.engine, entry.campaigns,
                               detail=detail)
            self.finish_play(key, event)
            out.append(event)
        return out

    # --- events ---------------------------------------------------------------------------

    def pending_events(self, limit: int = 100) -> list[AsRunEvent]:
        with self._lock:
            rows = self._db.execute("SELECT payload FROM events WHERE uploaded = 0 ORDER BY seq LIMIT ?",
                                    (limit,)).fetchall()
        return [AsRunEvent.from_dict(json.loads(r[0])) for r in rows]

    def mark_uploaded(self, event_ids: list[str]) -> None:
        if event_ids:
            self._tx([("UPDATE events SET uploaded = 1 WHERE event_id = ?", (e,)) for e in event_ids])

    def mark_refused(self, refused: dict[str, str]) -> None:
        """The server refused these events ({event_id: reason}): keep them, marked, and never send them again."""
        if refused:
            self._tx([("UPDATE events SET uploaded = 2, refused = ? WHERE event_id = ?", (reason[:1000], e))
                      for e, reason in refused.items()])

    def refused_events(self) -> list[tuple[str, str]]:
        """(event_id, the server's reason) of every refused event, oldest first."""
        with self._lock:
            return [(r[0], r[1] or "") for r in self._db.execute(
                "SELECT event_id, refused FROM events WHERE uploaded = 2 ORDER BY seq")]

    def events(self) -> list[tuple[AsRunEvent, bool]]:
        with self._lock:
            rows = self._db.execute("SELECT payload, uploaded FROM events ORDER BY seq").fetchall()
        return [(AsRunEvent.from_dict(json.loads(p)), bool(u)) for p, u in rows]

    def last_play(self) -> str:
        row = self._one("SELECT entry_id, started_at FROM plays WHERE state = 'done' AND payload != '{}' "
                        "ORDER BY started_at DESC LIMIT 1")
        return f"{row[0]} {row[1]}" if row else ""

    # --- alerts ---------------------------------------------------------------------------

    def alert_state(self, alert_id: str) -> str | None:
        row = self._one("SELECT state FROM alerts WHERE alert_id = ?", (alert_id,))
        return str(row[0]) if row else None

    def set_alert(self, alert_id: str, state: str, payload: str = "") -> None:
        self._tx([("INSERT INTO alerts (alert_id, state, payload) VALUES (?, ?, ?) "
                   "ON CONFLICT (alert_id) DO UPDATE SET state = excluded.state", (alert_id, state, payload))])

    def alerts_in(self, state: str) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT payload FROM alerts WHERE state = ?", (state,))]


def _entry_dict(entry: ManifestEntry) -> dict:  # type: ignore[type-arg]
    from dataclasses import asdict

    return asdict(entry)


def _entry_from(d: dict) -> ManifestEntry:  # type: ignore[type-arg]
    return ManifestEntry.from_dict(d)
