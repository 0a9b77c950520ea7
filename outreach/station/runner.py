"""The station runtime: sync, schedule plays in its own APScheduler SQLite job store, play, insert alerts, upload.

Jobs are module-level functions taking an entry id (`run_entry`), so APScheduler
can keep them in `DIR/jobs.sqlite` across restarts. Everything that airs holds
`air_lock`; an alert sets `preempt`, the program stops, the alert plays, and the
program resumes from where it stopped.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from outreach.station import sync as syncmod
from outreach.station.listen import Listener, Listening, describe
from outreach.station.output import Output
from outreach.station.protocol import (
    TZ, AlertMessage, AsRunEvent, EventKind, Manifest, ManifestEntry, StationError, new_event_id,
)
from outreach.station.store import Store

log = logging.getLogger("outreach.station")
VERSION = "1"
_RUNTIME: Runtime | None = None  # the job functions' way back to the running station
_KIND_ZH = {EventKind.PLAYED: "已播", EventKind.MISSED: "漏播", EventKind.FAILED: "失败",
            EventKind.INTERRUPTED: "中断", EventKind.ALERT_PLAYED: "紧急插播已播"}


def clock() -> datetime:
    return datetime.now(TZ)


def _clock_time(text: str) -> tuple[int, int, int]:
    """A manifest slot time, `HH:MM` (or `HH:MM:SS`), as (hour, minute, second)."""
    parts = [int(x) for x in text.split(":")]
    return parts[0], parts[1], parts[2] if len(parts) > 2 else 0


def run_entry(entry_id: str) -> None:
    """APScheduler job: play one manifest entry (or a fallback slot) now."""
    if _RUNTIME is not None:
        _RUNTIME.play_due(entry_id, clock())


@dataclass
class Settings:
    server: str
    station_id: str
    token: str
    data: Path
    days: int = 7
    sync_s: float = 300.0
    upload_s: float = 5.0
    heartbeat_s: float = 30.0
    broker_url: str = ""


class Runtime:
    """One village station."""

    def __init__(self, settings: Settings, output: Output, listener: Listener | None = None) -> None:
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        self.s, self.output, self.listener = settings, output, listener
        settings.data.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.data / "station.sqlite")
        self.store.set_meta("installed_at", clock().isoformat(), only_if_missing=True)
        self.client = syncmod.Client(settings.server, settings.token)
        self.manifest: Manifest | None = syncmod.read_manifest(settings.data)
        self.clock_offset_s: float | None = None
        self.air_lock = threading.RLock()
        self.preempt = threading.Event()
        self.alerts: queue.Queue[AlertMessage] = queue.Queue()
        self.stopping = threading.Event()
        self._current_stop: threading.Event | None = None
        self.scheduler = BackgroundScheduler(
            timezone=TZ, jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{settings.data / 'jobs.sqlite'}")},
            job_defaults={"coalesce": True, "max_instances": 1}, executors={"default": {"type": "threadpool",
                                                                                       "max_workers": 4}})
        self.control: Any = None
        self._threads: list[threading.Thread] = []

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        global _RUNTIME
        _RUNTIME = self
        for ev in self.store.recover():
            log.warning("%s：%s", ev.entry_id, ev.detail)
        self.scheduler.start()
        self.reschedule(clock())
        for target in (self._sync_loop, self._upload_loop, self._alert_loop):
            t = threading.Thread(target=target, name=target.__name__, daemon=True)
            t.start()
            self._threads.append(t)
        for payload in self.store.alerts_in("playing") + self.store.alerts_in("received"):
            self.alerts.put(AlertMessage.from_json(payload))  # a crash cut them short: replay before expiry

    def stop(self) -> None:
        self.stopping.set()
        if self._current_stop is not None:
            self._current_stop.set()
        self.scheduler.shutdown(wait=True)
        for t in self._threads:
            t.join(timeout=10)
        if self.control is not None:
            self.control.stop()
        self.store.close()

    # --- sync and scheduling ----------------------------------------------------------------------

    def sync_once(self, now: datetime) -> bool:
        try:
            manifest, offset, failures = syncmod.sync(self.client, self.s.data, now=now, days=self.s.days)
        except StationError as exc:
            log.warning("同步失败，先按本地缓存播放：%s", exc)
            return False
        for f in failures:
            log.warning("同步：%s", f)
        self.manifest, self.clock_offset_s = manifest, offset
        if abs(offset) > 30:
            log.error("本广播站的时钟与县服务器相差 %.0f 秒；请校准 NTP（timedatectl），时段才能准时开始", offset)
        self.reschedule(now)
        return not failures

    def _sync_loop(self) -> None:
        next_at = 0.0
        while not self.stopping.wait(0.5):
            if time.monotonic() >= next_at:
                ok = self.sync_once(clock())
                next_at = time.monotonic() + (self.s.sync_s if ok else min(30.0, self.s.sync_s))

    def _due(self, now: datetime) -> dict[str, datetime]:
        """Entry id -> start of everything still to play: manifest entries, then fallback slots past the buffer."""
        m = self.manifest
        if m is None:
            return {}
        grace = timedelta(seconds=m.grace_s)
        due = {e.entry_id: e.start_at for e in m.entries if e.start_at + grace > now}
        covered = {(e.date, e.slot) for e in m.entries}
        today = now.astimezone(TZ).date()
        for d in range(3):
            day = today + timedelta(days=d)
            if day.isoformat() <= m.buffered_until and any(k[0] == day.isoformat() for k in covered):
                continue
            for slot, hhmm in m.slots.items():
                h, mi, sec = _clock_time(hhmm)
                start = datetime(day.year, day.month, day.day, h, mi, sec, tzinfo=TZ)
                if (day.isoformat(), slot) not in covered and start + grace > now:
                    due[f"fallback/{day.isoformat()}/{slot}"] = start
        return {k: v for k, v in due.items() if not self.store.settled(k)}

    def reschedule(self, now: datetime) -> None:
        """Make the job store hold exactly the plays still to come; log slots missed while the station was down."""
        self._log_missed(now)
        due = self._due(now)
        grace = self.manifest.grace_s if self.manifest else 900
        for job in self.scheduler.get_jobs():
            if job.id not in due:
                job.remove()
        for key, start in due.items():
            self.scheduler.add_job("outreach.station.runner:run_entry", "date", run_date=start, args=[key], id=key,
                                   replace_existing=True, misfire_grace_time=grace)

    def _log_missed(self, now: datetime) -> None:
        m = self.manifest
        if m is None:
            return
        installed = datetime.fromisoformat(self.store.meta("installed_at", now.isoformat()))
        for e in m.entries:
            if installed <= e.start_at and e.start_at + timedelta(seconds=m.grace_s) <= now:
                ev = AsRunEvent(new_event_id(), EventKind.MISSED, now.isoformat(), e.entry_id, e.date, e.slot,
                                e.start, e.sha256, e.engine, e.campaigns,
                                detail="广播站关机或正忙，超过了宽限时间")
                if self.store.record(e.entry_id, ev):
                    log.warning("%s：漏播", e.entry_id)

    # --- playing ----------------------------------------------------------------------------------

    def _resolve(self, key: str) -> tuple[ManifestEntry, Path | None, str]:
        m = self.manifest
        if m is None:
            raise StationError("还没有节目单")
        entry = next((e for e in m.entries if e.entry_id == key), None)
        if entry is None and key.startswith("fallback/"):
            _, day, slot = key.split("/")
            if m.fallback is None:
                raise StationError(f"{key}：本地缓存的节目已用完，也没有备用节目")
            h, mi, sec = _clock_time(m.slots[slot])
            start = datetime.fromisoformat(day).replace(hour=h, minute=mi, second=sec, tzinfo=TZ)
            entry = replace(m.fallback, entry_id=key, date=day, slot=slot, start=start.isoformat())
        if entry is None:
            raise StationError(f"{key}：已不在节目单里")
        blob = self.s.data / syncmod.BLOBS / f"{entry.sha256}.mp3"
        if blob.is_file():
            return entry, blob, ""
        if m.fallback is not None and (fb := self.s.data / syncmod.BLOBS / f"{m.fallback.sha256}.mp3").is_file():
            fallback = replace(m.fallback, entry_id=entry.entry_id, date=entry.date, slot=entry.slot, start=entry.start)
            return fallback, fb, "节目没有下载下来，改播了备用节目"
        return entry, None, "节目没有下载下来，也没有备用节目"

    def play_due(self, key: str, now: datetime) -> None:
        """Play `key` unless it was begun before (never twice); store its event first on the station."""
        try:
            entry, path, note = self._resolve(key)
        except StationError as exc:
            log.info("%s", exc)
            return
        if path is None:
            ev = AsRunEvent(new_event_id(), EventKind.FAILED, now.isoformat(), entry.entry_id, entry.date, entry.slot,
                            entry.start, "", entry.engine, entry.campaigns, detail=note)
            self.store.record(key, ev)
            return
        with self.air_lock:
            event_id = self.store.begin_play(entry, now, key=key)
            if event_id is None:
                log.info("%s：已开始或已播过，不再重播", key)
                return
            notes = [note] if note else []
            listening = self.listener.begin(path, entry.duration_s, time.monotonic(), key) if self.listener else None
            position = self._play_program(key, path, entry, notes)
            cut = len(notes) > (1 if note else 0)  # _play_program notes each alert insert
            kind = EventKind.PLAYED
            if self.stopping.is_set() and position < entry.duration_s - 1:
                kind = EventKind.INTERRUPTED
                notes.append(f"广播站在播到 {position:.0f} 秒时被停止（节目共 {entry.duration_s:.0f} 秒）")
            proof = self._proof(listening, kind is EventKind.PLAYED and not cut)
            notes += [describe(proof)] if proof else []
            ev = AsRunEvent(event_id, kind, now.isoformat(), entry.entry_id, entry.date, entry.slot, entry.start,
                            entry.sha256, entry.engine, entry.campaigns, detail="；".join(notes),
                            **{k: v for k, v in proof.items() if k != "reason"})
            self.store.finish_play(key, ev)
            log.info("%s：%s（%s 开始）", key, _KIND_ZH[kind], now.strftime("%H:%M:%S"))

    def _proof(self, listening: Listening | None, whole: bool) -> dict[str, Any]:
        """The proof-of-air fields of a play that aired `whole` (an alert insert or a stop leaves none)."""
        if listening is None:
            return {}
        if not whole:
            listening.cancel()
            return {}
        return listening.finish(timeout_s=60.0)

    def _play_program(self, key: str, path: Path, entry: ManifestEntry, notes: list[str]) -> float:
        position = 0.0
        for _ in range(100):  # bounded: at most 100 alert inserts into one program
            stop = threading.Event()
            self._current_stop = stop
            watcher = threading.Thread(target=self._watch, args=(stop, key), daemon=True)
            watcher.start()
            position = self.output.play(path, start_s=position, stop=stop, label=key)
            stop.set()
            watcher.join(timeout=5)
            if self.stopping.is_set() or not self.preempt.is_set():
                break
            played = self._drain_alerts()
            notes.append(f"播到 {position:.0f} 秒时被紧急插播 {'、'.join(played) or '-'} 打断，随后续播")
        self._current_stop = None
        return position

    def _watch(self, stop: threading.Event, key: str) -> None:
        t0 = last = time.monotonic()
        while not stop.wait(0.05):
            if self.preempt.is_set() or self.stopping.is_set():
                stop.set()
                return
            if time.monotonic() - last >= 1:  # how long it has aired, for a truthful record after a crash
                last = time.monotonic()
                self.store.progress(key, last - t0)

    # --- alerts ----------------------------------------------------------------------------------

    def on_alert(self, message: AlertMessage) -> None:
        """Called by the MQTT client for every alert message (QoS 1, maybe a repeat)."""
        if self.store.alert_state(message.alert_id) is not None:
            return
        self.store.set_alert(message.alert_id, "received", message.to_json())
        if self.control is not None:
            self.control.ack(message.alert_id, "delivered", clock())
        self.alerts.put(message)
        self.preempt.set()

    def _alert_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                message = self.alerts.get(timeout=0.2)
            except queue.Empty:
                continue
            self.alerts.put(message)
            self.preempt.set()
            if self.air_lock.acquire(timeout=0.2):
                try:
                    self._drain_alerts()
                finally:
                    self.air_lock.release()

    def _drain_alerts(self) -> list[str]:
        played = []
        for _ in range(50):
            try:
                message = self.alerts.get_nowait()
            except queue.Empty:
                break
            if self._play_alert(message):
                played.append(message.alert_id)
        self.preempt.clear()
        return played

    def _play_alert(self, message: AlertMessage) -> bool:
        now = clock()
        if self.store.alert_state(message.alert_id) == "played":
            return False
        if now >= datetime.fromisoformat(message.expires_at):
            self.store.set_alert(message.alert_id, "expired")
            log.warning("紧急插播 %s 在播出前已过期，未播出", message.alert_id)
            return False
        try:
            path = self.client.download(message.sha256, self.s.data / "alerts", expected_size=message.size)
        except StationError as exc:
            log.error("紧急插播 %s：%s；稍后重试", message.alert_id, exc)
            self.alerts.put(message)
            time.sleep(1)
            return False
        self.store.set_alert(message.alert_id, "playing")
        started = clock()
        self.output.play(path, start_s=0.0, stop=threading.Event(), label=f"alert-{message.alert_id}")
        ev = AsRunEvent(new_event_id(), EventKind.ALERT_PLAYED, started.isoformat(), sha256=message.sha256,
                        alert_id=message.alert_id, detail=message.script_id)
        self.store.finish_play(f"alert/{message.alert_id}", ev)
        self.store.set_alert(message.alert_id, "played")
        if self.control is not None:
            self.control.ack(message.alert_id, "played", started)
        return True

    # --- uploads and presence -------------------------------------------------------------------

    def upload_once(self) -> int:
        sent = 0
        for _ in range(20):  # at most 20 batches per pass
            batch = self.store.pending_events(100)
            if not batch:
                break
            accepted, refused = self.client.upload(batch)
            self.store.mark_uploaded(accepted)
            self.store.mark_refused(refused)
            for event_id, reason in refused.items():
                log.warning("县服务器拒收了播出记录 %s：%s；本地保留并标记为被拒，不再上传", event_id, reason)
            sent += len(accepted)
            if len(set(accepted) | set(refused)) < len(batch):
                break
        return sent

    def _upload_loop(self) -> None:
        while not self.stopping.wait(self.s.upload_s):
            try:
                self.upload_once()
            except StationError as exc:
                log.info("播出记录暂缓上传：%s", exc)

    def heartbeat(self) -> dict[str, Any]:
        usage = shutil.disk_usage(self.s.data)
        return {"version": VERSION, "buffered_until": self.manifest.buffered_until if self.manifest else None,
                "free_disk_mb": usage.free // (1024 * 1024), "clock_offset_s": self.clock_offset_s,
                "last_play": self.store.last_play(), "sent_at": clock().isoformat()}
