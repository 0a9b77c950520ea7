"""The station's MQTT client: persistent session for alerts, retained online status with a last will, heartbeats."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from outreach.station.protocol import AlertMessage, Leaf, StationError, topic

log = logging.getLogger("outreach.station.mqtt")
SESSION_EXPIRY_S = 2 * 24 * 3600  # the broker keeps queued alerts this long while the station is away


class Control:
    """Connects as user `station_id` with the station token; reconnects by itself (paho's loop)."""

    def __init__(self, runtime: Any, broker_url: str, *, heartbeat_s: float = 30.0) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        parts = urlsplit(broker_url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise StationError(f"消息服务器地址 {broker_url!r}：请写成 mqtt://HOST:PORT")
        self.runtime, self.heartbeat_s = runtime, heartbeat_s
        self.host, self.port = parts.hostname, parts.port or 1883
        sid = runtime.s.station_id
        self.connected = threading.Event()
        self.refused = ""
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=sid, protocol=mqtt.MQTTv5)
        c.username_pw_set(sid, runtime.s.token)
        c.will_set(topic(sid, Leaf.STATUS), json.dumps({"online": False}), qos=1, retain=True)
        c.on_connect, c.on_disconnect, c.on_message = self._on_connect, self._on_disconnect, self._on_message
        c.reconnect_delay_set(1, 10)
        self._props = Properties(PacketTypes.CONNECT)
        self._props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client = c
        self._stop = threading.Event()

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=15, clean_start=False, properties=self._props)
        self.client.loop_start()
        threading.Thread(target=self._beat_loop, name="heartbeat", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        sid = self.runtime.s.station_id
        try:
            self.client.publish(topic(sid, Leaf.STATUS), json.dumps({"online": False}), qos=1, retain=True)
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any = None) -> None:
        if reason.is_failure:
            self.refused = str(reason)
            log.error("消息服务器（Mosquitto）拒绝了本广播站（%s）；令牌是否已被吊销？", reason)
            return
        sid = self.runtime.s.station_id
        client.subscribe([(topic(sid, Leaf.ALERT), 1), (topic(sid, Leaf.CMD), 1)])
        client.publish(topic(sid, Leaf.STATUS), json.dumps({"online": True}), qos=1, retain=True)
        self.connected.set()
        self.beat()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any = None) -> None:
        self.connected.clear()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            if msg.topic.endswith("/" + Leaf.ALERT.value):
                self.runtime.on_alert(AlertMessage.from_json(msg.payload))
            elif msg.topic.endswith("/" + Leaf.CMD.value) and msg.payload == b"sync":
                threading.Thread(target=self.runtime.sync_once, args=(datetime.now(self.runtime_tz()),),
                                 daemon=True).start()
        except Exception:  # a bad message must not stop the station
            log.exception("已忽略 %s 上的消息", msg.topic)

    @staticmethod
    def runtime_tz() -> Any:
        from outreach.station.protocol import TZ

        return TZ

    def ack(self, alert_id: str, state: str, at: datetime) -> None:
        payload = json.dumps({"alert_id": alert_id, "state": state, "at": at.isoformat()})
        self.client.publish(topic(self.runtime.s.station_id, Leaf.ACK), payload, qos=1)

    def beat(self) -> None:
        if self.connected.is_set():
            self.client.publish(topic(self.runtime.s.station_id, Leaf.HEARTBEAT),
                                json.dumps(self.runtime.heartbeat()), qos=0)

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.beat()
            except Exception:
                log.exception("心跳发送失败")
