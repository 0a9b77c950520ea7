"""Emergency inserts (紧急插播) to village stations over MQTT, and the server's listener for presence and acks.

An alert is published once per target station on `outreach/station/<id>/alert`
with QoS 1 and an MQTT 5 message expiry: a station with a persistent session
that is offline gets it from the broker when it reconnects before expiry, and
the broker drops it after. Stations also check the expiry themselves, so a late
copy is never played.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import statistics
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from outreach.audio.render import clip_durations, verified_clip
from outreach.dates import json_time
from outreach.db import session
from outreach.delivery.stations.accounts import record_presence
from outreach.delivery.stations.broker import BrokerSettings, connected, server_client
from outreach.delivery.stations.manifests import blob_dir, store_blob
from outreach.files import sha256_file
from outreach.models import Alert, AlertDelivery, Station
from outreach.planning.workspace import Loaded
from outreach.station.protocol import TOPIC_ROOT, AlertMessage, Leaf, StationError, parse_topic, topic

log = logging.getLogger("outreach.alerts")
MAX_EXPIRY = timedelta(days=2)


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h` or `1d` as a timedelta; StationError otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    if len(t) < 2 or t[-1] not in units or not t[:-1].isdigit() or int(t[:-1]) <= 0:
        raise StationError(f"--expires {text!r}：请写数字加单位，例如 90s、30m、2h 或 1d")
    return timedelta(seconds=int(t[:-1]) * units[t[-1]])


def target_stations(engine: Engine, loaded: Loaded, *, county: bool, townships: Sequence[str],
                    villages: Sequence[str]) -> list[str]:
    """Active station ids in the chosen county, townships or villages."""
    reg = loaded.registry
    for t in townships:
        if t not in reg.townships:
            raise StationError(f"--township {t!r}：未知的乡镇；请使用 schedules/county.yaml 里的编号")
    for v in villages:
        if v not in reg.villages:
            raise StationError(f"--village {v!r}：未知的村；请使用 schedules/county.yaml 里的编号")
    if not (county or townships or villages):
        raise StationError("请选择紧急插播发给谁：--county、--township 乡镇 或 --village 村")
    wanted = set(reg.villages) if county else (
        set(villages) | {vid for vid, v in reg.villages.items() if v.township_id in set(townships)})
    with session(engine) as s:
        return list(s.scalars(sa.select(Station.id).where(Station.revoked_at.is_(None),
                                                          Station.village_id.in_(sorted(wanted))).order_by(Station.id)))


def send_alert(engine: Engine, loaded: Loaded, broker: BrokerSettings, script_id: str, targets: Sequence[str], *,
               expires: timedelta, now: datetime, timeout_s: float = 10.0) -> dict[str, Any]:
    """Publish an approved script's clip as an alert to `targets`; returns {alert_id, targets, sent_at, expires_at}."""
    script = loaded.scripts.get(script_id)
    if script is None:
        raise StationError(f"未知的广播稿 {script_id!r}；用 `outreach scripts check` 查看全部广播稿")
    if not script.approved:
        raise StationError(f"广播稿 {script_id} 还没有批准；请用 `outreach scripts approve {script_id} --by NAME` "
                           "批准（只有已批准的广播稿才能发出）")
    if not targets:
        raise StationError("所选范围内没有已登记的村广播站；请用 `outreach station add` 登记")
    if not timedelta(seconds=10) <= expires <= MAX_EXPIRY:
        raise StationError("--expires 须在 10s 到 2d 之间")
    clip = verified_clip(loaded.config, script)
    sha = sha256_file(clip)
    store_blob(blob_dir(loaded), clip, sha)
    alert_id = secrets.token_hex(8)
    expires_at = now + expires
    message = AlertMessage(alert_id, script_id, script.title, sha, clip.stat().st_size,
                           clip_durations(loaded.config, [script]).get(script_id, 0.0),
                           json_time(now), json_time(expires_at))
    # Connect first: with the broker down nothing is sent, so no alert row is left behind to look
    # undelivered. The row is stored before publishing, so a station's quick ack finds it.
    with connected(broker) as client:
        with session(engine) as s:
            s.add(Alert(id=alert_id, script_id=script_id, sha256=sha, targets=json.dumps(list(targets)), sent_at=now,
                        expires_at=expires_at))
        _publish(client, broker, [(topic(t, Leaf.ALERT), message.to_json()) for t in targets],
                 expiry_s=max(1, math.ceil(expires.total_seconds())), timeout_s=timeout_s)
    return {"alert_id": alert_id, "targets": list(targets), "sent_at": json_time(now),
            "expires_at": json_time(expires_at)}


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
    """{alert_id, targets, delivered, played, latency_s: {p50, p95, max}} (latency: sent to played)."""
    with session(engine) as s:
        alert = s.get(Alert, alert_id)
        if alert is None:
            raise StationError(f"没有紧急插播 {alert_id!r}；编号见 `outreach alert send` 的输出")
        rows = s.scalars(sa.select(AlertDelivery).where(AlertDelivery.alert_id == alert_id)).all()
        targets = json.loads(alert.targets)
        latencies = sorted((r.played_at - alert.sent_at).total_seconds() for r in rows if r.played_at)
        return {"alert_id": alert_id, "script_id": alert.script_id, "targets": targets,
                "sent_at": json_time(alert.sent_at), "expires_at": json_time(alert.expires_at),
                "delivered": sorted(r.station_id for r in rows if r.delivered_at),
                "played": sorted(r.station_id for r in rows if r.played_at),
                "latency_s": latency_summary(latencies)}


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
