"""紧急插播 on networked villages: the alerts waiting for the leading scheduler, and their exactly-once take.

The web process (or `outreach alert send`) stores an `Alert` whose targets name networked villages as
`live:<village>`. The leading scheduler polls for them every POLL_S (live.runtime): an alert not yet
taken and not expired is taken by one INSERT of its `AlertDelivery` row (the (alert, target) key lets one
scheduler win), played at once, and marked played with the time its sound went out. A database row
is how the two processes meet: it needs no new service, survives a scheduler restart (an alert sent
while no scheduler ran plays when one leads again, before its expiry, as a station does after a
reconnect), and a standby taking over cannot play an alert twice. APScheduler's job store would not
do: a running scheduler does not see a job another process adds until its next wake-up.

On the horn (AlertPlayout, the alert half of live.runtime.LiveRuntime): the program on air is stopped
and its rows logged `interrupted` (with a note that survives the replay), the alert plays, then the
program is replayed from its start, since a player is any command given only the file and cannot
resume at an offset. Its claim stays with this scheduler meanwhile, so a scheduler that dies
mid-alert leaves it to the next leader's replay within grace. A slot falling due meanwhile waits.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from outreach.audio.render import verified_clip
from outreach.config import TZ
from outreach.db import session
from outreach.delivery import Channel, served_by
from outreach.delivery.live import claims, players
from outreach.delivery.live.play import finish_player, interrupt_rows
from outreach.delivery.prepare import Key
from outreach.errors import OutreachError
from outreach.files import sha256_file
from outreach.models import Alert, AlertDelivery, BroadcastStatus
from outreach.planning.workspace import Loaded

log = logging.getLogger("outreach.playout")

POLL_S = 1.0  # how often the leading scheduler looks for new alerts
ALERT_SLOT = "alert"  # the {slot} a player command gets for an alert


def channel_target(channel: Channel, village_id: str) -> str:
    """How Alert.targets names a village reached (or counted) by `channel`: `live:<village>`, `usb:<village>`.
    Station boxes keep their plain station ids (which never hold a colon)."""
    return f"{channel.value}:{village_id}"


def split_target(target: str) -> tuple[Channel, str]:
    """(channel, id) of one Alert.targets entry: a station id, or a tagged village."""
    tag, sep, rest = target.partition(":")
    if sep and tag in {c.value for c in Channel}:
        return Channel(tag), rest
    return Channel.STATIONS, target


@dataclass(frozen=True)
class LiveAlert:
    """One alert for one networked village, waiting to be played."""

    alert_id: str
    village_id: str
    script_id: str
    sha256: str
    sent_at: datetime
    expires_at: datetime

    @property
    def target(self) -> str:
        return channel_target(Channel.LIVE, self.village_id)


def waiting(engine: Engine, village_ids: Collection[str], now: datetime) -> list[LiveAlert]:
    """Unexpired alerts for `village_ids` that no scheduler has taken yet, oldest first."""
    if not village_ids:
        return []
    with session(engine) as s:
        alerts = s.scalars(sa.select(Alert).where(Alert.expires_at > now).order_by(Alert.sent_at)).all()
        wanted = [(a, vid) for a in alerts for channel, vid in map(split_target, json.loads(a.targets))
                  if channel is Channel.LIVE and vid in village_ids]
        if not wanted:
            return []
        taken = set(s.execute(sa.select(AlertDelivery.alert_id, AlertDelivery.station_id).where(
            AlertDelivery.alert_id.in_({a.id for a, _ in wanted}))).all())
    return [LiveAlert(a.id, vid, a.script_id, a.sha256, a.sent_at, a.expires_at) for a, vid in wanted
            if (a.id, channel_target(Channel.LIVE, vid)) not in taken]


def take(engine: Engine, alert: LiveAlert, now: datetime) -> bool:
    """Take an alert for its village (its delivery row, delivered now); True if this call won it."""
    insert = (postgresql if engine.dialect.name == "postgresql" else sqlite).insert
    stmt = insert(AlertDelivery.__table__).values(  # type: ignore[attr-defined]
        alert_id=alert.alert_id, station_id=alert.target, delivered_at=now).on_conflict_do_nothing()
    with engine.begin() as conn:
        return bool(conn.execute(stmt).rowcount == 1)


def mark_played(engine: Engine, alert: LiveAlert, aired_at: datetime) -> None:
    """Note that the alert went out on its village's loudspeaker at `aired_at` (its player ran through)."""
    with session(engine) as s:
        s.execute(sa.update(AlertDelivery).where(
            AlertDelivery.alert_id == alert.alert_id, AlertDelivery.station_id == alert.target,
            AlertDelivery.played_at.is_(None)).values(played_at=aired_at))


