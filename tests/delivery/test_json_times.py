"""One time rule for every JSON output: an instant is ISO 8601 in Beijing time with its offset (+08:00).

The commands run as subprocesses on a machine whose local zone is New York, against a database
that stores UTC and a station clock given in UTC: every instant they print must still end in +08:00.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from station_harness import Broker, mark_station_villages

from outreach.cli import cli
from outreach.config import TZ, load_config
from outreach.dates import json_time, json_value
from outreach.delivery.stations.accounts import record_presence
from outreach.planning.workspace import load, open_database

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None and not os.path.exists("/usr/sbin/mosquitto"),
                                reason="Mosquitto is not installed (tools/test installs it)")
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
VILLAGE = "dazhuang-01"


def instants(value: Any) -> list[str]:
    """Every string in a JSON value that is a date with a time of day."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in instants(v)]
    if isinstance(value, list):
        return [s for v in value for s in instants(v)]
    return [value] if isinstance(value, str) and INSTANT.match(value) else []


def test_json_time_is_beijing_time_with_its_offset_whatever_zone_comes_in() -> None:
    utc = datetime(2026, 12, 1, 22, 30, 0, 412000, tzinfo=timezone.utc)
    assert json_time(utc) == "2026-12-02T06:30:00.412000+08:00"
    assert json_time(utc.astimezone(timezone(timedelta(hours=-5)))) == json_time(utc)
    assert json_time(None) is None
    with pytest.raises(ValueError, match="不带时区"):
        json_time(datetime(2026, 12, 1, 6, 30))
    assert json.dumps({"at": utc, "day": utc.date()}, default=json_value) == (
        '{"at": "2026-12-02T06:30:00.412000+08:00", "day": "2026-12-01"}')


@pytest.mark.slow
def test_every_json_output_gives_instants_in_one_zone(rendered_workspace: Path, tmp_path: Path) -> None:
    ws = rendered_workspace
    broker = Broker(tmp_path / "broker")
    broker.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_BROKER_")} | broker.env() | {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'times.db'}", "TZ": "America/New_York",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def outreach(*args: str) -> Any:
        out = subprocess.run([sys.executable, "-m", "outreach", *args, "-w", str(ws)], env=env, capture_output=True,
                             text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    try:
        mark_station_villages(ws, (VILLAGE,))
        outputs: dict[str, Any] = {}
        outputs["station add"] = reg = outreach("station", "add", VILLAGE, "--server-url", "http://192.168.1.10:8000",
                                              "--json")
        engine = open_database(load(load_config(ws)), env["DATABASE_URL"])
        assert record_presence(engine, reg["station_id"], now=datetime.now(timezone.utc),
                               heartbeat={"buffered_until": "2026-12-09"})
        engine.dispose()
        outputs["alert send"] = sent = outreach("alert", "send", "--script", "fraud-96110", "--village", VILLAGE,
                                                "--json")
        outputs["alert status"] = outreach("alert", "status", sent["alert_id"], "--json")
        outputs["stations"] = outreach("stations", "--json")
        tomorrow = (datetime.now(TZ).date() + timedelta(days=1)).isoformat()
        outputs["export"] = outreach("export", "--date", tomorrow, "--village", "dazhuang-05", "--out",
                                     str(tmp_path / "usb"), "--mkdir", "--json")
        outputs["jobs"] = outreach("jobs", "--json")
        if "status" in cli.commands:  # exits non-zero with no scheduler running, by design: read its JSON anyway
            out = subprocess.run([sys.executable, "-m", "outreach", "status", "--json", "-w", str(ws)], env=env,
                                 capture_output=True, text=True, timeout=180)
            outputs["status"] = json.loads(out.stdout)
    finally:
        broker.stop()
    found = {name: instants(value) for name, value in outputs.items()}
    assert len(found["alert send"]) == 2 and len(found["alert status"]) == 2 and found["stations"], found
    wrong = {name: [s for s in values if not s.endswith("+08:00")] for name, values in found.items()}
    assert not any(wrong.values()), wrong
    assert outputs["alert send"]["sent_at"] == outputs["alert status"]["sent_at"]
