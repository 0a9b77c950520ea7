"""Benchmark: how close to slot time 1,000 networked villages start playing, and the memory it takes.

Run: .venv/bin/python benchmarks/slot_start.py [--villages 1000] [--sleep 90]

A generated county whose villages are all networked gets one slot at a minute
a little ahead; `outreach run` (SQLite) plays it with a fake player, a shell
script that appends its start time (bash $EPOCHREALTIME) to a file and then sleeps. The figures: the
spread of start times after the slot minute (first, median, p95, last), how
many players were alive together, the scheduler's peak RSS and the players'
total RSS. Baseline in the same run: a bare Python loop that starts the same
1,000 players with subprocess.Popen (no database, no claims, no log).

The players sleep --sleep seconds (default 90) rather than 600: every start
falls in the first seconds, all players are checked alive together after the
last start, and the rest of a 600 s sleep would only make the run ten minutes
long without changing a figure.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from county import make_workspace  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
# bash's $EPOCHREALTIME stamps the start without forking `date`; the player is then one `sleep`.
PLAYER = """#!/bin/bash
echo "$2 $EPOCHREALTIME" >> "{log}"
exec sleep {sleep}
"""


def rss_mb(pid: int, key: str = "VmRSS:") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def players_alive(marker: str) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmd = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if len(cmd) > 1 and cmd[0] == b"sleep" and cmd[1] == marker.encode():
                pids.append(int(entry.name))
    return pids


def read_starts(log: Path) -> list[float]:
    return [float(line.split()[1]) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []


def spread(starts: list[float], t0: float) -> dict[str, float]:
    d = sorted(s - t0 for s in starts)
    return {"first": d[0], "median": statistics.median(d), "p95": d[int(0.95 * (len(d) - 1))], "last": d[-1]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--villages", type=int, default=1000)
    parser.add_argument("--sleep", type=int, default=90)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slotbench-") as tmp_dir:
        tmp = Path(tmp_dir)
        ws = make_workspace(tmp / "ws", args.villages, mode="play")
        county = ws / "schedules" / "county.yaml"
        county.write_text(county.read_text(encoding="utf-8").replace("speaker: offline", "speaker: networked"),
                          encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"TZ": "UTC"}
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "outreach", "render", "-w", str(ws)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        print(f"(clips rendered in {time.perf_counter() - t:.0f} s, not part of the figures)")
        log, script = tmp / "starts.txt", tmp / "player.sh"
        script.write_text(PLAYER.format(log=log, sleep=args.sleep))
        script.chmod(0o755)
        slot = (datetime.now(TZ) + timedelta(minutes=2)).replace(second=0, microsecond=0)
        slots = ws / "schedules" / "slots.yaml"
        data = yaml.safe_load(slots.read_text(encoding="utf-8"))
        data["slots"]["morning"]["start"] = f"{slot:%H:%M}"
        if slot.hour >= 18:
            data["slots"]["evening"]["start"] = "23:45"
        slots.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        toml = ws / "outreach.toml"
        toml.write_text(re.sub(r"(?m)^player = .*$", f'player = ["{script}", "{{file}}", "{{village}}"]',
                               toml.read_text()), encoding="utf-8")

        err = (tmp / "run.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "outreach", "run", "-w", str(ws)], stderr=err, env=env)
        try:
            deadline = time.time() + (slot.timestamp() - time.time()) + 120
            while len(read_starts(log)) < args.villages and time.time() < deadline and proc.poll() is None:
                time.sleep(0.5)
            time.sleep(1.0)
            alive = players_alive(str(args.sleep))
            sched_mb = rss_mb(proc.pid, "VmHWM:")
            players_mb = sum(rss_mb(p) for p in alive)
            starts = read_starts(log)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
            err.close()
        if len(starts) < args.villages:
            print((tmp / "run.log").read_text()[-3000:])
            raise SystemExit(f"only {len(starts)} of {args.villages} players started")
        ours = spread(starts, slot.timestamp())

        base_log = tmp / "base.txt"
        script.write_text(PLAYER.format(log=base_log, sleep=args.sleep))
        t0 = time.time()
        base = [subprocess.Popen([str(script), "x.mp3", f"v{i}"], start_new_session=True)
                for i in range(args.villages)]
        while len(read_starts(base_log)) < args.villages and time.time() < t0 + 120:
            time.sleep(0.2)
        base_spread = spread(read_starts(base_log), t0)
        for p in base:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()

    print(f"{args.villages} networked villages due at {slot:%H:%M} (Asia/Shanghai); fake player sleeps {args.sleep} s")
    print("outreach run: start after the slot minute: first {first:.2f} s, median {median:.2f} s, "
          "p95 {p95:.2f} s, last {last:.2f} s".format(**ours))
    print(f"players alive together after the last start: {len(alive)}")
    print(f"scheduler peak RSS {sched_mb:.0f} MB; players' RSS together {players_mb:.0f} MB")
    print("baseline (bare Popen loop): first {first:.2f} s, last {last:.2f} s".format(**base_spread))
    print(f"ratio to baseline (spread first..last): "
          f"{(ours['last'] - ours['first']) / max(base_spread['last'] - base_spread['first'], 1e-3):.1f}x")


if __name__ == "__main__":
    main()
