"""Emergency inserts (紧急插播) to every village that can hear one at once, and the server's MQTT listener.

An alert reaches each village by its channel (delivery.CHANNELS):
- station boxes: published once per station on `outreach/station/<id>/alert` with QoS 1 and an MQTT 5
  message expiry: a station with a persistent session that is offline gets it from the broker when it
  reconnects before expiry, and the broker drops it after. Stations also check the expiry themselves,
  so a late copy is never played;
- networked villages: the leading scheduler finds the alert in the database within a second and plays
  it, cutting into the program on air (delivery.live.alerts);
- USB villages: nothing can reach them before their next stick; they are counted and listed
  (无法即时插播（U盘村）).
One `Alert` row holds every target: station ids, and `live:<village>` / `usb:<village>`
(live.alerts.channel_target). Both channels report into `AlertDelivery` (delivered, played), so
`alert_status` reports a box and a networked village the same way.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import socket
import statistics
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from outreach.audio.render import clip_durations, verified_clip
from outreach.content.script_model import Script
from outreach.dates import json_time
from outreach.db import session
from outreach.delivery import Channel, channel_of
from outreach.delivery.live.alerts import channel_target, split_target
from outreach.delivery.stations.accounts import record_presence
from outreach.delivery.stations.broker import BrokerSettings, connected, server_client
from outreach.delivery.stations.manifests import blob_dir, store_blob
from outreach.files import sha256_file
from outreach.models import Alert, AlertDelivery, Station
from outreach.planning.workspace import Loaded
from outreach.station.protocol import TOPIC_ROOT, AlertMessage, Leaf, StationError, parse_topic, topic

log = logging.getLogger("outreach.alerts")
MAX_EXPIRY = timedelta(days=2)
NO_BROKER = "没有配置消息服务器（Mosquitto）；请在 broker.toml 的 [broker] 里写 url，或设置 OUTREACH_BROKER_URL"


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h` or `1d` as a timedelta; StationError otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    if len(t) < 2 or t[-1] not in units or not t[:-1].isdigit() or int(t[:-1]) <= 0:
        raise StationError(f"--expires {text!r}：请写数字加单位，例如 90s、30m、2h 或 1d")
    return timedelta(seconds=int(t[:-1]) * units[t[-1]])


@dataclass(frozen=True)
class AlertTargets:
    """Who a 紧急插播 reaches, by channel, in the chosen county, townships or villages (registry order)."""

    stations: dict[str, str]  # active station box -> its village: over MQTT at once
    networked: list[str]  # villages the county's scheduler plays (联网村): through the scheduler at once
    usb: list[str]  # villages fed by USB stick: 无法即时插播（U盘村）
    unregistered: list[str]  # station villages with no active box registered: nothing reaches them

    @property
    def reachable(self) -> int:
        """How many targets can hear it now: boxes and networked villages."""
        return len(self.stations) + len(self.networked)

    def within(self, village_ids: Collection[str]) -> AlertTargets:
        """The part of these targets in `village_ids` (a township's share of the county, say)."""
        return AlertTargets({k: v for k, v in self.stations.items() if v in village_ids},
                            [v for v in self.networked if v in village_ids], [v for v in self.usb if v in village_ids],
                            [v for v in self.unregistered if v in village_ids])


def _wanted(loaded: Loaded, county: bool, townships: Sequence[str], villages: Sequence[str]) -> set[str]:
    reg = loaded.registry
    for t in townships:
        if t not in reg.townships:
            raise StationError(f"--township {t!r}：未知的乡镇；请使用 schedules/county.yaml 里的编号")
    for v in villages:
        if v not in reg.villages:
            raise StationError(f"--village {v!r}：未知的村；请使用 schedules/county.yaml 里的编号")
    if not (county or townships or villages):
        raise StationError("请选择紧急插播发给谁：--county、--township 乡镇 或 --village 村")
    return set(reg.villages) if county else (
        set(villages) | {vid for vid, v in reg.villages.items() if v.township_id in set(townships)})


def alert_targets(engine: Engine, loaded: Loaded, *, county: bool, townships: Sequence[str] = (),
                  villages: Sequence[str] = ()) -> AlertTargets:
    """The boxes, networked villages and USB villages of the chosen county, townships or villages."""
    wanted = _wanted(loaded, county, townships, villages)
    with session(engine) as s:
        boxes = s.execute(sa.select(Station.id, Station.village_id).where(
            Station.revoked_at.is_(None), Station.village_id.in_(sorted(wanted))).order_by(Station.id)).all()
    order = [v for v in loaded.registry.villages.values() if v.id in wanted]
    kind = {v.id: channel_of(v) for v in order}
    stations = {sid: vid for sid, vid in boxes if kind[vid] is Channel.STATIONS}
    return AlertTargets(stations, [v.id for v in order if kind[v.id] is Channel.LIVE],
                        [v.id for v in order if kind[v.id] is Channel.USB],
                        [v.id for v in order if kind[v.id] is Channel.STATIONS and v.id not in stations.values()])


def broker_problem(broker: BrokerSettings | None, timeout_s: float = 1.0) -> str | None:
    """Why station boxes cannot get an alert now (no broker configured, or it does not answer); None if they can."""
    if broker is None:
        return NO_BROKER
    try:
        with socket.create_connection((broker.host, broker.port), timeout=timeout_s):
            pass
    except OSError as exc:
        return f"连不上消息服务器（Mosquitto）{broker.url}：{exc}；Mosquitto 是否在运行？"
    return None


def _approved(loaded: Loaded, script_id: str) -> Script:
    script = loaded.scripts.get(script_id)
    if script is None:
        raise StationError(f"未知的广播稿 {script_id!r}；用 `outreach scripts check` 查看全部广播稿")
    if not script.approved:
        raise StationError(f"广播稿 {script_id} 还没有批准；请用 `outreach scripts approve {script_id} --by NAME` "
                           "批准（只有已批准的广播稿才能发出）")
    return script


def _nobody(targets: AlertTargets) -> str:
    why = [f"{len(targets.usb)} 个U盘村无法即时插播"] if targets.usb else []
    if targets.unregistered:
        why.append(f"{len(targets.unregistered)} 个村广播站村还没有登记播放盒（用 `outreach station add` 登记）")
    return "所选范围内没有能即时插播的村" + ("：" + "；".join(why) if why else "")


def send_alert(engine: Engine, loaded: Loaded, broker: BrokerSettings | None, script_id: str, targets: AlertTargets,
               *, expires: timedelta, now: datetime, timeout_s: float = 10.0) -> dict[str, Any]:
    """Send an approved script's clip as an alert to `targets`: published to the boxes, left for the scheduler
    for networked villages, USB villages listed. Returns {alert_id, targets (station ids and live:<village>),
    stations, networked, usb, unregistered, station_error, sent_at, expires_at}: `station_error` says why the
    boxes got nothing while networked villages still get it.

    Raises StationError (nothing sent) for an unknown or unapproved script, a bad expiry, no village
    that can hear it now, or boxes only and a broker that is missing or cannot be reached.
    """
    script = _approved(loaded, script_id)
    if not targets.reachable:
        raise StationError(_nobody(targets))
    if not timedelta(seconds=10) <= expires <= MAX_EXPIRY:
        raise StationError("--expires 须在 10s 到 2d 之间")
    clip = verified_clip(loaded.config, script)
    sha = sha256_file(clip)
    store_blob(blob_dir(loaded), clip, sha)
    alert = Alert(id=secrets.token_hex(8), script_id=script_id, sha256=sha, targets="[]", sent_at=now,
                  expires_at=now + expires)
    message = AlertMessage(alert.id, script_id, script.title, sha, clip.stat().st_size,
                           clip_durations(loaded.config, [script]).get(script_id, 0.0),
                           json_time(now), json_time(alert.expires_at))
    live = [channel_target(Channel.LIVE, v) for v in targets.networked]
    stations, error = _to_stations(engine, broker, alert, list(targets.stations),
                                   live + [channel_target(Channel.USB, v) for v in targets.usb], message,
                                   expiry_s=max(1, math.ceil(expires.total_seconds())), timeout_s=timeout_s,
                                   alone=not live)
    return {"alert_id": alert.id, "targets": stations + live, "stations": stations,
            "networked": list(targets.networked), "usb": list(targets.usb), "unregistered": list(targets.unregistered),
            "station_error": error, "sent_at": json_time(now), "expires_at": json_time(alert.expires_at)}


def _to_stations(engine: Engine, broker: BrokerSettings | None, alert: Alert, stations: list[str], others: list[str],
                 message: AlertMessage, *, expiry_s: int, timeout_s: float,
                 alone: bool) -> tuple[list[str], str | None]:
    """Store `alert` and publish it to `stations`: (the boxes in the stored alert, why they got nothing or None).

    Connect first: with the broker down the boxes are left out of the row, so none looks undelivered
    (and with no networked village either, `alone`, nothing is stored and StationError is raised).
    The row is stored before publishing, so a station's quick ack finds it.
    """
    def store(target_ids: list[str]) -> None:
        alert.targets = json.dumps(target_ids)
        with session(engine) as s:
            s.add(alert)

    if not stations:
        store(others)
        return [], None
    stored = False
    try:
        if broker is None:
            raise StationError(NO_BROKER)
        with connected(broker) as client:
            store([*stations, *others])
            stored = True
            _publish(client, broker, [(topic(t, Leaf.ALERT), message.to_json()) for t in stations],
                     expiry_s=expiry_s, timeout_s=timeout_s)
        return stations, None
    except StationError as exc:
        if alone:
            raise
        if not stored:
            store(others)
        log.error("紧急插播 %s：播放盒没有收到（%s）；联网村照常插播", alert.id, exc)
        return (stations if stored else []), str(exc)


def _publish(client: Any, broker: BrokerSettings, messages: Sequence[tuple[str, str]], *, expiry_s: int,
             timeout_s: float) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = expiry_s
    infos = [client.publish(t, payload, qos=1, properties=props) for t, payload in messages]
    deadline = time.monotonic() + timeout_s
    for info in infos:
        info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
        if not info.is_published():
            raise StationError(f"消息服务器 {broker.url} 在 {timeout_s:.0f} 秒内没有确认收到紧急插播"
                               "（[broker] 的 username/password 是否有误？）")
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise StationError(f"紧急插播发布失败：{mqtt.error_string(info.rc)}")


def alert_sent_to(s: Any, alert_id: str, station_id: str) -> Alert | None:
    """The alert `alert_id` if it was sent to `station_id`, else None (a station acks only its own alerts)."""
    alert = s.get(Alert, alert_id) if 0 < len(alert_id) <= 32 else None
    if alert is None or station_id not in json.loads(alert.targets):
        return None
    return alert


def record_alert_play(s: Any, alert_id: str, station_id: str, at: datetime) -> None:
    """Note that `station_id` played `alert_id` at `at` (first report wins); ignored for an alert not sent to it."""
    if alert_sent_to(s, alert_id, station_id) is None:
        log.warning("村广播站 %s 报告播出了没有发给它的紧急插播 %s，已忽略", station_id, alert_id[:40])
        return
    row = s.get(AlertDelivery, (alert_id, station_id))
    if row is None:
        row = AlertDelivery(alert_id=alert_id, station_id=station_id, delivered_at=at, played_at=at)
    elif row.played_at is None:
        row.played_at = at
        row.delivered_at = row.delivered_at or at
    s.add(row)


def record_delivered(engine: Engine, alert_id: str, station_id: str, at: datetime) -> None:
    with session(engine) as s:
        if alert_sent_to(s, alert_id, station_id) is None:
            return
        row = s.get(AlertDelivery, (alert_id, station_id))
        if row is None:
            s.add(AlertDelivery(alert_id=alert_id, station_id=station_id, delivered_at=at))


def alert_status(engine: Engine, alert_id: str) -> dict[str, Any]:
    """{alert_id, script_id, targets, delivered, played, latency_s: {p50, p95, max}, channels, usb, sent_at,
    expires_at}.

    `targets` are the station ids and `live:<village>` ids the alert went to, reported alike: delivered (a
    box got it, or the scheduler took it) and played (it aired; latency from sending to the sound going out).
    `channels` counts them per channel ({"stations"|"live": {targets, delivered, played}}); `usb` lists the
    U盘村 it could not reach.
    """
    with session(engine) as s:
        alert = s.get(Alert, alert_id)
        if alert is None:
            raise StationError(f"没有紧急插播 {alert_id!r}；编号见 `outreach alert send` 的输出")
        rows = s.scalars(sa.select(AlertDelivery).where(AlertDelivery.alert_id == alert_id)).all()
    tagged = {t: split_target(t) for t in json.loads(alert.targets)}
    targets = [t for t, (channel, _) in tagged.items() if channel is not Channel.USB]
    delivered = sorted(r.station_id for r in rows if r.delivered_at)
    played = sorted(r.station_id for r in rows if r.played_at)
    latencies = sorted((r.played_at - alert.sent_at).total_seconds() for r in rows if r.played_at)
    channels = {c.value: {"targets": sum(tagged[t][0] is c for t in targets),
                          "delivered": sum(tagged.get(t, (None,))[0] is c for t in delivered),
                          "played": sum(tagged.get(t, (None,))[0] is c for t in played)}
                for c in (Channel.STATIONS, Channel.LIVE)}
    return {"alert_id": alert_id, "script_id": alert.script_id, "targets": targets,
            "sent_at": json_time(alert.sent_at), "expires_at": json_time(alert.expires_at),
            "delivered": delivered, "played": played, "latency_s": latency_summary(latencies),
            "channels": channels, "usb": [vid for channel, vid in tagged.values() if channel is Channel.USB]}


def latency_summary(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    v = sorted(values)
    p95 = v[min(len(v) - 1, math.ceil(0.95 * len(v)) - 1)]
    return {"p50": round(statistics.median(v), 3), "p95": round(p95, 3), "max": round(v[-1], 3)}


class ControlListener:
    """The server's MQTT subscriber: station status (and last wills), heartbeats and alert acks into the database."""

    def __init__(self, engine: Engine, broker: BrokerSettings, clock: Any) -> None:
        self.engine, self.broker, self.clock = engine, broker, clock
        self.messages = 0
        self._client: Any = None
        self._lock = threading.Lock()

    def start(self) -> None:
        import paho.mqtt.client as mqtt

        client = server_client(self.broker)
        client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(
            [(f"{TOPIC_ROOT}/+/{leaf.value}", 1) for leaf in (Leaf.STATUS, Leaf.HEARTBEAT, Leaf.ACK)])
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 10)
        client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        client.loop_start()
        self._client = client
        _ = mqtt

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        parsed = parse_topic(msg.topic)
        if parsed is None:
            return
        station_id, leaf = parsed
        now = self.clock()
        try:
            data = json.loads(msg.payload or b"{}")
            if leaf is Leaf.STATUS:
                record_presence(self.engine, station_id, now=now, online=bool(data.get("online")))
            elif leaf is Leaf.HEARTBEAT:
                record_presence(self.engine, station_id, now=now, heartbeat=data)
            elif leaf is Leaf.ACK and data.get("alert_id"):
                if data.get("state") == "played" and data.get("at"):
                    with session(self.engine) as s:
                        record_alert_play(s, str(data["alert_id"]), station_id, datetime.fromisoformat(data["at"]))
                else:
                    record_delivered(self.engine, str(data["alert_id"]), station_id, now)
            with self._lock:
                self.messages += 1
        except Exception:  # a bad message must never stop the listener
            log.exception("%s 上的村广播站消息未能保存", msg.topic)
