"""After `station revoke`, the box's retained MQTT status reads offline (a real Mosquitto, a box's MQTT session).

The broker drops a revoked box without its last will, so the retained `{"online": true}` the box
published would stay for every later subscriber; the server publishes the offline status itself.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from station_harness import SERVER_PASSWORD, SERVER_USER, Broker, mark_station_villages, wait_for

from outreach.cli import cli
from outreach.config import TZ, load_config
from outreach.delivery.stations.accounts import add_station, authenticate
from outreach.planning.workspace import load, open_database
from outreach.station.protocol import Leaf, topic

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None and not os.path.exists("/usr/sbin/mosquitto"),
                                reason="Mosquitto is not installed (tools/test installs it)")
VILLAGE = "dazhuang-01"


@pytest.fixture
def county(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    broker = Broker(tmp_path / "broker")
    broker.start()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'revoke.db'}")
    for key, value in broker.env().items():
        monkeypatch.setenv(key, value)
    mark_station_villages(workspace, (VILLAGE,))
    loaded = load(load_config(workspace))
    engine = open_database(loaded)
    yield workspace, loaded, engine, broker
    engine.dispose()
    broker.stop()


def retained_status(broker: Broker, station_id: str) -> dict:
    """What a fresh subscriber reads first on the station's status topic: the retained message."""
    out = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-u", SERVER_USER,
                          "-P", SERVER_PASSWORD, "-t", topic(station_id, Leaf.STATUS), "-C", "1", "-W", "5"],
                         capture_output=True, text=True, timeout=15)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


class Box:
    """A village box's MQTT session as `outreach.station.control` opens it: last will offline, retained online."""

    def __init__(self, broker: Broker, station_id: str, token: str) -> None:
        import paho.mqtt.client as mqtt

        self.dropped = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=station_id, protocol=mqtt.MQTTv5)
        c.username_pw_set(station_id, token)
        c.will_set(topic(station_id, Leaf.STATUS), json.dumps({"online": False}), qos=1, retain=True)
        c.on_disconnect = lambda *_args: self.dropped.set()
        c.connect("127.0.0.1", broker.port, keepalive=15)
        c.loop_start()
        info = c.publish(topic(station_id, Leaf.STATUS), json.dumps({"online": True}), qos=1, retain=True)
        info.wait_for_publish(timeout=5)
        assert info.is_published()
        self.client = c

    def close(self) -> None:
        self.client.loop_stop()


def test_after_revoke_a_fresh_subscriber_reads_the_box_offline(county) -> None:
    workspace, loaded, engine, broker = county
    reg = add_station(engine, loaded, VILLAGE, now=datetime.now(TZ), server_url="http://127.0.0.1",
                      broker=broker.settings)
    box = Box(broker, reg["station_id"], reg["token"])
    try:
        assert retained_status(broker, reg["station_id"]) == {"online": True}
        result = CliRunner().invoke(cli, ["station", "revoke", reg["station_id"], "-w", str(workspace)])
        assert result.exit_code == 0, result.output
        assert "警告" not in result.stderr, result.stderr
        wait_for("the broker to drop the revoked box", box.dropped.is_set, timeout_s=10)
        status = retained_status(broker, reg["station_id"])
        assert status["online"] is False and status["revoked"] is True, status
        assert status["at"].endswith("+08:00")
    finally:
        box.close()


def test_revoke_stands_and_says_so_when_the_broker_is_down(county) -> None:
    workspace, loaded, engine, broker = county
    reg = add_station(engine, loaded, VILLAGE, now=datetime.now(TZ), server_url="http://127.0.0.1",
                      broker=broker.settings)
    broker.stop()
    broker.pid_file.write_text(str(os.getpid()))  # the reload signal comes to this test, which ignores it
    old = signal.signal(signal.SIGHUP, lambda *_: None)
    try:
        result = CliRunner().invoke(cli, ["station", "revoke", reg["station_id"], "-w", str(workspace)])
    finally:
        signal.signal(signal.SIGHUP, old)
    assert result.exit_code == 0, result.output
    assert "警告：已吊销，但没能把" in result.stderr and "连不上消息服务器" in result.stderr
    assert authenticate(engine, reg["token"]) is None
