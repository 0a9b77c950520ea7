"""`python -m outreach.station run ...`: the station process (what `outreach station run` becomes)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from outreach.station.protocol import StationError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="outreach station run", description="Run a village station.")
    p.add_argument("command", choices=["run"])
    p.add_argument("--server", required=True, help="County server URL, e.g. http://county.example:8000")
    p.add_argument("--station-id", required=True)
    p.add_argument("--token-file", required=True, type=Path)
    p.add_argument("--data", required=True, type=Path, help="Folder for the buffer, job store and events.")
    p.add_argument("--broker", default="", help="mqtt://HOST:PORT (default: the one the manifest names)")
    p.add_argument("--output", default="sound", help="sound (ALSA via miniaudio), null, or file:DIR[@SPEED] (tests)")
    p.add_argument("--player", default=None, help="A player command instead, e.g. 'mpg123 -q {file}'")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--sync-s", type=float, default=300.0)
    p.add_argument("--upload-s", type=float, default=5.0)
    p.add_argument("--heartbeat-s", type=float, default=30.0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from outreach.station.control import Control
    from outreach.station.output import make_output
    from outreach.station.runner import Runtime, Settings, clock

    try:
        token = args.token_file.read_text(encoding="utf-8").strip()
        if not token:
            raise StationError(f"{args.token_file} is empty; write the token `outreach station add` printed")
        output = make_output(args.output, args.player)
        rt = Runtime(Settings(args.server, args.station_id, token, args.data.resolve(), args.days, args.sync_s,
                              args.upload_s, args.heartbeat_s, args.broker), output)
    except (StationError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    rt.sync_once(clock())
    rt.start()
    broker = args.broker or (rt.manifest.broker_url if rt.manifest else "")
    if broker:
        rt.control = Control(rt, broker, heartbeat_s=args.heartbeat_s)
        rt.control.start()
    else:
        logging.warning("no broker known yet: alerts and presence wait for a manifest that names one")
    logging.info("station %s running (data %s)", args.station_id, args.data)
    done.wait()
    rt.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
