"""Alerts reach village stations: they cut into a program that then resumes, and reach a box that comes
back before they expire, never after. Real Mosquitto, real `outreach serve`, stations as subprocesses.
"""

from __future__ import annotations

import time

from station_county import MARKS, TODAY, county, override, starts, station  # noqa: F401 (county: a fixture)
from station_harness import cli, wait_for

pytestmark = MARKS


def test_alert_interrupts_a_program_which_then_resumes(county: dict) -> None:
    st = station(county, "dazhuang-02", "st2")
    st.speed = 5.0  # slow enough for the alert, sent by the CLI, to land mid-program
    st.start()
    wait_for("sync", st.synced, 30)
    override(county, "dazhuang-02", "evening", 6)
    label = f"{TODAY()}/evening"
    wait_for("program start", lambda: starts(st, label), 30)
    time.sleep(1.0)
    sent = cli(county["ws"], county["env"], "alert", "send", "--script", "fraud-96110", "--village",
               "dazhuang-02", "--expires", "10m", "--json")
    assert sent["targets"] == [st.station_id]
    alert_label = f"alert-{sent['alert_id']}"
    wait_for("alert end", lambda: [p for p in st.plays() if p["label"] == alert_label and p["event"] == "end"], 60)
    wait_for("program end", lambda: [p for p in st.plays() if p["label"] == label and p["event"] == "end"], 120)
    seq = [(p["label"], p["event"]) for p in st.plays() if p["label"] in (label, alert_label)]
    assert seq == [(label, "start"), (label, "stop"), (alert_label, "start"), (alert_label, "end"),
                   (label, "start"), (label, "end")], seq
    resumed = [p for p in st.plays() if p["label"] == label and p["event"] == "start"][1]
    assert resumed["position_s"] > 1.0
    status = wait_for("alert status played", lambda: (s := cli(county["ws"], county["env"], "alert", "status",
                                                               sent["alert_id"], "--json"))["played"] and s, 20)
    assert status["played"] == [st.station_id] and status["latency_s"]["max"] < 30


def test_alert_reaches_a_station_back_before_expiry_and_never_after(county: dict) -> None:
    st = station(county, "dazhuang-06", "st6")
    st.start()
    wait_for("sync", st.synced, 20)
    def state(online: bool) -> list:
        return [s for s in cli(county["ws"], county["env"], "stations", "--json")
                if s["station_id"] == st.station_id and s["online"] is online]

    wait_for("online", lambda: state(True), 20)
    st.kill9()
    wait_for("the last will marks it offline", lambda: state(False), 40)
    late = cli(county["ws"], county["env"], "alert", "send", "--script", "fraud-96110", "--village",
               "dazhuang-06", "--expires", "10s", "--json")
    time.sleep(11)
    soon = cli(county["ws"], county["env"], "alert", "send", "--script", "fraud-96110", "--village",
               "dazhuang-06", "--expires", "5m", "--json")
    st.start()
    wait_for("the unexpired alert plays", lambda: [p for p in st.plays()
                                                  if p["label"] == f"alert-{soon['alert_id']}" and p["event"] == "end"],
             30)
    time.sleep(2)
    assert not [p for p in st.plays() if p["label"] == f"alert-{late['alert_id']}"]
