"""Shared by the village-station integration modules: a county with a real Mosquitto, a real
`outreach serve` whose slots can be moved to seconds ahead, and stations as subprocesses (file output).

Each module that imports `county` gets its own (the fixture is module-scoped), so tools/test can run
the modules side by side on two workers.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from conftest import copy_workspace
from station_harness import TZ, Broker, Server, StationProc, at, cli, db_rows, mark_station_villages, set_slots

# ontime: these assert that a station starts a slot within 2 s of its time, so tools/test runs them
# apart from the rest of the suite (a neighbour busy rendering or transcribing would make them late).
MARKS = [pytest.mark.slow, pytest.mark.faults, pytest.mark.ontime,
         pytest.mark.skipif(shutil.which("mosquitto") is None and not os.path.exists("/usr/sbin/mosquitto"),
                            reason="Mosquitto is not installed (tools/test installs it)")]
STATION_VILLAGES = ("dazhuang-01", "dazhuang-02", "dazhuang-03", "dazhuang-06", "dazhuang-08")
TODAY = lambda: datetime.now(TZ).date().isoformat()  # noqa: E731


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory, rendered_build: Path):
    root = tmp_path_factory.mktemp("stations")
    ws = copy_workspace(root / "ws")
    shutil.copytree(rendered_build, ws / "build")
    mark_station_villages(ws, STATION_VILLAGES)
    broker = Broker(root / "broker")
    broker.start()
    slots = root / "slots.json"
    set_slots(slots, [])
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | broker.env() | {
        "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    server = Server(ws, env, "--slot-starts", str(slots))
    server.start()
    state = {"ws": ws, "root": root, "broker": broker, "server": server, "env": env, "slots": slots,
             "overrides": [], "stations": []}
    yield state
    for st in state["stations"]:
        st.stop()
    server.stop()
    broker.stop()


def override(county: dict, village: str, slot: str, seconds: float) -> datetime:
    """Move `village`'s `slot` today to `seconds` from now on the server; the instant it moved to."""
    start = at(seconds)
    county["overrides"].append({"village_id": village, "date": TODAY(), "slot": slot, "start": start.isoformat()})
    set_slots(county["slots"], county["overrides"])
    return start


def station(county: dict, village: str, name: str) -> StationProc:
    reg = cli(county["ws"], county["env"], "station", "add", village, "--server-url", county["server"].url, "--json")
    assert set(reg) == {"station_id", "village_id", "token", "command"} and reg["village_id"] == village
    st = StationProc(county["root"] / name, county["server"].url, reg["station_id"], reg["token"], county["env"])
    st.reg = reg  # type: ignore[attr-defined]
    county["stations"].append(st)
    return st


def as_run_rows(county: dict, village: str, slot: str) -> list[tuple]:
    return db_rows(county["ws"], "SELECT status, played_at, note, error FROM broadcast WHERE village_id = ? AND "
                   "date = ? AND slot = ?", (village, TODAY(), slot))


def starts(st: StationProc, label: str) -> list[dict]:
    return [p for p in st.plays() if p["label"] == label and p["event"] == "start"]
