"""Content sync over HTTP: the manifest, blobs by sha256 (resumed with Range, verified, renamed), pruning, uploads.

Standard library only (urllib), with a timeout on every request.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from outreach.station.protocol import TZ, AsRunEvent, Manifest, StationError, check_sha

MANIFEST_FILE = "manifest.json"
BLOBS = "blobs"
_CHUNK = 64 * 1024


class HTTPFailure(StationError):
    """The server answered with an HTTP error status (kept in `status`)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Unreachable(StationError):
    """The server could not be reached at all (network down, server stopped)."""


def network_reason(exc: BaseException) -> str:
    """Why the county server could not be reached, in Chinese (urllib's and the socket's own text is English)."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException) else exc
    if isinstance(reason, TimeoutError):
        return "等了太久没有回应（网络慢或县服务器太忙）"
    if isinstance(reason, socket.gaierror):
        return "找不到这个网址（域名解析失败；请检查网址和网络）"
    if isinstance(reason, ssl.SSLError):
        return "HTTPS 证书校验没通过（请检查县服务器的证书和本机的时间）"
    if isinstance(reason, ConnectionRefusedError):
        return "连接被拒绝（县服务器没有运行，或网址的端口不对）"
    if isinstance(reason, ConnectionResetError):
        return "连接被对方断开"
    if isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "网络不通（请检查网线、4G 或路由器）"
    code = getattr(reason, "errno", None)
    return f"网络错误（错误码 {code}）" if code else "网络错误"


class Client:
    """The station's HTTP client for one server and token."""

    def __init__(self, server: str, token: str, *, timeout_s: float = 20.0) -> None:
        self.server, self.token, self.timeout_s = server.rstrip("/"), token, timeout_s

    def _request(self, path: str, *, body: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method="POST" if data else "GET",
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json", **(headers or {})})
        try:
            return urllib.request.urlopen(req, timeout=self.timeout_s)
        except urllib.error.HTTPError as exc:
            detail = exc.read(500).decode("utf-8", "replace")
            exc.close()
            if exc.code == 401:
                raise HTTPFailure(f"县服务器拒绝了本广播站的令牌（401）：{detail}", 401) from exc
            raise HTTPFailure(f"{path}：HTTP {exc.code}：{detail}", exc.code) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise Unreachable(f"连不上县服务器 {self.server}：{network_reason(exc)}") from exc

    def manifest(self, days: int = 7) -> tuple[Manifest, float]:
        """The manifest and the clock offset (server minus station, seconds) measured with it."""
        sent = time.time()
        with self._request(f"/api/station/manifest?days={days}") as resp:
            text = resp.read().decode("utf-8")
        received = time.time()
        manifest = Manifest.from_json(text)
        server = datetime.fromisoformat(manifest.server_time).timestamp()
        return manifest, round(server - (sent + received) / 2, 3)

    def download(self, sha256: str, folder: Path, *, expected_size: int | None = None) -> Path:
        """`folder/<sha256>.mp3`, fetched (or resumed from `<sha256>.part`) and verified; StationError on a mismatch."""
        sha = check_sha(sha256)
        target = folder / f"{sha}.mp3"
        if target.is_file():
            return target
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / f"{sha}.part"
        have = part.stat().st_size if part.exists() else 0
        if expected_size is not None and have > expected_size:
            part.unlink()
            have = 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            resp = self._request(f"/api/station/blobs/{sha}", headers=headers)
        except HTTPFailure as exc:
            if exc.status == 416:  # the part is already whole (or junk): verify below / start again
                resp = None
            else:
                raise
        if resp is not None:
            with resp, part.open("ab" if have and resp.status == 206 else "wb") as out:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        digest = hashlib.sha256()
        with part.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != sha:
            part.unlink(missing_ok=True)
            raise StationError(f"音频文件 {sha[:12]}… 未通过 sha256 校验；下次同步时重新下载")
        os.replace(part, target)
        return target

    def upload(self, events: list[AsRunEvent]) -> tuple[list[str], dict[str, str]]:
        """POST a batch of events; (ids the server now holds, {id: reason} of the ones it refused for good).

        A refusal is final when the server answers the event with a 4xx status:
        the event is wrong (not in this station's manifest, impossible time), so
        sending it again would change nothing. A 5xx leaves it to be sent again.
        """
        with self._request("/api/station/events", body={"events": [e.to_dict() for e in events]}) as resp:
            reply = json.loads(resp.read())
        accepted = [str(e) for e in reply["accepted"]]
        refused = {}
        for r in reply.get("results", []):  # a server from before per-event results sends none
            if isinstance(r, dict) and isinstance(r.get("status"), int) and 400 <= r["status"] < 500 and r.get("event_id"):
                refused[str(r["event_id"])] = str(r.get("reason", ""))
        return accepted, refused


def read_manifest(data: Path) -> Manifest | None:
    path = data / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        return Manifest.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, KeyError, StationError):
        return None


def write_manifest(data: Path, manifest: Manifest) -> None:
    path = data / MANIFEST_FILE
    tmp = data / f".{MANIFEST_FILE}.tmp"
    with tmp.open("w", encoding="utf-8") as f:
        f.write(manifest.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def keep_set(new: Manifest, old: Manifest | None, today: date) -> set[str]:
    """Blobs to keep: what the new manifest references, plus yesterday's programs."""
    keep = new.blobs()
    if old is not None:
        yesterday = (today - timedelta(days=1)).isoformat()
        keep |= {e.sha256 for e in old.entries if e.date >= yesterday}
    return keep


def sync(client: Client, data: Path, *, now: datetime, days: int = 7) -> tuple[Manifest, float, list[str]]:
    """Fetch the manifest, download every blob it lacks, save it, prune; (manifest, clock offset, failures).

    The manifest file is replaced only after the download pass, so the station
    always plays from a manifest whose available blobs are whole and verified.
    """
    manifest, offset = client.manifest(days)
    folder = data / BLOBS
    failures = []
    wanted = {e.sha256: e.size for e in manifest.entries}
    if manifest.fallback is not None:  # the fallback first: it guards every slot
        wanted = {manifest.fallback.sha256: manifest.fallback.size} | wanted
    for sha, size in wanted.items():
        try:
            client.download(sha, folder, expected_size=size)
        except StationError as exc:
            failures.append(str(exc))
            if isinstance(exc, Unreachable):
                break
    old = read_manifest(data)
    write_manifest(data, manifest)
    keep = keep_set(manifest, old, now.astimezone(TZ).date())
    for f in folder.glob("*.mp3"):
        if f.stem not in keep:
            f.unlink(missing_ok=True)
    return manifest, offset, failures
