"""Benchmark: start-up time and memory of `outreach run` for a generated 1,000-village county.

Run: .venv/bin/python benchmarks/scheduler.py [--villages 1000]
Measures the first start (jobs created in the SQLite job store) and a restart
(jobs kept), from process launch to "scheduler running", and the peak resident
memory then. Baseline in the same run: a bare APScheduler process holding the
same number of cron jobs in memory (no workspace, no database).
"""

from __future__ import annotations

import argparse
import re
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from county import make_workspace  # noqa: E402

BASELINE = """
import sys
from apscheduler.schedulers.background import BackgroundScheduler
from zoneinfo import ZoneInfo
s = BackgroundScheduler(timezone=ZoneInfo("Asia/Shanghai"))
s.start()
for i in range(int(sys.argv[1])):
    s.add_job(print, "cron", hour=6 if i % 2 else 18, minute=30, id=f"job{i}")
print("scheduler running", file=sys.stderr, flush=True)
import time
time.sleep(600)
"""


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds from launch to 'scheduler running', and peak RSS (MB) then; stops the process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        for line in proc.stderr:
            if "scheduler running" in line:
                break
        else:
            raise RuntimeError(f"{cmd} exited before it was running")
        elapsed = time.perf_counter() - t0
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return elapsed, rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--villages", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="schedbench-") as tmp_dir:
        ws = make_workspace(Path(tmp_dir) / "ws", args.villages, mode="play")
        toml = ws / "outreach.toml"  # `run` refuses a player program that is not installed
        toml.write_text(re.sub(r"(?m)^player = .*$", 'player = ["true", "{file}"]', toml.read_text()))
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        run = [sys.executable, "-m", "outreach", "run", "-w", str(ws)]
        first_s, first_mb = start(run, env)
        jobs = subprocess.run([sys.executable, "-m", "outreach", "jobs", "--json", "-w", str(ws)],
                              capture_output=True, text=True, env=env, check=True).stdout.count('"id"')
        again_s, again_mb = start(run, env)
        base_s, base_mb = start([sys.executable, "-c", BASELINE, str(jobs)], env)
        print(f"county: {args.villages} villages -> {jobs} scheduler jobs")
        print(f"outreach run, first start (create jobs): {first_s:.2f} s, peak RSS {first_mb:.0f} MB")
        print(f"outreach run, restart (jobs kept):       {again_s:.2f} s, peak RSS {again_mb:.0f} MB")
        print(f"baseline, bare APScheduler with {jobs} in-memory jobs: {base_s:.2f} s, peak RSS {base_mb:.0f} MB")
        print(f"ratio to baseline: first start {first_s / base_s:.1f}x time, {first_mb / base_mb:.1f}x memory; "
              f"restart {again_s / base_s:.1f}x time")


if __name__ == "__main__":
    main()
