"""Test harness for village stations: a private Mosquitto, `outreach serve`, and stations as subprocesses.

Every wait is bounded in time; everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
SERVER_USER, SERVER_PASSWORD = "outreach-server", "server-secret-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 30.0, every_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def mark_station_villages(workspace: Path, villages: tuple[str, ...]) -> None:
    """Make `villages` of the sample county `speaker: station` (registration refuses other villages)."""
    path = workspace / "schedules" / "county.yaml"
    text = path.read_text(encoding="utf-8")
    for v in villages:
        line = next(ln for ln in text.splitlines() if f"id: {v}," in ln)
        text = text.replace(line, line.replace("speaker: networked", "speaker: station"))
    path.write_text(text, encoding="utf-8")


class _Child:
    """A server subprocess of a test, logging to a file, started until `ready` and stopped with SIGTERM."""

    stop_timeout_s = 10.0

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str], log_path: Path, what: str, ready: Callable[[], bool], timeout_s: float,
               env: dict[str, str] | None = None) -> None:
        log = log_path.open("ab")
        self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
        wait_for(what, ready, timeout_s)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=self.stop_timeout_s)
        self.proc = None


class Broker(_Child):
    """A private Mosquitto whose password and ACL files the outreach server rewrites."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.pw, self.acl, self.pid_file = folder / "passwd", folder / "acl", folder / "mosquitto.pid"
        from outreach.delivery.stations.broker import BrokerSettings, mosquitto_hash, write_auth_files

        self.settings = BrokerSettings(self.url, SERVER_USER, SERVER_PASSWORD, self.pw, self.acl, self.pid_file)
        write_auth_files(self.settings, [], server_hash=mosquitto_hash(SERVER_PASSWORD))
        (folder / "mosquitto.conf").write_text(
            f"user root\nlistener {self.port} 127.0.0.1\nuse_username_as_clientid true\nallow_anonymous false\n"
            f"password_file {self.pw}\n"
            f"acl_file {self.acl}\npid_file {self.pid_file}\npersistence false\n")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"OUTREACH_BROKER_URL": self.url, "OUTREACH_BROKER_USERNAME": SERVER_USER,
                "OUTREACH_BROKER_PASSWORD": SERVER_PASSWORD, "OUTREACH_BROKER_PASSWORD_FILE": str(self.pw),
                "OUTREACH_BROKER_ACL_FILE": str(self.acl), "OUTREACH_BROKER_PID_FILE": str(self.pid_file)}

    def start(self) -> None:
        self._spawn([MOSQUITTO, "-c", str(self.folder / "mosquitto.conf")], self.folder / "mosquitto.log",
                    "mosquitto to listen", self._listening, 10)

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False


class Server(_Child):
    """`outreach serve` on a free loopback port, as a subprocess."""

    stop_timeout_s = 20.0

    def __init__(self, workspace: Path, env: dict[str, str], *args: str) -> None:
        super().__init__()
        self.workspace, self.env, self.args, self.port = workspace, env, args, free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._spawn([sys.executable, "-m", "outreach", "serve", "--port", str(self.port), "-w", str(self.workspace),
                     *self.args], self.workspace / "serve.log", "outreach serve", self._up, 60, env=self.env)

    def _up(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, (self.workspace / "serve.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(self.url + "/api/station/time", timeout=1):
                return True
        except OSError:
            return False


def cli(workspace: Path, env: dict[str, str], *args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "outreach", *args, "-w", str(workspace)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if "--json" in args else out.stdout


class StationProc:
    """A station subprocess writing what it plays to `out/` (file output, `speed` x real time)."""

    def __init__(self, folder: Path, server_url: str, station_id: str, token: str, env: dict[str, str],
                 speed: float = 20.0) -> None:
        self.folder, self.server_url, self.station_id, self.env, self.speed = folder, server_url, station_id, env, speed
        folder.mkdir(parents=True, exist_ok=True)
        self.token_file = folder / "token"
        self.token_file.write_text(token)
        self.data, self.out = folder / "data", folder / "out"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.folder / "station.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "outreach.station", "run", "--server", self.server_url, "--station-id",
             self.station_id, "--token-file", str(self.token_file), "--data", str(self.data), "--output",
             f"file:{self.out}@{self.speed}", "--sync-s", "2", "--upload-s", "1", "--heartbeat-s", "1"],
            env=self.env, stdout=log, stderr=log)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.proc = None

    def log(self) -> str:
        p = self.folder / "station.log"
        return p.read_text(errors="replace")[-4000:] if p.exists() else ""

    def plays(self) -> list[dict[str, Any]]:
        p = self.out / "plays.jsonl"
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]

    def manifest(self) -> dict[str, Any] | None:
        p = self.data / "manifest.json"
        return json.loads(p.read_text()) if p.exists() else None

    def synced(self) -> bool:
        m = self.manifest()
        if not m:
            return False
        blobs = {e["sha256"] for e in m["entries"]} | ({m["fallback"]["sha256"]} if m.get("fallback") else set())
        return all((self.data / "blobs" / f"{b}.mp3").is_file() for b in blobs)


def db_rows(workspace: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(str(workspace / "outreach.db"), timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def set_slots(path: Path, overrides: list[dict[str, str]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(overrides))
    os.replace(tmp, path)


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(time.time() + seconds, TZ)