@dataclass
class OnAir:
    """A 紧急插播 on one village's horn: the alert, its player, and the programs it cut off (replayed after it)."""

    alert: LiveAlert
    player: players.Player
    program: str
    timeout_s: float
    length_s: float | None
    aired_at: datetime
    resume: list[Key]


def interrupted_note(title: str) -> str:
    """The note an interrupted program's rows keep, also after their replay."""
    return f"中断：紧急插播「{title}」；插播后从头重播"


class AlertPlayout:
    """The 紧急插播 half of the play runtime: take waiting alerts, cut in, give the horn back.

    A mixin of live.runtime.LiveRuntime, which owns the programs on air (`_running`, under `_lock`),
    the queue (`submit`) and the workspace (`refresh`); the two halves share the lock, so a program's
    start and an alert's cut-in never interleave on one horn.
    """

    loaded: Loaded
    engine: Engine
    owner: str
    _lock: threading.Lock
    _running: dict[Key, Any]  # runtime.Playing
    _alerts: dict[str, OnAir | None]  # villages whose horn an alert holds (None while it is being set up)
    _held: dict[str, list[Key]]  # slots that fell due during an alert, by village
    submit: Callable[[Sequence[Key], datetime], None]
    refresh: Callable[[], bool]

    def take_alerts(self, now: datetime) -> int:
        """Play every waiting alert of a networked village (one at a time per village); return how many started."""
        with self._lock:
            busy = set(self._alerts)
        networked = {v.id for v in served_by(self.loaded.registry, Channel.LIVE)}
        started = 0
        for alert in waiting(self.engine, networked - busy, now):
            if alert.village_id in busy or not take(self.engine, alert, now):
                continue  # the village's next alert waits for this one; or another scheduler took it
            busy.add(alert.village_id)
            started += self._cut_in(alert, now)
        return started

    def _cut_in(self, alert: LiveAlert, now: datetime) -> int:
        """Take the village's horn: stop its program (replayed after), start the alert's player; 1 if it started."""
        begun = time.monotonic()
        village, deliver = alert.village_id, self.loaded.config.deliver
        title, clip = self._alert_clip(alert)
        if clip is None:
            return 0
        with self._lock:
            self._alerts[village] = None  # from here on no program starts on this horn
        resume = self._take_off_air(village, interrupted_note(title), now)
        try:
            cmd = players.route(self.loaded.registry, self.loaded.config, village, ALERT_SLOT,
                                now.astimezone(TZ).date(), clip)
            player = players.spawn(cmd, self.loaded.config.build_path / "players", deliver.player_timeout_s)
        except Exception as exc:
            log.error("紧急插播 %s：%s 的播放程序无法启动：%s", alert.alert_id, village, exc)
            self._end_alert(village, resume, now)
            return 0
        aired_at = now + timedelta(seconds=player.t0 - begun)
        with self._lock:
            self._alerts[village] = OnAir(alert, player, players.display_name(cmd), deliver.player_timeout_s,
                                          players.program_length(clip), aired_at, resume)
        log.warning("紧急插播 %s：%s 开始播出「%s」（发出后 %.1f 秒）", alert.alert_id, village, title,
                    (aired_at - alert.sent_at).total_seconds())
        return 1

    def _alert_clip(self, alert: LiveAlert) -> tuple[str, Path | None]:
        """The alert's title and clip, the very one that was sent (its sha256); None, logged, if it cannot air."""
        if alert.script_id not in self.loaded.scripts:
            self.refresh()  # a script written after this scheduler loaded the workspace
        script = self.loaded.scripts.get(alert.script_id)
        if script is None:
            log.error("紧急插播 %s：没有广播稿 %s，%s 不播", alert.alert_id, alert.script_id, alert.village_id)
            return alert.script_id, None
        try:
            clip = verified_clip(self.loaded.config, script)
        except OutreachError as exc:
            log.error("紧急插播 %s：%s；%s 不播", alert.alert_id, exc, alert.village_id)
            return script.title, None
        if sha256_file(clip) != alert.sha256:
            log.error("紧急插播 %s：广播稿 %s 的录音在发出后重新生成过，和发出的不同；%s 不播", alert.alert_id,
                      script.id, alert.village_id)
            return script.title, None
        return script.title, clip

    def _take_off_air(self, village: str, note: str, now: datetime) -> list[Key]:
        """Stop the village's programs on air, log them `interrupted` with `note`; return them for a replay."""
        with self._lock:
            cut = [(k, p) for k, p in self._running.items() if k[0] == village and p.ended is None]
            for k, _ in cut:
                del self._running[k]
        for _, p in cut:
            if p.proof is not None:
                p.proof.cancel()
            players.stop_group(p.player.pgid, leader=p.player.proc)
            p.player.cleanup()
        keys = [k for k, _ in cut]
        if keys:
            with session(self.engine) as s:
                for k in keys:
                    interrupt_rows(s, k, at=now, detail=note)
            claims.set_state(self.engine, self.owner, keys, claims.CLAIMED)  # still ours: replayed after the alert
            log.warning("%s：%s", village, note)
        return keys

    def _end_alert(self, village: str, resume: list[Key], now: datetime) -> None:
        """Give the horn back: replay what the alert cut off, then the slots that fell due meanwhile."""
        with self._lock:
            self._alerts.pop(village, None)
            after = resume + self._held.pop(village, [])
        if after:
            self.submit(after, now)

    def _watch_alerts(self, now: datetime) -> None:
        """Settle alerts whose player ended: note the played ones, then give their horns back."""
        with self._lock:
            on_air = [a for a in self._alerts.values() if a is not None]
        for a in on_air:
            result = finish_player(a.player, a.program, a.timeout_s, wait=False, length_s=a.length_s,
                                   min_fraction=self.loaded.config.deliver.min_play_fraction)
            if result is None:
                continue
            alert = a.alert
            if result.status is BroadcastStatus.PLAYED:
                mark_played(self.engine, alert, a.aired_at)
                log.info("紧急插播 %s：%s 已播出", alert.alert_id, alert.village_id)
            else:
                log.error("紧急插播 %s：%s 播出失败：%s", alert.alert_id, alert.village_id, result.detail)
            self._end_alert(alert.village_id, a.resume, now)

    def _stop_alerts(self) -> None:
        """At shutdown: stop alerts on air; what they cut off stays claimed, so the next leader replays it."""
        with self._lock:
            on_air = [a for a in self._alerts.values() if a is not None]
            self._alerts.clear()
            self._held.clear()
        for a in on_air:
            players.stop_group(a.player.pgid, leader=a.player.proc)
            a.player.cleanup()
        if on_air:
            log.warning("已停止 %d 个正在播出的紧急插播", len(on_air))


__all__ = ["ALERT_SLOT", "POLL_S", "AlertPlayout", "LiveAlert", "OnAir", "channel_target", "split_target", "waiting",
           "take", "mark_played", "interrupted_note"]
