"""Village stations at county scale: 1,000 asyncio MQTT clients against one Mosquitto, manifests and storage.

Prints: alert delivery latency p50/p95/max to every station, heartbeat ingest rate
into the database through the server's real listener (ControlListener), manifest
build time for N stations x 7 days against planning alone (the baseline), and bytes
in the content-addressed store against one file per village program.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]

from county import make_workspace  # noqa: E402
from station_harness import Broker, wait_for  # noqa: E402

from outreach.audio.render import render_library  # noqa: E402
from outreach.config import (
    TZ,  # noqa: E402
    load_config,  # noqa: E402
)
from outreach.db import session  # noqa: E402
from outreach.delivery.stations.alerts import ControlListener, latency_summary  # noqa: E402
from outreach.delivery.stations.broker import mosquitto_hash, write_auth_files  # noqa: E402
from outreach.delivery.stations.manifests import build_manifests  # noqa: E402
from outreach.files import temp_dir  # noqa: E402
from outreach.models import Station  # noqa: E402
from outreach.planning.workspace import load, open_database, plan_days  # noqa: E402
from outreach.station.protocol import Leaf, topic  # noqa: E402


async def _clients(broker: Broker, ids: list[str], token: str, rounds: int) -> dict[str, float]:
    import aiomqtt

    received: dict[str, float] = {}
    ready = asyncio.Event()
    connected = [0]

    async def one(sid: str) -> None:
        async with aiomqtt.Client("127.0.0.1", broker.port, username=sid, password=token, identifier=sid,
                                  timeout=60) as c:
            await c.subscribe(topic(sid, Leaf.ALERT), qos=1)
            connected[0] += 1
            if connected[0] == len(ids):
                ready.set()
            await ready.wait()
            for r in range(rounds):
                await c.publish(topic(sid, Leaf.HEARTBEAT), json.dumps({"version": "1", "round": r}), qos=0)
            async for msg in c.messages:
                received[sid] = time.time()
                data = json.loads(msg.payload)
                received[sid + ":sent"] = data["sent"]
                return

    tasks = [asyncio.create_task(one(sid)) for sid in ids]
    await asyncio.wait_for(ready.wait(), 120)
    return {"tasks": tasks, "received": received}  # type: ignore[dict-item]


def mqtt_benchmark(tmp: Path, n: int, rounds: int) -> None:
    import paho.mqtt.client as mqtt

    broker = Broker(tmp / "broker")
    token = "bench-token"
    ids = [f"s{i:04d}" for i in range(n)]
    h = mosquitto_hash(token)
    write_auth_files(broker.settings, [(sid, h) for sid in ids], server_hash=mosquitto_hash(broker.settings.password))
    conf = broker.folder / "mosquitto.conf"
    conf.write_text(conf.read_text() + "max_connections -1\nmax_queued_messages 100000\n")
    broker.start()
    engine = open_database_for(tmp, ids)
    listener = ControlListener(engine, broker.settings, lambda: datetime.now(TZ))
    listener.start()
    time.sleep(1)

    async def run() -> None:
        t_conn = time.perf_counter()
        state = await _clients(broker, ids, token, rounds)
        print(f"connect: {n} stations in {time.perf_counter() - t_conn:.1f} s")
        t0 = time.perf_counter()
        await asyncio.to_thread(wait_for, "heartbeats stored", lambda: listener.messages >= n * rounds, 300, 0.05)
        ingest = time.perf_counter() - t0
        print(f"heartbeat ingest (listener -> database): {n * rounds} in {ingest:.2f} s = {n * rounds / ingest:,.0f}/s")
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-alert", protocol=mqtt.MQTTv5)
        pub.username_pw_set(broker.settings.alert_username, broker.settings.password)  # the listener has `username`
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        for sid in ids:
            pub.publish(topic(sid, Leaf.ALERT), json.dumps({"sent": time.time()}), qos=1)
        received = state["received"]
        await asyncio.wait_for(asyncio.gather(*state["tasks"]), 120)
        lat = [received[s] - received[s + ":sent"] for s in ids]
        since_first = [received[s] - min(received[x + ":sent"] for x in ids) for s in ids]
        print(f"alert latency to {len(lat)} stations (own publish -> receipt): {latency_summary(lat)}")
        print(f"alert latency from the first publish (all {n} published in one loop): {latency_summary(since_first)}")
        pub.loop_stop()

    try:
        asyncio.run(run())
    finally:
        listener.stop()
        broker.stop()


def open_database_for(tmp: Path, ids: list[str]):  # type: ignore[no-untyped-def]
    from outreach.db import make_engine, upgrade

    engine = make_engine(f"sqlite:///{tmp / 'presence.db'}")
    upgrade(engine)
    now = datetime.now(TZ)
    with session(engine) as s:
        for sid in ids:
            s.add(Station(id=sid, village_id=sid, token_sha256=sid.ljust(64, "0"), broker_hash="x", created_at=now))
    return engine


def manifest_benchmark(tmp: Path, n: int, days: int) -> None:
    ws = make_workspace(tmp / "ws", n)
    text = (ws / "schedules" / "county.yaml").read_text(encoding="utf-8")
    (ws / "schedules" / "county.yaml").write_text(
        text.replace("speaker: networked", "speaker: station").replace("speaker: offline", "speaker: station"),
        encoding="utf-8")
    config = load_config(ws)
    loaded = load(config)
    report = render_library(config, loaded.library)
    assert not report.failures, report.failures
    engine = open_database(loaded)
    now = datetime(2026, 12, 1, 0, 5, tzinfo=TZ)
    stations = [(f"{v}-st", v) for v in sorted(loaded.registry.villages)]
    t0 = time.perf_counter()
    plan_days(loaded, now.date(), now.date() + timedelta(days=days - 1))
    t_plan = time.perf_counter() - t0
    t0 = time.perf_counter()
    built = build_manifests(loaded, stations, now=now, days=days, engine=engine)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    built = build_manifests(loaded, stations, now=now, days=days)
    t_warm = time.perf_counter() - t0
    entries = [e for m in built.manifests.values() for e in m.entries]
    per_village = sum(e.size for e in entries)
    stored = sum(p.stat().st_size for p in (config.build_path / "blobs").glob("*.mp3"))
    print(f"manifests: {len(stations)} stations x {days} days = {built.programs} entries, {built.distinct} distinct")
    print(f"manifest build: cold {t_cold:.2f} s (joins + planned rows), warm {t_warm:.2f} s; "
          f"planning alone {t_plan:.2f} s (warm/plan = {t_warm / t_plan:.2f}x)")
    print(f"bytes stored: {stored / 1e6:.1f} MB content-addressed vs {per_village / 1e6:.1f} MB one file per "
          f"village program ({per_village / max(stored, 1):.0f}x less)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=5, help="heartbeats per station")
    parser.add_argument("--skip-manifests", action="store_true")
    args = parser.parse_args()
    with temp_dir("bench-stations") as tmp_dir:
        tmp = Path(tmp_dir)
        mqtt_benchmark(tmp, args.stations, args.rounds)
        if not args.skip_manifests:
            manifest_benchmark(tmp, args.stations, args.days)


if __name__ == "__main__":
    main()
