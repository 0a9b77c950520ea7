"""A fake loudspeaker player for scheduler tests: logs each start (pid, group, time) and can sleep, fail or fork.

    python tests/fake_player.py --log starts.jsonl [--sleep 2] [--alert-sleep 1] [--exit 0] [--fork] -- {file} ...

Each start appends one JSON line (O_APPEND, one write) to --log: role, pid, pgid,
time (Unix seconds) and the remaining arguments. With --fork it behaves like a
wrapper script: it starts a child that logs itself and sleeps, then waits for it. With --alert-sleep it sleeps
that long instead when an argument is `alert` (the {slot} of a 紧急插播).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def log_start(path: str, role: str, args: list[str]) -> None:
    line = json.dumps({"role": role, "pid": os.getpid(), "pgid": os.getpgid(0), "time": time.time(),
                       "args": args}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--alert-sleep", type=float, default=None)
    parser.add_argument("--exit", type=int, default=0)
    parser.add_argument("--fork", action="store_true")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("rest", nargs="*")
    opts = parser.parse_args()
    role = "child" if opts.child else "player"
    log_start(opts.log, role, opts.rest)
    if opts.fork:
        child = subprocess.Popen([sys.executable, __file__, "--log", opts.log, "--sleep", str(opts.sleep),
                                  "--child", *opts.rest])
        return child.wait() or opts.exit
    time.sleep(opts.alert_sleep if opts.alert_sleep is not None and "alert" in opts.rest else opts.sleep)
    if opts.exit:
        print(f"fake player failing with {opts.exit}", file=sys.stderr)
    return opts.exit


if __name__ == "__main__":
    sys.exit(main())
