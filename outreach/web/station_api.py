"""The station API (`/api/station/...`): manifest, content blobs with Range, as-run upload; bearer-token auth.

A station sees only its own manifest (the village comes from its token) and
uploads only its own events. Blobs are content-addressed and the same for every
station. The router's lifespan also runs the MQTT listener for presence and
alert acks when a broker is configured.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from outreach.broker import load_broker_settings
from outreach.models import Station
from outreach.plan import TZ
from outreach.station.protocol import AsRunEvent, StationError, check_sha
from outreach.stations import authenticate, blob_path, build_manifests, ingest_events, read_slot_starts

log = logging.getLogger("outreach.station_api")
MAX_EVENTS = 500
_CHUNK = 64 * 1024


def _clock() -> datetime:
    return datetime.now(TZ)


class _LoadedCache:
    """The workspace loaded once, reloaded when a schedule or script file changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._loaded: Any = None

    def get(self, config: Any) -> Any:
        from outreach.workspace import load

        files = [p for d in (config.schedules_dir, config.scripts_dir, config.clips_dir) if d.is_dir()
                 for p in d.iterdir()]
        stamp = (max((p.stat().st_mtime for p in files), default=0.0), len(files))
        with self._lock:
            if self._loaded is None or stamp != self._stamp:
                self._loaded, self._stamp = load(config), stamp
            return self._loaded


_cache = _LoadedCache()


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    listener = None
    ctx = getattr(app.state, "ctx", None)
    if ctx is not None and ctx.engine is not None:
        try:
            broker = load_broker_settings(ctx.config.workspace)
            if broker is not None:
                from outreach.alerts import ControlListener

                listener = ControlListener(ctx.engine, broker, _clock)
                listener.start()
                app.state.station_listener = listener
        except Exception:
            log.exception("村广播站的 MQTT 监听没有启动；播放盒的在线状态不会更新")
    try:
        yield
    finally:
        if listener is not None:
            listener.stop()


router = APIRouter(prefix="/api/station", lifespan=_lifespan)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={"Cache-Control": "no-store"})


def _station(request: Request) -> Station | None:
    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    return authenticate(request.app.state.ctx.engine, token)


_DENIED = "村广播站的令牌缺失、不对或已被吊销；请用 `outreach station add` 重新登记"


@router.get("/manifest")
def manifest(request: Request, days: int = 7) -> Response:
    """The calling station's manifest of its next `days` days."""
    station = _station(request)
    if station is None:
        return _error(401, _DENIED)
    ctx = request.app.state.ctx
    try:
        loaded = _cache.get(ctx.config)
        broker = load_broker_settings(ctx.config.workspace)
        built = build_manifests(loaded, [(station.id, station.village_id)], now=_clock(), days=days,
                                engine=ctx.engine, broker_url=broker.url if broker else "",
                                slot_starts=read_slot_starts(ctx.slot_starts))
    except StationError as exc:
        return _error(400, str(exc))
    return Response(built.manifests[station.id].to_json(), media_type="application/json",
                    headers={"Cache-Control": "no-store"})


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    if not header or not header.startswith("bytes="):
        return None
    first, _, last = header[6:].split(",")[0].strip().partition("-")
    if not first.isdigit():
        raise ValueError(header)
    start = int(first)
    end = int(last) if last.isdigit() else size - 1
    if start >= size or end < start:
        raise ValueError(header)
    return start, min(end, size - 1)


def _stream(path: Path, start: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(start)
        left = length
        while left > 0:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


@router.get("/blobs/{sha256}")
def blob(sha256: str, request: Request) -> Response:
    """One program or alert MP3 by its sha256; `Range: bytes=N-` resumes a download."""
    if _station(request) is None:
        return _error(401, _DENIED)
    try:
        sha = check_sha(sha256)
    except StationError as exc:
        return _error(400, str(exc))
    path = blob_path(_cache.get(request.app.state.ctx.config), sha)
    if path is None:
        return _error(404, f"没有录音文件 {sha}；请重新获取节目清单（manifest）")
    size = path.stat().st_size
    try:
        rng = _range(request.headers.get("range"), size)
    except ValueError:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{sha}"', "Cache-Control": "no-store"}
    if rng is None:
        return StreamingResponse(_stream(path, 0, size), media_type="audio/mpeg",
                                 headers=headers | {"Content-Length": str(size)})
    start, end = rng
    headers |= {"Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)}
    return StreamingResponse(_stream(path, start, end - start + 1), status_code=206, media_type="audio/mpeg",
                             headers=headers)


@router.post("/events")
async def events(request: Request) -> Response:
    """Upload a batch of as-run events: {"events": [...]} -> {"accepted": [event ids]} (idempotent)."""
    station = _station(request)
    if station is None:
        return _error(401, _DENIED)
    try:
        body = await request.json()
        raw = body["events"]
        if not isinstance(raw, list) or len(raw) > MAX_EVENTS:
            return _error(400, f"'events' 必须是列表，最多 {MAX_EVENTS} 条事件")
        parsed = [AsRunEvent.from_dict(e) for e in raw]
    except (ValueError, KeyError, TypeError, StationError) as exc:
        return _error(400, f"播出记录批次有误：{exc}")
    try:
        accepted = ingest_events(request.app.state.ctx.engine, station, parsed, now=_clock())
    except (StationError, ValueError) as exc:
        return _error(400, str(exc))
    return JSONResponse({"accepted": accepted, "server_time": _clock().isoformat()},
                        headers={"Cache-Control": "no-store"})


@router.get("/time")
def server_time() -> Response:
    """The server's clock, for the stations' clock-offset check (no token needed)."""
    return JSONResponse({"server_time": _clock().isoformat(), "pid": os.getpid()})
